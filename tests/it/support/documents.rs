//! A local TLS server publishing Client ID Metadata Documents, with a certificate from a test CA that only
//! the test build trusts (the `test-trust` feature resolves `cimd.test` to it).
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use mcp_gateway::oauth::metadata_document::TestTrust;
use poem::listener::{Acceptor, Listener, RustlsCertificate, RustlsConfig, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Request, Response, Route, Server, handler};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};

use mcp_gateway::app::Overrides;

use super::{TestApp, spawn_app_overridden};

pub const HOST: &str = "cimd.test";

/// A canned answer: status, headers, body.
pub type Answer = (u16, Vec<(String, String)>, String);

/// What the document server answers per path, and how often each was asked.
#[derive(Default)]
pub struct Documents {
    answers: Mutex<HashMap<String, Answer>>,
    hits: Mutex<HashMap<String, usize>>,
}

impl Documents {
    pub fn set(&self, path: &str, status: u16, headers: &[(&str, &str)], body: String) {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.answers.lock().unwrap().insert(path.to_string(), (status, headers, body));
    }

    pub fn serve_json(&self, path: &str, document: &Value, cache_control: &str) {
        self.set(
            path,
            200,
            &[("content-type", "application/json"), ("cache-control", cache_control)],
            document.to_string(),
        );
    }

    pub fn hits(&self, path: &str) -> usize {
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

pub struct DocumentServer {
    pub docs: Arc<Documents>,
    pub addr: SocketAddr,
    pub ca_pem: String,
}

impl DocumentServer {
    pub async fn start() -> DocumentServer {
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

    pub fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.addr.port())
    }

    pub async fn gateway(&self) -> TestApp {
        self.gateway_with(&[]).await
    }

    /// [`DocumentServer::gateway`] with more settings.
    pub async fn gateway_with(&self, extra: &[(&str, &str)]) -> TestApp {
        let trust = TestTrust { ca_pem: self.ca_pem.clone().into_bytes(), host: HOST.to_string(), addr: self.addr };
        spawn_app_overridden(extra, Overrides { test_trust: Some(trust), ..Overrides::default() }).await
    }
}

pub fn document(client_id: &str, redirect_uri: &str) -> Value {
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
