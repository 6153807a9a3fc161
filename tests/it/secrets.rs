//! Secrets at rest: signing keys and upstream credentials are sealed with the secrets key, so the database
//! alone (a stolen file or backup) reveals none of them; a start with another key stops with one clear line;
//! a key file is made on first start when none is given; `secrets rotate-key` re-seals everything.
use std::process::{Command, Stdio};
use std::time::Duration;

use mcp_gateway::app::{Application, Overrides};
use mcp_gateway::config::Config;
use mcp_gateway::crypto::SecretsKey;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement};

use crate::support::*;

/// Everything SQLite keeps of a database: the file, its write-ahead log and shared memory.
fn raw_database(db_url: &str) -> Vec<u8> {
    let path = db_url.trim_start_matches("sqlite://").split('?').next().unwrap().to_owned();
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(b) = std::fs::read(format!("{path}{suffix}")) {
            bytes.extend(b);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Builds the application on `db_url` with `SECRETS_KEY` = `key`: the start's error, if it fails.
async fn start_with_key(db_url: &str, key: &str) -> Result<(), String> {
    let env = [("DATABASE_URL", db_url), ("SECRETS_KEY", key), ("PASSWORD_HASH_COST", "low")];
    let config = Config::from_lookup(|name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
        .expect("valid configuration");
    Application::build_with(config, Overrides::default()).await.map(|_| ()).map_err(|e| format!("{e:#}"))
}

#[tokio::test]
async fn the_database_holds_no_signing_key_or_upstream_credential_in_the_clear() {
    if std::env::var("TEST_POSTGRES_URL").is_ok() {
        return; // the raw file is SQLite's; the sealing itself is the same code on Postgres
    }
    let app = spawn_app().await;
    app.cli(&[
        "upstream",
        "add",
        "search",
        "--url",
        "http://127.0.0.1:9/mcp",
        "--header",
        "X-API-Key: sekrit-header-31",
    ]);
    app.cli(&["upstream", "add", "tool", "--command", "true", "--env", "API_TOKEN=sekrit-env-59"]);
    app.cli(&["keys", "rotate"]);
    let (_, tokens) = public_client_tokens(&app).await;
    assert_mcp_accepts(&app, tokens["access_token"].as_str().unwrap()).await;
    let raw = raw_database(&app.db_url);
    assert!(contains(&raw, "enc1:"), "sealed values are there");
    for clear in ["sekrit-header-31", "sekrit-env-59", "PRIVATE KEY", "X-API-Key", "API_TOKEN"] {
        assert!(!contains(&raw, clear), "{clear} is in the database file in the clear");
    }
    // What was sealed still works: the upstreams read back whole.
    let listed = app.cli(&["upstream", "list"]);
    assert!(listed.contains("search") && listed.contains("tool"), "{listed}");
}

#[tokio::test]
async fn a_start_with_another_key_stops_with_one_clear_line_and_plaintext_from_before_is_sealed() {
    let app = spawn_app().await;
    app.cli(&["upstream", "add", "search", "--url", "http://127.0.0.1:9/mcp", "--header", "X-API-Key: k-77"]);
    let other = SecretsKey::generate_hex();
    let refused = start_with_key(&app.db_url, &other).await.expect_err("another key must not start");
    let ours = SecretsKey::from_hex(TEST_SECRETS_KEY).unwrap();
    assert!(
        refused.contains(&format!("sealed with secrets key {}", ours.id())) && refused.contains("every instance"),
        "{refused}"
    );
    assert!(!refused.contains(TEST_SECRETS_KEY) && !refused.contains(&other), "a key is never printed: {refused}");

    // A database from before sealing: the private key and the headers in plaintext.
    let db = sea_orm::Database::connect(app.db_url.as_str()).await.unwrap();
    let backend = db.get_database_backend();
    let rows =
        db.query_all_raw(Statement::from_string(backend, "SELECT kid, private_pem FROM signing_keys")).await.unwrap();
    for row in rows {
        let (kid, sealed): (String, String) =
            (row.try_get("", "kid").unwrap(), row.try_get("", "private_pem").unwrap());
        let plain = ours.open(&format!("signing_key:{kid}"), &sealed).unwrap();
        assert!(plain.contains("PRIVATE KEY"));
        let sql = format!("UPDATE signing_keys SET private_pem = '{plain}' WHERE kid = '{kid}'");
        db.execute_unprepared(&sql).await.unwrap();
    }
    db.execute_unprepared(r#"UPDATE upstreams SET headers = '{"X-API-Key":"k-77"}' WHERE name = 'search'"#)
        .await
        .unwrap();
    start_with_key(&app.db_url, TEST_SECRETS_KEY).await.expect("a start with the key seals what was plaintext");
    let pems = db.query_all_raw(Statement::from_string(backend, "SELECT private_pem FROM signing_keys")).await.unwrap();
    assert!(pems.iter().all(|r| r.try_get::<String>("", "private_pem").unwrap().starts_with("enc1:")));
    let headers = db.query_one_raw(Statement::from_string(backend, "SELECT headers FROM upstreams")).await.unwrap();
    let headers: String = headers.unwrap().try_get("", "headers").unwrap();
    assert!(headers.starts_with("enc1:") && !headers.contains("k-77"), "{headers}");
    let (_, tokens) = public_client_tokens(&app).await;
    assert_mcp_accepts(&app, tokens["access_token"].as_str().unwrap()).await;
}

fn binary(db_url: &str, workdir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-gateway"));
    command
        .env_clear()
        .env("DATABASE_URL", db_url)
        .env("PASSWORD_HASH_COST", "low")
        .env("RUST_LOG", "warn")
        .current_dir(workdir);
    command
}

async fn serves(db_url: &str, workdir: &std::path::Path, env: &[(&str, &str)]) -> Result<(), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = binary(db_url, workdir)
        .env("PORT", port.to_string())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            let output = child.wait_with_output().unwrap();
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let ready = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    panic!("the server neither started nor stopped");
}

#[tokio::test]
async fn a_key_file_is_made_on_first_start_and_rotate_key_reseals_everything() {
    let (db_url, _db) = fresh_database_url().await;
    let workdir = tempfile::tempdir().unwrap();
    serves(&db_url, workdir.path(), &[]).await.expect("the first start needs no set-up");
    let key_file = workdir.path().join("mcp-gateway.key");
    let first = std::fs::read_to_string(&key_file).expect("the key file was made");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let added = binary(&db_url, workdir.path())
        .args(["upstream", "add", "search", "--url", "http://127.0.0.1:9/mcp", "--header", "X-API-Key: k-1"])
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));

    let rotated = binary(&db_url, workdir.path()).args(["secrets", "rotate-key"]).output().unwrap();
    let said = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        rotated.status.success() && said.contains("re-sealed 1 signing keys, 1 upstreams and 0 upstream accounts"),
        "{said}"
    );
    let second = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(first, second, "the file holds the new key");
    assert_eq!(std::fs::read_to_string(workdir.path().join("mcp-gateway.key.old")).unwrap(), first);
    serves(&db_url, workdir.path(), &[]).await.expect("the new key opens everything");
    let listed = binary(&db_url, workdir.path()).args(["upstream", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("search"), "the upstream still reads back");
    let refused = serves(&db_url, workdir.path(), &[("SECRETS_KEY", first.trim())]).await.expect_err("the old key");
    assert!(refused.contains("sealed with secrets key"), "{refused}");
    let generated = binary(&db_url, workdir.path()).args(["secrets", "generate-key"]).output().unwrap();
    let generated = String::from_utf8(generated.stdout).unwrap();
    assert!(generated.trim().len() == 64 && SecretsKey::from_hex(generated.trim()).is_ok());
}

#[tokio::test]
async fn operator_commands_never_seal_with_a_key_made_in_the_wrong_place() {
    let app = spawn_app().await;
    app.cli(&["upstream", "add", "search", "--url", "http://127.0.0.1:9/mcp?api_key=k-secret-5", "--header", "X-K: v"]);
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let output = binary(&app.db_url, elsewhere.path()).envs(env.iter().copied()).args(args).output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr),
        )
    };
    // No key here, and the database keeps sealed secrets: refused, and no key file made.
    let (ok, said) = run(&[], &["upstream", "list"]);
    assert!(!ok && said.contains("no secrets key"), "{said}");
    assert!(!elsewhere.path().join("mcp-gateway.key").exists());
    // Another key: refused before anything is written with it.
    let other = SecretsKey::generate_hex();
    let (ok, said) = run(&[("SECRETS_KEY", &other)], &["upstream", "add", "x", "--command", "true", "--env", "A=b"]);
    assert!(!ok && said.contains("sealed with secrets key"), "{said}");
    assert!(!said.contains(&other), "the key is never printed");
    let (ok, said) = run(&[("SECRETS_KEY", &other)], &["keys", "rotate"]);
    assert!(!ok && said.contains("sealed with secrets key"), "{said}");
    // A malformed key is refused without being echoed.
    let (ok, said) = run(&[("SECRETS_KEY", "not-a-key-but-a-secret-value")], &["upstream", "list"]);
    assert!(!ok && said.contains("64 hex") && !said.contains("not-a-key-but-a-secret-value"), "{said}");
    // With the key: the list shows the URL without its query (services put keys there).
    let (ok, said) = run(&[("SECRETS_KEY", TEST_SECRETS_KEY)], &["upstream", "list"]);
    assert!(ok && said.contains("http://127.0.0.1:9/mcp?…") && !said.contains("k-secret-5"), "{said}");
    // With SECRETS_KEY, rotation wants the new key in a file made beforehand, and never prints it.
    let (ok, said) = run(&[("SECRETS_KEY", TEST_SECRETS_KEY)], &["secrets", "rotate-key"]);
    assert!(!ok && said.contains("--new-key-file"), "{said}");
    let new = SecretsKey::generate_hex();
    let new_file = elsewhere.path().join("next.key");
    std::fs::write(&new_file, &new).unwrap();
    let (ok, said) = run(
        &[("SECRETS_KEY", TEST_SECRETS_KEY)],
        &["secrets", "rotate-key", "--new-key-file", new_file.to_str().unwrap()],
    );
    assert!(ok && said.contains("re-sealed") && !said.contains(&new), "{said}");
    start_with_key(&app.db_url, &new).await.expect("the new key opens everything");
    assert!(start_with_key(&app.db_url, TEST_SECRETS_KEY).await.is_err(), "the old key no longer does");
}
