//! Upstreams protected by their own OAuth, each person connecting their own account there. The upstream is a
//! second mcp-gateway with its own people: the front registers itself there, sends each person through the
//! upstream's own sign-in and consent, and calls its tools with that person's upstream token.
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::mcp::{McpClient, next_message, text_of, until_tool};
use crate::support::upstreams::{processes_with, upstreams};
use crate::support::*;

/// The front gateway, re-reading its upstreams every second.
async fn front() -> TestApp {
    spawn_app_with(&[("UPSTREAM_RELOAD_SECS", "1")]).await
}

/// A person of the front with an MCP token of the front's, and their browser there.
async fn person(front: &TestApp, auth: &ClientAuth, name: &str) -> (Browser, String) {
    let mut browser = signup_and_login(front, name, PASSWORD).await;
    let tokens = issue_tokens(front, &mut browser, auth, ALL_SCOPES).await;
    (browser, tokens["access_token"].as_str().unwrap().to_owned())
}

/// Connects `front_browser`'s person to the upstream as the person signed in at `upstream_browser`: the
/// Connect button, the upstream's consent, the way back. Returns the front's final answer.
async fn connect(front_browser: &mut Browser, upstream_browser: &mut Browser, upstream: &str) -> reqwest::Response {
    let callback = consent_at_upstream(front_browser, upstream_browser, upstream).await;
    front_browser.get(&callback).await
}

/// The Connect button and the upstream's consent: the callback URL the upstream sends the browser back to.
async fn consent_at_upstream(front_browser: &mut Browser, upstream_browser: &mut Browser, upstream: &str) -> String {
    let html = front_browser.page("/connections").await;
    assert!(html.contains(&format!("Connect {upstream}")), "{html}");
    let csrf = extract_hidden(&html, "csrf_token");
    let started =
        front_browser.post_form("/connections/connect", &[("csrf_token", csrf.as_str()), ("upstream", upstream)]).await;
    assert_eq!(started.status(), StatusCode::SEE_OTHER, "{:?}", started.text().await);
    let authorize = location(&started);
    assert!(authorize.contains("code_challenge_method=S256") && authorize.contains("resource="), "{authorize}");
    let consent = upstream_browser.get(&authorize).await;
    let consent = consent.text().await.unwrap();
    assert!(is_consent_page(&consent), "the upstream asks its own person: {consent}");
    let back = upstream_browser.decide(&consent, "allow").await;
    assert_eq!(back.status(), StatusCode::FOUND);
    let callback = location(&back);
    assert!(
        callback.contains(&format!("/connections/callback/{upstream}?")) && callback.contains("iss="),
        "{callback}"
    );
    callback
}

fn username_of(result: &Value) -> String {
    let text = text_of(result);
    let parsed: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({}));
    parsed["username"].as_str().map(str::to_owned).unwrap_or(text)
}

