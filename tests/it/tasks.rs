//! Tasks (the `io.modelcontextprotocol/tasks` extension): a call a client that declared the extension gets
//! back as a task handle, kept in the database so any instance answers for it, only for its owner; input
//! asked during a task, cancellation, an instance that stops, the limits; and through the gateway, an
//! upstream that runs tasks itself (ours follows its task; a cancel reaches it) or one that does not (ours
//! runs its call in the background).
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::mcp::{McpClient, sse_messages, text_of, until_tool};
use crate::support::upstreams::upstreams;
use crate::support::*;

const TASKS: &str = "io.modelcontextprotocol/tasks";

/// The JSON-RPC answer to request `id`, whatever the HTTP status (a refusal may come with 400).
async fn answer(response: reqwest::Response, id: u64) -> Value {
    let text = response.text().await.unwrap();
    if let Ok(value) = serde_json::from_str::<Value>(&text) {
        return value;
    }
    sse_messages(&text).into_iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("no answer: {text}"))
}

/// A 2026-07-28 request from a client that declares the tasks extension (and elicitation).
async fn declared(client: &mut McpClient<'_>, method: &str, params: Value) -> Value {
    let (id, mut body) = client.message(method, params);
    body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] =
        json!({"elicitation": {}, "extensions": {TASKS: {}}});
    let mut request = client.post(&body);
    if let Some(task) = body["params"]["taskId"].as_str() {
        request = request.header("mcp-name", task);
    }
    answer(request.send().await.unwrap(), id).await
}

async fn start(client: &mut McpClient<'_>, tool: &str, arguments: Value) -> String {
    let created = declared(client, "tools/call", json!({"name": tool, "arguments": arguments})).await;
    let result = &created["result"];
    assert_eq!(result["resultType"], "task", "{created}");
    assert_eq!(result["status"], "working");
    result["taskId"].as_str().unwrap().to_owned()
}

async fn get(client: &mut McpClient<'_>, task: &str) -> Value {
    declared(client, "tasks/get", json!({"taskId": task})).await
}

