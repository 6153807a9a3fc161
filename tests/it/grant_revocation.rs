//! Revoking a grant reaches every token issued under it, access tokens included: the bearer guard and
//! introspection consult the grant, not just the JWT signature.

use crate::support::*;
use reqwest::StatusCode;

async fn assert_revoked_at_the_guard(app: &TestApp, access_token: &str) {
    let response = app.call_mcp(access_token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(&response, "www-authenticate").expect("a challenge");
    assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");
}

/// RFC 7009 §2.1: revoking a refresh token should also invalidate the access tokens of the same grant.
#[tokio::test]
async fn revoking_the_refresh_token_stops_its_access_token() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let access_token = str_field(&tokens, "access_token");
    assert_mcp_accepts(&app, &access_token).await;
    let response = app.post_as("/oauth/revoke", &auth, &[("token", &str_field(&tokens, "refresh_token"))]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_revoked_at_the_guard(&app, &access_token).await;
}

#[tokio::test]
async fn revoking_an_access_token_ends_its_whole_grant() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let access_token = str_field(&tokens, "access_token");
    assert_mcp_accepts(&app, &access_token).await;
    let response =
        app.post_as("/oauth/revoke", &auth, &[("token", &access_token), ("token_type_hint", "access_token")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_revoked_at_the_guard(&app, &access_token).await;
    let refreshed = app.refresh(&auth, &str_field(&tokens, "refresh_token")).await;
    assert_oauth_error(refreshed, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

/// RFC 6749 §4.1.2 / RFC 9700 §4.2.4: a replayed code revokes what its first redemption issued, including
/// the access token an attacker may already hold.
#[tokio::test]
async fn replaying_a_code_stops_the_access_token_of_the_first_redemption() {
    let app = spawn_app().await;
    let auth = ClientAuth::Public(app.register_public_client(REDIRECT_URI).await);
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let pkce = pkce_pair();
    let code = browser.authorize(&app.authorize_params(auth.client_id(), REDIRECT_URI, &pkce)).await;
    let first = json_ok(app.redeem_code(&auth, &code, REDIRECT_URI, &pkce.verifier).await).await;
    let access_token = str_field(&first, "access_token");
    assert_mcp_accepts(&app, &access_token).await;
    let replay = app.redeem_code(&auth, &code, REDIRECT_URI, &pkce.verifier).await;
    assert_oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_revoked_at_the_guard(&app, &access_token).await;
}

#[tokio::test]
async fn replay_revokes_access_tokens_even_for_clients_without_refresh_tokens() {
    let app = spawn_app().await;
    let client = app
        .register_client(&serde_json::json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let auth = ClientAuth::Public(str_field(&client, "client_id"));
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let pkce = pkce_pair();
    let code = browser.authorize(&app.authorize_params(auth.client_id(), REDIRECT_URI, &pkce)).await;
    let first = json_ok(app.redeem_code(&auth, &code, REDIRECT_URI, &pkce.verifier).await).await;
    assert!(first.get("refresh_token").is_none(), "no refresh_token grant registered: {first}");
    let access_token = str_field(&first, "access_token");
    assert_mcp_accepts(&app, &access_token).await;
    app.redeem_code(&auth, &code, REDIRECT_URI, &pkce.verifier).await;
    assert_revoked_at_the_guard(&app, &access_token).await;
}

#[tokio::test]
async fn reusing_a_refresh_token_stops_the_access_tokens_of_the_family() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let first_refresh = str_field(&tokens, "refresh_token");
    let rotated = json_ok(app.refresh(&auth, &first_refresh).await).await;
    let latest = json_ok(app.refresh(&auth, &str_field(&rotated, "refresh_token")).await).await;
    let newest_access = str_field(&latest, "access_token");
    assert_mcp_accepts(&app, &newest_access).await;
    app.refresh(&auth, &first_refresh).await;
    assert_revoked_at_the_guard(&app, &newest_access).await;
}

/// The CLI is another process: the server hears of its revocation from the database once the grant it
/// trusts is due for a check (`GUARD_CACHE_SECS`), not at once as with a revocation it makes itself.
#[tokio::test]
async fn a_disabled_user_cannot_use_tokens_or_get_new_ones() {
    let app = spawn_app_with(&[("GUARD_CACHE_SECS", "1")]).await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let access_token = str_field(&tokens, "access_token");
    assert_mcp_accepts(&app, &access_token).await;
    app.cli(&["user", "disable", "alice"]);
    let refreshed = app.refresh(&auth, &str_field(&tokens, "refresh_token")).await;
    assert_oauth_error(refreshed, StatusCode::BAD_REQUEST, "invalid_grant").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_revoked_at_the_guard(&app, &access_token).await;
}

#[tokio::test]
async fn introspection_reports_access_tokens_of_a_revoked_grant_as_inactive() {
    let app = spawn_app().await;
    let (id, secret) = app.register_confidential_client("client_secret_basic").await;
    let auth = ClientAuth::Basic(id, secret);
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let tokens = issue_tokens(&app, &mut browser, &auth, ALL_SCOPES).await;
    let access_token = str_field(&tokens, "access_token");
    let before = json_ok(app.post_as("/oauth/introspect", &auth, &[("token", &access_token)]).await).await;
    assert_eq!(before["active"], true, "{before}");
    app.post_as("/oauth/revoke", &auth, &[("token", &str_field(&tokens, "refresh_token"))]).await;
    let after = json_ok(app.post_as("/oauth/introspect", &auth, &[("token", &access_token)]).await).await;
    assert_eq!(after, serde_json::json!({"active": false}));
}
