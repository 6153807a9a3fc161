//! Client ID Metadata Documents against a real local TLS server whose certificate comes from a test CA.
//! Only the test build trusts that CA and resolves `cimd.test` to the server (the `test-trust` feature).
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::*;
use mcp_gateway::oauth::metadata_document::TestTrust;
use poem::listener::{Acceptor, Listener, RustlsCertificate, RustlsConfig, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Request, Response, Route, Server, handler};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use reqwest::StatusCode;
use serde_json::{Value, json};

const HOST: &str = "cimd.test";

/// A canned answer: status, headers, body.
type Answer = (u16, Vec<(String, String)>, String);

/// What the document server answers per path, and how often each was asked.
#[derive(Default)]
struct Documents {
    answers: Mutex<HashMap<String, Answer>>,
    hits: Mutex<HashMap<String, usize>>,
}

impl Documents {
    fn set(&self, path: &str, status: u16, headers: &[(&str, &str)], body: String) {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.answers.lock().unwrap().insert(path.to_string(), (status, headers, body));
    }

    fn serve_json(&self, path: &str, document: &Value, cache_control: &str) {
        self.set(
            path,
            200,
            &[("content-type", "application/json"), ("cache-control", cache_control)],
            document.to_string(),
        );
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

#[handler]
fn answer(req: &Request, docs: Data<&Arc<Documents>>) -> Response {
    let path = req.uri().path().to_string();
    *docs.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    match docs.answers.lock().unwrap().get(&path) {
        None => Response::builder().status(poem::http::StatusCode::NOT_FOUND).finish(),
        Some((status, headers, body)) => {
            let mut response = Response::builder().status(poem::http::StatusCode::from_u16(*status).unwrap());
            for (k, v) in headers {
                response = response.header(k.as_str(), v.as_str());
            }
            response.body(body.clone())
        }
    }
}

struct DocumentServer {
    docs: Arc<Documents>,
    addr: SocketAddr,
    ca_pem: String,
}

impl DocumentServer {
    async fn start() -> DocumentServer {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "mcp-gateway test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![HOST.to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let tls = RustlsConfig::new().fallback(RustlsCertificate::new().cert(leaf.pem()).key(leaf_key.serialize_pem()));
        let acceptor = TcpListener::bind("127.0.0.1:0").rustls(tls).into_acceptor().await.unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let docs = Arc::new(Documents::default());
        let app = Route::new().at("/*path", answer).data(docs.clone());
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        DocumentServer { docs, addr, ca_pem: ca_cert.pem() }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.addr.port())
    }

    async fn gateway(&self) -> TestApp {
        let trust = TestTrust { ca_pem: self.ca_pem.clone().into_bytes(), host: HOST.to_string(), addr: self.addr };
        spawn_app_configured(&[], |config| config.test_trust = Some(trust)).await
    }
}

fn document(client_id: &str, redirect_uri: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_name": "Doc Client",
        "client_uri": "https://cimd.test/",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

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
    assert!(html_unescape(&html).contains(expected), "expected {expected:?} for {client_id}: {html}");
}

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
        ("/wrong-id.json", "client_id is not exactly the URL"),
        ("/nameless.json", "client_name is missing"),
        ("/secret.json", "no shared secrets"),
        ("/big.json", "larger than 5120 bytes"),
        ("/moved.json", "redirects are not followed"),
        ("/html.json", "not JSON"),
        ("/broken.json", "not JSON"),
        ("/missing.json", "404"),
        ("/other-redirect.json", "did not register"),
    ] {
        assert_document_refused(&app, &mut browser, &url(path), expected).await;
    }
    // Nothing invalid was cached: asking again fetches again.
    assert_document_refused(&app, &mut browser, &url("/wrong-id.json"), "client_id is not exactly").await;
    assert_eq!(docs.hits("/wrong-id.json"), 2);
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
        (format!("https://localhost:{port}/clients/app.json"), "no connection to a public address"),
        (format!("https://127.0.0.1:{port}/clients/app.json"), "not an IP address"),
        (format!("https://[::1]:{port}/clients/app.json"), "not an IP address"),
        (format!("https://{HOST}:{port}/clients/../clients/app.json"), "canonical form"),
        (format!("https://user@{HOST}:{port}/clients/app.json"), "credentials"),
        (format!("https://{HOST}:{port}/"), "must have a path"),
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
    let app = spawn_app_configured(&[("RATE_LIMITS", "metadata_fetch=2/min")], |c| c.test_trust = Some(trust)).await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    for n in 0..2 {
        let params = app.authorize_params(&server.url(&format!("/clients/{n}.json")), REDIRECT_URI, &pkce_pair());
        browser.consent_page(&params).await;
    }
    assert_document_refused(&app, &mut browser, &server.url("/clients/2.json"), "too many documents").await;
    assert_eq!(server.docs.hits("/clients/2.json"), 0);
    let cached = app.authorize_params(&server.url("/clients/0.json"), REDIRECT_URI, &pkce_pair());
    browser.consent_page(&cached).await;
}