/// Polls until the task's status is `status` (10 s at most); returns the task.
async fn until_status(client: &mut McpClient<'_>, task: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = get(client, task).await;
        if got["result"]["status"] == status {
            return got["result"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "never {status}: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fixtures_pair() -> (TestApp, TestApp) {
    let a = spawn_app_with(&[("MCP_CONFORMANCE_FIXTURES", "on")]).await;
    let b =
        spawn_app_with(&[("MCP_CONFORMANCE_FIXTURES", "on"), ("DATABASE_URL", &a.db_url), ("AUTH_ISSUER", &a.issuer)])
            .await;
    (a, b)
}

#[tokio::test]
async fn a_task_lives_in_the_database_where_any_instance_answers_for_it_and_only_its_owner_sees_it() {
    let (a, b) = fixtures_pair().await;
    let (_, tokens) = public_client_tokens(&a).await;
    let token = tokens["access_token"].as_str().unwrap();
    let (mut on_a, mut on_b) = (McpClient::stateless(&a, token), McpClient::stateless(&b, token));

    // Started on A, seen working and then finished on B; the arguments are sealed at rest.
    let task = start(&mut on_a, "slow_compute", json!({"seconds": 1, "label": "the-secret-label-4711"})).await;
    let sealed: String = a.sql("SELECT sealed FROM tasks WHERE id = $1", vec![task.clone().into()]).await[0]
        .try_get("", "sealed")
        .unwrap();
    assert!(!sealed.contains("the-secret-label-4711"), "the call is sealed in the database");
    assert_eq!(get(&mut on_b, &task).await["result"]["status"], "working");
    let done = until_status(&mut on_b, &task, "completed").await;
    assert_eq!(text_of(&done["result"]), "Computed the-secret-label-4711 in 1 s.", "{done}");
    assert!(done["ttlMs"].as_u64().unwrap() > 0 && done["pollIntervalMs"] == 1000, "{done}");

    // Another person, and a client that did not declare the extension, learn nothing of it.
    let auth = ClientAuth::Public(a.register_public_client(REDIRECT_URI).await);
    let mut browser = signup_and_login(&a, "bob", PASSWORD).await;
    let bob = issue_tokens(&a, &mut browser, &auth, ALL_SCOPES).await;
    let mut as_bob = McpClient::stateless(&b, bob["access_token"].as_str().unwrap());
    assert_eq!(get(&mut as_bob, &task).await["error"]["code"], -32602, "another person's task is unknown");
    assert_eq!(declared(&mut as_bob, "tasks/cancel", json!({"taskId": task})).await["error"]["code"], -32602);
    let (id, body) = on_b.message("tasks/get", json!({"taskId": task}));
    let undeclared = answer(on_b.post(&body).header("mcp-name", &task).send().await.unwrap(), id).await;
    assert_eq!(undeclared["error"]["code"], -32021, "{undeclared}");
    // Without the extension, the same tool answers at once; a tool that needs a task is refused.
    let at_once = on_a.result("tools/call", json!({"name": "slow_compute", "arguments": {"seconds": 0}})).await;
    assert_eq!(at_once["resultType"], "complete", "{at_once}");
    let (id, body) = on_a.message("tools/call", json!({"name": "failing_job", "arguments": {}}));
    let refused = answer(on_a.post(&body).send().await.unwrap(), id).await;
    assert_eq!(refused["error"]["code"], -32021, "{refused}");

    // Input asked during a task: waiting on A, answered on B, which runs the call again with the answer.
    let task = start(&mut on_a, "confirm_delete", json!({"filename": "notes.txt"})).await;
    let waiting = until_status(&mut on_a, &task, "input_required").await;
    assert_eq!(waiting["inputRequests"]["confirm"]["method"], "elicitation/create", "{waiting}");
    let answers = json!({"confirm": {"action": "accept", "content": {"confirm": true}}});
    let ack = declared(&mut on_b, "tasks/update", json!({"taskId": task, "inputResponses": answers})).await;
    assert_eq!(ack["result"], json!({"resultType": "complete"}), "{ack}");
    let done = until_status(&mut on_a, &task, "completed").await;
    assert_eq!(text_of(&done["result"]), "Deleted notes.txt.");

    // Two answers at once, one to each of two questions, on two instances: neither is lost.
    let task = start(&mut on_a, "multi_input", json!({})).await;
    let waiting = until_status(&mut on_a, &task, "input_required").await;
    assert_eq!(waiting["inputRequests"].as_object().unwrap().len(), 2, "{waiting}");
    let name = json!({"name": {"action": "accept", "content": {"name": "Ada"}}});
    let confirm = json!({"confirm": {"action": "accept", "content": {"confirm": true}}});
    let (first, second) = tokio::join!(
        declared(&mut on_a, "tasks/update", json!({"taskId": task, "inputResponses": name})),
        declared(&mut on_b, "tasks/update", json!({"taskId": task, "inputResponses": confirm})),
    );
    assert!(first.get("result").is_some() && second.get("result").is_some(), "{first} {second}");
    let done = until_status(&mut on_a, &task, "completed").await;
    assert_eq!(text_of(&done["result"]), "Both answers arrived.");

    // Cancelled on B, the call running on A stops (within its heartbeat); cancelling again is acknowledged.
    let task = start(&mut on_a, "slow_compute", json!({"seconds": 60})).await;
    let ack = declared(&mut on_b, "tasks/cancel", json!({"taskId": task})).await;
    assert_eq!(ack["result"], json!({"resultType": "complete"}), "{ack}");
    until_status(&mut on_a, &task, "cancelled").await;
    assert_eq!(declared(&mut on_a, "tasks/cancel", json!({"taskId": task})).await["result"]["resultType"], "complete");
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    loop {
        let running: Vec<String> = a
            .sql("SELECT instance FROM tasks WHERE id = $1", vec![task.clone().into()])
            .await
            .iter()
            .filter_map(|r| r.try_get::<Option<String>>("", "instance").ok().flatten())
            .collect();
        if running.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a cancelled task still runs");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_task_whose_instance_stopped_is_failed_and_the_limits_hold() {
    let first = spawn_app_with(&[
        ("MCP_CONFORMANCE_FIXTURES", "on"),
        ("TASKS_MAX_PER_USER", "2"),
        ("TASKS_MAX_RESULT_BYTES", "1024"),
    ])
    .await;
    let second = spawn_app_with(&[
        ("MCP_CONFORMANCE_FIXTURES", "on"),
        ("DATABASE_URL", &first.db_url),
        ("AUTH_ISSUER", &first.issuer),
    ])
    .await;
    let (_, tokens) = public_client_tokens(&first).await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();

    // The instance running a task stops: the task is reported failed once its heartbeat is old, never left
    // working.
    let task = start(&mut McpClient::stateless(&second, &token), "slow_compute", json!({"seconds": 60})).await;
    drop(second);
    let long_ago = chrono::Utc::now().timestamp() - 120;
    first.sql("UPDATE tasks SET heartbeat_at = $1 WHERE id = $2", vec![long_ago.into(), task.clone().into()]).await;
    let mut on_first = McpClient::stateless(&first, &token);
    let failed = get(&mut on_first, &task).await;
    assert_eq!(failed["result"]["status"], "failed", "{failed}");
    assert!(failed["result"]["error"]["message"].as_str().unwrap().contains("stopped"), "{failed}");

    // At most TASKS_MAX_PER_USER working at once.
    start(&mut on_first, "slow_compute", json!({"seconds": 60})).await;
    start(&mut on_first, "slow_compute", json!({"seconds": 60})).await;
    let refused =
        declared(&mut on_first, "tools/call", json!({"name": "slow_compute", "arguments": {"seconds": 1}})).await;
    assert!(refused["error"]["message"].as_str().unwrap().contains("TASKS_MAX_PER_USER"), "{refused}");
    // Also when many calls come at the same moment (on Postgres, each on its own pooled connection).
    first.sql("UPDATE tasks SET status = 'cancelled'", vec![]).await;
    let mut clients: Vec<McpClient> = (0..8).map(|_| McpClient::stateless(&first, &token)).collect();
    let call = json!({"name": "slow_compute", "arguments": {"seconds": 60}});
    let outcomes = futures::future::join_all(clients.iter_mut().map(|c| declared(c, "tools/call", call.clone()))).await;
    let started = outcomes.iter().filter(|o| o["result"]["resultType"] == "task").count();
    assert_eq!(started, 2, "{outcomes:#?}");

    // A result over TASKS_MAX_RESULT_BYTES fails the task, saying so.
    first.sql("UPDATE tasks SET status = 'cancelled'", vec![]).await;
    let big = "x".repeat(2000);
    let task = start(&mut on_first, "slow_compute", json!({"seconds": 0, "label": big})).await;
    let failed = until_status(&mut on_first, &task, "failed").await;
    assert!(failed["error"]["message"].as_str().unwrap().contains("TASKS_MAX_RESULT_BYTES"), "{failed}");

    // Past its time to live a task is unknown, and purged.
    first.sql("UPDATE tasks SET expires_at = $1 WHERE id = $2", vec![long_ago.into(), task.clone().into()]).await;
    assert_eq!(get(&mut on_first, &task).await["error"]["code"], -32602);
    let purged = first.cli(&["purge"]);
    assert!(purged.contains("1 expired tasks"), "{purged}");
}

/// An upstream: this server with the fixtures (it runs tasks itself), and a token for it.
async fn upstream_server() -> (TestApp, String) {
    let upstream = spawn_app_with(&[("MCP_CONFORMANCE_FIXTURES", "on")]).await;
    upstream.cli(&["user", "add", "upstream-bot", "--password", "upstream-bot-password-1"]);
    let added = upstream.cli(&["client", "add", "--name", "Gateway", "--redirect-uri", REDIRECT_URI]);
    let client_id = added.lines().find_map(|l| l.strip_prefix("client_id: ")).unwrap().trim().to_owned();
    let token =
        upstream.cli(&["token", "mint", "--user", "upstream-bot", "--client", &client_id, "--scope", ALL_SCOPES]);
    (upstream, token.trim().to_owned())
}

#[tokio::test]
async fn through_the_gateway_an_upstream_call_runs_as_a_task_and_a_cancel_reaches_the_upstream() {
    let (upstream, upstream_token) = upstream_server().await;
    let front = spawn_app_with(&[("UPSTREAM_RELOAD_SECS", "1")]).await;
    let header = format!("Authorization: Bearer {upstream_token}");
    front.cli(&["upstream", "add", "up", "--url", &upstream.url("/mcp"), "--header", &header]);
    front.cli(&["upstream", "add", "every", "--command", "node", "--arg", &upstreams().everything()]);
    let (_, tokens) = public_client_tokens(&front).await;
    let mut client = McpClient::stateless(&front, tokens["access_token"].as_str().unwrap());
    until_tool(&mut client, "up__slow_compute").await;
    until_tool(&mut client, "every__echo").await;

    // An upstream that runs tasks decides: a sync tool answers at once, a slow one becomes its task, which
    // ours follows to the end.
    let greeting =
        declared(&mut client, "tools/call", json!({"name": "up__greet", "arguments": {"name": "you"}})).await;
    assert_eq!(text_of(&greeting["result"]), "Hello, you!", "{greeting}");
    let task = start(&mut client, "up__slow_compute", json!({"seconds": 1})).await;
    let done = until_status(&mut client, &task, "completed").await;
    assert_eq!(text_of(&done["result"]), "Computed the answer in 1 s.", "{done}");
    assert_eq!(upstream.sql_count("SELECT COUNT(*) FROM tasks WHERE status = 'completed'", vec![]).await, 1);

    // Its input requests come through, and the answers go back to it.
    let task = start(&mut client, "up__confirm_delete", json!({"filename": "a.txt"})).await;
    let waiting = until_status(&mut client, &task, "input_required").await;
    assert!(waiting["inputRequests"]["confirm"].is_object(), "{waiting}");
    let answers = json!({"confirm": {"action": "accept", "content": {"confirm": false}}});
    declared(&mut client, "tasks/update", json!({"taskId": task, "inputResponses": answers})).await;
    assert_eq!(text_of(&until_status(&mut client, &task, "completed").await["result"]), "Kept a.txt.");

    // Cancelling ours cancels the upstream's.
    let task = start(&mut client, "up__slow_compute", json!({"seconds": 60})).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while upstream.sql_count("SELECT COUNT(*) FROM tasks WHERE status = 'working'", vec![]).await == 0 {
        assert!(std::time::Instant::now() < deadline, "the upstream never started its task");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    declared(&mut client, "tasks/cancel", json!({"taskId": task})).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while upstream.sql_count("SELECT COUNT(*) FROM tasks WHERE status = 'cancelled'", vec![]).await == 0 {
        assert!(std::time::Instant::now() < deadline, "the cancel never reached the upstream");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // An upstream without tasks: our task runs its call in the background.
    let task = start(&mut client, "every__echo", json!({"message": "in the background"})).await;
    let done = until_status(&mut client, &task, "completed").await;
    assert!(text_of(&done["result"]).contains("in the background"), "{done}");
}
