//! Client ID Metadata Documents against a real local TLS server whose certificate comes from a test CA.
//! Only the test build trusts that CA and resolves `cimd.test` to the server (the `test-trust` feature).

use crate::support::documents::*;
use crate::support::*;
use mcp_gateway::app::Overrides;
use mcp_gateway::oauth::metadata_document::TestTrust;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn metadata_document_support_is_advertised() {
    let app = spawn_app().await;
    let metadata = app.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
}

/// The whole flow with a client named by its document URL: consent shows the document host and the
/// localhost warning, the code is redeemed with the URL as client_id, and the token works at /mcp.
#[tokio::test]
async fn a_metadata_document_client_completes_the_flow() {
    let server = DocumentServer::start().await;
    let client_id = server.url("/clients/app.json");
    server.docs.serve_json("/clients/app.json", &document(&client_id, REDIRECT_URI), "max-age=600");
    let app = server.gateway().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let pkce = pkce_pair();
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce);
    let consent = browser.consent_page(&params).await;
    assert!(consent.contains("Doc Client"), "{consent}");
    assert!(consent.contains("Described by") && consent.contains(HOST), "{consent}");
    assert!(consent.contains("Check that you started this"), "localhost-only redirect warning: {consent}");
    assert!(consent.contains("127.0.0.1"), "redirect host shown: {consent}");
    let response = browser.decide(&consent, "allow").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let code = redirect_query(&response)["code"].clone();
    let tokens = exchange_code(&app, &client_id, &code, REDIRECT_URI, &pkce.verifier).await;
    assert_mcp_accepts(&app, &str_field(&tokens, "access_token")).await;
    let refreshed = app.refresh(&ClientAuth::Public(client_id.clone()), &str_field(&tokens, "refresh_token")).await;
    json_ok(refreshed).await;
    // max-age=600: the document was fetched once for both the consent page and its submission.
    assert_eq!(server.docs.hits("/clients/app.json"), 1);
}

/// A client with an https redirect URI gets no localhost warning.
#[tokio::test]
async fn an_https_redirect_gets_no_localhost_warning() {
    let server = DocumentServer::start().await;
    let client_id = server.url("/clients/web.json");
    server.docs.serve_json("/clients/web.json", &document(&client_id, "https://app.example/callback"), "max-age=60");
    let app = server.gateway().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let params = app.authorize_params(&client_id, "https://app.example/callback", &pkce_pair());
    let consent = browser.consent_page(&params).await;
    assert!(consent.contains("app.example") && !consent.contains("Check that you started this"), "{consent}");
}

/// `no-store` means the document is fetched again at the next authorization request, and a changed
/// document takes effect: a redirect URI it no longer lists is refused.
#[tokio::test]
async fn the_cache_follows_the_documents_headers() {
    let server = DocumentServer::start().await;
    let client_id = server.url("/clients/app.json");
    server.docs.serve_json("/clients/app.json", &document(&client_id, REDIRECT_URI), "no-store");
    let app = server.gateway().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    browser.consent_page(&params).await;
    browser.consent_page(&params).await;
    assert_eq!(server.docs.hits("/clients/app.json"), 2);
    server.docs.serve_json("/clients/app.json", &document(&client_id, "http://127.0.0.1:9999/other"), "no-store");
    let html = assert_html_error(browser.get(&params.path()).await, StatusCode::BAD_REQUEST).await;
    assert!(html.contains("did not register"), "{html}");
}

async fn assert_document_refused(app: &TestApp, browser: &mut Browser, client_id: &str, expected: &str) {
    let params = app.authorize_params(client_id, REDIRECT_URI, &pkce_pair());
    let response = browser.get(&params.path()).await;
    assert!(header(&response, "location").is_none(), "never a redirect for a bad client");
    let html = assert_html_error(response, StatusCode::BAD_REQUEST).await;
    assert!(page_text(&html).contains(expected), "expected {expected:?} for {client_id}: {html}");
}

/// What the person sees for any document that cannot be used: one message, whatever the reason (which goes
/// to the log), so the fetcher cannot be used to learn about other hosts.
const GENERIC: &str = "a metadata document that could not be used";

