//! The MCP server behind the guard: sessions, tools, scopes per tool, resources, prompts, completions,
//! logging, and both protocol eras, over real HTTP with tokens from the real OAuth flow.

use crate::support::mcp::{McpClient, answer, initialize, next_message};
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An access token for a new user `username` with `scope`, through registration, consent and the token endpoint.
async fn token_for(app: &TestApp, username: &str, scope: &str) -> String {
    let auth = ClientAuth::Public(app.register_public_client(REDIRECT_URI).await);
    let mut browser = signup_and_login(app, username, PASSWORD).await;
    str_field(&issue_tokens(app, &mut browser, &auth, scope).await, "access_token")
}

fn structured(result: &Value) -> &Value {
    assert_eq!(result["isError"], false, "{result}");
    &result["structuredContent"]
}

#[tokio::test]
async fn every_tool_has_a_schema_a_title_and_annotations() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    let mut mcp = McpClient::connect(&app, &token).await;
    let tools = mcp.result("tools/list", json!({})).await;
    let names: Vec<&str> = tools["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for name in ["whoami", "notes_create", "notes_list", "notes_search", "notes_get", "notes_delete"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(!names.contains(&"test_simple_text"), "conformance fixtures are off by default");
    for tool in tools["tools"].as_array().unwrap() {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        if tool["inputSchema"]["properties"].as_object().is_some_and(|p| !p.is_empty()) {
            // Generated from the parameter types as JSON Schema 2020-12 (a tool without parameters has the
            // plain empty object schema).
            assert_eq!(tool["inputSchema"]["$schema"], "https://json-schema.org/draft/2020-12/schema", "{tool}");
        }
        assert!(tool["title"].is_string(), "{tool}");
        assert!(tool["annotations"]["readOnlyHint"].is_boolean(), "{tool}");
    }
    let delete = tools["tools"].as_array().unwrap().iter().find(|t| t["name"] == "notes_delete").unwrap();
    assert_eq!(delete["annotations"]["destructiveHint"], true);
}

#[tokio::test]
async fn whoami_reports_the_token_behind_the_call() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    let claims = jwt_claims(&token);
    let mut mcp = McpClient::connect(&app, &token).await;
    let result = mcp.call_tool("whoami", json!({})).await;
    let me = structured(&result);
    assert_eq!(me["subject"], claims["sub"]);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["client_id"], claims["client_id"]);
    assert_eq!(me["scopes"], json!(["mcp:read", "mcp:write"]));
    assert!(me["expires_at"].as_str().unwrap().contains('T'));
}

#[tokio::test]
async fn notes_can_be_created_listed_searched_read_and_deleted() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    let mut mcp = McpClient::connect(&app, &token).await;
    let created = mcp.call_tool("notes_create", json!({"title": "Groceries", "body": "Buy oat milk"})).await;
    let id = structured(&created)["id"].as_str().unwrap().to_owned();
    mcp.call_tool("notes_create", json!({"title": "Ideas", "body": "A gateway for MCP"})).await;

    let listed = mcp.call_tool("notes_list", json!({})).await;
    assert_eq!(structured(&listed)["notes"].as_array().unwrap().len(), 2);
    let page = mcp.call_tool("notes_list", json!({"limit": 1})).await;
    let cursor = structured(&page)["next_cursor"].as_str().unwrap().to_owned();
    let rest = mcp.call_tool("notes_list", json!({"limit": 1, "cursor": cursor})).await;
    assert_eq!(structured(&rest)["notes"].as_array().unwrap().len(), 1);
    assert!(structured(&rest).get("next_cursor").is_none());

    let found = mcp.call_tool("notes_search", json!({"query": "OAT MILK"})).await;
    assert_eq!(structured(&found)["notes"][0]["id"], id.as_str());
    let got = mcp.call_tool("notes_get", json!({"id": id})).await;
    assert_eq!(structured(&got)["body"], "Buy oat milk");

    let deleted = mcp.call_tool("notes_delete", json!({"id": id})).await;
    assert_eq!(structured(&deleted)["deleted"], true);
    let gone = mcp.call_tool("notes_get", json!({"id": id})).await;
    assert_eq!(gone["isError"], true, "{gone}");
}

