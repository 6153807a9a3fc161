//! The gateway in front of MCP servers people run, installed from their registries (pinned):
//! `@modelcontextprotocol/server-everything` (stdio and Streamable HTTP), `server-filesystem`, and a Python
//! SDK server that wants a static API key.
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::mcp::{McpClient, next_message, text_of, until_tool};
use crate::support::upstreams::{free_port, until_listening, upstreams};
use crate::support::*;

async fn gateway() -> TestApp {
    spawn_app_with(&[("UPSTREAM_RELOAD_SECS", "1")]).await
}

#[tokio::test]
async fn a_stdio_server_from_npm_is_served_with_its_environment_kept_to_itself() {
    let kit = upstreams();
    let front = gateway().await;
    let everything = kit.everything();
    front.cli(&["upstream", "add", "every", "--command", "node", "--arg", &everything, "--env", "GREETING=hello"]);
    let (_, tokens) = public_client_tokens(&front).await;
    let mut client = McpClient::connect(&front, tokens["access_token"].as_str().unwrap()).await;
    until_tool(&mut client, "every__echo").await;

    let echoed = client.call_tool("every__echo", json!({"message": "through the gateway"})).await;
    assert!(text_of(&echoed).contains("through the gateway"), "{echoed}");
    let structured = client.call_tool("every__get-structured-content", json!({"location": "Chicago"})).await;
    assert!(structured["structuredContent"]["temperature"].is_number(), "structured content passes: {structured}");

    // The program sees its configured environment and what it needs to run, never the gateway's settings.
    let env = text_of(&client.call_tool("every__get-env", json!({})).await);
    assert!(env.contains("GREETING") && env.contains("PATH"), "{env}");
    for secret in ["DATABASE_URL", "AUTH_ISSUER", "PASSWORD_HASH_COST"] {
        assert!(!env.contains(secret), "{secret} leaked to the upstream: {env}");
    }

    // Prompts and resources of the upstream, and a resource read routed by its URI.
    let prompts = client.result("prompts/list", json!({})).await;
    assert!(prompts.to_string().contains("every__"), "{prompts}");
    let templates = client.result("resources/templates/list", json!({})).await;
    assert!(templates.to_string().contains("demo://resource/dynamic/text/{resourceId}"), "{templates}");
    let read = client.result("resources/read", json!({"uri": "demo://resource/dynamic/text/1"})).await;
    assert_eq!(read["contents"][0]["uri"], "demo://resource/dynamic/text/1", "{read}");
    let mut listed = client.result("resources/list", json!({})).await;
    let mut pages = 1;
    while let Some(cursor) = listed["nextCursor"].as_str().map(str::to_owned) {
        listed = client.result("resources/list", json!({"cursor": cursor})).await;
        pages += 1;
        assert!(pages < 50, "pagination never ends");
    }
    assert!(pages >= 2, "the notes and the upstream's resources page one after the other");
}

#[tokio::test]
async fn sampling_and_elicitation_requests_reach_the_client_that_made_the_call() {
    let kit = upstreams();
    let front = gateway().await;
    let everything = kit.everything();
    front.cli(&["upstream", "add", "every", "--command", "node", "--arg", &everything]);
    let (_, tokens) = public_client_tokens(&front).await;
    let capabilities = json!({"sampling": {}, "elicitation": {"form": {}}});
    let mut client = McpClient::connect_with(&front, tokens["access_token"].as_str().unwrap(), capabilities).await;
    until_tool(&mut client, "every__trigger-sampling-request").await;

    let call = json!({"name": "every__trigger-sampling-request", "arguments": {"prompt": "Say hi", "maxTokens": 20}});
    let messages = client
        .request_answering("tools/call", call, |request| {
            assert_eq!(request["method"], "sampling/createMessage", "{request}");
            json!({"role": "assistant", "content": {"type": "text", "text": "hi from the model"}, "model": "test-model", "stopReason": "endTurn"})
        })
        .await;
    let answer = messages.last().unwrap();
    assert!(answer.to_string().contains("hi from the model"), "the model's answer went back upstream: {answer}");

    let call = json!({"name": "every__trigger-elicitation-request", "arguments": {}});
    let messages = client
        .request_answering("tools/call", call, |request| {
            assert_eq!(request["method"], "elicitation/create", "{request}");
            json!({"action": "decline"})
        })
        .await;
    let answer = messages.last().unwrap();
    assert!(answer["result"].to_string().to_lowercase().contains("decline"), "{answer}");
}