/// Documents that break the rules are refused with a readable page, and never cached.
#[tokio::test]
async fn invalid_documents_are_refused() {
    let server = DocumentServer::start().await;
    let docs = &server.docs;
    let url = |p: &str| server.url(p);
    docs.serve_json("/wrong-id.json", &document(&url("/other.json"), REDIRECT_URI), "max-age=600");
    let mut nameless = document(&url("/nameless.json"), REDIRECT_URI);
    nameless.as_object_mut().unwrap().remove("client_name");
    docs.serve_json("/nameless.json", &nameless, "max-age=600");
    let mut secret = document(&url("/secret.json"), REDIRECT_URI);
    secret["token_endpoint_auth_method"] = json!("client_secret_basic");
    docs.serve_json("/secret.json", &secret, "max-age=600");
    let mut big = document(&url("/big.json"), REDIRECT_URI);
    big["padding"] = json!("x".repeat(6000));
    docs.serve_json("/big.json", &big, "max-age=600");
    docs.set("/moved.json", 302, &[("location", &url("/clients/app.json"))], String::new());
    docs.set(
        "/html.json",
        200,
        &[("content-type", "text/html")],
        document(&url("/html.json"), REDIRECT_URI).to_string(),
    );
    docs.set("/broken.json", 200, &[("content-type", "application/json")], "{not json".into());
    docs.serve_json(
        "/other-redirect.json",
        &document(&url("/other-redirect.json"), "http://127.0.0.1:1/elsewhere"),
        "max-age=600",
    );

    let app = server.gateway().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    for (path, expected) in [
        ("/wrong-id.json", GENERIC),
        ("/nameless.json", GENERIC),
        ("/secret.json", GENERIC),
        ("/big.json", GENERIC),
        ("/moved.json", GENERIC),
        ("/html.json", GENERIC),
        ("/broken.json", GENERIC),
        ("/missing.json", GENERIC),
        ("/other-redirect.json", "did not register"),
    ] {
        assert_document_refused(&app, &mut browser, &url(path), expected).await;
    }
    // Nothing invalid was cached: asking again fetches again.
    assert_document_refused(&app, &mut browser, &url("/wrong-id.json"), GENERIC).await;
    assert_eq!(docs.hits("/wrong-id.json"), 2);
    assert_eq!(docs.hits("/clients/app.json"), 0, "the redirect of /moved.json was not followed");
    // The token endpoint knows nothing of a refused document.
    let auth = ClientAuth::Public(url("/wrong-id.json"));
    assert_oauth_error(app.refresh(&auth, "x").await, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

/// SSRF: a document URL naming a loopback address, by IP or by a name resolving to it, is never fetched;
/// nor are http or non-canonical URLs.
#[tokio::test]
async fn document_urls_cannot_reach_internal_addresses() {
    let server = DocumentServer::start().await;
    let port = server.addr.port();
    server.docs.serve_json(
        "/clients/app.json",
        &document(&format!("https://localhost:{port}/clients/app.json"), REDIRECT_URI),
        "max-age=600",
    );
    let app = server.gateway().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    for (client_id, expected) in [
        (format!("https://localhost:{port}/clients/app.json"), GENERIC),
        (format!("https://127.0.0.1:{port}/clients/app.json"), GENERIC),
        (format!("https://[::1]:{port}/clients/app.json"), GENERIC),
        (format!("https://{HOST}:{port}/clients/../clients/app.json"), GENERIC),
        (format!("https://user@{HOST}:{port}/clients/app.json"), GENERIC),
        (format!("https://{HOST}:{port}/"), GENERIC),
    ] {
        assert_document_refused(&app, &mut browser, &client_id, expected).await;
    }
    assert_eq!(server.docs.hits("/clients/app.json"), 0, "the internal server was never contacted");
}

/// Fetches are limited per client address: past the limit a new document URL is refused, while a cached
/// one is still served.
#[tokio::test]
async fn metadata_fetches_are_rate_limited() {
    let server = DocumentServer::start().await;
    for n in 0..3 {
        let path = format!("/clients/{n}.json");
        server.docs.serve_json(&path, &document(&server.url(&path), REDIRECT_URI), "max-age=600");
    }
    let trust = TestTrust { ca_pem: server.ca_pem.clone().into_bytes(), host: HOST.to_string(), addr: server.addr };
    let app = spawn_app_overridden(
        &[("RATE_LIMITS", "metadata_fetch=2/min")],
        Overrides { test_trust: Some(trust), ..Overrides::default() },
    )
    .await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    for n in 0..2 {
        let params = app.authorize_params(&server.url(&format!("/clients/{n}.json")), REDIRECT_URI, &pkce_pair());
        browser.consent_page(&params).await;
    }
    assert_document_refused(&app, &mut browser, &server.url("/clients/2.json"), GENERIC).await;
    assert_eq!(server.docs.hits("/clients/2.json"), 0);
    let cached = app.authorize_params(&server.url("/clients/0.json"), REDIRECT_URI, &pkce_pair());
    browser.consent_page(&cached).await;
}
