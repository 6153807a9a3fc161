//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP 2025-11-25 and
//! 2026-07-28 authorization): an https URL used as `client_id` names a JSON document that describes the
//! client. It is fetched here, validated, and cached in the `clients` table for as long as its HTTP cache
//! headers allow (bounded), so every instance shares it and the token endpoint never fetches.
//!
//! The fetch is an SSRF risk, so it is fenced: https only; a DNS name, not an IP literal; only public
//! addresses after resolution (the resolver drops loopback, private, link-local and other special-use
//! addresses, RFC 6890); no redirects; a 5 KB cap; a short timeout.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use serde_json::Value;
use tokio::sync::Semaphore;
use url::Url;

use crate::clock::{UnixTime, now};
use crate::domain::client::{AuthMethod, Client, RegistrationSource};
use crate::domain::registration::{ClientMetadata, normalize, stored_columns};
use crate::limits::Limits;
use crate::store::{Store, client};

/// The draft's recommended read limit.
const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
const MAX_URL_LENGTH: usize = 2000;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Cache lifetime when the document's response has no `max-age`.
const DEFAULT_CACHE: Duration = Duration::from_secs(3600);
/// Upper bound on any cache lifetime, so a changed document is seen within a day.
const MAX_CACHE: Duration = Duration::from_secs(86_400);

/// Whether `client_id` is meant as a metadata document URL (AS-issued client ids never start so).
pub fn is_metadata_document_url(client_id: &str) -> bool {
    client_id.starts_with("https://")
}

/// Why a metadata document could not be used; shown to the person on an error page.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("the client_id is not a valid metadata document URL: {0}")]
    BadUrl(&'static str),
    #[error("the metadata document could not be fetched: {0}")]
    Fetch(String),
    #[error("the metadata document is not valid: {0}")]
    Invalid(String),
}

/// The test-only trust settings: a CA for the local TLS test server and the address its name resolves
/// to. Compiled only with the `test-trust` feature, which the release binary never has.
#[cfg(feature = "test-trust")]
#[derive(Debug, Clone)]
pub struct TestTrust {
    pub ca_pem: Vec<u8>,
    pub host: String,
    pub addr: SocketAddr,
}

/// The HTTP client that fetches metadata documents, and the cache of what it fetched (the `clients` table).
#[derive(Clone)]
pub struct MetadataDocuments {
    store: Store,
    limits: Arc<Limits>,
    http: reqwest::Client,
    /// Fetches running at once on this instance.
    in_flight: Arc<Semaphore>,
    /// Whether a document URL may name a port other than 443 (only the tests' local server needs one).
    any_port: bool,
}

/// Most metadata-document fetches one instance runs at once.
const MAX_FETCHES_IN_FLIGHT: usize = 16;

fn storage_failed(e: sea_orm::DbErr) -> DocumentError {
    tracing::error!(error = %e, "storing a client metadata document failed");
    DocumentError::Fetch("the server could not store it; try again".into())
}

impl MetadataDocuments {
    pub fn new(store: Store, limits: Arc<Limits>) -> anyhow::Result<MetadataDocuments> {
        Ok(MetadataDocuments::with_http(store, limits, builder().build()?, false))
    }

    fn with_http(store: Store, limits: Arc<Limits>, http: reqwest::Client, any_port: bool) -> MetadataDocuments {
        let in_flight = Arc::new(Semaphore::new(MAX_FETCHES_IN_FLIGHT));
        MetadataDocuments { store, limits, http, in_flight, any_port }
    }

    /// Trusts the test CA and resolves the test host to the test server, which is on loopback; every
    /// other name still goes through the public-address resolver.
    #[cfg(feature = "test-trust")]
    pub fn with_test_trust(store: Store, limits: Arc<Limits>, trust: &TestTrust) -> anyhow::Result<MetadataDocuments> {
        let ca = reqwest::Certificate::from_pem(&trust.ca_pem)?;
        let http = builder().add_root_certificate(ca).resolve(&trust.host, trust.addr).build()?;
        Ok(MetadataDocuments::with_http(store, limits, http, true))
    }

