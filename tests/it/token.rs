use std::time::Duration;

use crate::support::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{Value, json};
use url::Url;

struct IssuedCode {
    auth: ClientAuth,
    code: String,
    pkce: Pkce,
}

async fn public_code(app: &TestApp) -> IssuedCode {
    let auth = ClientAuth::Public(app.register_public_client(REDIRECT_URI).await);
    code_for(app, auth).await
}

async fn code_for(app: &TestApp, auth: ClientAuth) -> IssuedCode {
    let mut browser = signup_and_login(app, "alice", PASSWORD).await;
    let pkce = pkce_pair();
    let code = authorize_and_get_code(app, &mut browser, auth.client_id(), REDIRECT_URI, &pkce).await;
    IssuedCode { auth, code, pkce }
}

/// The default redemption form of `issued`, with `changes` applied in order: `Some` replaces a field in place (or
/// appends it when absent), `None` removes it.
fn redemption_form<'a>(
    app: &'a TestApp,
    issued: &'a IssuedCode,
    changes: &[(&'a str, Option<&'a str>)],
) -> Vec<(&'a str, &'a str)> {
    let mut form = app.redemption_form(&issued.code, REDIRECT_URI, &issued.pkce.verifier);
    for &(key, value) in changes {
        match (form.iter().position(|(existing, _)| *existing == key), value) {
            (Some(index), Some(value)) => form[index].1 = value,
            (Some(index), None) => {
                form.remove(index);
            }
            (None, Some(value)) => form.push((key, value)),
            (None, None) => panic!("no {key} in the redemption form to remove"),
        }
    }
    form
}

async fn redeem_with(app: &TestApp, issued: &IssuedCode, changes: &[(&str, Option<&str>)]) -> reqwest::Response {
    app.post_as("/oauth/token", &issued.auth, &redemption_form(app, issued, changes)).await
}

async fn redeem(app: &TestApp, issued: &IssuedCode) -> reqwest::Response {
    redeem_with(app, issued, &[]).await
}

async fn refresh_with_scope(app: &TestApp, auth: &ClientAuth, tokens: &Value, scope: &str) -> reqwest::Response {
    let refresh_token = str_field(tokens, "refresh_token");
    app.post_as(
        "/oauth/token",
        auth,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str()), ("scope", scope)],
    )
    .await
}

