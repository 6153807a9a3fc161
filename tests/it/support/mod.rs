pub mod documents;
pub mod html;
pub mod mcp;

pub use html::*;

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

pub const REDIRECT_URI: &str = "http://127.0.0.1:7777/callback";
pub const PASSWORD: &str = "correct-horse-battery";
pub const ALL_SCOPES: &str = "mcp:read mcp:write";
pub const STATE: &str = "state-Zx9";
pub const SESSION_COOKIE: &str = "mcpgw_session";
pub const CSRF_COOKIE: &str = "mcpgw_csrf";
pub const JWT_SECRET: &str = "tests-only-shared-secret-0123456789abcdef";

pub struct TestApp {
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
        let workdir = tempfile::tempdir().expect("working directory");
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &self.db_url)
            .env("AUTH_ISSUER", &self.issuer)
            .current_dir(workdir.path())
            .output()
            .expect("run the mcp-gateway binary");
        assert!(output.status.success(), "mcp-gateway {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("UTF-8 output")
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
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
    let app = Application::build_with(config, overrides).await.expect("application builds");
    tokio::spawn(app.serve(listener));
    let client = Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().expect("http client");
    TestApp { base, issuer, resource, client, db_url, _db_dir: db_dir }
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

#[derive(Clone, Debug)]
pub enum ClientAuth {
    Public(String),
    Basic(String, String),
    Post(String, String),
}

impl ClientAuth {
    pub fn client_id(&self) -> &str {
        match self {
            ClientAuth::Public(id) | ClientAuth::Basic(id, _) | ClientAuth::Post(id, _) => id,
        }
    }

    fn apply(&self, request: RequestBuilder, form: &mut Vec<(String, String)>) -> RequestBuilder {
        match self {
            ClientAuth::Public(id) => {
                form.push(("client_id".into(), id.clone()));
                request
            }
            ClientAuth::Basic(id, secret) => request.basic_auth(id, Some(secret)),
            ClientAuth::Post(id, secret) => {
                form.push(("client_id".into(), id.clone()));
                form.push(("client_secret".into(), secret.clone()));
                request
            }
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("request reaches the gateway")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        let status = response.status();
        let body = response.text().await.expect("response body");
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}): {body}"))
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client.post(self.url(path)).form(form).send().await.expect("request reaches the gateway")
    }

    pub async fn register(&self, metadata: &Value) -> Response {
        self.client.post(self.url("/oauth/register")).json(metadata).send().await.expect("request reaches the gateway")
    }

    pub async fn register_client(&self, metadata: &Value) -> Value {
        let response = self.register(metadata).await;
        let status = response.status();
        let body = response.text().await.expect("registration body");
        assert_eq!(status, StatusCode::CREATED, "registration failed: {body}");
        serde_json::from_str(&body).expect("registration answers JSON")
    }

    /// Runs one SQL statement on the app's database, written with Postgres placeholders (`$1`, `$2`, …),
    /// which become `?` on SQLite: for tests that arrange rows from before a rule, or count what was kept.
    pub async fn sql(&self, sql: &str, values: Vec<sea_orm::Value>) -> Vec<sea_orm::QueryResult> {
        let db = sea_orm::Database::connect(self.db_url.as_str()).await.expect("connect to the test database");
        let backend = db.get_database_backend();
        let sql = match backend {
            sea_orm::DatabaseBackend::Postgres => sql.to_owned(),
            _ => (1..=values.len()).rev().fold(sql.to_owned(), |s, n| s.replace(&format!("${n}"), "?")),
        };
        let rows = db.query_all_raw(sea_orm::Statement::from_sql_and_values(backend, sql, values)).await;
        db.close().await.expect("close the test connection");
        rows.expect("the test's SQL runs")
    }

    /// The single number a `SELECT CAST(COUNT(*) AS BIGINT) …`-shaped query answers.
    pub async fn sql_count(&self, sql: &str, values: Vec<sea_orm::Value>) -> i64 {
        let rows = self.sql(sql, values).await;
        rows.first().and_then(|r| r.try_get_by_index::<i64>(0).ok()).expect("a count")
    }

    /// A public client registered by the operator (`mcp-gateway client add`): the one kind of client whose
    /// authorization errors go back to it by redirect before the person has seen the consent page.
    pub fn operator_client(&self, redirect_uri: &str) -> String {
        let stdout =
            self.cli(&["client", "add", "--name", &unique_name("Operator client"), "--redirect-uri", redirect_uri]);
        stdout
            .lines()
            .find_map(|line| line.strip_prefix("client_id: "))
            .unwrap_or_else(|| panic!("no client_id printed: {stdout}"))
            .trim()
            .to_owned()
    }

    pub async fn register_public_client(&self, redirect_uri: &str) -> String {
        let client = self
            .register_client(&json!({
                "client_name": unique_name("Test public client"),
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            }))
            .await;
        str_field(&client, "client_id")
    }

    pub async fn register_confidential_client(&self, method: &str) -> (String, String) {
        let client = self
            .register_client(&json!({
                "client_name": unique_name("Test confidential client"),
                "redirect_uris": [REDIRECT_URI],
                "token_endpoint_auth_method": method,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            }))
            .await;
        (str_field(&client, "client_id"), str_field(&client, "client_secret"))
    }

    pub async fn post_as(&self, path: &str, auth: &ClientAuth, params: &[(&str, &str)]) -> Response {
        let mut form: Vec<(String, String)> =
            params.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
        let request = auth.apply(self.client.post(self.url(path)), &mut form);
        request.form(&form).send().await.expect("request reaches the gateway")
    }

    pub fn redemption_form<'a>(
        &'a self,
        code: &'a str,
        redirect_uri: &'a str,
        verifier: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
            ("resource", self.resource.as_str()),
        ]
    }

    pub async fn redeem_code(&self, auth: &ClientAuth, code: &str, redirect_uri: &str, verifier: &str) -> Response {
        self.post_as("/oauth/token", auth, &self.redemption_form(code, redirect_uri, verifier)).await
    }

    pub async fn refresh(&self, auth: &ClientAuth, refresh_token: &str) -> Response {
        self.post_as("/oauth/token", auth, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
    }

    pub async fn call_mcp_without_a_token(&self) -> Response {
        self.client
            .post(self.url("/mcp"))
            .json(&initialize_request(1))
            .send()
            .await
            .expect("request reaches the gateway")
    }

    pub async fn call_mcp(&self, access_token: &str) -> Response {
        self.client
            .post(self.url("/mcp"))
            .bearer_auth(access_token)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize_request(7))
            .send()
            .await
            .expect("request reaches the gateway")
    }

    pub fn authorize_params(&self, client_id: &str, redirect_uri: &str, pkce: &Pkce) -> AuthorizeParams {
        AuthorizeParams(
            [
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("scope", ALL_SCOPES),
                ("state", STATE),
                ("code_challenge", pkce.challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("resource", self.resource.as_str()),
            ]
            .into_iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
        )
    }
}

