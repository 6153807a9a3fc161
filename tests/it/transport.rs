//! HTTP-level rules: body size caps, CORS for browser-based clients, security headers.

use crate::support::*;
use reqwest::StatusCode;

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = spawn_app().await;
    // The server answers before reading the body and closes the connection: no connection is kept to reuse.
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build().unwrap();
    let big = "x".repeat(65 * 1024);
    let response = client
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type={big}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let huge = "x".repeat(1024 * 1024 + 1);
    let response =
        client.post(app.url("/mcp")).header("content-type", "application/json").body(huge).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// A chunked body declares no length: the cap must hold while reading it.
#[tokio::test]
async fn oversized_bodies_without_a_declared_length_are_refused_too() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let host = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    let head = format!(
        "POST /oauth/register HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("400\r\n{}\r\n", "a".repeat(1024));
    for _ in 0..80 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server may answer and close before the whole body is sent
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let status_line = String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned();
    assert!(status_line.contains(" 413 "), "{status_line}");
}

#[tokio::test]
async fn cors_preflight_on_mcp_is_answered_before_the_bearer_guard() {
    let app = spawn_app().await;
    let response = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/mcp"))
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type, mcp-protocol-version")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "access-control-allow-origin").as_deref(), Some("http://localhost:6274"));
    assert!(header(&response, "access-control-allow-credentials").is_none(), "no cookies across origins");
}

#[tokio::test]
async fn browser_clients_can_read_metadata_and_the_challenge() {
    let app = spawn_app().await;
    let origin = "http://localhost:6274";
    let response = app
        .client
        .get(app.url("/.well-known/oauth-authorization-server"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&response, "access-control-allow-origin").as_deref(), Some(origin));
    let response =
        app.client.post(app.url("/mcp")).header("origin", origin).json(&initialize_request(1)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let exposed = header(&response, "access-control-expose-headers").unwrap_or_default().to_ascii_lowercase();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
}

#[tokio::test]
async fn pages_cannot_be_framed_and_api_answers_are_not_cached() {
    let app = spawn_app().await;
    let response = app.get("/login").await;
    assert_eq!(header(&response, "x-frame-options").as_deref(), Some("DENY"));
    let csp = header(&response, "content-security-policy").unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("form-action"), "{csp}");
    let response = app.post_form("/oauth/token", &[("grant_type", "nope")]).await;
    assert_eq!(header(&response, "cache-control").as_deref(), Some("no-store"));
}
