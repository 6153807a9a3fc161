//! Token, PKCE, consent-page and MCP attacks not covered by the feature suites (README security model;
//! RFC 9700 §2.1.1 PKCE, §4.5 injection; RFC 7636 §4.1; RFC 9068 §4; RFC 8725 §3.1; MCP transport security).

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn shared_secret_app_and_token() -> (TestApp, String) {
    let app = spawn_app_with(&[("JWT_SECRET", JWT_SECRET)]).await;
    let (_, tokens) = public_client_tokens(&app).await;
    (app, str_field(&tokens, "access_token"))
}

async fn assert_refused_at_mcp(app: &TestApp, token: &str) {
    let response = app.call_mcp(token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(&response, "www-authenticate").unwrap_or_default();
    assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");
}

/// RFC 9068 §4 / RFC 7519 §4.1.5: a token that is not valid yet is refused (beyond a small clock leeway).
#[tokio::test]
async fn tokens_that_are_not_yet_valid_are_refused() {
    let (app, token) = shared_secret_app_and_token().await;
    let in_an_hour = chrono::Utc::now().timestamp() + 3600;
    let not_before = resign_hs256(&token, JWT_SECRET.as_bytes(), |_, c| c["nbf"] = in_an_hour.into());
    assert_refused_at_mcp(&app, &not_before).await;
    let issued_later = resign_hs256(&token, JWT_SECRET.as_bytes(), |_, c| {
        c["iat"] = in_an_hour.into();
        c["exp"] = (in_an_hour + 3600).into();
    });
    assert_refused_at_mcp(&app, &issued_later).await;
}

/// An access token is not a refresh token (nor the reverse, see `security_bearer.rs`).
#[tokio::test]
async fn an_access_token_cannot_be_used_as_a_refresh_token() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let response = app.refresh(&auth, &str_field(&tokens, "access_token")).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // Nothing was spent: the real refresh token still works.
    json_ok(app.refresh(&auth, &str_field(&tokens, "refresh_token")).await).await;
}

/// RFC 7636 §4.1: a verifier is 43–128 characters of `[A-Za-z0-9-._~]`; anything else is refused, and the
/// refusal does not spend the code.
#[tokio::test]
async fn malformed_code_verifiers_are_refused_without_spending_the_code() {
    let app = spawn_app().await;
    let client_id = app.register_public_client(REDIRECT_URI).await;
    let auth = ClientAuth::Public(client_id.clone());
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let pkce = pkce_pair();
    let code = authorize_and_get_code(&app, &mut browser, &client_id, REDIRECT_URI, &pkce).await;
    let too_long = "a".repeat(129);
    let with_space = format!("{} ", &pkce.verifier[..43]);
    let non_ascii = format!("{}é", &pkce.verifier[..43]);
    for verifier in ["", "short", &pkce.verifier[..42], too_long.as_str(), with_space.as_str(), non_ascii.as_str()] {
        let response = app.redeem_code(&auth, &code, REDIRECT_URI, verifier).await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON error");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{verifier:?}: {body}");
        assert!(matches!(body["error"].as_str(), Some("invalid_request" | "invalid_grant")), "{verifier:?}: {body}");
    }
    json_ok(app.redeem_code(&auth, &code, REDIRECT_URI, &pkce.verifier).await).await;
}