/// The token opens an MCP session; the session is ended again, so probing many tokens of one person stays
/// within the per-person session cap.
pub async fn assert_mcp_accepts(app: &TestApp, access_token: &str) {
    let response = app.call_mcp(access_token).await;
    let session = header(&response, "mcp-session-id");
    let body = mcp::answer(response, 7).await;
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert_eq!(body["id"], 7, "{body}");
    if let Some(session) = session {
        let ended = app
            .client
            .delete(app.url("/mcp"))
            .bearer_auth(access_token)
            .header("mcp-session-id", session)
            .send()
            .await
            .expect("request reaches the gateway");
        assert!(ended.status().is_success(), "ending the probe's session: {}", ended.status());
    }
}

pub fn initialize_request(id: u64) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "gateway-tests", "version": "0.0.0"},
        },
    })
}

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce_pair() -> Pkce {
    let verifier = b64(rand::random::<[u8; 32]>());
    let challenge = b64(Sha256::digest(verifier.as_bytes()));
    Pkce { verifier, challenge }
}

#[derive(Clone, Debug)]
pub struct AuthorizeParams(pub Vec<(String, String)>);

impl AuthorizeParams {
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.0.retain(|(existing, _)| existing != key);
        self.0.push((key.to_string(), value.to_string()));
        self
    }

    pub fn without(mut self, key: &str) -> Self {
        self.0.retain(|(existing, _)| existing != key);
        self
    }

    pub fn repeat(mut self, key: &str, value: &str) -> Self {
        self.0.push((key.to_string(), value.to_string()));
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(existing, _)| existing == key).map(|(_, value)| value.as_str())
    }

    pub fn path(&self) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(self.0.iter()).finish();
        format!("/oauth/authorize?{query}")
    }
}

