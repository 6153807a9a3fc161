//! Several real server processes (the built binary) on one database and one issuer/resource
//! configuration: everything a load balancer without stickiness needs. With `TEST_POSTGRES_URL` the
//! instances share a fresh Postgres database (as in CI); otherwise one SQLite file.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::mcp::McpClient;
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

struct Instance {
    child: Child,
    app: TestApp,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    instances: Vec<Instance>,
    issuer: String,
    db_url: String,
    _db_dir: Option<TempDir>,
    _workdir: TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn gateway(db_url: &str, issuer: &str, workdir: &TempDir) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-gateway"));
    command
        .env_clear()
        .env("DATABASE_URL", db_url)
        .env("AUTH_ISSUER", issuer)
        .env("MCP_RESOURCE_URI", format!("{issuer}/mcp"))
        .env("PASSWORD_HASH_COST", "low")
        .env("KEY_RELOAD_SECS", "1")
        .env("GUARD_CACHE_SECS", shared_database_cache_secs())
        // As long as the guard's trust: on Postgres only the announcement can bring a change in time.
        .env("UPSTREAM_RELOAD_SECS", shared_database_cache_secs())
        .env("RUST_LOG", "warn")
        .env("SECRETS_KEY", TEST_SECRETS_KEY)
        .current_dir(workdir.path());
    command
}

impl Cluster {
    /// Starts `n` instances at the same moment on an empty database and waits until all are ready.
    async fn start(n: usize) -> Cluster {
        let (db_url, db_dir) = fresh_database_url().await;
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let issuer = format!("http://127.0.0.1:{}", ports[0]);
        let workdir = tempfile::tempdir().unwrap();
        let instances: Vec<Instance> = ports
            .iter()
            .map(|port| {
                let child = gateway(&db_url, &issuer, &workdir)
                    .env("PORT", port.to_string())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start mcp-gateway");
                let base = format!("http://127.0.0.1:{port}");
                Instance { child, app: TestApp::remote(&base, &issuer, &format!("{issuer}/mcp"), &db_url) }
            })
            .collect();
        for instance in &instances {
            wait_ready(&instance.app).await;
        }
        Cluster { instances, issuer, db_url, _db_dir: db_dir, _workdir: workdir }
    }

    fn at(&self, i: usize) -> &TestApp {
        &self.instances[i].app
    }

    fn cli(&self, args: &[&str]) -> String {
        let output = gateway(&self.db_url, &self.issuer, &self._workdir).args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }
}

async fn wait_ready(app: &TestApp) {
    for _ in 0..150 {
        if let Ok(r) = app.client.get(app.url("/readyz")).send().await
            && r.status() == StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} did not become ready", app.base);
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks = app.get_json("/.well-known/jwks.json").await;
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

/// Migrations under an advisory lock, and the first signing key created exactly once.
#[tokio::test]
async fn instances_started_together_on_an_empty_database_agree_on_one_key() {
    let cluster = Cluster::start(3).await;
    let first = jwks_kids(cluster.at(0)).await;
    assert_eq!(first.len(), 1, "{first:?}");
    for i in 1..3 {
        assert_eq!(jwks_kids(cluster.at(i)).await, first);
    }
}

/// Registered on A, authorized on A, redeemed on B, refreshed on C, used at every instance's /mcp.
#[tokio::test]
async fn a_grant_travels_across_instances() {
    let cluster = Cluster::start(3).await;
    let (a, b, c) = (cluster.at(0), cluster.at(1), cluster.at(2));
    let auth = ClientAuth::Public(a.register_public_client(REDIRECT_URI).await);
    let mut browser = signup_and_login(a, "alice", PASSWORD).await;
    let pkce = pkce_pair();
    let code = browser.authorize(&a.authorize_params(auth.client_id(), REDIRECT_URI, &pkce)).await;
    let tokens = json_ok(b.redeem_code(&auth, &code, REDIRECT_URI, &pkce.verifier).await).await;
    let refreshed = json_ok(c.refresh(&auth, &str_field(&tokens, "refresh_token")).await).await;
    for app in [a, b, c] {
        assert_mcp_accepts(app, &str_field(&refreshed, "access_token")).await;
    }
}

#[tokio::test]
async fn an_mcp_session_opened_on_a_is_served_by_b_and_ended_from_c() {
    let cluster = Cluster::start(3).await;
    let (a, b, c) = (cluster.at(0), cluster.at(1), cluster.at(2));
    let (_, tokens) = public_client_tokens(a).await;
    let token = str_field(&tokens, "access_token");
    let mut on_a = McpClient::connect(a, &token).await;
    on_a.call_tool("notes_create", json!({"title": "Shared", "body": "x"})).await;
    let mut on_b = McpClient::stateless(b, &token);
    on_b.session = on_a.session.clone();
    on_b.version = crate::support::mcp::LEGACY;
    let listed = on_b.call_tool("notes_list", json!({})).await;
    assert_eq!(listed["structuredContent"]["notes"][0]["title"], "Shared");
    let mut on_c = McpClient::stateless(c, &token);
    on_c.session = on_a.session.clone();
    on_c.version = crate::support::mcp::LEGACY;
    assert!(on_c.delete_session().await.is_success());
    on_a.until_status(StatusCode::NOT_FOUND, "tools/list").await;
    on_b.until_status(StatusCode::NOT_FOUND, "tools/list").await;
}

/// A grant revoked on A is refused by B, which had just trusted it: on Postgres as soon as A's announcement
/// arrives, on SQLite once B's trust runs out (`GUARD_CACHE_SECS`).
#[tokio::test]
async fn a_grant_revoked_on_a_is_refused_by_b_that_trusted_it() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (cluster.at(0), cluster.at(1));
    let (auth, tokens) = public_client_tokens(a).await;
    let access_token = str_field(&tokens, "access_token");
    assert_mcp_accepts(b, &access_token).await;
    let revoked = a.post_as("/oauth/revoke", &auth, &[("token", &str_field(&tokens, "refresh_token"))]).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    eventually_status(StatusCode::UNAUTHORIZED, || b.call_mcp(&access_token)).await;
}