#[tokio::test]
async fn each_person_calls_an_oauth_protected_upstream_as_their_own_account_there() {
    let upstream = spawn_app().await;
    let front = front().await;
    front.cli(&["upstream", "add", "remote", "--url", &upstream.resource, "--auth", "oauth"]);
    let auth = ClientAuth::Public(front.register_public_client(REDIRECT_URI).await);

    // Two people of the upstream, two of the front.
    let mut xavier = signup_and_login(&upstream, "xavier", PASSWORD).await;
    let mut yolanda = signup_and_login(&upstream, "yolanda", PASSWORD).await;
    let (mut anna_browser, anna) = person(&front, &auth, "anna").await;
    let (mut bob_browser, bob) = person(&front, &auth, "bob").await;
    let (mut carol_browser, carol) = person(&front, &auth, "carol").await;

    // Anna connects as xavier; the front registered itself at the upstream on the way.
    let done = connect(&mut anna_browser, &mut xavier, "remote").await;
    assert_eq!(location(&done), "/connections?done=connected");
    let page = anna_browser.page("/connections").await;
    assert!(page.contains("Disconnect") && page.contains("connected"), "{page}");
    assert_eq!(
        upstream
            .sql_count(
                "SELECT COUNT(*) FROM clients WHERE redirect_uris LIKE $1",
                vec![format!("%{}/connections/callback/remote%", front.base).into()]
            )
            .await,
        1,
        "the front registered itself at the upstream once"
    );
    let done = connect(&mut bob_browser, &mut yolanda, "remote").await;
    assert_eq!(location(&done), "/connections?done=connected");
    assert_eq!(
        upstream.sql_count("SELECT COUNT(*) FROM clients", vec![]).await,
        1,
        "the second person reused the front's registration there"
    );

    // Each one's whoami through the front is their own account at the upstream.
    let mut anna_mcp = McpClient::connect(&front, &anna).await;
    until_tool(&mut anna_mcp, "remote__whoami").await;
    assert_eq!(username_of(&anna_mcp.call_tool("remote__whoami", json!({})).await), "xavier");
    let mut bob_mcp = McpClient::connect(&front, &bob).await;
    assert_eq!(username_of(&bob_mcp.call_tool("remote__whoami", json!({})).await), "yolanda");

    // Carol has not connected: a client that opens URLs gets the URL elicitation, naming our own page…
    let mut carol_mcp = McpClient::connect_with(&front, &carol, json!({"elicitation": {"url": {}}})).await;
    let refused = carol_mcp.request("tools/call", json!({"name": "remote__whoami", "arguments": {}})).await;
    assert_eq!(refused["error"]["code"], -32042, "{refused}");
    let elicitation = &refused["error"]["data"]["elicitations"][0];
    assert_eq!(elicitation["mode"], "url");
    let url = elicitation["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/connections/connect?upstream=remote&for=", front.base)), "{url}");
    assert!(elicitation["elicitationId"].as_str().is_some_and(|id| !id.is_empty()));
    // …and a client that cannot gets a tool error with the same link.
    let mut carol_plain = McpClient::connect(&front, &carol).await;
    let result = carol_plain.call_tool("remote__whoami", json!({})).await;
    assert_eq!(result["isError"], true);
    assert!(text_of(&result).contains("/connections/connect?upstream=remote&for="), "{result}");

    // The link is for Carol alone: Anna opening it is refused; Carol gets the page that sends her on.
    let foreign = anna_browser.get(&url).await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let page = carol_browser.page(&url).await;
    assert!(page.contains("Continue to remote"), "{page}");

    // The gateway's own Client ID Metadata Document (used at upstreams that accept those, over HTTPS).
    // One per upstream, each naming only that upstream's way back.
    let document = front.get_json("/oauth/upstream-clients/remote").await;
    assert_eq!(document["client_id"], format!("{}/oauth/upstream-clients/remote", front.base));
    assert_eq!(document["redirect_uris"], json!([format!("{}/connections/callback/remote", front.base)]));
    assert_eq!(front.get("/oauth/upstream-clients/no%20such").await.status(), StatusCode::NOT_FOUND);

    // Nothing the front keeps is an upstream token in the clear: opened with the key, each person's access
    // and refresh tokens are nowhere in the rows or in the raw database file.
    let key = mcp_gateway::crypto::SecretsKey::from_hex(TEST_SECRETS_KEY).unwrap();
    let rows = front.sql("SELECT user_id, upstream, credentials_sealed FROM upstream_accounts", vec![]).await;
    assert_eq!(rows.len(), 2);
    let mut secrets = Vec::new();
    for row in rows {
        let (user_id, name, sealed): (String, String, String) = (
            row.try_get("", "user_id").unwrap(),
            row.try_get("", "upstream").unwrap(),
            row.try_get("", "credentials_sealed").unwrap(),
        );
        assert!(mcp_gateway::crypto::SecretsKey::is_sealed(&sealed), "{sealed}");
        let opened: Value =
            serde_json::from_str(&key.open(&format!("upstream-account:{user_id}:{name}"), &sealed).unwrap()).unwrap();
        for field in ["access_token", "refresh_token"] {
            let secret = opened["token_response"][field].as_str().unwrap().to_owned();
            assert!(secret.len() >= 20 && !sealed.contains(&secret));
            secrets.push(secret);
        }
    }
    if let Some(path) = front.db_url.strip_prefix("sqlite://").map(|p| p.split('?').next().unwrap().to_owned()) {
        let _ = front.sql("PRAGMA wal_checkpoint(TRUNCATE)", vec![]).await;
        let mut raw = std::fs::read(&path).unwrap();
        for companion in ["-wal", "-shm"] {
            raw.extend(std::fs::read(format!("{path}{companion}")).unwrap_or_default());
        }
        let text = String::from_utf8_lossy(&raw);
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "an upstream token is in the database file in the clear");
        }
    }

    // Disconnect revokes at the upstream and brings the elicitation back.
    let page = anna_browser.page("/connections").await;
    let csrf = extract_hidden(&page, "csrf_token");
    let gone = anna_browser
        .post_form("/connections/disconnect", &[("csrf_token", csrf.as_str()), ("upstream", "remote")])
        .await;
    assert_eq!(location(&gone), "/connections?done=disconnected");
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM upstream_accounts WHERE upstream = 'remote'", vec![]).await, 1);
    let mut anna_mcp = McpClient::connect_with(&front, &anna, json!({"elicitation": {"url": {}}})).await;
    let refused = anna_mcp.request("tools/call", json!({"name": "remote__whoami", "arguments": {}})).await;
    assert_eq!(refused["error"]["code"], -32042, "{refused}");
    assert_eq!(
        upstream
            .sql_count(
                "SELECT COUNT(*) FROM grants WHERE revoked_at IS NULL AND user_id = (SELECT id FROM users WHERE username = 'xavier')",
                vec![],
            )
            .await,
        0,
        "the upstream revoked what xavier had allowed the front (RFC 7009)"
    );
    assert_eq!(
        upstream
            .sql_count(
                "SELECT COUNT(*) FROM grants WHERE revoked_at IS NULL AND user_id = (SELECT id FROM users WHERE username = 'yolanda')",
                vec![],
            )
            .await,
        1,
        "yolanda's connection is untouched"
    );
}