pub struct Browser {
    base: String,
    client: Client,
    cookies: Vec<(String, String)>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Browser { base: app.base.clone(), client: app.client.clone(), cookies: Vec::new() }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find(|(existing, _)| existing == name).map(|(_, value)| value.clone())
    }

    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(existing, _)| existing != name);
        self.cookies.push((name.to_string(), value.to_string()));
    }

    pub async fn get(&mut self, target: &str) -> Response {
        let request = self.client.get(absolute(&self.base, target));
        self.send(request).await
    }

    pub async fn post_form<T: Serialize + ?Sized>(&mut self, target: &str, form: &T) -> Response {
        let request = self.client.post(absolute(&self.base, target)).form(form);
        self.send(request).await
    }

    async fn send(&mut self, mut request: RequestBuilder) -> Response {
        if !self.cookies.is_empty() {
            let cookies =
                self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ");
            request = request.header(COOKIE, cookies);
        }
        let response = request.send().await.expect("request reaches the gateway");
        self.store_cookies(&response);
        response
    }

    fn store_cookies(&mut self, response: &Response) {
        for raw in response.headers().get_all(SET_COOKIE) {
            let Ok(raw) = raw.to_str() else { continue };
            let Some((name, value)) = cookie_pair(raw) else {
                continue;
            };
            let expired = value.is_empty()
                || cookie_attribute(raw, "max-age").is_some_and(|age| age == "0" || age.starts_with('-'));
            self.cookies.retain(|(existing, _)| *existing != name);
            if !expired {
                self.cookies.push((name, value));
            }
        }
    }

    pub async fn page(&mut self, target: &str) -> String {
        let response = self.get(target).await;
        let status = response.status();
        let html = response.text().await.expect("page body");
        assert_eq!(status, StatusCode::OK, "GET {target}: {html}");
        html
    }

    pub async fn signup(&mut self, username: &str, password: &str) -> Response {
        let html = self.page("/signup").await;
        let csrf = extract_hidden(&html, "csrf_token");
        self.post_form(
            "/signup",
            &[
                ("username", username),
                ("password", password),
                ("password_confirm", password),
                ("csrf_token", csrf.as_str()),
                ("return_to", "/"),
            ],
        )
        .await
    }

    pub async fn login(&mut self, username: &str, password: &str) -> Response {
        let html = self.page("/login").await;
        self.submit_login(&html, username, password).await
    }

    pub async fn submit_login(&mut self, login_page: &str, username: &str, password: &str) -> Response {
        let csrf = extract_hidden(login_page, "csrf_token");
        let return_to = hidden_value(login_page, "return_to").unwrap_or_else(|| "/".to_string());
        self.post_form(
            "/login",
            &[
                ("username", username),
                ("password", password),
                ("csrf_token", csrf.as_str()),
                ("return_to", return_to.as_str()),
            ],
        )
        .await
    }

    pub async fn consent_page(&mut self, params: &AuthorizeParams) -> String {
        let html = self.page(&params.path()).await;
        assert!(is_consent_page(&html), "expected the consent page, got: {html}");
        html
    }

    pub async fn decide(&mut self, consent_page: &str, decision: &str) -> Response {
        let mut form = form_hidden_inputs(consent_page, "/oauth/authorize");
        form.push(("decision".to_string(), decision.to_string()));
        self.post_form("/oauth/authorize", &form).await
    }

    pub async fn authorize(&mut self, params: &AuthorizeParams) -> String {
        let response = self.get(&params.path()).await;
        let response = if response.status() == StatusCode::OK {
            let html = response.text().await.expect("consent page body");
            assert!(is_consent_page(&html), "expected the consent page, got: {html}");
            self.decide(&html, "allow").await
        } else {
            response
        };
        assert_eq!(response.status(), StatusCode::FOUND, "authorization should redirect back");
        let query = redirect_query(&response);
        assert_eq!(query.get("state").map(String::as_str), params.get("state"));
        query.get("code").cloned().unwrap_or_else(|| panic!("no code in redirect: {query:?}"))
    }
}

