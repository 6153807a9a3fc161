//! Gateway mode with a real upstream: a second instance of this server (with the conformance fixtures) as
//! a Streamable HTTP upstream, reached with a token minted for it, never with the client's.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::mcp::{McpClient, sse_messages, text_of, until_tool};
use crate::support::*;

/// An upstream: this server with the fixtures, and a token for its user `upstream-bot`.
async fn upstream_server() -> (TestApp, String) {
    let upstream = spawn_app_with(&[("MCP_CONFORMANCE_FIXTURES", "on")]).await;
    upstream.cli(&["user", "add", "upstream-bot", "--password", "upstream-bot-password-1"]);
    let added = upstream.cli(&["client", "add", "--name", "Gateway", "--redirect-uri", REDIRECT_URI]);
    let client_id =
        added.lines().find_map(|l| l.strip_prefix("client_id: ")).expect("client id printed").trim().to_owned();
    let token =
        upstream.cli(&["token", "mint", "--user", "upstream-bot", "--client", &client_id, "--scope", ALL_SCOPES]);
    (upstream, token.trim().to_owned())
}

/// A gateway instance that re-reads its upstreams every second.
async fn gateway() -> TestApp {
    spawn_app_with(&[("UPSTREAM_RELOAD_SECS", "1")]).await
}