    /// The client named by a metadata document URL: the cached copy while it is fresh, else the document
    /// fetched and validated now. `Ok(None)` when an operator has disabled the client. Fetches are limited
    /// per client IP address (`RATE_LIMITS=metadata_fetch=…`) and in number at once.
    pub async fn client(&self, client_id: &str, client_ip: Option<IpAddr>) -> Result<Option<Client>, DocumentError> {
        let cached = self.store.find_any_client(client_id).await.map_err(storage_failed)?;
        match cached {
            Some(c) if c.disabled => return Ok(None),
            Some(c) if c.metadata_refresh_at.is_some_and(|t| t > now()) => return Ok(Client::from_row(c)),
            _ => {}
        }
        let url = check_url(client_id, self.any_port)?;
        if let Some(ip) = client_ip
            && self.limits.metadata_fetch(ip).is_err()
        {
            return Err(DocumentError::Fetch("too many documents were fetched for you; try again in a minute".into()));
        }
        let (body, cache_for) = {
            let _slot = self.in_flight.try_acquire().map_err(|_| {
                DocumentError::Fetch("the server is busy fetching other documents; try again shortly".into())
            })?;
            self.fetch(&url).await?
        };
        let model = validate(client_id, &body, now() + cache_for)?;
        self.store.upsert_metadata_document_client(model).await.map_err(storage_failed)?;
        tracing::info!(client_id, cache_secs = cache_for.as_secs(), "client metadata document fetched");
        Ok(self.store.find_client(client_id).await.map_err(storage_failed)?.and_then(Client::from_row))
    }

    /// Another JSON document a client publishes (a `private_key_jwt` client's `jwks_uri`), under the same
    /// rules as a metadata document: the URL checks, public addresses only, no redirects, the size cap, the
    /// per-address limit and the fetches-at-once cap. Returns the body and how long it may be cached.
    pub async fn fetch_json(&self, url: &str, client_ip: Option<IpAddr>) -> Result<(Vec<u8>, Duration), DocumentError> {
        let url = check_url(url, self.any_port)?;
        if let Some(ip) = client_ip
            && self.limits.metadata_fetch(ip).is_err()
        {
            return Err(DocumentError::Fetch("too many documents were fetched for you; try again in a minute".into()));
        }
        let _slot = self.in_flight.try_acquire().map_err(|_| {
            DocumentError::Fetch("the server is busy fetching other documents; try again shortly".into())
        })?;
        self.fetch(&url).await
    }

    async fn fetch(&self, url: &Url) -> Result<(Vec<u8>, Duration), DocumentError> {
        let fail = |m: String| DocumentError::Fetch(m);
        let mut response = self
            .http
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| fail(describe(&e)))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(fail(format!(
                "the server answered {} (only 200 is accepted, redirects are not followed)",
                response.status()
            )));
        }
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if !(essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))) {
            return Err(fail(format!("the content type is '{essence}', not JSON")));
        }
        let cache_for =
            cache_lifetime(response.headers().get_all(CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()));
        if response.content_length().is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
            return Err(fail(format!("it is larger than {MAX_DOCUMENT_BYTES} bytes")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(describe(&e)))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(fail(format!("it is larger than {MAX_DOCUMENT_BYTES} bytes")));
            }
        }
        Ok((body, cache_for))
    }
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .no_proxy()
        .dns_resolver(Arc::new(PublicAddressesOnly))
        .user_agent(concat!("mcp-gateway/", env!("CARGO_PKG_VERSION")))
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "it took too long".into()
    } else if e.is_connect() {
        "no connection to a public address of its host could be made".into()
    } else {
        "the request failed".into()
    }
}

