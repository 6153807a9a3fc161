mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn assert_rejected(app: &TestApp, metadata: Value, error: &str) {
    let response = app.register(&metadata).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{metadata} answered {body}");
    assert_eq!(body["error"], error, "{metadata} answered {body}");
    assert!(body["error_description"].is_string(), "{metadata} answered {body}");
}

async fn assert_redirect_uri_rejected(app: &TestApp, redirect_uri: &str) {
    let metadata = json!({"redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none"});
    assert_rejected(app, metadata, "invalid_redirect_uri").await;
}

#[tokio::test]
async fn public_client_is_registered_without_a_secret() {
    let app = spawn_app().await;
    let response = app
        .register(&json!({
            "client_name": "Desktop Assistant",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": "mcp:read",
        }))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let content_type = header(&response, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let client: Value = response.json().await.expect("registration JSON");
    assert!(!str_field(&client, "client_id").is_empty());
    let issued_at = client["client_id_issued_at"].as_i64().expect("client_id_issued_at");
    assert!((issued_at - now()).abs() < 300, "issued at {issued_at}");
    assert_eq!(client["redirect_uris"], json!([REDIRECT_URI]));
    assert_eq!(client["token_endpoint_auth_method"], "none");
    assert_eq!(client["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(client["response_types"], json!(["code"]));
    assert_eq!(client["client_name"], "Desktop Assistant");
    assert_eq!(client["scope"], "mcp:read");
    assert!(client["client_secret"].is_null(), "public clients get no secret: {client}");
}

#[tokio::test]
async fn registration_defaults_to_a_confidential_client_using_basic_auth() {
    let app = spawn_app().await;
    let client = app.register_client(&json!({"redirect_uris": [REDIRECT_URI]})).await;
    assert_eq!(client["token_endpoint_auth_method"], "client_secret_basic");
    assert!(!str_field(&client, "client_secret").is_empty());
    assert_eq!(client["client_secret_expires_at"], 0);
    assert_eq!(client["grant_types"], json!(["authorization_code"]));
    assert_eq!(client["response_types"], json!(["code"]));
    assert_eq!(scope_set(&str_field(&client, "scope")), ["mcp:read", "mcp:write"]);
}

#[tokio::test]
async fn client_secret_post_clients_receive_a_secret() {
    let app = spawn_app().await;
    let client = app
        .register_client(&json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "client_secret_post",
        }))
        .await;
    assert_eq!(client["token_endpoint_auth_method"], "client_secret_post");
    assert!(!str_field(&client, "client_secret").is_empty());
    assert_eq!(client["client_secret_expires_at"], 0);
}

#[tokio::test]
async fn every_registration_gets_its_own_client_id_and_secret() {
    let app = spawn_app().await;
    let (first_id, first_secret) = app.register_confidential_client("client_secret_basic").await;
    let (second_id, second_secret) = app.register_confidential_client("client_secret_basic").await;
    assert_ne!(first_id, second_id);
    assert_ne!(first_secret, second_secret);
}

#[tokio::test]
async fn registration_is_also_served_at_the_root_register_path() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/register"))
        .json(&json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .expect("request reaches the gateway");
    assert_eq!(response.status(), StatusCode::CREATED);
    let client: Value = response.json().await.expect("registration JSON");
    assert!(!str_field(&client, "client_id").is_empty());
}

#[tokio::test]
async fn https_loopback_and_private_use_redirect_uris_are_accepted() {
    let app = spawn_app().await;
    for redirect_uri in [
        "https://app.example.com/callback",
        "https://app.example.com:8443/oauth/cb?tenant=1",
        "http://127.0.0.1:5000/callback",
        "http://127.0.0.1/callback",
        "http://[::1]:5000/callback",
        "http://localhost:5000/callback",
        "com.example.app:/oauth2redirect",
    ] {
        let response =
            app.register(&json!({"redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none"})).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::CREATED, "{redirect_uri} answered {body}");
        assert_eq!(body["redirect_uris"], json!([redirect_uri]));
    }
}

#[tokio::test]
async fn missing_or_empty_redirect_uris_are_rejected() {
    let app = spawn_app().await;
    assert_rejected(&app, json!({"token_endpoint_auth_method": "none"}), "invalid_redirect_uri").await;
    assert_rejected(&app, json!({"redirect_uris": [], "token_endpoint_auth_method": "none"}), "invalid_redirect_uri")
        .await;
}

#[tokio::test]
async fn redirect_uri_with_a_fragment_is_rejected() {
    let app = spawn_app().await;
    assert_redirect_uri_rejected(&app, "https://app.example.com/callback#frag").await;
}

#[tokio::test]
async fn redirect_uri_with_userinfo_is_rejected() {
    let app = spawn_app().await;
    assert_redirect_uri_rejected(&app, "https://user:pass@app.example.com/callback").await;
    assert_redirect_uri_rejected(&app, "http://user@127.0.0.1:5000/callback").await;
}

#[tokio::test]
async fn script_and_data_uris_are_rejected_in_any_case() {
    let app = spawn_app().await;
    for redirect_uri in [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "JAVASCRIPT://app.example.com/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "Data:text/html;base64,PGI+aGk8L2I+",
    ] {
        assert_redirect_uri_rejected(&app, redirect_uri).await;
    }
}

#[tokio::test]
async fn plain_http_is_rejected_for_hosts_other_than_loopback() {
    let app = spawn_app().await;
    for redirect_uri in [
        "http://app.example.com/callback",
        "http://192.168.1.20:8080/callback",
        "http://localhost.evil.example/callback",
        "http://127.0.0.1.evil.example/callback",
    ] {
        assert_redirect_uri_rejected(&app, redirect_uri).await;
    }
}

#[tokio::test]
async fn relative_redirect_uris_are_rejected() {
    let app = spawn_app().await;
    for redirect_uri in ["/callback", "callback", "//app.example.com/callback"] {
        assert_redirect_uri_rejected(&app, redirect_uri).await;
    }
}

#[tokio::test]
async fn one_bad_redirect_uri_rejects_the_whole_registration() {
    let app = spawn_app().await;
    let metadata = json!({
        "redirect_uris": ["https://app.example.com/callback", "http://app.example.com/callback"],
        "token_endpoint_auth_method": "none",
    });
    assert_rejected(&app, metadata, "invalid_redirect_uri").await;
}

#[tokio::test]
async fn unsupported_token_endpoint_auth_method_is_rejected() {
    let app = spawn_app().await;
    for method in ["client_secret_magic", "private_key_jwt"] {
        let metadata = json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": method});
        assert_rejected(&app, metadata, "invalid_client_metadata").await;
    }
}

#[tokio::test]
async fn implicit_and_password_grants_cannot_be_registered() {
    let app = spawn_app().await;
    for grant in ["implicit", "password"] {
        let metadata = json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", grant],
        });
        assert_rejected(&app, metadata, "invalid_client_metadata").await;
    }
}

#[tokio::test]
async fn unknown_scope_is_rejected_at_registration() {
    let app = spawn_app().await;
    let metadata = json!({
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        "scope": "mcp:read admin:everything",
    });
    assert_rejected(&app, metadata, "invalid_client_metadata").await;
}

#[tokio::test]
async fn malformed_json_is_rejected_as_invalid_client_metadata() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/oauth/register"))
        .header("content-type", "application/json")
        .body("{\"redirect_uris\": [\"https://app.example.com/cb\"")
        .send()
        .await
        .expect("request reaches the gateway");
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
}