pub async fn signup_and_login(app: &TestApp, username: &str, password: &str) -> Browser {
    let mut browser = Browser::new(app);
    let response = browser.signup(username, password).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "signup should succeed");
    assert!(browser.cookie(SESSION_COOKIE).is_some(), "signup should start a session");
    browser
}

pub async fn authorize_and_get_code(
    app: &TestApp,
    browser: &mut Browser,
    client_id: &str,
    redirect_uri: &str,
    pkce: &Pkce,
) -> String {
    browser.authorize(&app.authorize_params(client_id, redirect_uri, pkce)).await
}

pub async fn exchange_code(app: &TestApp, client_id: &str, code: &str, redirect_uri: &str, verifier: &str) -> Value {
    let auth = ClientAuth::Public(client_id.to_string());
    let response = app.redeem_code(&auth, code, redirect_uri, verifier).await;
    json_ok(response).await
}

pub async fn issue_tokens(app: &TestApp, browser: &mut Browser, auth: &ClientAuth, scope: &str) -> Value {
    let pkce = pkce_pair();
    let params = app.authorize_params(auth.client_id(), REDIRECT_URI, &pkce).set("scope", scope);
    let code = browser.authorize(&params).await;
    json_ok(app.redeem_code(auth, &code, REDIRECT_URI, &pkce.verifier).await).await
}

pub async fn public_client_tokens(app: &TestApp) -> (ClientAuth, Value) {
    tokens_with_scope(app, ALL_SCOPES).await
}

pub async fn tokens_with_scope(app: &TestApp, scope: &str) -> (ClientAuth, Value) {
    let auth = ClientAuth::Public(app.register_public_client(REDIRECT_URI).await);
    let mut browser = signup_and_login(app, "alice", PASSWORD).await;
    let tokens = issue_tokens(app, &mut browser, &auth, scope).await;
    (auth, tokens)
}

pub async fn json_ok(response: Response) -> Value {
    let status = response.status();
    let body = response.text().await.expect("response body");
    assert_eq!(status, StatusCode::OK, "unexpected answer: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

pub async fn assert_oauth_error(response: Response, status: StatusCode, error: &str) -> Value {
    let seen = response.status();
    let body = response.text().await.expect("response body");
    assert_eq!(seen, status, "expected {status} {error}, got: {body}");
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("error is not JSON ({e}): {body}"));
    assert_eq!(body["error"], error, "body: {body}");
    body
}

pub async fn assert_html_error(response: Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    assert!(header(&response, "location").is_none(), "an error page must not redirect");
    let content_type = header(&response, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "content type: {content_type}");
    response.text().await.expect("error page body")
}

pub fn assert_redirect_error(response: &Response, redirect_uri: &str, issuer: &str, error: &str) {
    assert_eq!(response.status(), StatusCode::FOUND, "expected a redirect carrying {error}");
    let location = location(response);
    assert!(location.starts_with(redirect_uri), "redirected to {location}");
    let query = redirect_query(response);
    assert_eq!(query.get("error").map(String::as_str), Some(error), "{query:?}");
    assert_eq!(query.get("state").map(String::as_str), Some(STATE), "{query:?}");
    assert_eq!(query.get("iss").map(String::as_str), Some(issuer), "{query:?}");
    assert!(!query.contains_key("code"), "{query:?}");
}

pub fn header(response: &Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_string)
}

