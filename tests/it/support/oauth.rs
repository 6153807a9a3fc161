//! The OAuth client side of the tests: registrations, client authentication, PKCE, authorization
//! requests, codes and tokens.
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

/// `mcp-gateway client add --grant client_credentials`: the id and the secret it prints.
pub fn machine_client(app: &TestApp, extra: &[&str]) -> ClientAuth {
    let mut args = vec!["client", "add", "--name", "Nightly job", "--grant", "client_credentials"];
    args.extend_from_slice(extra);
    let printed = app.cli(&args);
    let field = |name: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} printed: {printed}"))
            .trim()
            .to_owned()
    };
    ClientAuth::Basic(field("client_id: "), field("client_secret: "))
}

pub async fn machine_token(app: &TestApp, auth: &ClientAuth, params: &[(&str, &str)]) -> reqwest::Response {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(params);
    app.post_as("/oauth/token", auth, &form).await
}
