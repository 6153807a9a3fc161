//! The bearer guard in front of `/mcp` under attack (README security model on tokens; RFC 6750 §3.1;
//! RFC 9068 §4; RFC 8725 §2.1 and §3.1 on `alg: none` and algorithm confusion; RFC 9700 §4.3 on tokens in
//! URLs). Also the challenge that sends a client without a token to the resource metadata (RFC 9728 §5.1).

use crate::support::*;
use reqwest::{Method, StatusCode};

fn metadata_url(app: &TestApp) -> String {
    format!("{}/.well-known/oauth-protected-resource/mcp", app.base)
}

async fn assert_invalid_token(app: &TestApp, token: &str) {
    let response = app.call_mcp(token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "token {token} was accepted");
    let challenge = bearer_challenge(&response);
    assert_eq!(challenge.get("error").map(String::as_str), Some("invalid_token"), "{challenge:?}");
    assert_eq!(challenge.get("resource_metadata"), Some(&metadata_url(app)), "{challenge:?}");
    assert_eq!(challenge.get("scope").map(String::as_str), Some(ALL_SCOPES), "{challenge:?}");
}

async fn shared_secret_app_and_token() -> (TestApp, String) {
    let app = spawn_app_with(&[("JWT_SECRET", JWT_SECRET)]).await;
    let (_, tokens) = public_client_tokens(&app).await;
    let access_token = str_field(&tokens, "access_token");
    (app, access_token)
}

#[tokio::test]
async fn request_without_a_token_is_challenged_towards_the_resource_metadata() {
    let app = spawn_app().await;
    for method in [Method::POST, Method::GET, Method::DELETE] {
        let mut request =
            app.client.request(method.clone(), app.url("/mcp")).header("accept", "application/json, text/event-stream");
        if method == Method::POST {
            request = request.json(&initialize_request(1));
        }
        let response = request.send().await.expect("request reaches the gateway");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method}");
        let challenge = bearer_challenge(&response);
        assert_eq!(challenge.get("resource_metadata"), Some(&metadata_url(&app)), "{method}");
        assert_eq!(challenge.get("scope").map(String::as_str), Some(ALL_SCOPES), "{method}");
        assert!(!challenge.contains_key("error"), "{method}: {challenge:?}");
    }
}

#[tokio::test]
async fn challenge_leads_to_metadata_describing_this_resource() {
    let app = spawn_app().await;
    let response = app.call_mcp_without_a_token().await;
    let challenge = bearer_challenge(&response);
    let prm = fetch_resource_metadata(&app, &challenge).await;
    assert_eq!(prm["resource"], app.resource);
}

#[tokio::test]
async fn valid_access_token_reaches_the_mcp_server() {
    let app = spawn_app().await;
    let (_, tokens) = public_client_tokens(&app).await;
    assert_mcp_accepts(&app, &str_field(&tokens, "access_token")).await;
}

#[tokio::test]
async fn malformed_token_is_rejected_as_invalid() {
    let app = spawn_app().await;
    for token in ["not-a-jwt", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30."] {
        assert_invalid_token(&app, token).await;
    }
}

#[tokio::test]
async fn authorization_scheme_other_than_bearer_is_challenged() {
    let app = spawn_app().await;
    let (_, tokens) = public_client_tokens(&app).await;
    let response = app
        .client
        .post(app.url("/mcp"))
        .header("authorization", format!("Token {}", str_field(&tokens, "access_token")))
        .json(&initialize_request(1))
        .send()
        .await
        .expect("request reaches the gateway");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bearer_challenge(&response).get("resource_metadata"), Some(&metadata_url(&app)));
}