/// The draft's URL rules: https, a path, no userinfo, fragment or dot segments; and ours: a DNS name, the
/// default port (unless `any_port`: an https service on another port is usually an internal one, not a
/// client's published document), and the URL already in canonical form, so the string compared with the
/// document's `client_id` is exactly the one fetched.
pub fn check_url(client_id: &str, any_port: bool) -> Result<Url, DocumentError> {
    if client_id.len() > MAX_URL_LENGTH {
        return Err(DocumentError::BadUrl("it is too long"));
    }
    let url = Url::parse(client_id).map_err(|_| DocumentError::BadUrl("it is not a URL"))?;
    if url.scheme() != "https" {
        return Err(DocumentError::BadUrl("it must use https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DocumentError::BadUrl("it must not contain credentials"));
    }
    if url.fragment().is_some() {
        return Err(DocumentError::BadUrl("it must not contain a fragment"));
    }
    if url.path() == "/" {
        return Err(DocumentError::BadUrl("it must have a path"));
    }
    if !matches!(url.host(), Some(url::Host::Domain(_))) {
        return Err(DocumentError::BadUrl("its host must be a DNS name, not an IP address"));
    }
    // A canonical URL carries a port only when it is not 443.
    if url.port().is_some() && !any_port {
        return Err(DocumentError::BadUrl("it must use the default https port (443)"));
    }
    if url.as_str() != client_id || client_id.split(['/', '?']).any(|s| s == "." || s == "..") {
        return Err(DocumentError::BadUrl(
            "it must be in canonical form (lower-case host, no default port, no dot segments)",
        ));
    }
    Ok(url)
}

/// Seconds to keep the document: `max-age` bounded to a day; `no-store`/`no-cache` mean fetch again at
/// the next authorization request (the copy stays for the token endpoint).
fn cache_lifetime<'a>(values: impl Iterator<Item = &'a str>) -> Duration {
    let mut max_age = None;
    for directive in values.flat_map(|v| v.split(',')).map(|d| d.trim().to_ascii_lowercase()) {
        if directive == "no-store" || directive == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(secs) = directive.strip_prefix("max-age=").and_then(|s| s.trim_matches('"').parse::<u64>().ok()) {
            max_age = Some(Duration::from_secs(secs));
        }
    }
    max_age.unwrap_or(DEFAULT_CACHE).min(MAX_CACHE)
}

/// Checks the document against the draft and MCP's rules and turns it into a public client.
pub fn validate(client_id: &str, body: &[u8], refresh_at: UnixTime) -> Result<client::Model, DocumentError> {
    let invalid = |m: &str| DocumentError::Invalid(m.to_owned());
    let document: Value = serde_json::from_slice(body).map_err(|_| invalid("it is not JSON"))?;
    let object = document.as_object().ok_or_else(|| invalid("it is not a JSON object"))?;
    if object.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(invalid("its client_id is not exactly the URL it was fetched from"));
    }
    if object.get("client_name").and_then(Value::as_str).is_none_or(|n| n.trim().is_empty()) {
        return Err(invalid("client_name is missing"));
    }
    if object.get("redirect_uris").and_then(Value::as_array).is_none_or(|a| a.is_empty()) {
        return Err(invalid("redirect_uris is missing"));
    }
    if object.contains_key("client_secret") || object.contains_key("client_secret_expires_at") {
        return Err(invalid("it must not contain a client secret"));
    }
    match object.get("token_endpoint_auth_method") {
        None => {}
        Some(Value::String(m)) if AuthMethod::parse(m) == Some(AuthMethod::None) => {}
        Some(_) => return Err(invalid("token_endpoint_auth_method must be none (no shared secrets)")),
    }
    let requested: ClientMetadata = serde_json::from_value(document.clone())
        .map_err(|e| DocumentError::Invalid(format!("a member has the wrong type ({e})")))?;
    let public = Some(AuthMethod::None.as_str().into());
    // A document's client is public here: keys it lists are not used (and must not make it invalid).
    let metadata =
        normalize(ClientMetadata { token_endpoint_auth_method: public, jwks: None, jwks_uri: None, ..requested })
            .map_err(|e| DocumentError::Invalid(e.to_string()))?;
    let columns = stored_columns(&metadata);
    Ok(client::Model {
        client_id: client_id.to_owned(),
        secret_hash: None,
        name: columns.name,
        redirect_uris: columns.redirect_uris,
        grant_types: columns.grant_types,
        response_types: metadata.response_types.as_deref().unwrap_or_default().join(" "),
        token_endpoint_auth_method: AuthMethod::None.as_str().into(),
        scope: columns.scope,
        application_type: columns.application_type,
        metadata: columns.metadata,
        registration_source: RegistrationSource::MetadataDocument.as_str().into(),
        owner_user_id: None,
        registration_access_token_hash: None,
        metadata_url: Some(client_id.to_owned()),
        disabled: false,
        created_at: now(),
        expires_at: None,
        metadata_hash: None,
        registered_from: None,
        metadata_refresh_at: Some(refresh_at),
    })
}

