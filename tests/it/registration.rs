use crate::support::*;
use reqwest::Response;
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

async fn manage(
    app: &TestApp,
    method: reqwest::Method,
    uri: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut request = app.client.request(method, uri);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request reaches the gateway")
}

fn public_metadata(name: &str) -> Value {
    json!({
        "client_name": name,
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
    })
}

/// RFC 7592 §2.1–2.3: the registration access token reads, replaces and deletes exactly its own client.
#[tokio::test]
async fn registration_access_token_manages_its_own_client() {
    let app = spawn_app().await;
    let client = app.register_client(&public_metadata("Managed client")).await;
    let client_id = str_field(&client, "client_id");
    let token = str_field(&client, "registration_access_token");
    let uri = str_field(&client, "registration_client_uri");
    assert_eq!(uri, format!("{}/oauth/register/{client_id}", app.issuer));

    let read = json_ok(manage(&app, reqwest::Method::GET, &uri, Some(&token), None).await).await;
    assert_eq!(read["client_id"], client_id.as_str());
    assert_eq!(read["redirect_uris"], json!([REDIRECT_URI]));
    assert_eq!(read["registration_client_uri"], uri.as_str());
    assert!(read["registration_access_token"].is_null() && read["client_secret"].is_null(), "{read}");

    // Missing, wrong, and another client's token: the same 401, and nothing is revealed.
    let other = app.register_client(&public_metadata("Other client")).await;
    let other_token = str_field(&other, "registration_access_token");
    for presented in [None, Some("not-the-token"), Some(other_token.as_str())] {
        let response = manage(&app, reqwest::Method::GET, &uri, presented, None).await;
        let challenge = header(&response, "www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer") && challenge.contains("invalid_token"), "{challenge}");
        assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    let unknown = format!("{}/oauth/register/{}", app.issuer, uuid::Uuid::new_v4());
    assert_oauth_error(
        manage(&app, reqwest::Method::GET, &unknown, Some(&token), None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;

    // PUT replaces the metadata; the body must name the same client and keep the auth method.
    let new_uri = "http://127.0.0.1:9/new-callback";
    let mut update = public_metadata("Renamed client");
    update["client_id"] = json!(client_id);
    update["redirect_uris"] = json!([new_uri]);
    let updated = json_ok(manage(&app, reqwest::Method::PUT, &uri, Some(&token), Some(&update)).await).await;
    assert_eq!(updated["client_name"], "Renamed client");
    assert_eq!(updated["redirect_uris"], json!([new_uri]));
    let read = json_ok(manage(&app, reqwest::Method::GET, &uri, Some(&token), None).await).await;
    assert_eq!(read["redirect_uris"], json!([new_uri]));

    let mut wrong_id = update.clone();
    wrong_id["client_id"] = json!(str_field(&other, "client_id"));
    assert_oauth_error(
        manage(&app, reqwest::Method::PUT, &uri, Some(&token), Some(&wrong_id)).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    let mut confidential = update.clone();
    confidential["token_endpoint_auth_method"] = json!("client_secret_basic");
    assert_oauth_error(
        manage(&app, reqwest::Method::PUT, &uri, Some(&token), Some(&confidential)).await,
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
    )
    .await;
    let mut bad_redirect = update.clone();
    bad_redirect["redirect_uris"] = json!(["javascript:alert(1)"]);
    assert_oauth_error(
        manage(&app, reqwest::Method::PUT, &uri, Some(&token), Some(&bad_redirect)).await,
        StatusCode::BAD_REQUEST,
        "invalid_redirect_uri",
    )
    .await;
    let read = json_ok(manage(&app, reqwest::Method::GET, &uri, Some(&token), None).await).await;
    assert_eq!(read["redirect_uris"], json!([new_uri]), "a refused update changes nothing");

    // DELETE removes it: the token no longer works and the client cannot authenticate.
    let deleted = manage(&app, reqwest::Method::DELETE, &uri, Some(&token), None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_oauth_error(
        manage(&app, reqwest::Method::GET, &uri, Some(&token), None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let auth = ClientAuth::Public(client_id);
    assert_oauth_error(app.refresh(&auth, "whatever").await, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

/// A confidential client's PUT may carry its secret; a wrong one is refused.
#[tokio::test]
async fn update_checks_a_presented_client_secret() {
    let app = spawn_app().await;
    let client = app.register_client(&json!({"client_name": "Confidential", "redirect_uris": [REDIRECT_URI]})).await;
    let uri = str_field(&client, "registration_client_uri");
    let token = str_field(&client, "registration_access_token");
    let mut update = json!({"client_id": str_field(&client, "client_id"), "client_name": "Renamed", "redirect_uris": [REDIRECT_URI]});
    update["client_secret"] = json!("wrong-secret");
    assert_oauth_error(
        manage(&app, reqwest::Method::PUT, &uri, Some(&token), Some(&update)).await,
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
    )
    .await;
    update["client_secret"] = client["client_secret"].clone();
    let updated = json_ok(manage(&app, reqwest::Method::PUT, &uri, Some(&token), Some(&update)).await).await;
    assert_eq!(updated["client_name"], "Renamed");
    assert!(updated["client_secret"].is_null(), "the secret is never shown again: {updated}");
}

/// Deleting a client revokes what was issued to it: its access token stops working at /mcp at once.
#[tokio::test]
async fn deleting_a_client_revokes_its_tokens() {
    let app = spawn_app().await;
    let client = app.register_client(&public_metadata("Soon deleted")).await;
    let auth = ClientAuth::Public(str_field(&client, "client_id"));
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let tokens = issue_tokens(&app, &mut browser, &auth, ALL_SCOPES).await;
    let access_token = str_field(&tokens, "access_token");
    assert_mcp_accepts(&app, &access_token).await;
    let uri = str_field(&client, "registration_client_uri");
    let token = str_field(&client, "registration_access_token");
    assert_eq!(manage(&app, reqwest::Method::DELETE, &uri, Some(&token), None).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.call_mcp(&access_token).await.status(), StatusCode::UNAUTHORIZED);
    let refresh = str_field(&tokens, "refresh_token");
    assert_oauth_error(app.refresh(&auth, &refresh).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

/// The same public-client metadata registered again from the same address, while the first client is
/// unused, gets the first client back (and no registration access token); other metadata or a
/// confidential client gets a new one.
#[tokio::test]
async fn a_repeated_registration_returns_the_existing_client() {
    let app = spawn_app().await;
    let first = app.register_client(&public_metadata("Retrying client")).await;
    let again = app.register_client(&public_metadata("Retrying client")).await;
    assert_eq!(again["client_id"], first["client_id"]);
    assert!(again["registration_access_token"].is_null(), "no token for the repeat: {again}");
    // Nobody manages a client that others now use: the first registrant's token stops working too.
    let uri = str_field(&first, "registration_client_uri");
    let first_token = str_field(&first, "registration_access_token");
    let response = manage(&app, reqwest::Method::GET, &uri, Some(&first_token), None).await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(again["client_id_issued_at"], first["client_id_issued_at"]);
    let different = app.register_client(&public_metadata("Another client")).await;
    assert_ne!(different["client_id"], first["client_id"]);
    let confidential = json!({"client_name": "Same", "redirect_uris": [REDIRECT_URI]});
    let a = app.register_client(&confidential).await;
    let b = app.register_client(&confidential).await;
    assert_ne!(a["client_id"], b["client_id"], "a confidential registration always gets its own secret");

    // Once the first client is used, a repeat registers a new client.
    let auth = ClientAuth::Public(str_field(&first, "client_id"));
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    issue_tokens(&app, &mut browser, &auth, ALL_SCOPES).await;
    let after_use = app.register_client(&public_metadata("Retrying client")).await;
    assert_ne!(after_use["client_id"], first["client_id"]);
}

/// Registrations are limited per IP address: over the limit, 429 with Retry-After and an RFC 6749
/// error body, and nothing is stored.
#[tokio::test]
async fn registration_is_rate_limited_per_address() {
    let app = spawn_app_with(&[("RATE_LIMITS", "register=3/h")]).await;
    for n in 0..3 {
        app.register_client(&public_metadata(&format!("Client {n}"))).await;
    }
    let response = app.register(&public_metadata("One too many")).await;
    let retry_after: u64 = header(&response, "retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=1200).contains(&retry_after), "{retry_after}");
    assert_oauth_error(response, StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable").await;
    let listed = app.cli(&["client", "list"]);
    assert!(!listed.contains("One too many"), "{listed}");
    assert_eq!(listed.lines().filter(|l| l.contains("Client ")).count(), 3, "{listed}");
}

/// A dynamically registered client that never obtains a token expires after CLIENT_UNUSED_TTL and is
/// purged; one that did obtain a token stays.
#[tokio::test]
async fn unused_dynamic_clients_expire() {
    let app = spawn_app_with(&[("CLIENT_UNUSED_TTL", "3600")]).await;
    let unused = app.register_client(&public_metadata("Never used")).await;
    let used = app.register_client(&public_metadata("Used once")).await;
    let used_auth = ClientAuth::Public(str_field(&used, "client_id"));
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let tokens = issue_tokens(&app, &mut browser, &used_auth, ALL_SCOPES).await;

    // Two hours pass.
    let db = sea_orm::Database::connect(app.db_url.as_str()).await.unwrap();
    use sea_orm::ConnectionTrait;
    db.execute_unprepared("UPDATE clients SET created_at = created_at - 7200, expires_at = expires_at - 7200")
        .await
        .unwrap();
    let purged = app.cli(&["purge"]);
    assert!(purged.contains(", 1 unused clients"), "{purged}");
    let listed = app.cli(&["client", "list"]);
    assert!(!listed.contains(&str_field(&unused, "client_id")), "the unused client is gone: {listed}");
    assert!(listed.contains(&str_field(&used, "client_id")), "the used client stays: {listed}");
    let refreshed = app.refresh(&used_auth, &str_field(&tokens, "refresh_token")).await;
    json_ok(refreshed).await;
}

/// Changing the redirect URIs withdraws the consents given to the client: a remembered consent never
/// sends codes to an address the person did not see.
#[tokio::test]
async fn changing_redirect_uris_asks_for_consent_again() {
    const HTTPS_REDIRECT: &str = "https://app.example/oauth/callback";
    let app = spawn_app().await;
    let mut metadata = public_metadata("Redirect changer");
    metadata["redirect_uris"] = json!([HTTPS_REDIRECT]);
    let client = app.register_client(&metadata).await;
    let client_id = str_field(&client, "client_id");
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let params = app.authorize_params(&client_id, HTTPS_REDIRECT, &pkce_pair());
    let consent = browser.consent_page(&params).await;
    browser.decide(&consent, "allow").await;
    assert_eq!(browser.get(&params.path()).await.status(), StatusCode::FOUND, "consent remembered");

    let mut update = metadata.clone();
    update["client_id"] = json!(client_id);
    update["redirect_uris"] = json!([HTTPS_REDIRECT, "https://elsewhere.example/cb"]);
    let uri = str_field(&client, "registration_client_uri");
    let token = str_field(&client, "registration_access_token");
    json_ok(manage(&app, reqwest::Method::PUT, &uri, Some(&token), Some(&update)).await).await;
    browser.consent_page(&params).await;
}

/// A client an operator disabled can still delete itself.
#[tokio::test]
async fn a_disabled_client_can_delete_itself() {
    let app = spawn_app().await;
    let client = app.register_client(&public_metadata("Disabled")).await;
    let client_id = str_field(&client, "client_id");
    let db = sea_orm::Database::connect(app.db_url.as_str()).await.unwrap();
    use sea_orm::ConnectionTrait;
    db.execute_unprepared(&format!("UPDATE clients SET disabled = true WHERE client_id = '{client_id}'"))
        .await
        .unwrap();
    let uri = str_field(&client, "registration_client_uri");
    let token = str_field(&client, "registration_access_token");
    let read = manage(&app, reqwest::Method::GET, &uri, Some(&token), None).await;
    assert_oauth_error(read, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(manage(&app, reqwest::Method::DELETE, &uri, Some(&token), None).await.status(), StatusCode::NO_CONTENT);
    assert!(!app.cli(&["client", "list"]).contains(&client_id));
}