#[tokio::test]
async fn token_in_the_query_string_is_not_accepted() {
    let app = spawn_app().await;
    let (_, tokens) = public_client_tokens(&app).await;
    let response = app
        .client
        .post(app.url("/mcp"))
        .query(&[("access_token", str_field(&tokens, "access_token").as_str())])
        .json(&initialize_request(1))
        .send()
        .await
        .expect("request reaches the gateway");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_token_is_not_an_access_token() {
    let app = spawn_app().await;
    let (_, tokens) = public_client_tokens(&app).await;
    assert_invalid_token(&app, &str_field(&tokens, "refresh_token")).await;
}

#[tokio::test]
async fn token_signed_with_an_unknown_key_is_rejected() {
    let app = spawn_app().await;
    let (_, tokens) = public_client_tokens(&app).await;
    let forged = resign_hs256(&str_field(&tokens, "access_token"), &rand::random::<[u8; 32]>(), |_, _| {});
    assert_invalid_token(&app, &forged).await;
}

#[tokio::test]
async fn hs256_token_keyed_with_the_published_public_key_is_rejected() {
    let app = spawn_app().await;
    let (_, tokens) = public_client_tokens(&app).await;
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let key = &jwks["keys"][0];
    let mut public_point = vec![0x04];
    public_point.extend(b64_decode(&str_field(key, "x")));
    public_point.extend(b64_decode(&str_field(key, "y")));
    let forged = resign_hs256(&str_field(&tokens, "access_token"), &public_point, |_, _| {});
    assert_invalid_token(&app, &forged).await;
}

#[tokio::test]
async fn unsigned_token_is_rejected() {
    let app = spawn_app().await;
    let (_, tokens) = public_client_tokens(&app).await;
    assert_invalid_token(&app, &unsigned_token(&str_field(&tokens, "access_token"))).await;
}

#[tokio::test]
async fn token_with_a_tampered_payload_is_rejected() {
    let app = spawn_app().await;
    let (_, tokens) = public_client_tokens(&app).await;
    let access_token = str_field(&tokens, "access_token");
    let parts: Vec<&str> = access_token.split('.').collect();
    let mut claims = jwt_claims(&access_token);
    claims["sub"] = "someone-else".into();
    let forged = format!("{}.{}.{}", parts[0], b64(claims.to_string()), parts[2]);
    assert_invalid_token(&app, &forged).await;
}

#[tokio::test]
async fn token_re_signed_with_the_gateway_secret_is_accepted() {
    let (app, access_token) = shared_secret_app_and_token().await;
    let same = resign_hs256(&access_token, JWT_SECRET.as_bytes(), |_, _| {});
    assert_mcp_accepts(&app, &same).await;
}

#[tokio::test]
async fn token_for_another_audience_is_rejected() {
    let (app, access_token) = shared_secret_app_and_token().await;
    let forged = resign_hs256(&access_token, JWT_SECRET.as_bytes(), |_, claims| {
        claims["aud"] = "https://other.example.com/mcp".into();
    });
    assert_invalid_token(&app, &forged).await;
}

#[tokio::test]
async fn token_from_another_issuer_is_rejected() {
    let (app, access_token) = shared_secret_app_and_token().await;
    let forged = resign_hs256(&access_token, JWT_SECRET.as_bytes(), |_, claims| {
        claims["iss"] = "https://issuer.example.com".into();
    });
    assert_invalid_token(&app, &forged).await;
}

#[tokio::test]
async fn expired_token_is_rejected() {
    let (app, access_token) = shared_secret_app_and_token().await;
    let forged = resign_hs256(&access_token, JWT_SECRET.as_bytes(), |_, claims| {
        claims["iat"] = (now() - 7200).into();
        claims["exp"] = (now() - 3600).into();
    });
    assert_invalid_token(&app, &forged).await;
}

#[tokio::test]
async fn token_without_the_access_token_type_is_rejected() {
    let (app, access_token) = shared_secret_app_and_token().await;
    let forged = resign_hs256(&access_token, JWT_SECRET.as_bytes(), |jose, _| {
        jose.typ = Some("JWT".to_string());
    });
    assert_invalid_token(&app, &forged).await;
}

#[tokio::test]
async fn token_without_mcp_read_is_refused_with_insufficient_scope() {
    let app = spawn_app().await;
    let (_, tokens) = tokens_with_scope(&app, "mcp:write").await;
    let response = app.call_mcp(&str_field(&tokens, "access_token")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = bearer_challenge(&response);
    assert_eq!(challenge.get("error").map(String::as_str), Some("insufficient_scope"));
    // The token's own scopes plus the missing one: re-authorizing with it loses nothing (step-up).
    assert_eq!(challenge.get("scope").map(String::as_str), Some("mcp:read mcp:write"));
    assert_eq!(challenge.get("resource_metadata"), Some(&metadata_url(&app)));
}

/// A revoked grant ends the notification streams opened with its tokens at once, not at the streams'
/// periodic check (30 s): a 2026-07-28 listen stream closes, and a legacy session's subscription stops
/// delivering. On Postgres other instances hear of the revocation by `NOTIFY` (tests/multi_instance.rs).
#[tokio::test]
async fn revoking_a_grant_ends_its_notification_streams_at_once() {
    let app = spawn_app().await;
    let auth = ClientAuth::Public(app.register_public_client(REDIRECT_URI).await);
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let revoked = issue_tokens(&app, &mut browser, &auth, ALL_SCOPES).await;
    let other = issue_tokens(&app, &mut browser, &auth, ALL_SCOPES).await;
    let (token, other_token) = (str_field(&revoked, "access_token"), str_field(&other, "access_token"));

    let mut writer = mcp::McpClient::stateless(&app, &other_token);
    let created = writer.call_tool("notes_create", serde_json::json!({"title": "Watched", "body": "v1"})).await;
    let (id, uri) = (
        created["structuredContent"]["id"].as_str().unwrap().to_owned(),
        created["structuredContent"]["uri"].as_str().unwrap().to_owned(),
    );
    let mut listen = mcp::McpClient::stateless(&app, &token).listen(&[&uri]).await;
    let mut session = mcp::McpClient::connect(&app, &token).await;
    session.result("resources/subscribe", serde_json::json!({"uri": uri})).await;
    let mut legacy_stream = session.open_stream().await;

    let revoke = app.post_as("/oauth/revoke", &auth, &[("token", &str_field(&revoked, "refresh_token"))]).await;
    assert_eq!(revoke.status(), StatusCode::OK);
    assert!(mcp::ends_within(&mut listen, 3).await, "the listen stream closes when its grant is revoked");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    writer.call_tool("notes_delete", serde_json::json!({"id": id})).await;
    let delivered = mcp::messages_within(&mut legacy_stream, 1500).await;
    assert!(
        delivered.iter().all(|m| m["method"] != "notifications/resources/updated"),
        "nothing more reaches the revoked grant's session: {delivered:?}"
    );
}
