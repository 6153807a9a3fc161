//! Operations: health, readiness, metrics, request ids, structured logs without secrets, graceful shutdown.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;
use reqwest::StatusCode;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get_json("/healthz").await["status"], "ok");
    assert_eq!(app.get_json("/readyz").await["status"], "ready");
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_errors() {
    let app = spawn_app().await;
    public_client_tokens(&app).await;
    app.post_form("/oauth/token", &[("grant_type", "authorization_code"), ("code", "nope"), ("client_id", "nobody")])
        .await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains(r#"mcp_gateway_tokens_issued_total{grant_type="authorization_code"}"#), "{text}");
    assert!(text.contains(r#"mcp_gateway_token_errors_total{error="invalid_client"}"#), "{text}");
    assert!(
        text.contains(r#"mcp_gateway_http_requests_total{method="POST",route="/oauth/token",status="200"}"#),
        "{text}"
    );
    assert!(text.contains("mcp_gateway_http_request_duration_seconds_bucket"), "{text}");
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let app = spawn_app_with(&[("METRICS_TOKEN", "scrape-secret-0123456789")]).await;
    assert_eq!(app.get("/metrics").await.status(), StatusCode::UNAUTHORIZED);
    let scraped = app.client.get(app.url("/metrics")).bearer_auth("scrape-secret-0123456789").send().await.unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let echoed = app.client.get(app.url("/healthz")).header("x-request-id", "lb-7f3a_1").send().await.unwrap();
    assert_eq!(header(&echoed, "x-request-id").as_deref(), Some("lb-7f3a_1"));
    let replaced =
        app.client.get(app.url("/healthz")).header("x-request-id", "bad id\twith junk").send().await.unwrap();
    let fresh = header(&replaced, "x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(&fresh).is_ok(), "{fresh}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn server(db_url: &str, port: u16, workdir: &tempfile::TempDir, extra: &[(&str, &str)]) -> std::process::Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-gateway"));
    command
        .env_clear()
        .env("DATABASE_URL", db_url)
        .env("PORT", port.to_string())
        .env("AUTH_ISSUER", format!("http://127.0.0.1:{port}"))
        .current_dir(workdir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        command.env(k, v);
    }
    command.spawn().unwrap()
}

async fn wait_ready(app: &TestApp) {
    for _ in 0..150 {
        if app.client.get(app.url("/readyz")).send().await.is_ok_and(|r| r.status() == StatusCode::OK) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not ready");
}

/// JSON logs: one object per line, tagged with the request id, and no token, code, secret or password.
#[tokio::test]
async fn json_logs_carry_request_ids_and_never_secrets() {
    let (db_url, _db) = fresh_database_url().await;
    let workdir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = server(&db_url, port, &workdir, &[("LOG_FORMAT", "json"), ("PASSWORD_HASH_COST", "low")]);
    let base = format!("http://127.0.0.1:{port}");
    let app = TestApp::remote(&base, &base, &format!("{base}/mcp"), &db_url);
    wait_ready(&app).await;
    let (id, secret) = app.register_confidential_client("client_secret_post").await;
    let auth = ClientAuth::Post(id, secret.clone());
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let pkce = pkce_pair();
    let code = browser.authorize(&app.authorize_params(auth.client_id(), REDIRECT_URI, &pkce)).await;
    let tokens = json_ok(app.redeem_code(&auth, &code, REDIRECT_URI, &pkce.verifier).await).await;
    app.client.get(app.url("/healthz")).header("x-request-id", "trace-me-42").send().await.unwrap();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let mut logs = String::new();
    child.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
    let json_lines: Vec<&str> = logs.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!json_lines.is_empty(), "{logs}");
    for line in &json_lines {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
    assert!(logs.contains("trace-me-42"), "the request id tags the log line");
    for secret_value in [
        secret.as_str(),
        PASSWORD,
        code.as_str(),
        &str_field(&tokens, "access_token"),
        &str_field(&tokens, "refresh_token"),
    ] {
        assert!(!logs.contains(secret_value), "a secret reached the logs");
    }
}

/// SIGTERM while requests are in flight: the server stops accepting, answers every request it took,
/// and exits cleanly.
#[tokio::test]
async fn sigterm_drains_requests_in_flight() {
    let (db_url, _db) = fresh_database_url().await;
    let workdir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Full-cost argon2 makes each request take a while, so they are still running when SIGTERM lands.
    let mut child = server(&db_url, port, &workdir, &[]);
    let base = format!("http://127.0.0.1:{port}");
    let app = TestApp::remote(&base, &base, &format!("{base}/mcp"), &db_url);
    wait_ready(&app).await;
    let (id, secret) = app.register_confidential_client("client_secret_basic").await;
    let auth = ClientAuth::Basic(id, secret);
    let requests = (0..12).map(|_| app.post_as("/oauth/introspect", &auth, &[("token", "anything")]));
    let in_flight = futures::future::join_all(requests);
    let term = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    };
    let (answers, ()) = tokio::join!(in_flight, term);
    for answer in answers {
        assert_eq!(answer.status(), StatusCode::OK, "every request taken before SIGTERM is answered");
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit: {status:?}");
}

/// A rolling deploy: a newer instance has applied a migration this binary does not know. This instance
/// stays ready and can still start.
#[tokio::test]
async fn a_database_migrated_by_a_newer_instance_stays_ready() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    let db = sea_orm::Database::connect(app.db_url.as_str()).await.unwrap();
    db.execute_unprepared("INSERT INTO seaql_migrations (version, applied_at) VALUES ('m29991231_000001_future', 0)")
        .await
        .unwrap();
    assert_eq!(app.get_json("/readyz").await["status"], "ready");
    let restarted = spawn_app_with(&[("DATABASE_URL", app.db_url.as_str())]).await;
    assert_eq!(restarted.get_json("/readyz").await["status"], "ready");
}