/// Consent page: client metadata is shown escaped (RFC 9700 §4.5; a self-registered client controls it).
#[tokio::test]
async fn client_metadata_cannot_inject_markup_into_the_consent_page() {
    let app = spawn_app().await;
    let evil_name = r#"<script>alert("name")</script><img src=x onerror=alert(1)>"#;
    let registered = app
        .register_client(&json!({
            "client_name": evil_name,
            "redirect_uris": ["http://127.0.0.1:7777/cb?x=\"><script>alert(2)</script>"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = str_field(&registered, "client_id");
    let redirect = registered["redirect_uris"][0].as_str().expect("redirect").to_owned();
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let html = browser.consent_page(&app.authorize_params(&client_id, &redirect, &pkce_pair())).await;
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(html.contains("&lt;script&gt;") || html.contains("&#60;script"), "the name is shown, escaped");
}

/// CSRF (RFC 9700 §4.7): a consent token from another person's session does not work in mine.
#[tokio::test]
async fn a_consent_csrf_token_from_another_session_is_refused() {
    let app = spawn_app().await;
    let client_id = app.register_public_client(REDIRECT_URI).await;
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let mut attacker = signup_and_login(&app, "mallory", PASSWORD).await;
    let attackers_form = form_hidden_inputs(&attacker.consent_page(&params).await, "/oauth/authorize");
    let mut victim = signup_and_login(&app, "alice", PASSWORD).await;
    victim.consent_page(&params).await;
    let mut forged = attackers_form;
    forged.push(("decision".into(), "allow".into()));
    let response = victim.post_form("/oauth/authorize", &forged).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(header(&response, "location").is_none(), "no code goes anywhere");
}

/// MCP transport security: a page of another origin cannot drive the endpoint with a stolen token
/// (DNS rebinding, drive-by requests from a browser).
#[tokio::test]
async fn requests_from_another_origin_are_forbidden() {
    let app = spawn_app().await;
    let (_, tokens) = public_client_tokens(&app).await;
    let token = str_field(&tokens, "access_token");
    for origin in ["https://evil.example", "http://127.0.0.1.evil.example", "null"] {
        let response = app
            .client
            .post(app.url("/mcp"))
            .bearer_auth(&token)
            .header("origin", origin)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize_request(1))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}");
    }
}

/// Malformed JSON-RPC is answered with a JSON-RPC error (or a 4xx), never a 5xx, and oversized bodies get
/// 413 — behind a valid token, so the guard is not what stops them.
#[tokio::test]
async fn malformed_or_oversized_mcp_bodies_get_protocol_errors_not_server_errors() {
    let app = spawn_app().await;
    let (_, tokens) = public_client_tokens(&app).await;
    let token = str_field(&tokens, "access_token");
    let bodies = [
        "{",
        "[]",
        "null",
        "42",
        r#"{"jsonrpc":"2.0"}"#,
        r#"{"jsonrpc":"1.0","id":1,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":{"nested":true},"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"not an object"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["whoami"]}}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},"garbage"]"#,
    ];
    for body in bodies {
        let response = post_raw_mcp(&app, &token, body.to_owned()).await;
        let status = response.status();
        assert!(status.is_client_error() || status.is_success(), "{body}: {status}");
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            let answer: Value = serde_json::from_str(text.trim_start_matches("data: ")).unwrap_or(Value::Null);
            assert!(answer.get("error").is_some() || text.contains("\"error\""), "{body}: {text}");
        }
    }
    let huge =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"pad":"{}"}}}}"#, "x".repeat(2 << 20));
    assert_eq!(post_raw_mcp(&app, &token, huge).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

async fn post_raw_mcp(app: &TestApp, token: &str, body: String) -> reqwest::Response {
    app.client
        .post(app.url("/mcp"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .body(body)
        .send()
        .await
        .expect("request reaches the gateway")
}

/// What a client cannot parse it cannot handle: malformed JSON on `/mcp` is HTTP 400 with a JSON-RPC parse
/// error (-32700), JSON that is not a JSON-RPC message 400 with -32600, and a missing or unknown legacy
/// session the transport's status (400, 404) with a JSON-RPC error body; never a 415 or plain text.
#[tokio::test]
async fn malformed_mcp_requests_get_json_rpc_errors_a_client_can_parse() {
    let app = spawn_app().await;
    let (_, tokens) = public_client_tokens(&app).await;
    let token = str_field(&tokens, "access_token");
    let expect = |status: StatusCode, code: i64| {
        move |response: reqwest::Response| async move {
            assert_eq!(response.status(), status);
            assert_eq!(header(&response, "content-type").as_deref(), Some("application/json"));
            let body: Value = response.json().await.expect("a JSON body");
            assert_eq!((body["jsonrpc"].as_str(), &body["id"]), (Some("2.0"), &Value::Null), "{body}");
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        }
    };
    for body in [r#"{"jsonrpc": "2.0", ""#, "not json", "{"] {
        expect(StatusCode::BAD_REQUEST, -32700)(post_raw_mcp(&app, &token, body.to_owned()).await).await;
    }
    for body in ["[]", "{}", "42", r#"{"jsonrpc":"2.0"}"#] {
        expect(StatusCode::BAD_REQUEST, -32600)(post_raw_mcp(&app, &token, body.to_owned()).await).await;
    }
    // A legacy request with no session, and with a session nobody opened.
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let legacy = |session: Option<&str>| {
        let mut request = app
            .client
            .post(app.url("/mcp"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(list);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.send()
    };
    expect(StatusCode::BAD_REQUEST, -32600)(legacy(None).await.unwrap()).await;
    expect(StatusCode::NOT_FOUND, -32001)(legacy(Some("no-such-session")).await.unwrap()).await;
    // A wrong content type keeps its status, with a JSON-RPC body too.
    let text = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .header("accept", "application/json, text/event-stream")
        .body(list)
        .send()
        .await
        .unwrap();
    expect(StatusCode::UNSUPPORTED_MEDIA_TYPE, -32600)(text).await;
}

/// An allowed origin written without its port would let every port of that host in (the transport reads a
/// port-less entry as "any port"): the issuer's origin is allowed with its port, and only that. The issuer
/// here is on the scheme's default port, so its origin is written without one.
#[tokio::test]
async fn the_default_allowed_origin_is_the_issuers_port_only() {
    let app = spawn_app_with(&[("AUTH_ISSUER", "http://localhost")]).await;
    let (_, tokens) = public_client_tokens(&app).await;
    let token = str_field(&tokens, "access_token");
    let from = |origin: &'static str| {
        app.client
            .post(app.url("/mcp"))
            .bearer_auth(&token)
            .header("origin", origin)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize_request(1))
            .send()
    };
    for origin in ["http://localhost", "http://localhost:80"] {
        assert_eq!(from(origin).await.unwrap().status(), StatusCode::OK, "{origin}");
    }
    for origin in ["http://localhost:8080", "http://localhost:3000", "https://localhost"] {
        assert_eq!(from(origin).await.unwrap().status(), StatusCode::FORBIDDEN, "{origin}");
    }
}
