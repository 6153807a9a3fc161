//! Groups decide who may use which upstream and tool: local groups (`group member add`) and rules
//! (`policy allow`), applied at every list and every call, within `GUARD_CACHE_SECS` of a change.
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::mcp::{McpClient, until_tool};
use crate::support::upstreams::upstreams;
use crate::support::*;

async fn token_of(front: &TestApp, auth: &ClientAuth, name: &str) -> String {
    let mut browser = signup_and_login(front, name, PASSWORD).await;
    let tokens = issue_tokens(front, &mut browser, auth, ALL_SCOPES).await;
    tokens["access_token"].as_str().unwrap().to_owned()
}

async fn tool_names(client: &mut McpClient<'_>) -> Vec<String> {
    let listed = client.result("tools/list", json!({})).await;
    listed["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn groups_gate_upstreams_and_tools_at_listing_and_call_and_changes_apply_within_the_cache_bound() {
    let kit = upstreams();
    let front = spawn_app_with(&[("UPSTREAM_RELOAD_SECS", "1"), ("GUARD_CACHE_SECS", "1")]).await;
    front.cli(&["upstream", "add", "every", "--command", "node", "--arg", &kit.everything()]);
    let auth = ClientAuth::Public(front.register_public_client(REDIRECT_URI).await);
    let anna = token_of(&front, &auth, "anna").await;
    let bob = token_of(&front, &auth, "bob").await;
    let mut anna_mcp = McpClient::connect(&front, &anna).await;
    let mut bob_mcp = McpClient::connect(&front, &bob).await;

    // No rule: everyone signed in may use every upstream.
    until_tool(&mut anna_mcp, "every__echo").await;
    assert!(tool_names(&mut bob_mcp).await.contains(&"every__echo".to_owned()));

    // Only group eng may use it, and not get-env.
    front.cli(&["group", "member", "add", "eng", "anna"]);
    let said = front.cli(&["policy", "allow", "eng", "every", "--deny-tools", "get-env"]);
    assert!(said.contains("group eng may use every except get-env"), "{said}");
    assert!(front.cli(&["group", "list"]).contains("anna"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while tool_names(&mut bob_mcp).await.iter().any(|t| t.starts_with("every__")) {
        assert!(Instant::now() < deadline, "bob still sees the upstream");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let anna_tools = tool_names(&mut anna_mcp).await;
    assert!(anna_tools.contains(&"every__echo".to_owned()), "{anna_tools:?}");
    assert!(!anna_tools.contains(&"every__get-env".to_owned()), "a denied tool is not listed: {anna_tools:?}");
    assert!(anna_tools.contains(&"whoami".to_owned()), "the built-ins stay");
    // Nor its prompts, resource templates and resources: bob's lists go without them (never an error).
    let bob_prompts = bob_mcp.list_all("prompts/list", "prompts", "name").await;
    assert!(!bob_prompts.iter().any(|p| p.starts_with("every__")), "{bob_prompts:?}");
    assert!(anna_mcp.list_all("prompts/list", "prompts", "name").await.contains(&"every__simple-prompt".into()));
    let templates = "resources/templates/list";
    let bob_templates = bob_mcp.list_all(templates, "resourceTemplates", "uriTemplate").await;
    let anna_templates = anna_mcp.list_all(templates, "resourceTemplates", "uriTemplate").await;
    assert!(anna_templates.len() > bob_templates.len(), "{anna_templates:?} / {bob_templates:?}");
    let bob_resources = bob_mcp.list_all("resources/list", "resources", "uri").await;
    let anna_resources = anna_mcp.list_all("resources/list", "resources", "uri").await;
    let theirs: Vec<&String> = anna_resources.iter().filter(|r| !bob_resources.contains(r)).collect();
    assert!(!theirs.is_empty(), "anna lists the upstream's resources: {anna_resources:?} / {bob_resources:?}");

    // Calls: allowed, denied by pattern, refused for want of a group; each refusal names the rule.
    let echoed = anna_mcp.call_tool("every__echo", json!({"message": "hi"})).await;
    assert!(echoed.to_string().contains("hi"), "{echoed}");
    let denied = anna_mcp.request("tools/call", json!({"name": "every__get-env", "arguments": {}})).await;
    assert_eq!(denied["error"]["code"], -32600, "{denied}");
    assert!(denied["error"]["message"].as_str().unwrap().contains("denied to group eng"), "{denied}");
    let outsider = bob_mcp.request("tools/call", json!({"name": "every__echo", "arguments": {"message": "x"}})).await;
    assert!(outsider["error"]["message"].as_str().unwrap().contains("for the groups eng"), "{outsider}");
    // Prompts of the upstream are refused the same way.
    let prompts = bob_mcp.request("prompts/get", json!({"name": "every__simple-prompt"})).await;
    assert!(prompts.to_string().contains("policy"), "{prompts}");
    // Audit events of calls are written in batches.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let audit = front.cli(&["audit", "--event", "policy_refused"]);
        if audit.contains("every") && audit.contains("get-env") {
            break;
        }
        assert!(Instant::now() < deadline, "the refusal is audited: {audit}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Leaving the group takes effect within the cache bound.
    front.cli(&["group", "member", "remove", "eng", "anna"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while tool_names(&mut anna_mcp).await.iter().any(|t| t.starts_with("every__")) {
        assert!(Instant::now() < deadline, "anna still sees the upstream after leaving the group");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    front.cli(&["policy", "remove", "eng", "every"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tool_names(&mut bob_mcp).await.contains(&"every__echo".to_owned()) {
        assert!(Instant::now() < deadline, "without rules the upstream is everyone's again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_admin_role_can_come_from_a_group() {
    let front = spawn_app_with(&[("ADMIN_GROUP", "ops")]).await;
    let mut bob = signup_and_login(&front, "bob", PASSWORD).await;
    assert_ne!(bob.get("/admin").await.status(), reqwest::StatusCode::OK, "not an admin yet");
    front.cli(&["group", "member", "add", "ops", "bob"]);
    assert_eq!(bob.get("/admin").await.status(), reqwest::StatusCode::OK, "a member of ADMIN_GROUP is an admin");
    front.cli(&["group", "member", "remove", "ops", "bob"]);
    assert_ne!(bob.get("/admin").await.status(), reqwest::StatusCode::OK, "leaving the group ends it");
}

#[tokio::test]
async fn the_consent_page_offers_only_the_scopes_of_upstreams_the_person_may_use() {
    let kit = upstreams();
    let front = spawn_app_with(&[("UPSTREAM_RELOAD_SECS", "1"), ("GUARD_CACHE_SECS", "1")]).await;
    front.cli(&["upstream", "add", "every", "--command", "node", "--arg", &kit.everything(), "--scope", "every-x"]);
    front.cli(&["policy", "allow", "eng", "every"]);
    let auth = ClientAuth::Public(front.register_public_client(REDIRECT_URI).await);
    let mut anna = signup_and_login(&front, "anna", PASSWORD).await;
    front.cli(&["group", "member", "add", "eng", "anna"]);
    let mut bob = signup_and_login(&front, "bob", PASSWORD).await;
    let wanted = "mcp:read mcp:write every-x";
    // The configuration reaches the server's scope catalog within its re-read interval.
    let deadline = Instant::now() + Duration::from_secs(10);
    let anna_page = loop {
        let pkce = pkce_pair();
        let params = front.authorize_params(auth.client_id(), REDIRECT_URI, &pkce).set("scope", wanted);
        let response = anna.get(&params.path()).await;
        let html = response.text().await.unwrap();
        if is_consent_page(&html) && html.contains("every-x") {
            break html;
        }
        assert!(Instant::now() < deadline, "the upstream's scope is never offered: {html}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(anna_page.contains("upstream server every"), "{anna_page}");
    let pkce = pkce_pair();
    let params = front.authorize_params(auth.client_id(), REDIRECT_URI, &pkce).set("scope", wanted);
    let bob_page = bob.consent_page(&params).await;
    // (The form still carries the request as sent; the page lists, and the grant holds, only what he may use.)
    assert!(!bob_page.contains("upstream server every"), "bob may not use every: its scope is not offered: {bob_page}");
    let code = {
        let response = bob.decide(&bob_page, "allow").await;
        redirect_query(&response).get("code").cloned().expect("a code")
    };
    let tokens = json_ok(front.redeem_code(&auth, &code, REDIRECT_URI, &pkce.verifier).await).await;
    assert_eq!(tokens["scope"], "mcp:read mcp:write", "{tokens}");
}

#[tokio::test]
async fn a_gateway_file_with_policy_tables_makes_the_rules_exactly_its_own() {
    let kit = upstreams();
    let front = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    let everything = kit.everything();
    let with_policy = format!(
        "[[upstream]]\nname = \"every\"\ncommand = \"node\"\nargs = [{everything:?}]\n\n\
         [[policy]]\ngroup = \"eng\"\nupstream = \"every\"\ndeny_tools = [\"get-env\"]\n\n\
         [[policy]]\ngroup = \"support\"\nupstream = \"every\"\ntools = [\"echo\", \"get-*\"]\n"
    );
    std::fs::write(&file, &with_policy).unwrap();
    let said = front.cli(&["upstream", "apply", file.to_str().unwrap()]);
    assert!(said.contains("2 policy rules"), "{said}");
    let listed = front.cli(&["policy", "list"]);
    assert!(listed.contains("group eng may use every except get-env"), "{listed}");
    assert!(listed.contains("group support may use every (tools echo, get-*)"), "{listed}");
    let again = front.cli(&["upstream", "apply", file.to_str().unwrap()]);
    assert!(again.contains("already in force"), "applying again changes nothing: {again}");
    // A rule made by hand is replaced by the file's set; a file without policy tables leaves rules alone.
    front.cli(&["policy", "allow", "ops", "every"]);
    front.cli(&["upstream", "apply", file.to_str().unwrap()]);
    assert!(!front.cli(&["policy", "list"]).contains("ops"));
    std::fs::write(&file, format!("[[upstream]]\nname = \"every\"\ncommand = \"node\"\nargs = [{everything:?}]\n"))
        .unwrap();
    front.cli(&["upstream", "apply", file.to_str().unwrap()]);
    assert!(front.cli(&["policy", "list"]).contains("group eng"));
    // A rule for an upstream the file does not have, or twice the same rule: refused, nothing applied.
    let bad = with_policy.replace("upstream = \"every\"\ndeny_tools", "upstream = \"nowhere\"\ndeny_tools");
    std::fs::write(&file, bad).unwrap();
    assert!(!front.cli_output(&["upstream", "apply", file.to_str().unwrap()]).status.success());
    let twice = format!("{with_policy}\n[[policy]]\ngroup = \"eng\"\nupstream = \"every\"\n");
    std::fs::write(&file, twice).unwrap();
    assert!(!front.cli_output(&["upstream", "apply", file.to_str().unwrap()]).status.success());
}

#[tokio::test]
async fn an_admin_sees_groups_and_rules_and_adds_and_removes_rules_on_the_admin_page() {
    let front = spawn_app().await;
    front.cli(&["upstream", "add", "remote", "--url", "http://127.0.0.1:9/mcp"]);
    front.cli(&["user", "add", "root", "--admin", "--password", PASSWORD]);
    front.cli(&["user", "add", "anna", "--password", PASSWORD]);
    front.cli(&["group", "member", "add", "eng", "anna"]);
    let mut admin = Browser::new(&front);
    admin.login("root", PASSWORD).await;
    let page = admin.page("/admin").await;
    assert!(page.contains("Groups and policy") && page.contains("anna (local)"), "{page}");
    let csrf = extract_hidden(&page, "csrf_token");
    let added = admin
        .post_form(
            "/admin/policy",
            &[
                ("csrf_token", csrf.as_str()),
                ("action", "add"),
                ("group", "eng"),
                ("upstream", "remote"),
                ("tools", "read_*, list_*"),
                ("deny_tools", ""),
            ],
        )
        .await;
    assert_eq!(location(&added), "/admin?done=policy#policy");
    assert!(front.cli(&["policy", "list"]).contains("group eng may use remote (tools read_*, list_*)"));
    assert!(admin.page("/admin").await.contains("group eng may use remote (tools read_*, list_*)"));
    // Nonsense, a forged form, someone who is not an admin: refused, nothing changed.
    let nowhere = admin
        .post_form(
            "/admin/policy",
            &[("csrf_token", csrf.as_str()), ("action", "add"), ("group", "x"), ("upstream", "nope")],
        )
        .await;
    assert_html_error(nowhere, reqwest::StatusCode::BAD_REQUEST).await;
    let forged = admin
        .post_form(
            "/admin/policy",
            &[("csrf_token", "wrong"), ("action", "remove"), ("group", "eng"), ("upstream", "remote")],
        )
        .await;
    assert!(forged.status().is_client_error());
    let mut anna = Browser::new(&front);
    anna.login("anna", PASSWORD).await;
    let page = anna.page("/connections").await;
    let anna_csrf = extract_hidden(&page, "csrf_token");
    let not_admin = anna
        .post_form(
            "/admin/policy",
            &[("csrf_token", anna_csrf.as_str()), ("action", "remove"), ("group", "eng"), ("upstream", "remote")],
        )
        .await;
    assert!(not_admin.status().is_client_error(), "{}", not_admin.status());
    assert!(front.cli(&["policy", "list"]).contains("group eng"));
    let removed = admin
        .post_form(
            "/admin/policy",
            &[("csrf_token", csrf.as_str()), ("action", "remove"), ("group", "eng"), ("upstream", "remote")],
        )
        .await;
    assert_eq!(location(&removed), "/admin?done=policy#policy");
    assert!(!front.cli(&["policy", "list"]).contains("group eng"));
    // Local membership from the page: added, listed, removed; an unknown person is refused.
    let joined = admin
        .post_form(
            "/admin/groups",
            &[("csrf_token", csrf.as_str()), ("action", "add"), ("group", "ops"), ("username", "anna")],
        )
        .await;
    assert_eq!(location(&joined), "/admin?done=policy#policy");
    assert!(front.cli(&["group", "list"]).lines().any(|l| l.starts_with("ops") && l.contains("anna")));
    let nobody = admin
        .post_form(
            "/admin/groups",
            &[("csrf_token", csrf.as_str()), ("action", "add"), ("group", "ops"), ("username", "nobody")],
        )
        .await;
    assert_html_error(nobody, reqwest::StatusCode::BAD_REQUEST).await;
    let left = admin
        .post_form(
            "/admin/groups",
            &[("csrf_token", csrf.as_str()), ("action", "remove"), ("group", "ops"), ("username", "anna")],
        )
        .await;
    assert_eq!(location(&left), "/admin?done=policy#policy");
    assert!(!front.cli(&["group", "list"]).lines().any(|l| l.starts_with("ops")));
}
