use crate::support::*;
use reqwest::{Response, StatusCode};
use serde_json::Value;

async fn confidential_tokens(app: &TestApp, browser: &mut Browser) -> (ClientAuth, Value) {
    let (id, secret) = app.register_confidential_client("client_secret_basic").await;
    let auth = ClientAuth::Basic(id, secret);
    let tokens = issue_tokens(app, browser, &auth, ALL_SCOPES).await;
    (auth, tokens)
}

async fn revoke(app: &TestApp, auth: &ClientAuth, token: &str, hint: Option<&str>) -> Response {
    let mut form = vec![("token", token)];
    if let Some(hint) = hint {
        form.push(("token_type_hint", hint));
    }
    app.post_as("/oauth/revoke", auth, &form).await
}

async fn introspect(app: &TestApp, auth: &ClientAuth, token: &str) -> Value {
    json_ok(app.post_as("/oauth/introspect", auth, &[("token", token)]).await).await
}

#[tokio::test]
async fn revoked_refresh_token_can_no_longer_be_used() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let refresh_token = str_field(&tokens, "refresh_token");
    let response = revoke(&app, &auth, &refresh_token, Some("refresh_token")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let refreshed = app.refresh(&auth, &refresh_token).await;
    assert_oauth_error(refreshed, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn revoking_an_older_refresh_token_ends_the_whole_family() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let first = str_field(&tokens, "refresh_token");
    let newest = str_field(&json_ok(app.refresh(&auth, &first).await).await, "refresh_token");
    assert_eq!(revoke(&app, &auth, &first, None).await.status(), StatusCode::OK);
    let refreshed = app.refresh(&auth, &newest).await;
    assert_oauth_error(refreshed, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn revocation_works_without_a_type_hint() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let refresh_token = str_field(&tokens, "refresh_token");
    assert_eq!(revoke(&app, &auth, &refresh_token, None).await.status(), StatusCode::OK);
    let refreshed = app.refresh(&auth, &refresh_token).await;
    assert_oauth_error(refreshed, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn revoking_an_unknown_token_still_succeeds() {
    let app = spawn_app().await;
    let auth = ClientAuth::Public(app.register_public_client(REDIRECT_URI).await);
    let response = revoke(&app, &auth, "never-issued", Some("refresh_token")).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn revoking_another_clients_token_changes_nothing() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let intruder = ClientAuth::Public(app.register_public_client(REDIRECT_URI).await);
    let refresh_token = str_field(&tokens, "refresh_token");
    let response = revoke(&app, &intruder, &refresh_token, Some("refresh_token")).await;
    assert_eq!(response.status(), StatusCode::OK);
    json_ok(app.refresh(&auth, &refresh_token).await).await;
}

#[tokio::test]
async fn confidential_client_revokes_with_its_secret() {
    let app = spawn_app().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let (auth, tokens) = confidential_tokens(&app, &mut browser).await;
    let refresh_token = str_field(&tokens, "refresh_token");
    assert_eq!(revoke(&app, &auth, &refresh_token, None).await.status(), StatusCode::OK);
    let refreshed = app.refresh(&auth, &refresh_token).await;
    assert_oauth_error(refreshed, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn revocation_with_a_wrong_secret_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let (auth, tokens) = confidential_tokens(&app, &mut browser).await;
    let forged = ClientAuth::Basic(auth.client_id().to_string(), "wrong-secret".into());
    let refresh_token = str_field(&tokens, "refresh_token");
    let response = revoke(&app, &forged, &refresh_token, None).await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    json_ok(app.refresh(&auth, &refresh_token).await).await;
}

#[tokio::test]
async fn introspection_describes_a_live_access_token() {
    let app = spawn_app().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let (auth, tokens) = confidential_tokens(&app, &mut browser).await;
    let access_token = str_field(&tokens, "access_token");
    let claims = jwt_claims(&access_token);
    let info = introspect(&app, &auth, &access_token).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(scope_set(&str_field(&info, "scope")), ["mcp:read", "mcp:write"]);
    assert_eq!(info["client_id"], auth.client_id());
    assert_eq!(info["sub"], claims["sub"]);
    assert_eq!(info["iss"], app.issuer);
    let audience = &info["aud"];
    assert!(
        *audience == app.resource || audience.as_array().is_some_and(|list| list.contains(&claims["aud"])),
        "{info}"
    );
    assert_eq!(info["exp"], claims["exp"]);
    assert_eq!(info["iat"], claims["iat"]);
    assert!(info["token_type"].is_string(), "{info}");
}

#[tokio::test]
async fn introspection_reports_a_live_refresh_token_as_active() {
    let app = spawn_app().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let (auth, tokens) = confidential_tokens(&app, &mut browser).await;
    let info = introspect(&app, &auth, &str_field(&tokens, "refresh_token")).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], auth.client_id());
}

#[tokio::test]
async fn introspection_reports_revoked_and_used_refresh_tokens_as_inactive() {
    let app = spawn_app().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let (auth, tokens) = confidential_tokens(&app, &mut browser).await;
    let used = str_field(&tokens, "refresh_token");
    let current = str_field(&json_ok(app.refresh(&auth, &used).await).await, "refresh_token");
    assert_eq!(introspect(&app, &auth, &used).await["active"], false);
    assert_eq!(introspect(&app, &auth, &current).await["active"], true);
    revoke(&app, &auth, &current, Some("refresh_token")).await;
    assert_eq!(introspect(&app, &auth, &current).await["active"], false);
}

#[tokio::test]
async fn introspection_reports_unknown_tokens_as_inactive() {
    let app = spawn_app().await;
    let (id, secret) = app.register_confidential_client("client_secret_basic").await;
    let info = introspect(&app, &ClientAuth::Basic(id, secret), "not-a-token").await;
    assert_eq!(info["active"], false);
    assert!(info.get("sub").is_none(), "{info}");
}

#[tokio::test]
async fn introspection_hides_tokens_of_other_clients() {
    let app = spawn_app().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let (_, tokens) = confidential_tokens(&app, &mut browser).await;
    let (id, secret) = app.register_confidential_client("client_secret_post").await;
    let other = ClientAuth::Post(id, secret);
    for kind in ["access_token", "refresh_token"] {
        let info = introspect(&app, &other, &str_field(&tokens, kind)).await;
        assert_eq!(info["active"], false, "{kind}: {info}");
    }
}

#[tokio::test]
async fn public_clients_cannot_introspect() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let response =
        app.post_as("/oauth/introspect", &auth, &[("token", str_field(&tokens, "access_token").as_str())]).await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn introspection_without_client_authentication_is_refused() {
    let app = spawn_app().await;
    let (_, tokens) = public_client_tokens(&app).await;
    let response = app.post_form("/oauth/introspect", &[("token", str_field(&tokens, "access_token").as_str())]).await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn introspection_with_a_wrong_secret_is_refused() {
    let app = spawn_app().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let (auth, tokens) = confidential_tokens(&app, &mut browser).await;
    let forged = ClientAuth::Basic(auth.client_id().to_string(), "wrong-secret".into());
    let response =
        app.post_as("/oauth/introspect", &forged, &[("token", str_field(&tokens, "access_token").as_str())]).await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn introspection_reports_expired_or_foreign_access_tokens_as_inactive() {
    let app = spawn_app_with(&[("JWT_SECRET", JWT_SECRET)]).await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let (auth, tokens) = confidential_tokens(&app, &mut browser).await;
    let access_token = str_field(&tokens, "access_token");
    let secret = JWT_SECRET.as_bytes();
    let same = resign_hs256(&access_token, secret, |_, _| {});
    assert_eq!(introspect(&app, &auth, &same).await["active"], true);
    let expired = resign_hs256(&access_token, secret, |_, claims| {
        claims["iat"] = (now() - 7200).into();
        claims["exp"] = (now() - 3600).into();
    });
    assert_eq!(introspect(&app, &auth, &expired).await["active"], false);
    let foreign = resign_hs256(&access_token, secret, |_, claims| {
        claims["aud"] = "https://other.example.com/mcp".into();
    });
    assert_eq!(introspect(&app, &auth, &foreign).await["active"], false);
}