#[tokio::test]
async fn an_expired_upstream_token_is_refreshed_once_however_many_calls_need_it() {
    let upstream = spawn_app().await;
    let front = front().await;
    front.cli(&["upstream", "add", "remote", "--url", &upstream.resource, "--auth", "oauth"]);
    let auth = ClientAuth::Public(front.register_public_client(REDIRECT_URI).await);
    let mut xavier = signup_and_login(&upstream, "xavier", PASSWORD).await;
    let (mut anna_browser, anna) = person(&front, &auth, "anna").await;
    let done = connect(&mut anna_browser, &mut xavier, "remote").await;
    assert_eq!(location(&done), "/connections?done=connected");
    // A second instance on the same database (and issuer) learns what the upstream offers from the first.
    let second = spawn_app_with(&[
        ("DATABASE_URL", front.db_url.as_str()),
        ("AUTH_ISSUER", front.base.as_str()),
        ("UPSTREAM_RELOAD_SECS", "1"),
    ])
    .await;
    for instance in [&front, &second] {
        let mut warm = McpClient::connect(instance, &anna).await;
        until_tool(&mut warm, "remote__whoami").await;
    }
    let tokens_before = upstream.sql_count("SELECT COUNT(*) FROM refresh_tokens", vec![]).await;
    let version_before = front.sql_count("SELECT version FROM upstream_accounts", vec![]).await;

    // The token is about to expire: every call on either instance now needs a refresh.
    front.sql("UPDATE upstream_accounts SET expires_at = 1", vec![]).await;
    let mut calls = Vec::new();
    for i in 0..12 {
        let instance = if i % 2 == 0 { &front } else { &second };
        let anna = anna.clone();
        calls.push(async move {
            let mut client = McpClient::connect(instance, &anna).await;
            username_of(&client.call_tool("remote__whoami", json!({})).await)
        });
    }
    let names = futures_util::future::join_all(calls).await;
    assert!(names.iter().all(|n| n == "xavier"), "{names:?}");
    assert_eq!(
        upstream.sql_count("SELECT COUNT(*) FROM refresh_tokens", vec![]).await,
        tokens_before + 1,
        "one refresh at the upstream (one rotated refresh token), not one per call or per instance"
    );
    assert_eq!(front.sql_count("SELECT version FROM upstream_accounts", vec![]).await, version_before + 1);

    // The upstream refuses a token the front thought good (401): one refresh, and the call goes through.
    let key = mcp_gateway::crypto::SecretsKey::from_hex(TEST_SECRETS_KEY).unwrap();
    let row = &front.sql("SELECT user_id, credentials_sealed FROM upstream_accounts", vec![]).await[0];
    let (user_id, sealed): (String, String) =
        (row.try_get("", "user_id").unwrap(), row.try_get("", "credentials_sealed").unwrap());
    let context = format!("upstream-account:{user_id}:remote");
    let mut stored: Value = serde_json::from_str(&key.open(&context, &sealed).unwrap()).unwrap();
    stored["token_response"]["access_token"] = json!("not-a-token-the-upstream-ever-issued");
    let forged = key.seal(&context, &stored.to_string());
    front.sql("UPDATE upstream_accounts SET credentials_sealed = $1, version = version + 1", vec![forged.into()]).await;
    let forged_version = front.sql_count("SELECT version FROM upstream_accounts", vec![]).await;
    let mut client = McpClient::connect(&front, &anna).await;
    assert_eq!(username_of(&client.call_tool("remote__whoami", json!({})).await), "xavier");
    assert_eq!(
        front.sql_count("SELECT version FROM upstream_accounts", vec![]).await,
        forged_version + 1,
        "refreshed once more"
    );

    // A new secrets key re-seals the person's tokens too.
    let dir = tempfile::tempdir().unwrap();
    let new_hex = mcp_gateway::crypto::SecretsKey::generate_hex();
    std::fs::write(dir.path().join("new.key"), &new_hex).unwrap();
    let said = front.cli(&["secrets", "rotate-key", "--new-key-file", dir.path().join("new.key").to_str().unwrap()]);
    assert!(said.contains("and 1 upstream accounts"), "{said}");
    let resealed: String = front.sql("SELECT credentials_sealed FROM upstream_accounts", vec![]).await[0]
        .try_get("", "credentials_sealed")
        .unwrap();
    let new_key = mcp_gateway::crypto::SecretsKey::from_hex(&new_hex).unwrap();
    let opened: Value = serde_json::from_str(&new_key.open(&context, &resealed).unwrap()).unwrap();
    assert!(opened["token_response"]["refresh_token"].is_string(), "the tokens open under the new key");
    assert!(key.open(&context, &resealed).is_err(), "and no longer under the old one");
}