#[tokio::test]
async fn tool_errors_are_results_and_unknown_tools_are_protocol_errors() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    let mut mcp = McpClient::connect(&app, &token).await;
    let empty_title = mcp.call_tool("notes_create", json!({"title": " ", "body": "x"})).await;
    assert_eq!(empty_title["isError"], true, "{empty_title}");
    let bad_limit = mcp.call_tool("notes_list", json!({"limit": 0})).await;
    assert_eq!(bad_limit["isError"], true, "{bad_limit}");
    let unknown = mcp.request("tools/call", json!({"name": "no_such_tool", "arguments": {}})).await;
    assert!(unknown["error"]["code"].is_i64(), "{unknown}");
}

#[tokio::test]
async fn a_person_sees_only_their_own_notes() {
    let app = spawn_app().await;
    let alice = token_for(&app, "alice", ALL_SCOPES).await;
    let bob = token_for(&app, "bob", ALL_SCOPES).await;
    let mut alice_mcp = McpClient::connect(&app, &alice).await;
    let created = alice_mcp.call_tool("notes_create", json!({"title": "Secret", "body": "alice only"})).await;
    let id = structured(&created)["id"].as_str().unwrap().to_owned();
    let mut bob_mcp = McpClient::connect(&app, &bob).await;
    assert_eq!(bob_mcp.call_tool("notes_get", json!({"id": id})).await["isError"], true);
    assert_eq!(bob_mcp.call_tool("notes_delete", json!({"id": id})).await["isError"], true);
    let listed = bob_mcp.call_tool("notes_list", json!({})).await;
    assert!(structured(&listed)["notes"].as_array().unwrap().is_empty());
    let read = bob_mcp.request("resources/read", json!({"uri": format!("note://{id}")})).await;
    assert!(read["error"].is_object(), "{read}");
}

/// MCP authorization: a tool that changes data needs `mcp:write`; the 403 names every scope needed.
#[tokio::test]
async fn a_read_only_token_can_read_but_not_write() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", "mcp:read").await;
    let mut mcp = McpClient::connect(&app, &token).await;
    let listed = mcp.call_tool("notes_list", json!({})).await;
    assert_eq!(listed["isError"], false);
    let response =
        mcp.raw("tools/call", json!({"name": "notes_create", "arguments": {"title": "t", "body": "b"}})).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = header(&response, "www-authenticate").unwrap();
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
    assert!(challenge.contains(r#"scope="mcp:read mcp:write""#), "{challenge}");
    assert!(challenge.contains("resource_metadata="), "{challenge}");
}

#[tokio::test]
async fn a_write_tool_hidden_in_a_batch_still_needs_mcp_write() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", "mcp:read").await;
    let mcp = McpClient::connect(&app, &token).await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": 10, "method": "tools/list", "params": {}},
        {"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {"name": "notes_delete", "arguments": {"id": "x"}}},
    ]);
    let response = mcp.post(&batch).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_session_belongs_to_the_subject_that_opened_it() {
    let app = spawn_app().await;
    let alice = token_for(&app, "alice", ALL_SCOPES).await;
    let bob = token_for(&app, "bob", ALL_SCOPES).await;
    let alice_mcp = McpClient::connect(&app, &alice).await;
    let mut stolen = McpClient::stateless(&app, &bob);
    stolen.session = alice_mcp.session.clone();
    stolen.version = crate::support::mcp::LEGACY;
    let response = stolen.raw("tools/list", json!({})).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_deleted_session_is_gone() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    let mut mcp = McpClient::connect(&app, &token).await;
    assert!(mcp.delete_session().await.is_success());
    assert_eq!(mcp.raw("tools/list", json!({})).await.status(), StatusCode::NOT_FOUND);
}