#[tokio::test]
async fn a_key_rotated_elsewhere_is_published_and_used_by_every_instance() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (cluster.at(0), cluster.at(1));
    let (auth, tokens) = public_client_tokens(a).await;
    let old_kid = jwks_kids(b).await[0].clone();
    cluster.cli(&["keys", "rotate"]);
    let mut published = vec![];
    for _ in 0..50 {
        published = jwks_kids(b).await;
        if published.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(published.len(), 2, "B publishes the new key next to the old one: {published:?}");
    let new_kid = published.iter().find(|k| **k != old_kid).unwrap().clone();
    let refreshed = json_ok(b.refresh(&auth, &str_field(&tokens, "refresh_token")).await).await;
    let access = str_field(&refreshed, "access_token");
    assert_eq!(jwt_header(&access).kid.as_deref(), Some(new_kid.as_str()), "B signs with the new key");
    assert_mcp_accepts(a, &access).await;
    assert_mcp_accepts(a, &str_field(&tokens, "access_token")).await;
}

/// 50 parallel redemptions of one code spread over three instances: exactly one succeeds.
#[tokio::test]
async fn a_code_redeemed_concurrently_on_all_instances_succeeds_exactly_once() {
    let cluster = Cluster::start(3).await;
    let a = cluster.at(0);
    let auth = ClientAuth::Public(a.register_public_client(REDIRECT_URI).await);
    let mut browser = signup_and_login(a, "alice", PASSWORD).await;
    let pkce = pkce_pair();
    let code = browser.authorize(&a.authorize_params(auth.client_id(), REDIRECT_URI, &pkce)).await;
    let attempts = (0..50).map(|i| cluster.at(i % 3).redeem_code(&auth, &code, REDIRECT_URI, &pkce.verifier));
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts).await.iter().map(|r| r.status()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST), "{statuses:?}");
}

/// One refresh token presented by 30 callers over three instances: one successor, never two, and the
/// race does not kill the grant.
#[tokio::test]
async fn a_refresh_token_presented_on_all_instances_rotates_exactly_once() {
    let cluster = Cluster::start(3).await;
    let (auth, tokens) = public_client_tokens(cluster.at(0)).await;
    let first = str_field(&tokens, "refresh_token");
    let attempts = (0..30).map(|i| cluster.at(i % 3).refresh(&auth, &first));
    let mut successors = HashSet::new();
    for response in futures::future::join_all(attempts).await {
        if response.status() == StatusCode::OK {
            successors.insert(str_field(&response.json::<Value>().await.unwrap(), "refresh_token"));
        } else {
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        }
    }
    assert_eq!(successors.len(), 1, "{successors:?}");
    let successor = successors.into_iter().next().unwrap();
    assert_eq!(cluster.at(2).refresh(&auth, &successor).await.status(), StatusCode::OK);
}

