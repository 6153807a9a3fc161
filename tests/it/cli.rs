use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use mcp_gateway::config::Config;
use reqwest::StatusCode;
use tempfile::TempDir;

fn gateway_command(db_url: &str, issuer: &str, workdir: &TempDir) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-gateway"));
    command
        .env_clear()
        .env("DATABASE_URL", db_url)
        .env("AUTH_ISSUER", issuer)
        .env("PASSWORD_HASH_COST", "low")
        .env("SECRETS_KEY", TEST_SECRETS_KEY)
        .current_dir(workdir.path());
    command
}

fn run(app: &TestApp, args: &[&str]) -> Output {
    let workdir = tempfile::tempdir().expect("working directory");
    gateway_command(&app.db_url, &app.issuer, &workdir).args(args).output().expect("run the mcp-gateway binary")
}

fn succeed(app: &TestApp, args: &[&str]) -> String {
    let output = run(app, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "mcp-gateway {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

fn printed_words(stdout: &str) -> Vec<String> {
    stdout
        .split(|c: char| c.is_whitespace() || "\"'`,:;=(){}[]<>|".contains(c))
        .filter(|word| word.len() >= 6)
        .map(str::to_string)
        .collect()
}

async fn printed_client_id(app: &TestApp, stdout: &str) -> String {
    for word in printed_words(stdout) {
        let params = app.authorize_params(&word, REDIRECT_URI, &pkce_pair());
        if app.get(&params.path()).await.status() == StatusCode::OK {
            return word;
        }
    }
    panic!("no client id known to the gateway in: {stdout}");
}

async fn printed_secret(app: &TestApp, client_id: &str, stdout: &str) -> String {
    for word in printed_words(stdout).into_iter().filter(|word| word != client_id) {
        for auth in [
            ClientAuth::Basic(client_id.to_string(), word.clone()),
            ClientAuth::Post(client_id.to_string(), word.clone()),
        ] {
            let response = app.post_as("/oauth/introspect", &auth, &[("token", "probe")]).await;
            if response.status() == StatusCode::OK {
                return word;
            }
        }
    }
    panic!("no working client secret in: {stdout}");
}

fn config_from(pairs: &[(&str, &str)]) -> Result<Config, String> {
    let env: HashMap<String, String> = pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
    Config::from_lookup(move |name| env.get(name).cloned()).map_err(|error| error.to_string())
}

#[tokio::test]
async fn user_added_on_the_command_line_can_log_in() {
    let app = spawn_app().await;
    succeed(&app, &["user", "add", "carol", "--password", PASSWORD]);
    assert!(succeed(&app, &["user", "list"]).contains("carol"));
    let mut browser = Browser::new(&app);
    let response = browser.login("carol", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(browser.cookie(SESSION_COOKIE).is_some());
}

#[tokio::test]
async fn disabled_user_cannot_log_in() {
    let app = spawn_app().await;
    succeed(&app, &["user", "add", "dave", "--password", PASSWORD]);
    let before = Browser::new(&app).login("dave", PASSWORD).await;
    assert_eq!(before.status(), StatusCode::SEE_OTHER);
    succeed(&app, &["user", "disable", "dave"]);
    let mut browser = Browser::new(&app);
    let response = browser.login("dave", PASSWORD).await;
    assert!(response.status().is_client_error(), "{}", response.status());
    assert!(browser.cookie(SESSION_COOKIE).is_none());
}

#[tokio::test]
async fn client_added_on_the_command_line_completes_an_authorization() {
    let app = spawn_app().await;
    let stdout = succeed(&app, &["client", "add", "--name", "Console App", "--redirect-uri", REDIRECT_URI]);
    let client_id = printed_client_id(&app, &stdout).await;
    let listed = succeed(&app, &["client", "list"]);
    assert!(listed.contains(&client_id) && listed.contains("Console App"), "{listed}");
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let pkce = pkce_pair();
    let code = authorize_and_get_code(&app, &mut browser, &client_id, REDIRECT_URI, &pkce).await;
    let tokens = exchange_code(&app, &client_id, &code, REDIRECT_URI, &pkce.verifier).await;
    assert!(tokens["access_token"].is_string());
}

#[tokio::test]
async fn confidential_client_added_on_the_command_line_authenticates_with_the_printed_secret() {
    let app = spawn_app().await;
    let stdout =
        succeed(&app, &["client", "add", "--name", "Backend", "--redirect-uri", REDIRECT_URI, "--confidential"]);
    let client_id = printed_client_id(&app, &stdout).await;
    printed_secret(&app, &client_id, &stdout).await;
    let wrong = ClientAuth::Basic(client_id, "not-the-secret".into());
    let response = app.post_as("/oauth/introspect", &wrong, &[("token", "probe")]).await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn removed_client_can_no_longer_authorize() {
    let app = spawn_app().await;
    let stdout = succeed(&app, &["client", "add", "--name", "Short Lived", "--redirect-uri", REDIRECT_URI]);
    let client_id = printed_client_id(&app, &stdout).await;
    succeed(&app, &["client", "remove", client_id.as_str()]);
    assert!(!succeed(&app, &["client", "list"]).contains(&client_id));
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    assert_html_error(app.get(&params.path()).await, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn keys_list_shows_the_published_signing_key() {
    let app = spawn_app().await;
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let kid = str_field(&jwks["keys"][0], "kid");
    assert!(succeed(&app, &["keys", "list"]).contains(&kid));
}

#[tokio::test]
async fn rotated_keys_are_published_and_older_tokens_stay_valid() {
    let app = spawn_app().await;
    let (_, tokens) = public_client_tokens(&app).await;
    let old_token = str_field(&tokens, "access_token");
    let old_kid = jwt_header(&old_token).kid.expect("kid");
    succeed(&app, &["keys", "rotate"]);
    let listed = succeed(&app, &["keys", "list"]);
    assert!(listed.contains(&old_kid), "the old key is kept: {listed}");
    let second = spawn_app_with(&[("DATABASE_URL", app.db_url.as_str()), ("AUTH_ISSUER", app.issuer.as_str())]).await;
    let jwks = second.get_json("/.well-known/jwks.json").await;
    let kids: Vec<String> = jwks["keys"].as_array().expect("keys").iter().map(|key| str_field(key, "kid")).collect();
    assert!(kids.contains(&old_kid), "{kids:?}");
    let new_kid = kids.iter().find(|kid| **kid != old_kid).expect("a new key after rotation");
    assert!(listed.contains(new_kid.as_str()), "{listed}");
    assert_mcp_accepts(&second, &old_token).await;
}

#[tokio::test]
async fn migrate_prepares_a_fresh_database_and_can_run_again() {
    let workdir = tempfile::tempdir().expect("working directory");
    let db_url = format!("sqlite://{}?mode=rwc", workdir.path().join("fresh.sqlite").display());
    for _ in 0..2 {
        let output = gateway_command(&db_url, "http://127.0.0.1:3000", &workdir)
            .arg("migrate")
            .output()
            .expect("run the mcp-gateway binary");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let app = spawn_app_with(&[("DATABASE_URL", db_url.as_str())]).await;
    app.get_json("/.well-known/oauth-authorization-server").await;
}

#[tokio::test]
async fn invalid_configuration_stops_the_start_with_one_line_naming_the_variable() {
    let workdir = tempfile::tempdir().expect("working directory");
    let db_url = format!("sqlite://{}?mode=rwc", workdir.path().join("gateway.sqlite").display());
    let mut child = gateway_command(&db_url, "http://127.0.0.1:3000", &workdir)
        .env("PORT", "abc")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the mcp-gateway binary");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("poll the child").is_none() {
        if Instant::now() > deadline {
            child.kill().expect("stop the child");
            panic!("the gateway started despite PORT=abc");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("collect the output");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|line| !line.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("PORT"), "{stderr}");
}

#[tokio::test]
async fn configuration_error_names_the_invalid_port() {
    let error =
        config_from(&[("PORT", "abc"), ("AUTH_ISSUER", "http://127.0.0.1:3000")]).expect_err("PORT=abc is refused");
    assert!(error.contains("PORT"), "{error}");
    assert!(!error.contains('\n'), "{error}");
}

#[tokio::test]
async fn configuration_caps_the_authorization_code_lifetime_at_sixty_seconds() {
    let issuer = ("AUTH_ISSUER", "http://127.0.0.1:3000");
    assert!(config_from(&[issuer, ("AUTH_CODE_TTL", "60")]).is_ok());
    let error = config_from(&[issuer, ("AUTH_CODE_TTL", "61")]).expect_err("a code lifetime above 60 s is refused");
    assert!(error.contains("AUTH_CODE_TTL"), "{error}");
}