#[tokio::test]
async fn the_way_back_from_the_upstream_works_once_and_only_for_whoever_set_out() {
    let upstream = spawn_app().await;
    let front = front().await;
    front.cli(&["upstream", "add", "remote", "--url", &upstream.resource, "--auth", "oauth"]);
    let auth = ClientAuth::Public(front.register_public_client(REDIRECT_URI).await);
    let mut xavier = signup_and_login(&upstream, "xavier", PASSWORD).await;
    let (mut anna, _) = person(&front, &auth, "anna").await;
    let (mut bob, _) = person(&front, &auth, "bob").await;

    // Bob cannot finish Anna's sign-in (a stolen or planted callback URL), nor spend it; it comes back to
    // no other upstream's address (mix-up); Anna finishes it once.
    let callback = consent_at_upstream(&mut anna, &mut xavier, "remote").await;
    let stolen = bob.get(&callback).await;
    assert_html_error(stolen, StatusCode::BAD_REQUEST).await;
    let elsewhere = callback.replace("/connections/callback/remote?", "/connections/callback/other?");
    assert_html_error(anna.get(&elsewhere).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM upstream_accounts", vec![]).await, 0);
    let callback = consent_at_upstream(&mut anna, &mut xavier, "remote").await;
    assert_html_error(bob.get(&callback).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(location(&anna.get(&callback).await), "/connections?done=connected");
    let replay = anna.get(&callback).await;
    assert_html_error(replay, StatusCode::BAD_REQUEST).await;
    front.sql("DELETE FROM upstream_accounts", vec![]).await;

    // An `iss` other than the upstream's authorization server (RFC 9207, a mix-up attack) is refused.
    let callback = consent_at_upstream(&mut anna, &mut xavier, "remote").await;
    let mixed = callback.replace("iss=http%3A%2F%2F127.0.0.1", "iss=http%3A%2F%2Fevil.example");
    assert_ne!(mixed, callback, "{callback}");
    assert_html_error(anna.get(&mixed).await, StatusCode::BAD_REQUEST).await;
    // A code that does not match the PKCE verifier (another flow's code) is refused by the upstream.
    let first = consent_at_upstream(&mut anna, &mut xavier, "remote").await;
    let second = consent_at_upstream(&mut anna, &mut xavier, "remote").await;
    let code_of =
        |url: &str| url::Url::parse(url).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let swapped = first.replace(&code_of(&first), &code_of(&second));
    assert_html_error(anna.get(&swapped).await, StatusCode::BAD_REQUEST).await;
    // No state, or an error from the upstream: a readable page, nothing kept.
    assert_html_error(anna.get("/connections/callback/remote?code=abc").await, StatusCode::BAD_REQUEST).await;
    let unknown = anna.get("/connections/callback/remote?state=xyz&error=access_denied").await;
    assert!(!assert_html_error(unknown, StatusCode::BAD_REQUEST).await.contains("access_denied"), "not its words");
    let refused = consent_at_upstream(&mut anna, &mut xavier, "remote").await;
    let state = url::Url::parse(&refused).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let denied = anna.get(&format!("/connections/callback/remote?state={state}&error=access_denied")).await;
    assert!(assert_html_error(denied, StatusCode::BAD_REQUEST).await.contains("access_denied"));
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM upstream_accounts", vec![]).await, 0);

    // (The upstream spent the second code on the failed redemption.) A flow of its own goes through.
    let third = consent_at_upstream(&mut anna, &mut xavier, "remote").await;
    let done = anna.get(&third).await;
    assert_eq!(location(&done), "/connections?done=connected");
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM upstream_accounts", vec![]).await, 1);
    // An upstream that is not per-person, or none at all: a readable refusal.
    let page = anna.page("/connections").await;
    let csrf = extract_hidden(&page, "csrf_token");
    let none = anna.post_form("/connections/connect", &[("csrf_token", csrf.as_str()), ("upstream", "nope")]).await;
    assert_html_error(none, StatusCode::BAD_REQUEST).await;
    let forged = anna.post_form("/connections/connect", &[("csrf_token", "wrong"), ("upstream", "remote")]).await;
    assert!(forged.status().is_client_error(), "a connect without the CSRF token is refused");

    // Moving the upstream to another URL forgets what people gave for the old one.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    let moved =
        format!("[[upstream]]\nname = \"remote\"\nurl = \"{}/elsewhere/mcp\"\nauth = \"oauth\"\n", upstream.base);
    std::fs::write(&file, moved).unwrap();
    front.cli(&["upstream", "apply", file.to_str().unwrap()]);
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM upstream_accounts", vec![]).await, 0);
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM upstream_clients", vec![]).await, 0);
}

/// Gives the person's value of MY_TOKEN for `upstream` on the page their Connections page links to.
async fn save_value(browser: &mut Browser, upstream: &str, value: &str) -> reqwest::Response {
    let page = browser.page(&format!("/connections/connect?upstream={upstream}")).await;
    assert!(page.contains("MY_TOKEN") && page.contains("type=\"password\""), "{page}");
    let csrf = extract_hidden(&page, "csrf_token");
    browser
        .post_form(
            "/connections/values",
            &[("csrf_token", csrf.as_str()), ("upstream", upstream), ("value:MY_TOKEN", value)],
        )
        .await
}

#[tokio::test]
async fn a_program_with_per_person_values_runs_once_per_person_within_the_cap_and_stops_when_idle() {
    let kit = upstreams();
    let front = spawn_app_with(&[
        ("UPSTREAM_RELOAD_SECS", "1"),
        ("UPSTREAM_PERSONAL_MAX", "2"),
        ("UPSTREAM_PERSONAL_IDLE_SECS", "3"),
    ])
    .await;
    let marker = format!("per-person-{}", uuid::Uuid::new_v4().simple());
    let everything = kit.everything();
    front.cli(&[
        "upstream",
        "add",
        "every",
        "--command",
        "node",
        "--arg",
        &everything,
        "--arg",
        "stdio",
        "--arg",
        &marker,
        "--env",
        "SHARED=for-everyone",
        "--env-per-user",
        "MY_TOKEN",
    ]);
    let auth = ClientAuth::Public(front.register_public_client(REDIRECT_URI).await);
    let (mut anna_browser, anna) = person(&front, &auth, "anna").await;
    let (mut bob_browser, bob) = person(&front, &auth, "bob").await;
    let (mut carol_browser, carol) = person(&front, &auth, "carol").await;

    // Anna gives her value on the page her Connections page links to.
    let saved = save_value(&mut anna_browser, "every", "anna-secret-1").await;
    assert_eq!(location(&saved), "/connections?done=saved");
    // Values for variables it does not take, or none at all, are refused and change nothing.
    let page = bob_browser.page("/connections/connect?upstream=every").await;
    let csrf = extract_hidden(&page, "csrf_token");
    let odd = bob_browser
        .post_form(
            "/connections/values",
            &[("csrf_token", csrf.as_str()), ("upstream", "every"), ("value:PATH", "/evil")],
        )
        .await;
    assert_html_error(odd, StatusCode::BAD_REQUEST).await;
    let empty = bob_browser
        .post_form(
            "/connections/values",
            &[("csrf_token", csrf.as_str()), ("upstream", "every"), ("value:MY_TOKEN", "")],
        )
        .await;
    assert_html_error(empty, StatusCode::BAD_REQUEST).await;
    assert_eq!(location(&save_value(&mut bob_browser, "every", "bob-secret-2").await), "/connections?done=saved");

    // Each one's process sees their own value and the shared one, never another person's.
    let mut anna_mcp = McpClient::connect(&front, &anna).await;
    until_tool(&mut anna_mcp, "every__get-env").await;
    let env = text_of(&anna_mcp.call_tool("every__get-env", json!({})).await);
    assert!(env.contains("anna-secret-1") && env.contains("for-everyone") && !env.contains("bob-secret-2"), "{env}");
    let mut bob_mcp = McpClient::connect(&front, &bob).await;
    let env = text_of(&bob_mcp.call_tool("every__get-env", json!({})).await);
    assert!(env.contains("bob-secret-2") && !env.contains("anna-secret-1"), "{env}");
    assert_eq!(processes_with(&marker), 2, "one process per person");

    // Its resources too, listed and read through each one's own process; without a value, none (no error).
    let anna_resources = anna_mcp.list_all("resources/list", "resources", "uri").await;
    let theirs = anna_resources.iter().find(|u| u.starts_with("demo://")).expect("the upstream's resources");
    let read = anna_mcp.result("resources/read", json!({"uri": theirs})).await;
    assert_eq!(read["contents"][0]["uri"], theirs.as_str(), "{read}");
    let mut carol_mcp = McpClient::connect_with(&front, &carol, json!({"elicitation": {"url": {}}})).await;
    let carol_resources = carol_mcp.list_all("resources/list", "resources", "uri").await;
    assert!(!carol_resources.iter().any(|u| u.starts_with("demo://")), "{carol_resources:?}");
    // Nor a client's token of its own, which has no person there.
    let machine = machine_client(&front, &[]);
    let tokens = json_ok(machine_token(&front, &machine, &[]).await).await;
    let mut job = McpClient::stateless(&front, tokens["access_token"].as_str().unwrap());
    let job_resources = job.list_all("resources/list", "resources", "uri").await;
    assert!(!job_resources.iter().any(|u| u.starts_with("demo://")), "{job_resources:?}");

    // Carol has given nothing: the URL elicitation names our page. Past the cap, a clear error.
    let refused = carol_mcp.request("tools/call", json!({"name": "every__get-env", "arguments": {}})).await;
    assert_eq!(refused["error"]["code"], -32042, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("MY_TOKEN"), "{refused}");
    assert_eq!(location(&save_value(&mut carol_browser, "every", "carol-secret-3").await), "/connections?done=saved");
    let capped = carol_mcp.call_tool("every__get-env", json!({})).await;
    assert_eq!(capped["isError"], true, "{capped}");
    assert!(text_of(&capped).contains("UPSTREAM_PERSONAL_MAX"), "{capped}");

    // The values are sealed; changing them starts a new process with the new value.
    let rows = front.sql("SELECT credentials_sealed FROM upstream_accounts", vec![]).await;
    for row in rows {
        let sealed: String = row.try_get("", "credentials_sealed").unwrap();
        assert!(mcp_gateway::crypto::SecretsKey::is_sealed(&sealed) && !sealed.contains("secret"), "{sealed}");
    }
    assert_eq!(location(&save_value(&mut anna_browser, "every", "anna-secret-4").await), "/connections?done=saved");
    let env = text_of(&anna_mcp.call_tool("every__get-env", json!({})).await);
    assert!(env.contains("anna-secret-4") && !env.contains("anna-secret-1"), "{env}");

    // Bob disconnects: his process goes at once, not after the idle time.
    let page = bob_browser.page("/connections").await;
    let csrf = extract_hidden(&page, "csrf_token");
    let gone =
        bob_browser.post_form("/connections/disconnect", &[("csrf_token", csrf.as_str()), ("upstream", "every")]).await;
    assert_eq!(location(&gone), "/connections?done=disconnected");
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    while processes_with(&marker) > 1 {
        assert!(std::time::Instant::now() < deadline, "a disconnected person's process keeps running");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Idle processes stop; the cap frees up and Carol's call goes through.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while processes_with(&marker) > 0 {
        assert!(std::time::Instant::now() < deadline, "idle processes keep running");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let env = text_of(&carol_mcp.call_tool("every__get-env", json!({})).await);
    assert!(env.contains("carol-secret-3"), "{env}");
}

#[tokio::test]
async fn a_tool_list_change_one_persons_program_announces_reaches_every_client() {
    let kit = upstreams();
    let front = spawn_app_with(&[("UPSTREAM_RELOAD_SECS", "1")]).await;
    let python = kit.python();
    let program = ["upstream", "add", "grow", "--command", &python, "--arg", kit.growing_server()];
    front.cli(&[&program[..], &["--env-per-user", "MY_TOKEN"]].concat());
    let auth = ClientAuth::Public(front.register_public_client(REDIRECT_URI).await);
    let (mut anna_browser, anna) = person(&front, &auth, "anna").await;
    let (_, bob) = person(&front, &auth, "bob").await;
    assert_eq!(location(&save_value(&mut anna_browser, "grow", "anna-1").await), "/connections?done=saved");

    // Bob, who has given nothing, listens for list changes; Anna's program grows a tool.
    let mut anna_mcp = McpClient::connect(&front, &anna).await;
    until_tool(&mut anna_mcp, "grow__grow").await;
    let mut bob_mcp = McpClient::connect(&front, &bob).await;
    let mut bob_stream = bob_mcp.open_stream().await;
    assert!(!bob_mcp.list_all("tools/list", "tools", "name").await.contains(&"grow__extra".to_owned()));
    assert_eq!(text_of(&anna_mcp.call_tool("grow__grow", json!({})).await), "grown");

    // The gateway lists it again through Anna's program: Bob is told, and both lists have the new tool.
    next_message(&mut bob_stream, |m| m["method"] == "notifications/tools/list_changed").await;
    assert!(bob_mcp.list_all("tools/list", "tools", "name").await.contains(&"grow__extra".to_owned()));
    until_tool(&mut anna_mcp, "grow__extra").await;
    assert_eq!(text_of(&anna_mcp.call_tool("grow__extra", json!({})).await), "extra");
}