#[tokio::test]
async fn progress_passes_and_a_cancelled_call_is_cancelled_upstream() {
    let kit = upstreams();
    let front = gateway().await;
    let everything = kit.everything();
    front.cli(&["upstream", "add", "every", "--command", "node", "--arg", &everything]);
    let (_, tokens) = public_client_tokens(&front).await;
    let mut client = McpClient::connect(&front, tokens["access_token"].as_str().unwrap()).await;
    until_tool(&mut client, "every__trigger-long-running-operation").await;

    let call = json!({"name": "every__trigger-long-running-operation", "arguments": {"duration": 1, "steps": 4}, "_meta": {"progressToken": 41}});
    let messages = client.request_answering("tools/call", call, |_| json!({})).await;
    let progress: Vec<&Value> = messages.iter().filter(|m| m["method"] == "notifications/progress").collect();
    assert_eq!(progress.len(), 4, "every step's progress: {messages:?}");
    assert!(progress.iter().all(|p| p["params"]["progressToken"] == 41));

    // A long call, cancelled by the client: the gateway stops waiting and tells the upstream.
    let (id, body) = client.message(
        "tools/call",
        json!({"name": "every__trigger-long-running-operation", "arguments": {"duration": 30, "steps": 30}}),
    );
    let pending = client.post(&body).send();
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        client.notify("notifications/cancelled", json!({"requestId": id, "reason": "changed my mind"})).await
    };
    let started = std::time::Instant::now();
    let (_, cancelled) = tokio::join!(tokio::time::timeout(Duration::from_secs(10), pending), cancel);
    assert_eq!(cancelled, reqwest::StatusCode::ACCEPTED);
    assert!(started.elapsed() < Duration::from_secs(10));
    let audit = until_cli(&front, &["audit", "--event", "upstream_call"], "outcome=cancelled", 10).await;
    assert!(audit.contains("tool=trigger-long-running-operation"), "{audit}");
}