/// Resolves names with the system resolver and keeps only public addresses: a document host that
/// resolves to loopback, a private network, link-local or another special-use range is not contacted.
struct PublicAddressesOnly;

impl Resolve for PublicAddressesOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err("the host resolves to no public address".into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Whether an address is globally reachable (not in an RFC 6890 special-use range).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments (Teredo, ORCHID, …)
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0..6] == [0, 0, 0, 0, 0, 0] && !is_public_v4(embedded_v4(s[6], s[7]))) // IPv4-compatible
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001) // local-use NAT64
                || (s[0] == 0x0064 && s[1] == 0xff9b && !is_public_v4(embedded_v4(s[6], s[7]))) // NAT64
                || (s[0] == 0x2002 && !is_public_v4(embedded_v4(s[1], s[2]))) // 6to4
                || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0)) // discard-only
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_use_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "192.0.0.8",
            "198.18.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn client_id_urls_follow_the_draft() {
        assert!(check_url("https://app.example/client.json", false).is_ok());
        assert!(check_url("https://app.example/oauth/client?v=1", false).is_ok());
        assert!(check_url("https://app.example:8443/oauth/client?v=1", false).is_err(), "only port 443");
        assert!(check_url("https://app.example:8443/oauth/client?v=1", true).is_ok(), "the tests' own server");
        for bad in [
            "http://app.example/client.json",
            "https://app.example",
            "https://app.example/",
            "https://user:pw@app.example/client.json",
            "https://app.example/client.json#x",
            "https://app.example/a/../client.json",
            "https://app.example/./client.json",
            "https://APP.example/client.json",
            "https://app.example:443/client.json",
            "https://127.0.0.1/client.json",
            "https://[::1]/client.json",
        ] {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn cache_headers_set_the_lifetime_within_bounds() {
        assert_eq!(cache_lifetime(["public, max-age=600"].into_iter()), Duration::from_secs(600));
        assert_eq!(cache_lifetime(["max-age=99999999"].into_iter()), MAX_CACHE);
        assert_eq!(cache_lifetime(["no-store"].into_iter()), Duration::ZERO);
        assert_eq!(cache_lifetime(["private", "no-cache"].into_iter()), Duration::ZERO);
        assert_eq!(cache_lifetime(std::iter::empty()), DEFAULT_CACHE);
    }

    #[test]
    fn documents_are_checked_against_their_url() {
        let url = "https://app.example/client.json";
        let good =
            serde_json::json!({"client_id": url, "client_name": "App", "redirect_uris": ["http://127.0.0.1:4000/cb"]});
        let client = validate(url, good.to_string().as_bytes(), UnixTime(0)).unwrap();
        assert_eq!(client.token_endpoint_auth_method, "none");
        assert_eq!(client.metadata_url.as_deref(), Some(url));
        for (edit, _why) in [
            (serde_json::json!({"client_id": "https://app.example/other.json"}), "client_id differs"),
            (serde_json::json!({"client_name": null}), "no name"),
            (serde_json::json!({"redirect_uris": []}), "no redirect URIs"),
            (serde_json::json!({"redirect_uris": ["javascript:alert(1)"]}), "bad redirect URI"),
            (serde_json::json!({"client_secret": "s"}), "a secret"),
            (serde_json::json!({"token_endpoint_auth_method": "client_secret_basic"}), "shared secret auth"),
            (serde_json::json!({"client_name": 5}), "wrong type"),
        ] {
            let mut doc = good.clone();
            for (k, v) in edit.as_object().unwrap() {
                doc[k] = v.clone();
            }
            assert!(validate(url, doc.to_string().as_bytes(), UnixTime(0)).is_err(), "{doc}");
        }
        assert!(validate(url, b"[1,2]", UnixTime(0)).is_err());
        assert!(validate(url, b"not json", UnixTime(0)).is_err());
    }
}