/// Sessions live in the database: a session opened on one instance is served by another and ended from a third.
#[tokio::test]
async fn a_session_opened_on_one_instance_is_served_and_ended_by_others() {
    let trust = ("GUARD_CACHE_SECS", shared_database_cache_secs());
    let a = spawn_app_with(&[trust]).await;
    let shared = [
        ("DATABASE_URL", a.db_url.as_str()),
        ("AUTH_ISSUER", a.issuer.as_str()),
        ("MCP_RESOURCE_URI", a.resource.as_str()),
        trust,
    ];
    let b = spawn_app_with(&shared).await;
    let c = spawn_app_with(&shared).await;
    let token = token_for(&a, "alice", ALL_SCOPES).await;
    let mut on_a = McpClient::connect(&a, &token).await;
    on_a.call_tool("notes_create", json!({"title": "From A", "body": "x"})).await;

    let mut on_b = McpClient::stateless(&b, &token);
    on_b.session = on_a.session.clone();
    on_b.version = crate::support::mcp::LEGACY;
    let listed = on_b.call_tool("notes_list", json!({})).await;
    assert_eq!(structured(&listed)["notes"][0]["title"], "From A");

    let mut on_c = McpClient::stateless(&c, &token);
    on_c.session = on_a.session.clone();
    on_c.version = crate::support::mcp::LEGACY;
    assert!(on_c.delete_session().await.is_success());
    on_b.until_status(StatusCode::NOT_FOUND, "tools/list").await;
    on_a.until_status(StatusCode::NOT_FOUND, "tools/list").await;
}

#[tokio::test]
async fn notes_are_resources_with_a_template() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    let mut mcp = McpClient::connect(&app, &token).await;
    let created = mcp.call_tool("notes_create", json!({"title": "Plan", "body": "Ship it"})).await;
    let uri = structured(&created)["uri"].as_str().unwrap().to_owned();
    let listed = mcp.result("resources/list", json!({})).await;
    assert_eq!(listed["resources"][0]["uri"], uri.as_str());
    assert_eq!(listed["resources"][0]["mimeType"], "text/markdown");
    let read = mcp.result("resources/read", json!({"uri": uri})).await;
    assert!(read["contents"][0]["text"].as_str().unwrap().contains("Ship it"));
    let templates = mcp.result("resources/templates/list", json!({})).await;
    assert_eq!(templates["resourceTemplates"][0]["uriTemplate"], "note://{id}");
    let missing = mcp.request("resources/read", json!({"uri": "note://nope"})).await;
    assert!(missing["error"].is_object(), "{missing}");
}

#[tokio::test]
async fn a_subscribed_session_hears_when_its_note_changes_in_another_session() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    let mut watcher = McpClient::connect(&app, &token).await;
    let mut editor = McpClient::connect(&app, &token).await;
    let created = editor.call_tool("notes_create", json!({"title": "Watched", "body": "v1"})).await;
    let (id, uri) = (
        structured(&created)["id"].as_str().unwrap().to_owned(),
        structured(&created)["uri"].as_str().unwrap().to_owned(),
    );
    let mut stream = watcher.open_stream().await;
    watcher.result("resources/subscribe", json!({"uri": uri})).await;
    editor.call_tool("notes_delete", json!({"id": id})).await;
    let updated = next_message(&mut stream, |m| m["method"] == "notifications/resources/updated").await;
    assert_eq!(updated["params"]["uri"], uri.as_str());
}

#[tokio::test]
async fn logging_follows_the_level_the_client_set() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    let mut mcp = McpClient::connect(&app, &token).await;
    let mut stream = mcp.open_stream().await;
    mcp.result("logging/setLevel", json!({"level": "info"})).await;
    mcp.call_tool("notes_create", json!({"title": "Logged", "body": "x"})).await;
    let logged = next_message(&mut stream, |m| m["method"] == "notifications/message").await;
    assert_eq!(logged["params"]["level"], "info");
    assert_eq!(logged["params"]["data"]["event"], "note created");
}

#[tokio::test]
async fn the_summary_prompt_and_its_completions_use_the_callers_notes() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    let mut mcp = McpClient::connect(&app, &token).await;
    mcp.call_tool("notes_create", json!({"title": "Roadmap", "body": "Q1: ship"})).await;
    mcp.call_tool("notes_create", json!({"title": "Recipes", "body": "Bread"})).await;
    let prompts = mcp.result("prompts/list", json!({})).await;
    assert_eq!(prompts["prompts"][0]["name"], "summarize_notes");
    let prompt = mcp.result("prompts/get", json!({"name": "summarize_notes", "arguments": {"topic": "ship"}})).await;
    let text = prompt["messages"][0]["content"]["text"].as_str().unwrap();
    assert!(text.contains("Roadmap") && !text.contains("Recipes"), "{text}");
    let completion = mcp
        .result(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "summarize_notes"}, "argument": {"name": "topic", "value": "Ro"}}),
        )
        .await;
    assert_eq!(completion["completion"]["values"], json!(["Roadmap"]));
}