/// SIGKILL of one instance in the middle of a load: every grant that was answered stays usable, and the
/// other instances keep serving.
#[tokio::test]
async fn killing_an_instance_under_load_loses_no_committed_grant() {
    let mut cluster = Cluster::start(3).await;
    let (auth, tokens) = public_client_tokens(cluster.at(0)).await;
    let mut refresh = str_field(&tokens, "refresh_token");
    let mut answered = vec![];
    for round in 0..30 {
        if round == 10 {
            cluster.instances[1].child.kill().unwrap();
        }
        let target = cluster.at(round % 3);
        match target
            .client
            .post(target.url("/oauth/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", auth.client_id()),
            ])
            .send()
            .await
        {
            Ok(response) => {
                let body = json_ok(response).await;
                refresh = str_field(&body, "refresh_token");
                answered.push(str_field(&body, "access_token"));
            }
            Err(_) => assert!(round >= 10 && round % 3 == 1, "only the killed instance may fail (round {round})"),
        }
    }
    assert!(answered.len() >= 20, "{} rounds answered", answered.len());
    for access in &answered {
        assert_mcp_accepts(cluster.at(2), access).await;
    }
    assert_eq!(cluster.at(0).refresh(&auth, &refresh).await.status(), StatusCode::OK, "the grant goes on");
}

/// Postgres LISTEN/NOTIFY: a note changed through A reaches the GET stream of a session on B.
/// (With SQLite the instances are one process by design, so there is nothing to cross.)
#[tokio::test]
async fn a_note_changed_on_a_reaches_a_subscriber_on_b() {
    if std::env::var("TEST_POSTGRES_URL").is_err() {
        eprintln!("cross-instance notifications need Postgres: set TEST_POSTGRES_URL");
        return;
    }
    let cluster = Cluster::start(2).await;
    let (a, b) = (cluster.at(0), cluster.at(1));
    let (_, tokens) = public_client_tokens(a).await;
    let token = str_field(&tokens, "access_token");
    let mut on_a = McpClient::connect(a, &token).await;
    let created = on_a.call_tool("notes_create", json!({"title": "Watched", "body": "x"})).await;
    let (id, uri) = (
        created["structuredContent"]["id"].as_str().unwrap().to_owned(),
        created["structuredContent"]["uri"].as_str().unwrap().to_owned(),
    );
    let mut on_b = McpClient::connect(b, &token).await;
    let mut stream = on_b.open_stream().await;
    on_b.result("resources/subscribe", json!({"uri": uri})).await;
    on_a.call_tool("notes_delete", json!({"id": id})).await;
    let updated =
        crate::support::mcp::next_message(&mut stream, |m| m["method"] == "notifications/resources/updated").await;
    assert_eq!(updated["params"]["uri"], uri.as_str());
}

/// An upstream added with the CLI reaches every instance without a restart (on Postgres by its
/// announcement: the periodic re-read is a minute away), each instance runs its own process, and a legacy
/// session opened on A calls the upstream's tools through B.
#[tokio::test]
async fn an_upstream_added_once_is_served_by_every_instance_with_its_own_process() {
    let kit = crate::support::upstreams::upstreams();
    let cluster = Cluster::start(2).await;
    let (a, b) = (cluster.at(0), cluster.at(1));
    let marker = format!("multi-{}", uuid::Uuid::new_v4().simple());
    cluster.cli(&[
        "upstream",
        "add",
        "every",
        "--command",
        "node",
        "--arg",
        &kit.everything(),
        "--arg",
        "stdio",
        "--arg",
        &marker,
    ]);
    let (_, tokens) = public_client_tokens(a).await;
    let token = str_field(&tokens, "access_token");
    let mut on_a = McpClient::connect(a, &token).await;
    let mut on_b = McpClient::stateless(b, &token);
    on_b.session = on_a.session.clone();
    on_b.version = crate::support::mcp::LEGACY;
    for client in [&mut on_a, &mut on_b] {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !client.result("tools/list", json!({})).await.to_string().contains("every__echo") {
            assert!(std::time::Instant::now() < deadline, "{} never served the new upstream", client.app.base);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let echoed = on_b.call_tool("every__echo", json!({"message": "via b"})).await;
    assert!(echoed["content"][0]["text"].as_str().unwrap().contains("via b"), "{echoed}");
    assert_eq!(crate::support::upstreams::processes_with(&marker), 2, "one process per instance");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = cluster.cli(&["upstream", "list"]);
        if listed.contains("connected on all 2") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "both instances report: {listed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.cli(&["upstream", "disable", "every"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while on_b.result("tools/list", json!({})).await.to_string().contains("every__echo") {
        assert!(std::time::Instant::now() < deadline, "a disabled upstream stays served on b");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