#[tokio::test]
async fn a_program_that_exits_is_restarted_and_one_that_keeps_crashing_is_marked_failed() {
    let kit = upstreams();
    let front = gateway().await;
    let everything = kit.everything();
    let marker = format!("gateway-test-{}", uuid::Uuid::new_v4().simple());
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
    ]);
    front.cli(&["upstream", "add", "crash", "--command", "sh", "--arg", "-c", "--arg", "echo broken >&2; exit 3"]);
    let (_, tokens) = public_client_tokens(&front).await;
    let mut client = McpClient::connect(&front, tokens["access_token"].as_str().unwrap()).await;
    until_tool(&mut client, "every__echo").await;

    let killed = std::process::Command::new("pkill").args(["-f", &marker]).status().unwrap();
    assert!(killed.success(), "the upstream program was running");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = front.get("/metrics").await.text().await.unwrap();
        let answer =
            client.request("tools/call", json!({"name": "every__echo", "arguments": {"message": "back"}})).await;
        if metrics.contains(r#"mcp_gateway_upstream_restarts{upstream="every"} 1"#)
            && text_of(&answer["result"]).contains("back")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not restarted: {answer}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let crash = loop {
        let listed = front.cli(&["upstream", "list"]);
        let crash = listed.lines().find(|l| l.starts_with("crash ")).unwrap().to_owned();
        if crash.split_whitespace().nth(4) == Some("failed") {
            break crash;
        }
        assert!(std::time::Instant::now() < deadline, "never marked failed: {crash}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(crash.contains("exited (exit status: 3)") && crash.contains("broken"), "the status says why: {crash}");
    let ready = front.get("/readyz").await.text().await.unwrap();
    assert!(ready.contains("crash"), "readiness names the failed upstream: {ready}");
    assert!(!ready.contains("broken"), "but never its error, which anyone could read: {ready}");
}

#[tokio::test]
async fn the_filesystem_server_reads_and_writes_only_with_the_scopes_its_tools_need() {
    let kit = upstreams();
    let front = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "kept on disk").unwrap();
    let root = dir.path().canonicalize().unwrap().display().to_string();
    front.cli(&["upstream", "add", "fs", "--command", "node", "--arg", &kit.filesystem(), "--arg", &root]);
    let (auth, tokens) = tokens_with_scope(&front, "mcp:read").await;
    let _ = auth;
    let mut reader = McpClient::connect(&front, tokens["access_token"].as_str().unwrap()).await;
    until_tool(&mut reader, "fs__read_text_file").await;
    let listed = reader.result("tools/list", json!({})).await;
    assert!(!listed.to_string().contains("fs__write_file"), "a read-only token does not see write tools: {listed}");
    let path = format!("{root}/notes.txt");
    let read = reader.call_tool("fs__read_text_file", json!({"path": path})).await;
    assert_eq!(text_of(&read), "kept on disk");
    let refused =
        reader.raw("tools/call", json!({"name": "fs__write_file", "arguments": {"path": path, "content": "x"}})).await;
    assert_eq!(refused.status(), reqwest::StatusCode::FORBIDDEN);

    // The operator decides that writing a file only needs mcp:read here.
    front.cli(&["upstream", "tool", "fs", "write_file", "read"]);
    until_tool(&mut reader, "fs__write_file").await;
    let written =
        reader.call_tool("fs__write_file", json!({"path": format!("{root}/new.txt"), "content": "written"})).await;
    assert_ne!(written["isError"], true, "{written}");
    assert_eq!(std::fs::read_to_string(dir.path().join("new.txt")).unwrap(), "written");
    let outside = reader.call_tool("fs__read_text_file", json!({"path": "/etc/hostname"})).await;
    assert_eq!(outside["isError"], true, "the upstream's own rules still hold: {outside}");
}

#[tokio::test]
async fn http_upstreams_from_npm_and_pypi_with_a_static_api_key() {
    let kit = upstreams();
    let (everything_port, python_port) = (free_port(), free_port());
    let _everything = kit.everything_http(everything_port);
    let _python = kit.api_key_server(python_port, "k-3141");
    until_listening(everything_port).await;
    until_listening(python_port).await;
    let front = gateway().await;
    let everything_url = format!("http://127.0.0.1:{everything_port}/mcp");
    let python_url = format!("http://127.0.0.1:{python_port}/mcp");
    front.cli(&["upstream", "add", "web", "--url", &everything_url]);
    front.cli(&["upstream", "add", "py", "--url", &python_url, "--header", "X-API-Key: k-3141"]);
    front.cli(&["upstream", "add", "nokey", "--url", &python_url]);
    let (_, tokens) = public_client_tokens(&front).await;
    let mut client = McpClient::connect(&front, tokens["access_token"].as_str().unwrap()).await;
    until_tool(&mut client, "web__echo").await;
    until_tool(&mut client, "py__add").await;
    let echoed = client.call_tool("web__echo", json!({"message": "over HTTP"})).await;
    assert!(text_of(&echoed).contains("over HTTP"), "{echoed}");
    let sum = client.call_tool("py__add", json!({"a": 2, "b": 3})).await;
    assert_eq!(text_of(&sum), "5", "{sum}");
    let shout = client.call_tool("py__shout", json!({"text": "hi"})).await;
    assert_eq!(text_of(&shout), "HI");

    let listed = until_cli(&front, &["upstream", "list"], "401", 20).await;
    let nokey = listed.lines().find(|l| l.starts_with("nokey ")).unwrap();
    assert!(!nokey.contains("connected"), "without its key the upstream refuses the gateway: {nokey}");
    assert!(!listed.contains("k-3141"), "the key is never printed: {listed}");
    let tools = client.result("tools/list", json!({})).await;
    assert!(!tools.to_string().contains("nokey__"), "{tools}");
}

#[tokio::test]
async fn resource_updates_and_list_changes_of_upstreams_reach_a_subscribed_session() {
    let kit = upstreams();
    let front = gateway().await;
    front.cli(&["upstream", "add", "every", "--command", "node", "--arg", &kit.everything()]);
    let (_, tokens) = public_client_tokens(&front).await;
    let mut client = McpClient::connect(&front, tokens["access_token"].as_str().unwrap()).await;
    until_tool(&mut client, "every__toggle-subscriber-updates").await;
    let mut stream = client.open_stream().await;

    let uri = "demo://resource/dynamic/text/1";
    client.result("resources/subscribe", json!({"uri": uri})).await;
    client.call_tool("every__toggle-subscriber-updates", json!({})).await;
    let updated = next_message(&mut stream, |m| m["method"] == "notifications/resources/updated").await;
    assert_eq!(updated["params"]["uri"], uri, "{updated}");

    // A new upstream changes the list every client sees: connected sessions are told.
    front.cli(&["upstream", "add", "more", "--command", "node", "--arg", &kit.everything()]);
    next_message(&mut stream, |m| m["method"] == "notifications/tools/list_changed").await;
    until_tool(&mut client, "more__echo").await;
}