pub fn location(response: &Response) -> String {
    header(response, "location").expect("Location header")
}

pub fn redirect_query(response: &Response) -> HashMap<String, String> {
    let target = Url::parse(&location(response)).expect("absolute Location");
    target.query_pairs().into_owned().collect()
}

/// Where a redirect sends the browser, as an absolute URL.
pub fn resolved(app: &TestApp, response: &Response) -> String {
    absolute(&app.base, &location(response))
}

pub fn absolute(base: &str, target: &str) -> String {
    Url::parse(base).and_then(|base| base.join(target)).expect("resolvable URL").to_string()
}

/// A client name no other registration in this process uses, so a repeated registration is never
/// answered with an earlier client.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    format!("{prefix} {}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

pub fn str_field(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_else(|| panic!("no string {key} in {value}")).to_string()
}

pub fn scope_set(scope: &str) -> Vec<&str> {
    let mut scopes: Vec<&str> = scope.split_whitespace().collect();
    scopes.sort_unstable();
    scopes
}

pub fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|raw| cookie_pair(raw).is_some_and(|(cookie, _)| cookie == name))
        .map(str::to_string)
}

fn cookie_pair(raw: &str) -> Option<(String, String)> {
    let (name, value) = raw.split(';').next()?.split_once('=')?;
    Some((name.trim().to_string(), value.trim().to_string()))
}

pub fn cookie_attribute(raw: &str, attribute: &str) -> Option<String> {
    raw.split(';').skip(1).find_map(|part| {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        key.trim().eq_ignore_ascii_case(attribute).then(|| value.trim().to_string())
    })
}

pub fn b64(data: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn b64_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap_or_else(|e| panic!("{text} is not base64url ({e})"))
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn jwt_header(token: &str) -> jsonwebtoken::Header {
    jsonwebtoken::decode_header(token).expect("a JWT header")
}

pub fn jwt_claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token).expect("JWT claims").claims
}

pub fn resign_hs256(token: &str, secret: &[u8], edit: impl FnOnce(&mut jsonwebtoken::Header, &mut Value)) -> String {
    let mut jose = jwt_header(token);
    let mut claims = jwt_claims(token);
    jose.alg = jsonwebtoken::Algorithm::HS256;
    edit(&mut jose, &mut claims);
    jsonwebtoken::encode(&jose, &claims, &jsonwebtoken::EncodingKey::from_secret(secret))
        .expect("sign the forged token")
}

pub fn unsigned_token(token: &str) -> String {
    let jose = json!({"alg": "none", "typ": "at+jwt"});
    format!("{}.{}.", b64(jose.to_string()), b64(jwt_claims(token).to_string()))
}

pub async fn fetch_resource_metadata(app: &TestApp, challenge: &HashMap<String, String>) -> Value {
    app.client
        .get(&challenge["resource_metadata"])
        .send()
        .await
        .expect("resource metadata")
        .json()
        .await
        .expect("resource metadata JSON")
}

pub fn bearer_challenge(response: &Response) -> HashMap<String, String> {
    let raw = header(response, "www-authenticate").expect("WWW-Authenticate header");
    let params = raw.strip_prefix("Bearer").unwrap_or_else(|| panic!("not a Bearer challenge: {raw}"));
    let mut found = HashMap::new();
    let mut rest = params.trim_start();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 1..];
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').unwrap_or(quoted.len());
                (&quoted[..end], &quoted[(end + 1).min(quoted.len())..])
            }
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim(), &after[end..])
            }
        };
        found.insert(key, value.to_string());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    found
}