#[tokio::test]
async fn an_http_upstream_is_served_under_its_prefix_and_never_sees_the_clients_token() {
    let (upstream, upstream_token) = upstream_server().await;
    let front = gateway().await;
    let header = format!("Authorization: Bearer {upstream_token}");
    front.cli(&["upstream", "add", "up", "--url", &upstream.url("/mcp"), "--header", &header]);
    let (_, tokens) = public_client_tokens(&front).await;
    let mut client = McpClient::connect(&front, tokens["access_token"].as_str().unwrap()).await;

    let tool = until_tool(&mut client, "up__test_simple_text").await;
    assert_eq!(tool["annotations"]["readOnlyHint"], true, "the upstream's tool comes through as it is: {tool}");
    let listed = client.result("tools/list", json!({})).await;
    let names: Vec<&str> = listed["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"whoami") && names.contains(&"up__whoami"), "built-ins beside the upstream's: {names:?}");

    let simple = client.call_tool("up__test_simple_text", json!({})).await;
    assert_eq!(text_of(&simple), "This is a simple text response for testing.");
    let mixed = client.call_tool("up__test_multiple_content_types", json!({})).await;
    let kinds: Vec<&str> = mixed["content"].as_array().unwrap().iter().filter_map(|c| c["type"].as_str()).collect();
    assert_eq!(kinds, ["text", "image", "resource"], "every content type passes: {mixed}");
    let failed = client.call_tool("up__test_error_handling", json!({})).await;
    assert_eq!(failed["isError"], true, "isError passes: {failed}");

    // The upstream sees its own user (the token minted for the gateway), never the person behind the client.
    let upstream_me = text_of(&client.call_tool("up__whoami", json!({})).await);
    let front_me = text_of(&client.call_tool("whoami", json!({})).await);
    assert!(upstream_me.contains("upstream-bot") && !upstream_me.contains("alice"), "{upstream_me}");
    assert!(front_me.contains("alice"), "{front_me}");

    let unknown = client.request("tools/call", json!({"name": "up__no_such_tool", "arguments": {}})).await;
    assert!(unknown["error"]["message"].as_str().unwrap().contains("up__no_such_tool"), "{unknown}");

    let listed = until_cli(&front, &["upstream", "list"], "connected", 10).await;
    let line = listed.lines().find(|l| l.starts_with("up ")).unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains("connected") && !line.contains("Bearer"), "status without secrets: {line}");
    let audit = until_cli(&front, &["audit", "--event", "upstream_call"], "tool=test_simple_text", 10).await;
    assert!(audit.contains("upstream=up") && audit.contains("outcome=ok"), "{audit}");
    assert!(audit.contains("outcome=tool_error"), "{audit}");
    let metrics = front.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"mcp_gateway_upstream_calls_total{outcome="ok",upstream="up"}"#), "{metrics}");
    assert!(metrics.contains(r#"mcp_gateway_upstream_up{upstream="up"} 1"#), "{metrics}");
}

#[tokio::test]
async fn an_upstreams_scope_hides_its_tools_and_a_call_without_it_is_a_step_up_challenge() {
    let (upstream, upstream_token) = upstream_server().await;
    let front = gateway().await;
    let header = format!("Authorization: Bearer {upstream_token}");
    front.cli(&["upstream", "add", "up", "--url", &upstream.url("/mcp"), "--header", &header, "--scope", "up-tools"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let prm = front.get_json("/.well-known/oauth-protected-resource/mcp").await;
        if prm["scopes_supported"].as_array().unwrap().contains(&json!("up-tools")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the upstream's scope is never advertised: {prm}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let auth = ClientAuth::Public(front.register_public_client(REDIRECT_URI).await);
    let mut browser = signup_and_login(&front, "alice", PASSWORD).await;
    let tokens = issue_tokens(&front, &mut browser, &auth, ALL_SCOPES).await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    // With the scope, the tools are there (the same person, consenting again to the wider scope).
    let wider = issue_tokens(&front, &mut browser, &auth, "mcp:read mcp:write up-tools").await;
    let mut allowed = McpClient::connect(&front, wider["access_token"].as_str().unwrap()).await;
    until_tool(&mut allowed, "up__test_simple_text").await;

    let mut client = McpClient::connect(&front, &token).await;
    let listed = client.result("tools/list", json!({})).await;
    assert!(!listed.to_string().contains("up__"), "no tool of the upstream without its scope: {listed}");
    let refused = client.raw("tools/call", json!({"name": "up__test_simple_text", "arguments": {}})).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let challenge = header_value(&refused, "www-authenticate");
    assert!(challenge.contains("insufficient_scope") && challenge.contains("up-tools"), "{challenge}");
    assert!(challenge.contains("mcp:read"), "the challenge keeps what the token had: {challenge}");
    let simple = allowed.call_tool("up__test_simple_text", json!({})).await;
    assert_eq!(text_of(&simple), "This is a simple text response for testing.");
}

fn header_value(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn progress_comes_back_under_the_clients_token_and_a_slow_upstream_times_out_naming_it() {
    let (upstream, upstream_token) = upstream_server().await;
    let front = gateway().await;
    let header = format!("Authorization: Bearer {upstream_token}");
    front.cli(&["upstream", "add", "up", "--url", &upstream.url("/mcp"), "--header", &header]);
    front.cli(&["upstream", "add", "slow", "--url", &upstream.url("/mcp"), "--header", &header, "--timeout", "1"]);
    let (_, tokens) = public_client_tokens(&front).await;
    let mut client = McpClient::connect(&front, tokens["access_token"].as_str().unwrap()).await;
    until_tool(&mut client, "up__test_tool_with_progress").await;
    until_tool(&mut client, "slow__test_tool_with_progress").await;

    // Every notification, the last one too: it leaves the upstream right before the answer, and rmcp hands
    // notifications on in tasks of their own, so it can reach the gateway after the answer (a run of the
    // conformance suite once lost it). Repeated, since the race is rare.
    for _ in 0..15 {
        let call = json!({"name": "up__test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": "p-7"}});
        let response = client.raw("tools/call", call).await;
        let messages = sse_messages(&response.text().await.unwrap());
        let progress: Vec<&Value> = messages.iter().filter(|m| m["method"] == "notifications/progress").collect();
        let steps: Vec<f64> = progress.iter().map(|p| p["params"]["progress"].as_f64().unwrap()).collect();
        assert_eq!(steps, [0.0, 50.0, 100.0], "every step, in order: {messages:?}");
        assert!(
            progress.iter().all(|p| p["params"]["progressToken"] == "p-7"),
            "under the client's token: {progress:?}"
        );
        assert!(messages.iter().any(|m| m["result"]["content"].is_array()), "{messages:?}");
    }

    // The fixture waits for the client's answer to an elicitation, which this client never gives.
    let mut quiet =
        McpClient::connect_with(&front, tokens["access_token"].as_str().unwrap(), json!({"elicitation": {}})).await;
    let started = std::time::Instant::now();
    let slow = quiet.call_tool("slow__test_elicitation", json!({"message": "Who are you?"})).await;
    assert_eq!(slow["isError"], true, "{slow}");
    assert!(text_of(&slow).contains("upstream slow did not answer within 1 s"), "{slow}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The other upstream is unaffected.
    let simple = client.call_tool("up__test_simple_text", json!({})).await;
    assert_eq!(text_of(&simple), "This is a simple text response for testing.");
}

#[tokio::test]
async fn an_upstream_that_goes_away_is_an_error_naming_it_and_disable_and_remove_take_it_out() {
    let (upstream, upstream_token) = upstream_server().await;
    let front = gateway().await;
    let header = format!("Authorization: Bearer {upstream_token}");
    // A port nothing listens on.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/mcp", dead.local_addr().unwrap());
    drop(dead);
    front.cli(&["upstream", "add", "up", "--url", &upstream.url("/mcp"), "--header", &header]);
    front.cli(&["upstream", "add", "gone", "--url", &dead_url]);
    let (_, tokens) = public_client_tokens(&front).await;
    let mut client = McpClient::connect(&front, tokens["access_token"].as_str().unwrap()).await;
    until_tool(&mut client, "up__test_simple_text").await;
    let listed = until_cli(&front, &["upstream", "list"], "refused", 10).await;
    let gone = listed.lines().find(|l| l.starts_with("gone ")).unwrap();
    assert!(gone.contains("starting") || gone.contains("failed"), "the last error is shown: {gone}");

    front.cli(&["upstream", "disable", "up"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let tools = client.result("tools/list", json!({})).await;
        if !tools.to_string().contains("up__") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a disabled upstream's tools stay listed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let call = client.request("tools/call", json!({"name": "up__test_simple_text", "arguments": {}})).await;
    assert!(call.get("error").is_some(), "{call}");
    front.cli(&["upstream", "enable", "up"]);
    until_tool(&mut client, "up__test_simple_text").await;
    front.cli(&["upstream", "remove", "up"]);
    front.cli(&["upstream", "remove", "gone"]);
    assert!(!front.cli(&["upstream", "list"]).contains("gone"));
}

#[tokio::test]
async fn the_cli_refuses_what_cannot_work_and_a_gateway_file_applies_idempotently() {
    let front = gateway().await;
    let refused = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &front.db_url)
            .env("AUTH_ISSUER", &front.issuer)
            .env("SECRETS_KEY", TEST_SECRETS_KEY)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let long = "p".repeat(62);
    assert!(refused(&["upstream", "add", "fs", "--command", "npx", "--prefix", &long]).contains("prefix"));
    assert!(refused(&["upstream", "add", "bad name", "--command", "npx"]).contains("name"));
    assert!(refused(&["upstream", "add", "web", "--url", "ftp://x.example/"]).contains("http"));
    assert!(
        refused(&["upstream", "add", "web", "--url", "https://x.example/mcp", "--scope", "mcp:admin"])
            .contains("scope")
    );
    front.cli(&["upstream", "add", "a", "--command", "true", "--prefix", "same"]);
    assert!(refused(&["upstream", "add", "b", "--command", "true", "--prefix", "same"]).contains("prefix"));
    assert!(refused(&["upstream", "add", "a", "--command", "true"]).contains("already exists"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(
        &file,
        r#"
[[upstream]]
name = "files"
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]
scope = "files"
enabled = false
[upstream.tools]
write_file = "write"

[[upstream]]
name = "search"
url = "https://search.example/mcp"
headers = { "X-API-Key" = "k-123" }
"#,
    )
    .unwrap();
    let path = file.to_str().unwrap();
    assert!(front.cli(&["upstream", "apply", path]).contains("2 upstreams"));
    assert!(front.cli(&["upstream", "apply", path]).contains("already in force"));
    let listed = front.cli(&["upstream", "list"]);
    assert!(
        listed.contains("files") && listed.contains("search") && !listed.lines().any(|l| l.starts_with("a ")),
        "{listed}"
    );
    assert!(!listed.contains("k-123"), "header values are not printed: {listed}");
    let prm = front.get_json("/.well-known/oauth-protected-resource/mcp").await;
    assert!(
        !prm["scopes_supported"].as_array().unwrap().contains(&json!("files")),
        "a disabled upstream adds no scope"
    );
    std::fs::write(&file, "[[upstream]]\nname = \"x\"\nbogus = 1\n").unwrap();
    assert!(refused(&["upstream", "apply", path]).contains("bogus"));
}

/// Waits until the admin page shows `wanted` (instances report what they find every few hundred ms).
async fn until_admin_page(admin: &mut Browser, wanted: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let html = admin.page("/admin").await;
        if html.contains(wanted) {
            return html;
        }
        assert!(std::time::Instant::now() < deadline, "the admin page never showed {wanted}: {}", page_text(&html));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_admin_adds_disables_and_removes_upstreams_on_the_admin_page() {
    let (upstream, upstream_token) = upstream_server().await;
    let front = gateway().await;
    front.cli(&["user", "add", "root", "--admin", "--password", PASSWORD]);
    let (_, tokens) = public_client_tokens(&front).await;
    let mut client = McpClient::connect(&front, tokens["access_token"].as_str().unwrap()).await;
    let mut admin = Browser::new(&front);
    admin.login("root", PASSWORD).await;
    let csrf = extract_hidden(&admin.page("/admin").await, "csrf_token");
    let header = format!("Authorization: Bearer {upstream_token}");
    let url = upstream.url("/mcp");
    let add = |name: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("csrf_token", csrf.clone()),
            ("action", "add".to_owned()),
            ("name", name.to_owned()),
            ("kind", "http".to_owned()),
            ("url", url.clone()),
            ("headers", header.clone()),
            ("timeout", "30".to_owned()),
        ]
    };
    let switch =
        |action: &str| vec![("csrf_token", csrf.clone()), ("action", action.to_owned()), ("name", "up".to_owned())];

    // Someone who is not an admin, a forged form and a bad name change nothing.
    let mut alice = Browser::new(&front);
    alice.login("alice", PASSWORD).await;
    assert_html_error(alice.post_form("/admin/upstreams", &add("up")).await, StatusCode::NOT_FOUND).await;
    let mut forged = add("up");
    forged[0].1 = "forged".into();
    assert_html_error(admin.post_form("/admin/upstreams", &forged).await, StatusCode::BAD_REQUEST).await;
    let refused = admin.post_form("/admin/upstreams", &add("not a name")).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let said = page_text(&refused.text().await.unwrap());
    assert!(said.contains("letters, digits"), "the page says what is wrong: {said}");
    assert_eq!(front.cli(&["upstream", "list"]).lines().count(), 1, "nothing was added");

    assert_eq!(admin.post_form("/admin/upstreams", &add("up")).await.status(), StatusCode::SEE_OTHER);
    until_tool(&mut client, "up__test_simple_text").await;
    let html = until_admin_page(&mut admin, "up__test_simple_text").await;
    let text = page_text(&html);
    assert!(text.contains("connected") && text.contains(&url), "status, target and tools: {text}");
    assert!(!html.contains(&upstream_token), "headers hold keys and are never shown");
    let again = admin.post_form("/admin/upstreams", &add("up")).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "a second upstream of that name");

    assert_eq!(admin.post_form("/admin/upstreams", &switch("disable")).await.status(), StatusCode::SEE_OTHER);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.result("tools/list", json!({})).await.to_string().contains("up__") {
        assert!(std::time::Instant::now() < deadline, "a disabled upstream's tools stay listed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    until_admin_page(&mut admin, "disabled").await;
    assert_eq!(admin.post_form("/admin/upstreams", &switch("remove")).await.status(), StatusCode::SEE_OTHER);
    assert!(!front.cli(&["upstream", "list"]).contains("\nup "), "removed");
    assert_html_error(admin.post_form("/admin/upstreams", &switch("remove")).await, StatusCode::NOT_FOUND).await;
    let audit = front.cli(&["audit", "--event", "upstream_changed"]);
    for what in
        ["added up (http), by the admin page", "disabled up, by the admin page", "removed up, by the admin page"]
    {
        assert!(audit.contains(what), "{what}: {audit}");
    }
}

/// An upstream's `input_required` round (2026-07-28) begun on one instance is answered on another: the
/// state the gateway seals around the upstream's is opened with key material every instance shares, and
/// still binds the round to its person.
#[tokio::test]
async fn an_input_required_round_begun_on_one_instance_is_answered_on_another() {
    let (upstream, upstream_token) = upstream_server().await;
    let a = gateway().await;
    let b =
        spawn_app_with(&[("UPSTREAM_RELOAD_SECS", "1"), ("DATABASE_URL", &a.db_url), ("AUTH_ISSUER", &a.issuer)]).await;
    let header = format!("Authorization: Bearer {upstream_token}");
    a.cli(&["upstream", "add", "up", "--url", &upstream.url("/mcp"), "--header", &header]);
    let (_, tokens) = public_client_tokens(&a).await;
    let token = tokens["access_token"].as_str().unwrap();
    let (mut on_a, mut on_b) = (McpClient::stateless(&a, token), McpClient::stateless(&b, token));
    until_tool(&mut on_a, "up__test_input_required_result_request_state").await;
    until_tool(&mut on_b, "up__test_input_required_result_request_state").await;

    let call = json!({"name": "up__test_input_required_result_request_state", "arguments": {}});
    let round = on_a.result("tools/call", call.clone()).await;
    assert_eq!(round["resultType"], "input_required", "{round}");
    let state = round["requestState"].as_str().unwrap().to_owned();
    let mut answer = call.clone();
    answer["inputResponses"] = json!({"confirm": {"action": "accept", "content": {"ok": true}}});
    answer["requestState"] = json!(state);
    let done = on_b.result("tools/call", answer.clone()).await;
    assert_eq!(text_of(&done), "state-ok", "the round finishes on the other instance: {done}");

    // Someone else cannot finish it, and a state changed in transit does not open.
    let auth = ClientAuth::Public(a.register_public_client(REDIRECT_URI).await);
    let mut browser = signup_and_login(&a, "bob", PASSWORD).await;
    let bob = issue_tokens(&a, &mut browser, &auth, ALL_SCOPES).await;
    let mut as_bob = McpClient::stateless(&b, bob["access_token"].as_str().unwrap());
    let refused = as_bob.request("tools/call", answer.clone()).await;
    assert!(refused.get("error").is_some(), "another person's answer is refused: {refused}");
    let mut tampered = answer;
    tampered["requestState"] = json!(format!("{}x", &state[..state.len() - 1]));
    let refused = on_b.request("tools/call", tampered).await;
    assert!(refused.get("error").is_some(), "a changed state is refused: {refused}");
}

/// SEP-2243 `Mcp-Param-*` headers (2026-07-28): a parameter marked `x-mcp-header` must be mirrored in its
/// header, plain or as `=?base64?…?=`, and a request whose header is missing, malformed or different is
/// refused with 400 and -32020, on a server and through the gateway alike; a JSON Schema 2020-12 input
/// schema reaches clients with every keyword, through the gateway too.
#[tokio::test]
async fn parameter_headers_are_checked_against_the_body_and_2020_12_schemas_pass_whole() {
    let (upstream, upstream_token) = upstream_server().await;
    let front = gateway().await;
    let header = format!("Authorization: Bearer {upstream_token}");
    front.cli(&["upstream", "add", "up", "--url", &upstream.url("/mcp"), "--header", &header]);
    let (_, tokens) = public_client_tokens(&front).await;
    let token = tokens["access_token"].as_str().unwrap();
    let mut via_front = McpClient::stateless(&front, token);
    let schema = until_tool(&mut via_front, "up__json_schema_2020_12_tool").await["inputSchema"].clone();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(schema["$defs"]["address"]["$anchor"], "addressDef");
    assert_eq!(schema["additionalProperties"], false);
    assert!(
        schema["allOf"][0]["anyOf"].is_array() && schema["if"].is_object() && schema["else"].is_object(),
        "{schema}"
    );
    let mut direct = McpClient::stateless(&upstream, &upstream_token);

    for (client, tool) in [(&mut direct, "test_custom_header"), (&mut via_front, "up__test_custom_header")] {
        let (_, body) = client.message("tools/call", json!({"name": tool, "arguments": {"region": "us-east1"}}));
        let send = |value: Option<&str>| {
            let request = client.post(&body);
            let request = match value {
                Some(v) => request.header("mcp-param-region", v),
                None => request,
            };
            async move { request.send().await.unwrap() }
        };
        for accepted in ["us-east1", "=?base64?dXMtZWFzdDE=?="] {
            let answer = send(Some(accepted)).await;
            let status = answer.status();
            let text = answer.text().await.unwrap();
            assert_eq!(status, StatusCode::OK, "{tool} with {accepted}: {text}");
            assert!(text.contains("region: us-east1"), "{tool} with {accepted}: {text}");
        }
        for refused in [None, Some("eu-west1"), Some("=?base64?dXMtZWFzdDE?="), Some("=?base64?dXMt!!ZWFzdDE=?=")] {
            let answer = send(refused).await;
            assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{tool} with {refused:?}");
            let error: Value = answer.json().await.unwrap();
            assert_eq!(error["error"]["code"], -32020, "{tool} with {refused:?}: {error}");
        }
    }
}

/// With `ADMIN_PAGE_PROGRAMS=off` the admin page adds only HTTP upstreams: a program would run as the
/// server's user, so a stolen admin session must not be able to start one.
#[tokio::test]
async fn the_admin_page_can_be_kept_from_adding_programs() {
    let front = spawn_app_with(&[("UPSTREAM_RELOAD_SECS", "1"), ("ADMIN_PAGE_PROGRAMS", "off")]).await;
    front.cli(&["user", "add", "root", "--admin", "--password", PASSWORD]);
    let mut admin = Browser::new(&front);
    admin.login("root", PASSWORD).await;
    let html = admin.page("/admin").await;
    assert!(!html.contains(r#"value="stdio""#) && page_text(&html).contains("mcp-gateway upstream add"), "{html}");
    let csrf = extract_hidden(&html, "csrf_token");
    let program = [
        ("csrf_token", csrf.as_str()),
        ("action", "add"),
        ("name", "sh"),
        ("kind", "stdio"),
        ("command", "sh"),
        ("args", "-c\ntouch /tmp/owned"),
    ];
    assert_html_error(admin.post_form("/admin/upstreams", &program).await, StatusCode::FORBIDDEN).await;
    assert_eq!(front.cli(&["upstream", "list"]).lines().count(), 1, "nothing was added");
    let http = [
        ("csrf_token", csrf.as_str()),
        ("action", "add"),
        ("name", "web"),
        ("kind", "http"),
        ("url", "http://127.0.0.1:9/mcp"),
    ];
    assert_eq!(admin.post_form("/admin/upstreams", &http).await.status(), StatusCode::SEE_OTHER);
    assert!(front.cli(&["upstream", "list"]).contains("web "), "HTTP upstreams still can be added");
}