#[tokio::test]
async fn a_client_goes_from_challenge_to_tool_call_and_back() {
    let app = spawn_app().await;
    signup_and_login(&app, "alice", PASSWORD).await;

    let challenged = app.call_mcp_without_a_token().await;
    assert_eq!(challenged.status(), StatusCode::UNAUTHORIZED);
    let challenge = bearer_challenge(&challenged);
    let prm = fetch_resource_metadata(&app, &challenge).await;
    let resource = str_field(&prm, "resource");
    let issuer = prm["authorization_servers"][0].as_str().expect("an authorization server").to_string();
    let metadata: Value = app
        .client
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("authorization server metadata")
        .json()
        .await
        .expect("metadata JSON");
    assert_eq!(metadata["issuer"], issuer);

    let registered = app
        .client
        .post(str_field(&metadata, "registration_endpoint"))
        .json(&json!({
            "client_name": "End to end",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .send()
        .await
        .expect("registration");
    assert_eq!(registered.status(), StatusCode::CREATED);
    let client_id = str_field(&registered.json::<Value>().await.expect("client"), "client_id");

    let pkce = pkce_pair();
    let authorize_url = Url::parse_with_params(
        &str_field(&metadata, "authorization_endpoint"),
        &[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("scope", ALL_SCOPES),
            ("state", STATE),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("resource", resource.as_str()),
        ],
    )
    .expect("authorization URL");
    let mut browser = Browser::new(&app);
    let login_page = browser.page(authorize_url.as_str()).await;
    assert!(is_login_page(&login_page), "{login_page}");
    let logged_in = browser.submit_login(&login_page, "alice", PASSWORD).await;
    assert_eq!(logged_in.status(), StatusCode::SEE_OTHER);
    let consent = browser.page(&location(&logged_in)).await;
    let approved = browser.decide(&consent, "allow").await;
    let query = redirect_query(&approved);
    assert_eq!(query["iss"], issuer);
    assert_eq!(query["state"], STATE);

    let response = app
        .client
        .post(str_field(&metadata, "token_endpoint"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", query["code"].as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", client_id.as_str()),
            ("code_verifier", pkce.verifier.as_str()),
            ("resource", resource.as_str()),
        ])
        .send()
        .await
        .expect("token request");
    assert!(header(&response, "cache-control").is_some_and(|value| value.contains("no-store")));
    let tokens = json_ok(response).await;
    assert_mcp_accepts(&app, &str_field(&tokens, "access_token")).await;

    let auth = ClientAuth::Public(client_id.clone());
    let first_refresh = str_field(&tokens, "refresh_token");
    let refreshed = json_ok(app.refresh(&auth, &first_refresh).await).await;
    let second_refresh = str_field(&refreshed, "refresh_token");
    assert_ne!(second_refresh, first_refresh);
    assert_mcp_accepts(&app, &str_field(&refreshed, "access_token")).await;

    let third_refresh = str_field(&json_ok(app.refresh(&auth, &second_refresh).await).await, "refresh_token");
    let reused = app.refresh(&auth, &first_refresh).await;
    assert_oauth_error(reused, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let newest = app.refresh(&auth, &third_refresh).await;
    assert_oauth_error(newest, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let pkce = pkce_pair();
    let code = authorize_and_get_code(&app, &mut browser, &client_id, REDIRECT_URI, &pkce).await;
    let tokens = exchange_code(&app, &client_id, &code, REDIRECT_URI, &pkce.verifier).await;
    let refresh_token = str_field(&tokens, "refresh_token");
    let revoked = app
        .post_as("/oauth/revoke", &auth, &[("token", refresh_token.as_str()), ("token_type_hint", "refresh_token")])
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let after_revocation = app.refresh(&auth, &refresh_token).await;
    assert_oauth_error(after_revocation, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn token_response_is_an_uncacheable_bearer_token_with_the_configured_lifetime() {
    let app = spawn_app_with(&[("ACCESS_TOKEN_TTL", "600")]).await;
    let issued = public_code(&app).await;
    let response = redeem(&app, &issued).await;
    let cache_control = header(&response, "cache-control").unwrap_or_default();
    assert!(cache_control.contains("no-store"), "{cache_control}");
    let tokens = json_ok(response).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 600);
    assert!(!str_field(&tokens, "refresh_token").is_empty());
    assert_eq!(scope_set(&str_field(&tokens, "scope")), ["mcp:read", "mcp:write"]);
    let claims = jwt_claims(&str_field(&tokens, "access_token"));
    let lifetime = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert_eq!(lifetime, 600);
}

#[tokio::test]
async fn access_token_is_a_jwt_signed_with_a_published_key() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let access_token = str_field(&tokens, "access_token");
    let jose = jwt_header(&access_token);
    assert_eq!(jose.typ.as_deref(), Some("at+jwt"));
    assert_eq!(jose.alg, Algorithm::ES256);
    let kid = jose.kid.expect("kid in the header");
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let key = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} is not published in {jwks}"));
    let decoding_key = DecodingKey::from_ec_components(&str_field(key, "x"), &str_field(key, "y")).expect("EC key");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[&app.resource]);
    validation.set_issuer(&[&app.issuer]);
    let claims = jsonwebtoken::decode::<Value>(&access_token, &decoding_key, &validation)
        .expect("the signature verifies with the published key")
        .claims;
    assert_eq!(claims["client_id"], auth.client_id());
    assert_eq!(scope_set(&str_field(&claims, "scope")), ["mcp:read", "mcp:write"]);
    assert!(!str_field(&claims, "sub").is_empty());
    assert!(!str_field(&claims, "jti").is_empty());
    let iat = claims["iat"].as_i64().expect("iat");
    assert!((iat - now()).abs() < 300);
    assert_eq!(claims["exp"].as_i64().expect("exp") - iat, 3600);
}

#[tokio::test]
async fn subject_identifies_the_user_across_tokens() {
    let app = spawn_app().await;
    let auth = ClientAuth::Public(app.register_public_client(REDIRECT_URI).await);
    let mut alice = signup_and_login(&app, "alice", PASSWORD).await;
    let mut bob = signup_and_login(&app, "bob", PASSWORD).await;
    let subject = |tokens: &Value| str_field(&jwt_claims(&str_field(tokens, "access_token")), "sub");
    let first = subject(&issue_tokens(&app, &mut alice, &auth, ALL_SCOPES).await);
    let second = subject(&issue_tokens(&app, &mut alice, &auth, ALL_SCOPES).await);
    let other = subject(&issue_tokens(&app, &mut bob, &auth, ALL_SCOPES).await);
    assert_eq!(first, second);
    assert_ne!(first, other);
}

#[tokio::test]
async fn code_cannot_be_redeemed_twice() {
    let app = spawn_app().await;
    let issued = public_code(&app).await;
    json_ok(redeem(&app, &issued).await).await;
    assert_oauth_error(redeem(&app, &issued).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn second_redemption_of_a_code_revokes_what_the_first_issued() {
    let app = spawn_app().await;
    let issued = public_code(&app).await;
    let tokens = json_ok(redeem(&app, &issued).await).await;
    assert_oauth_error(redeem(&app, &issued).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let refresh = app.refresh(&issued.auth, &str_field(&tokens, "refresh_token")).await;
    assert_oauth_error(refresh, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn code_is_bound_to_the_client_it_was_issued_to() {
    let app = spawn_app().await;
    let issued = public_code(&app).await;
    let other = ClientAuth::Public(app.register_public_client(REDIRECT_URI).await);
    let response = app.redeem_code(&other, &issued.code, REDIRECT_URI, &issued.pkce.verifier).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn code_is_bound_to_the_exact_redirect_uri_used_at_authorization() {
    let app = spawn_app().await;
    let client_id = app.register_public_client(REDIRECT_URI).await;
    let auth = ClientAuth::Public(client_id.clone());
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    for redirect_uri in ["http://127.0.0.1:9999/callback", "http://127.0.0.1:7777/other"] {
        let pkce = pkce_pair();
        let code = authorize_and_get_code(&app, &mut browser, &client_id, REDIRECT_URI, &pkce).await;
        let response = app.redeem_code(&auth, &code, redirect_uri, &pkce.verifier).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
}

#[tokio::test]
async fn wrong_code_verifier_is_rejected() {
    let app = spawn_app().await;
    let issued = public_code(&app).await;
    let response = redeem_with(&app, &issued, &[("code_verifier", Some(pkce_pair().verifier.as_str()))]).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn missing_code_verifier_is_rejected() {
    let app = spawn_app().await;
    let issued = public_code(&app).await;
    let response = redeem_with(&app, &issued, &[("code_verifier", None), ("resource", None)]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("error JSON");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(matches!(error, "invalid_request" | "invalid_grant"), "{body}");
}

#[tokio::test]
async fn missing_code_is_an_invalid_request() {
    let app = spawn_app().await;
    let issued = public_code(&app).await;
    let response = redeem_with(&app, &issued, &[("code", None), ("resource", None)]).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn code_cannot_be_redeemed_for_another_resource() {
    let app = spawn_app().await;
    let issued = public_code(&app).await;
    let response = redeem_with(&app, &issued, &[("resource", Some("https://other.example.com/mcp"))]).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_target").await;
}

#[tokio::test]
async fn resource_may_be_omitted_at_the_token_endpoint() {
    let app = spawn_app().await;
    let issued = public_code(&app).await;
    let response = redeem_with(&app, &issued, &[("resource", None)]).await;
    let tokens = json_ok(response).await;
    assert_eq!(jwt_claims(&str_field(&tokens, "access_token"))["aud"], app.resource);
}

#[tokio::test]
async fn expired_code_is_rejected() {
    let app = spawn_app_with(&[("AUTH_CODE_TTL", "1")]).await;
    let issued = public_code(&app).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_oauth_error(redeem(&app, &issued).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn token_endpoint_is_also_served_at_the_root_path() {
    let app = spawn_app().await;
    let issued = public_code(&app).await;
    let response = app.post_as("/token", &issued.auth, &redemption_form(&app, &issued, &[("resource", None)])).await;
    assert!(json_ok(response).await["access_token"].is_string());
}

#[tokio::test]
async fn grants_other_than_code_refresh_and_client_credentials_are_unsupported() {
    let app = spawn_app().await;
    let auth = ClientAuth::Public(app.register_public_client(REDIRECT_URI).await);
    for grant_type in ["password", "implicit", "urn:ietf:params:oauth:grant-type:device_code"] {
        let response = app
            .post_as(
                "/oauth/token",
                &auth,
                &[("grant_type", grant_type), ("username", "alice"), ("password", PASSWORD)],
            )
            .await;
        let cache_control = header(&response, "cache-control").unwrap_or_default();
        assert!(cache_control.contains("no-store"), "{grant_type}: {cache_control}");
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    }
}

#[tokio::test]
async fn clients_without_the_refresh_grant_get_no_refresh_token() {
    let app = spawn_app().await;
    let client = app
        .register_client(&json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let issued = code_for(&app, ClientAuth::Public(str_field(&client, "client_id"))).await;
    let tokens = json_ok(redeem(&app, &issued).await).await;
    assert!(tokens["access_token"].is_string());
    assert!(tokens["refresh_token"].is_null(), "{tokens}");
}

#[tokio::test]
async fn confidential_client_authenticates_with_http_basic() {
    let app = spawn_app().await;
    let (id, secret) = app.register_confidential_client("client_secret_basic").await;
    let issued = code_for(&app, ClientAuth::Basic(id, secret)).await;
    assert!(json_ok(redeem(&app, &issued).await).await["access_token"].is_string());
}

#[tokio::test]
async fn confidential_client_authenticates_with_a_posted_secret() {
    let app = spawn_app().await;
    let (id, secret) = app.register_confidential_client("client_secret_post").await;
    let issued = code_for(&app, ClientAuth::Post(id, secret)).await;
    assert!(json_ok(redeem(&app, &issued).await).await["access_token"].is_string());
}

#[tokio::test]
async fn wrong_client_secret_is_refused_with_a_basic_challenge() {
    let app = spawn_app().await;
    let (id, _) = app.register_confidential_client("client_secret_basic").await;
    let issued = code_for(&app, ClientAuth::Basic(id, "wrong-secret".into())).await;
    let response = redeem(&app, &issued).await;
    let challenge = header(&response, "www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Basic"), "{challenge}");
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn confidential_client_without_its_secret_is_refused() {
    let app = spawn_app().await;
    let (id, _) = app.register_confidential_client("client_secret_post").await;
    let issued = code_for(&app, ClientAuth::Public(id)).await;
    assert_oauth_error(redeem(&app, &issued).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn secret_in_both_header_and_body_is_an_invalid_request() {
    let app = spawn_app().await;
    let (id, secret) = app.register_confidential_client("client_secret_basic").await;
    let issued = code_for(&app, ClientAuth::Basic(id.clone(), secret.clone())).await;
    // `issued.auth` sends the secret in the Basic header; the form repeats it in the body.
    let in_body = [("resource", None), ("client_id", Some(id.as_str())), ("client_secret", Some(secret.as_str()))];
    let response = redeem_with(&app, &issued, &in_body).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn refresh_token_rotates_on_every_use() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let first = str_field(&tokens, "refresh_token");
    let second_tokens = json_ok(app.refresh(&auth, &first).await).await;
    let second = str_field(&second_tokens, "refresh_token");
    let third_tokens = json_ok(app.refresh(&auth, &second).await).await;
    let third = str_field(&third_tokens, "refresh_token");
    assert_ne!(first, second);
    assert_ne!(second, third);
    assert_ne!(first, third);
    assert_mcp_accepts(&app, &str_field(&third_tokens, "access_token")).await;
}

#[tokio::test]
async fn reusing_a_refresh_token_revokes_its_whole_family() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let first = str_field(&tokens, "refresh_token");
    let second = str_field(&json_ok(app.refresh(&auth, &first).await).await, "refresh_token");
    let newest = str_field(&json_ok(app.refresh(&auth, &second).await).await, "refresh_token");
    // `second` is used, so `first` is plain reuse, grace window or not (RFC 9700 §4.14.2).
    assert_oauth_error(app.refresh(&auth, &first).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_oauth_error(app.refresh(&auth, &newest).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

/// A retry of a refresh (a lost response, two requests racing) within the grace window gets the same,
/// still unused successor: never a second one, and the grant survives.
#[tokio::test]
async fn a_refresh_retried_within_the_grace_window_gets_the_same_successor() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let first = str_field(&tokens, "refresh_token");
    let once = json_ok(app.refresh(&auth, &first).await).await;
    let again = json_ok(app.refresh(&auth, &first).await).await;
    assert_eq!(str_field(&once, "refresh_token"), str_field(&again, "refresh_token"));
    assert_mcp_accepts(&app, &str_field(&again, "access_token")).await;
    let next = json_ok(app.refresh(&auth, &str_field(&again, "refresh_token")).await).await;
    assert_ne!(str_field(&next, "refresh_token"), str_field(&once, "refresh_token"));
}

#[tokio::test]
async fn without_a_grace_window_presenting_a_rotated_token_is_reuse() {
    let app = spawn_app_with(&[("REFRESH_GRACE_SECS", "0")]).await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let first = str_field(&tokens, "refresh_token");
    let second = str_field(&json_ok(app.refresh(&auth, &first).await).await, "refresh_token");
    assert_oauth_error(app.refresh(&auth, &first).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_oauth_error(app.refresh(&auth, &second).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

/// One refresh token presented by many callers at once rotates exactly once: every caller that is not
/// refused gets the same successor.
#[tokio::test]
async fn a_refresh_token_presented_concurrently_rotates_exactly_once() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let first = str_field(&tokens, "refresh_token");
    let attempts = (0..20).map(|_| app.refresh(&auth, &first));
    let mut successors = std::collections::HashSet::new();
    for response in futures::future::join_all(attempts).await {
        if response.status() == StatusCode::OK {
            successors.insert(str_field(&response.json::<serde_json::Value>().await.unwrap(), "refresh_token"));
        }
    }
    assert_eq!(successors.len(), 1, "exactly one successor: {successors:?}");
    let successor = successors.into_iter().next().unwrap();
    assert_eq!(app.refresh(&auth, &successor).await.status(), StatusCode::OK, "the grant survived the race");
}

#[tokio::test]
async fn refresh_may_narrow_the_scope() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let response = refresh_with_scope(&app, &auth, &tokens, "mcp:read").await;
    let narrowed = json_ok(response).await;
    assert_eq!(narrowed["scope"], "mcp:read");
    assert_eq!(jwt_claims(&str_field(&narrowed, "access_token"))["scope"], "mcp:read");
}

#[tokio::test]
async fn refresh_cannot_widen_the_scope() {
    let app = spawn_app().await;
    let (auth, tokens) = tokens_with_scope(&app, "mcp:read").await;
    assert_eq!(tokens["scope"], "mcp:read");
    let response = refresh_with_scope(&app, &auth, &tokens, ALL_SCOPES).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_scope").await;
}

#[tokio::test]
async fn refresh_token_is_bound_to_its_client() {
    let app = spawn_app().await;
    let (_, tokens) = public_client_tokens(&app).await;
    let other = ClientAuth::Public(app.register_public_client(REDIRECT_URI).await);
    let response = app.refresh(&other, &str_field(&tokens, "refresh_token")).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn unknown_refresh_token_is_an_invalid_grant() {
    let app = spawn_app().await;
    let auth = ClientAuth::Public(app.register_public_client(REDIRECT_URI).await);
    let response = app.refresh(&auth, "not-a-refresh-token").await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

/// RFC 6749 §5.2: a refused refresh changes nothing, so the client still holds a working refresh token.
#[tokio::test]
async fn a_refused_refresh_leaves_the_refresh_token_usable() {
    let app = spawn_app_with(&[("REFRESH_GRACE_SECS", "0")]).await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let widened = refresh_with_scope(&app, &auth, &tokens, "mcp:read mcp:write mcp:admin").await;
    assert_oauth_error(widened, StatusCode::BAD_REQUEST, "invalid_scope").await;
    let refreshed = app.refresh(&auth, &str_field(&tokens, "refresh_token")).await;
    assert_eq!(refreshed.status(), StatusCode::OK, "the refused request did not use the token up");
}