/// 2026-07-28: no handshake, no session; `server/discover` and tools work per request.
#[tokio::test]
async fn stateless_2026_clients_discover_and_call_tools() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    let mut mcp = McpClient::stateless(&app, &token);
    let discovered = mcp.result("server/discover", json!({})).await;
    let versions = discovered["supportedVersions"].as_array().unwrap();
    for version in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"] {
        assert!(versions.contains(&json!(version)), "{version} not in {versions:?}");
    }
    let created = mcp.call_tool("notes_create", json!({"title": "Stateless", "body": "no session"})).await;
    assert_eq!(structured(&created)["title"], "Stateless");
    let me = mcp.call_tool("whoami", json!({})).await;
    assert_eq!(structured(&me)["username"], "alice");
}

#[tokio::test]
async fn every_legacy_revision_can_initialize() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    for version in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
        let response = app
            .client
            .post(app.url("/mcp"))
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize(version, 1))
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key("mcp-session-id"), "{version}");
        assert_eq!(answer(response, 1).await["result"]["protocolVersion"], version);
    }
}

#[tokio::test]
async fn transport_rules_hold_behind_the_guard() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    let mcp = McpClient::connect(&app, &token).await;
    let unsupported = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", mcp.session.as_deref().unwrap())
        .header("mcp-protocol-version", "1999-01-01")
        .json(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unsupported.status(), StatusCode::BAD_REQUEST);
    let foreign = mcp
        .post(&json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list"}))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN, "DNS-rebinding protection");
    let huge = mcp
        .post(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"pad": "x".repeat(1100 * 1024)}}))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(mcp.notify("notifications/roots/list_changed", json!({})).await, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn the_cli_mints_tokens_that_work_and_can_be_revoked() {
    let app = spawn_app().await;
    let client_id = app.register_public_client(REDIRECT_URI).await;
    signup_and_login(&app, "alice", PASSWORD).await;
    let minted =
        app.cli(&["token", "mint", "--user", "alice", "--client", &client_id, "--scope", "mcp:read", "--ttl", "600"]);
    let token = minted.trim().to_owned();
    let claims = jwt_claims(&token);
    assert_eq!(claims["scope"], "mcp:read");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);
    let mut mcp = McpClient::connect(&app, &token).await;
    assert_eq!(structured(&mcp.call_tool("whoami", json!({})).await)["username"], "alice");
    let revoked = app.post_as("/oauth/revoke", &ClientAuth::Public(client_id), &[("token", &token)]).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(mcp.raw("tools/list", json!({})).await.status(), StatusCode::UNAUTHORIZED);
}

