//! The application under test: spawned on port 0 with a fresh database, the CLI on the same database, and
//! raw SQL for arranging rows.
#![allow(unused_imports)]
use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_gateway::app::{Application, Overrides};
use mcp_gateway::config::Config;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use sea_orm::ConnectionTrait;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use url::Url;

use super::*;

/// The secrets key of every test server and of the CLI runs beside it (real servers make or take their own).
pub const TEST_SECRETS_KEY: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7";

pub struct TestApp {
    /// Stops the server's runtime when dropped (none for a [`TestApp::remote`] handle).
    _server: Option<tokio::sync::oneshot::Sender<()>>,
    pub base: String,
    pub issuer: String,
    pub resource: String,
    pub client: Client,
    pub db_url: String,
    _db_dir: Option<TempDir>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

impl TestApp {
    /// A handle on a server that runs elsewhere (another process) with this issuer and database.
    pub fn remote(base: &str, issuer: &str, resource: &str, db_url: &str) -> TestApp {
        let client =
            Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().expect("http client");
        TestApp {
            _server: None,
            base: base.to_owned(),
            issuer: issuer.to_owned(),
            resource: resource.to_owned(),
            client,
            db_url: db_url.to_owned(),
            _db_dir: None,
        }
    }
}

impl TestApp {
    /// Runs the `mcp-gateway` binary on this app's database and issuer, as an operator would; panics
    /// unless it succeeds and returns what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        let t0 = std::time::Instant::now();
        let output = self.cli_output(args);
        assert!(
            output.status.success(),
            "mcp-gateway {args:?} after {:?}: {}",
            t0.elapsed(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    /// Runs an operator command, succeeding or not, and returns what it did.
    pub fn cli_output(&self, args: &[&str]) -> std::process::Output {
        let workdir = tempfile::tempdir().expect("working directory");
        std::process::Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &self.db_url)
            .env("AUTH_ISSUER", &self.issuer)
            .env("SECRETS_KEY", TEST_SECRETS_KEY)
            .current_dir(workdir.path())
            .output()
            .expect("run the mcp-gateway binary")
    }
}

/// Runs an operator command until what it prints contains `wanted` (what instances report arrives within
/// a second or so), for `seconds` at most; returns what it printed.
pub async fn until_cli(app: &TestApp, args: &[&str], wanted: &str, seconds: u64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let out = app.cli(args);
        if out.contains(wanted) {
            return out;
        }
        assert!(std::time::Instant::now() < deadline, "never printed {wanted}: {out}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A fresh database: a new Postgres database when `TEST_POSTGRES_URL` is set, else a SQLite file in a
/// temporary directory (kept alive by the returned guard).
/// `GUARD_CACHE_SECS` for instances sharing a database. On Postgres they announce revocations and ended
/// sessions, and a minute of trust makes a test fail unless the announcement arrives; SQLite has no
/// announcements, so there the trusted time itself is the bound.
pub fn shared_database_cache_secs() -> &'static str {
    if std::env::var("TEST_POSTGRES_URL").is_ok() { "60" } else { "1" }
}

/// Repeats `request` until it answers `expected`, for a few seconds at most (what another instance did is
/// seen by the next database read of the guard).
pub async fn eventually_status<F: Future<Output = Response>>(expected: StatusCode, request: impl Fn() -> F) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let status = request().await.status();
        if status == expected {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "still {status}, expected {expected}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub async fn fresh_database_url() -> (String, Option<TempDir>) {
    fresh_database().await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    spawn_app_overridden(extra, Overrides::default()).await
}

/// Like [`spawn_app_with`], with settings the environment cannot give (such as the test-only TLS trust).
pub async fn spawn_app_overridden(extra: &[(&str, &str)], overrides: Overrides) -> TestApp {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.set_nonblocking(true).expect("a non-blocking listener");
    let port = listener.local_addr().expect("local address").port();
    let base = format!("http://127.0.0.1:{port}");
    let (db_url, db_dir) = match extra.iter().find(|(key, _)| *key == "DATABASE_URL") {
        Some((_, url)) => (url.to_string(), None),
        None => fresh_database().await,
    };
    let mut env: HashMap<String, String> = [
        ("PORT", port.to_string()),
        ("BIND", "127.0.0.1".to_string()),
        ("AUTH_ISSUER", base.clone()),
        ("DATABASE_URL", db_url.clone()),
        ("PASSWORD_HASH_COST", "low".to_string()),
        ("RATE_LIMITS", "off".to_string()),
        // Long enough that a test of a revocation passes only if the revocation reaches the guard at once.
        ("GUARD_CACHE_SECS", "60".to_string()),
        ("SECRETS_KEY", TEST_SECRETS_KEY.to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value))
    .collect();
    for (key, value) in extra {
        env.insert(key.to_string(), value.replace("{base}", &base));
    }
    let issuer = env["AUTH_ISSUER"].clone();
    let resource = env.get("MCP_RESOURCE_URI").cloned().unwrap_or_else(|| format!("{issuer}/mcp"));
    let config = Config::from_lookup(move |name| env.get(name).cloned())
        .unwrap_or_else(|error| panic!("test configuration is invalid: {error}"));
    // The server runs on its own thread and runtime, like a real server in its own process: a test that
    // blocks its thread (an operator command it waits for) must not stop the server halfway through a
    // transaction, which would leave the command waiting for the database's write lock until it gives up.
    let (ready, built) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(format!("server-{port}"))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let app = match Application::build_with(config, overrides).await {
                    Ok(app) => app,
                    Err(e) => {
                        let _ = ready.send(Err(format!("{e:#}")));
                        return;
                    }
                };
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let _ = ready.send(Ok(()));
                tokio::select! {
                    _ = app.serve(listener) => {}
                    _ = stopped => {}
                }
            });
        })
        .expect("a server thread");
    built.await.expect("the server thread reports").unwrap_or_else(|e| panic!("application builds: {e}"));
    let client = Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().expect("http client");
    TestApp { _server: Some(stop), base, issuer, resource, client, db_url, _db_dir: db_dir }
}

async fn fresh_database() -> (String, Option<TempDir>) {
    if let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") {
        let name = format!("mcpgw_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(admin_url.as_str()).await.expect("connect to TEST_POSTGRES_URL");
        admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create the test database");
        admin.close().await.expect("close the admin connection");
        let mut url = Url::parse(&admin_url).expect("TEST_POSTGRES_URL is a URL");
        url.set_path(&name);
        return (url.to_string(), None);
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("gateway.sqlite").display());
    (url, Some(dir))
}