/// `token mint --refresh --count N` prints N independent grants, each with a refresh token that rotates.
#[tokio::test]
async fn the_cli_mints_refresh_tokens_in_bulk() {
    let app = spawn_app().await;
    let client_id = app.register_public_client(REDIRECT_URI).await;
    signup_and_login(&app, "alice", PASSWORD).await;
    let minted = app.cli(&[
        "token",
        "mint",
        "--user",
        "alice",
        "--client",
        &client_id,
        "--scope",
        "mcp:read",
        "--refresh",
        "--count",
        "3",
    ]);
    let lines: Vec<(&str, &str)> = minted.lines().map(|l| l.split_once(' ').expect("access and refresh")).collect();
    assert_eq!(lines.len(), 3);
    let grants: std::collections::HashSet<String> =
        lines.iter().map(|(access, _)| jwt_claims(access)["grant_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(grants.len(), 3, "each token is its own grant");
    let auth = ClientAuth::Public(client_id);
    let mut successors = Vec::new();
    for (_, refresh) in &lines {
        let rotated = json_ok(app.refresh(&auth, refresh).await).await;
        assert_eq!(rotated["scope"], "mcp:read");
        successors.push(str_field(&rotated, "refresh_token"));
    }
    // Within the grace window a retry gets the same successor, never a second one.
    let retried = json_ok(app.refresh(&auth, lines[0].1).await).await;
    assert_eq!(str_field(&retried, "refresh_token"), successors[0]);
}

/// 2026-07-28 (SEP-2575): a `subscriptions/listen` stream carries the updates of the notes it names.
#[tokio::test]
async fn a_2026_listen_stream_hears_about_its_notes() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    let mut mcp = McpClient::stateless(&app, &token);
    let created = mcp.call_tool("notes_create", json!({"title": "Watched", "body": "v1"})).await;
    let (id, uri) = (
        structured(&created)["id"].as_str().unwrap().to_owned(),
        structured(&created)["uri"].as_str().unwrap().to_owned(),
    );
    let listen = json!({
        "jsonrpc": "2.0", "id": 99, "method": "subscriptions/listen",
        "params": {
            "notifications": {"resourceSubscriptions": [uri]},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    });
    let mut stream = mcp.post(&listen).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    next_message(&mut stream, |m| m["method"] == "notifications/subscriptions/acknowledged").await;
    mcp.call_tool("notes_delete", json!({"id": id})).await;
    let updated = next_message(&mut stream, |m| m["method"] == "notifications/resources/updated").await;
    assert_eq!(updated["params"]["uri"], uri.as_str());
}

/// An idle session ends (404) and `purge` removes it; the database clock is moved back by hand.
#[tokio::test]
async fn an_idle_session_ends_and_is_purged() {
    use sea_orm::ConnectionTrait;
    // The clock is moved behind the server's back, which nothing announces: read the session every time.
    let app = spawn_app_with(&[("GUARD_CACHE_SECS", "0")]).await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    let mut mcp = McpClient::connect(&app, &token).await;
    let db = sea_orm::Database::connect(app.db_url.as_str()).await.unwrap();
    db.execute_unprepared("UPDATE mcp_sessions SET last_seen = last_seen - 7200").await.unwrap();
    assert_eq!(mcp.raw("tools/list", json!({})).await.status(), StatusCode::NOT_FOUND);
    // A consent and a grant revoked long ago are of no more use either.
    db.execute_unprepared("UPDATE consents SET revoked_at = 1").await.unwrap();
    db.execute_unprepared("UPDATE grants SET revoked_at = 1").await.unwrap();
    let stdout = app.cli(&["purge"]);
    assert!(stdout.contains("1 MCP sessions"), "{stdout}");
    assert!(stdout.contains("1 consents, 1 grants"), "{stdout}");
    let left = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM mcp_sessions",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left.try_get::<i64>("", "n").unwrap(), 0);
}

#[tokio::test]
async fn only_ones_own_notes_can_be_subscribed_to() {
    let app = spawn_app().await;
    let alice = token_for(&app, "alice", ALL_SCOPES).await;
    let bob = token_for(&app, "bob", ALL_SCOPES).await;
    let mut alice_mcp = McpClient::connect(&app, &alice).await;
    let created = alice_mcp.call_tool("notes_create", json!({"title": "Mine", "body": "x"})).await;
    let uri = structured(&created)["uri"].as_str().unwrap().to_owned();
    alice_mcp.result("resources/subscribe", json!({"uri": uri})).await;
    let mut bob_mcp = McpClient::connect(&app, &bob).await;
    let theirs = bob_mcp.request("resources/subscribe", json!({"uri": uri})).await;
    assert!(theirs["error"].is_object(), "{theirs}");
    let junk = bob_mcp.request("resources/subscribe", json!({"uri": format!("note://{}", "x".repeat(10_000))})).await;
    assert!(junk["error"].is_object(), "{junk}");
}

#[tokio::test]
async fn search_matches_wildcard_characters_literally() {
    let app = spawn_app().await;
    let token = token_for(&app, "alice", ALL_SCOPES).await;
    let mut mcp = McpClient::connect(&app, &token).await;
    mcp.call_tool("notes_create", json!({"title": "Discount", "body": "50% off"})).await;
    mcp.call_tool("notes_create", json!({"title": "Other", "body": "nothing here"})).await;
    let percent = mcp.call_tool("notes_search", json!({"query": "%"})).await;
    assert_eq!(structured(&percent)["notes"].as_array().unwrap().len(), 1, "{percent}");
    let underscore = mcp.call_tool("notes_search", json!({"query": "_"})).await;
    assert!(structured(&underscore)["notes"].as_array().unwrap().is_empty(), "{underscore}");
}
