//! What every request goes through: path rewriting, body limits, CORS, security headers, the access log
//! and the metrics; and the listener's `TCP_NODELAY`.
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use poem::http::uri::Scheme;
use poem::http::{HeaderValue, Method, StatusCode, Uri, header};
use poem::listener::{Acceptor, TcpAcceptor};
use poem::middleware::Cors;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;

use crate::metrics::{Metrics, route_label};

/// Request bodies above this size are refused with 413 before they are read.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Accepts connections with `TCP_NODELAY`. An SSE answer (a legacy session's `tools/call`) is written in
/// several pieces; with Nagle's algorithm the last piece waits for the client's delayed ACK on every response
/// of a kept-alive connection (bench/RESULTS.md has the measurement).
pub struct NoDelay(pub TcpAcceptor);

impl Acceptor for NoDelay {
    type Io = tokio::net::TcpStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(&mut self) -> std::io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.0.accept().await?;
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set");
        }
        Ok((io, local, remote, scheme))
    }
}

/// Browser-based clients (the MCP Inspector, SDKs in a web page) call discovery, registration, the token
/// endpoint and `/mcp` across origins. No credentials: these endpoints authenticate by bearer token or
/// client credentials, never by cookie. Outermost on `/mcp`, so a preflight never meets the bearer guard.
pub fn cors() -> Cors {
    Cors::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            "authorization",
            "content-type",
            "accept",
            "mcp-protocol-version",
            "mcp-session-id",
            "last-event-id",
        ])
        .expose_headers(["www-authenticate", "mcp-session-id", "mcp-protocol-version"])
        .max_age(86_400)
}

/// The paths of the issuer and of the resource, which the other spellings of our routes are made of.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `""` or e.g. `/tenant`.
    pub issuer: String,
    /// The resource URI's path without a trailing slash.
    pub resource: String,
}

/// Maps the other spellings of our routes onto the canonical ones: the issuer's path prefix, the
/// path-inserted well-known URLs (RFC 8414 §3.1, RFC 9728 §3.1) and the root aliases `/authorize`,
/// `/token`, `/register` that 2025-03-26 MCP clients use without metadata.
pub async fn rewrite_paths<E: Endpoint>(ep: E, mut req: Request, paths: Arc<Paths>) -> poem::Result<E::Output> {
    let path = req.uri().path();
    let issuer_path = paths.issuer.as_str();
    let resource_path = paths.resource.as_str();
    let mut target = match path.strip_prefix(issuer_path) {
        Some(rest) if !issuer_path.is_empty() && (rest.is_empty() || rest.starts_with('/')) => rest.to_owned(),
        _ => path.to_owned(),
    };
    for doc in ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"] {
        if !issuer_path.is_empty() && target == format!("{doc}{issuer_path}") {
            target = doc.to_owned();
        }
    }
    if !resource_path.is_empty() && target == format!("/.well-known/oauth-protected-resource{resource_path}") {
        target = "/.well-known/oauth-protected-resource".to_owned();
    }
    target = match target.as_str() {
        "" => "/".to_owned(),
        "/authorize" => "/oauth/authorize".to_owned(),
        "/token" => "/oauth/token".to_owned(),
        "/register" => "/oauth/register".to_owned(),
        _ => target,
    };
    if target != req.uri().path() {
        let path_and_query = match req.uri().query() {
            Some(q) => format!("{target}?{q}"),
            None => target,
        };
        if let Ok(uri) = path_and_query.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    ep.call(req).await
}

/// Refuses bodies over [`MAX_BODY_BYTES`] ([`crate::mcp::MAX_BODY_BYTES`] on `/mcp`) with 413: by
/// `Content-Length` before reading, otherwise by reading at most that much. What the client is still sending
/// is read and dropped first (up to [`DRAIN_MAX_BYTES`], for [`DRAIN_FOR`] at most), so it gets the 413
/// rather than a connection cut while it writes.
pub async fn limit_body<E: Endpoint>(ep: E, mut req: Request) -> poem::Result<E::Output> {
    let limit = if req.uri().path() == "/mcp" { crate::mcp::MAX_BODY_BYTES } else { MAX_BODY_BYTES };
    let too_large = || poem::Error::from_string("request body too large", StatusCode::PAYLOAD_TOO_LARGE);
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(|v| v.parse::<usize>());
    match declared {
        Some(Ok(len)) if len > limit => {
            if len <= DRAIN_MAX_BYTES {
                drain(Box::pin(req.take_body().into_bytes_stream()), 0).await;
            }
            return Err(too_large());
        }
        Some(Ok(_)) => {}
        Some(Err(_)) => {
            return Err(poem::Error::from_string("invalid Content-Length", StatusCode::BAD_REQUEST));
        }
        // Chunked HTTP/1.1 or an HTTP/2 stream without a declared length: read at most the limit.
        None => {
            let mut stream = Box::pin(req.take_body().into_bytes_stream());
            let mut body = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|_| poem::Error::from_string("the body broke off", StatusCode::BAD_REQUEST))?;
                if body.len() + chunk.len() > limit {
                    drain(stream, body.len() + chunk.len()).await;
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            req.set_body(body);
        }
    }
    ep.call(req).await
}

/// The most of a refused body read (and dropped) before the 413, and for how long.
const DRAIN_MAX_BYTES: usize = 8 * 1024 * 1024;
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops what is left of a refused body, `read` bytes in (bounded by [`DRAIN_MAX_BYTES`] and
/// [`DRAIN_FOR`]).
async fn drain<S, T, E>(mut stream: std::pin::Pin<Box<S>>, mut read: usize)
where
    S: futures_util::Stream<Item = Result<T, E>> + ?Sized,
    T: AsRef<[u8]>,
{
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while read <= DRAIN_MAX_BYTES {
            match stream.next().await {
                Some(Ok(chunk)) => read += chunk.as_ref().len(),
                _ => break,
            }
        }
    })
    .await;
}

/// Security headers on every response and one log line per request (method, path without the query,
/// status, latency: never a token, code or secret).
pub async fn observe<E: Endpoint>(ep: E, req: Request, metrics: Arc<Metrics>) -> poem::Result<Response> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let request_id = request_id(&req);
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut resp = match ep.call(req).instrument(span.clone()).await {
        Ok(resp) => resp.into_response(),
        Err(err) => err.into_response(),
    };
    let headers = resp.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", value);
    }
    let set = |headers: &mut poem::http::HeaderMap, name, value: &'static str| {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    let is_html =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.starts_with("text/html"));
    let is_docs = path.starts_with("/docs");
    if is_html && !is_docs {
        // No form-action: Chromium applies it to the 302 that follows the consent POST, so the redirect to
        // the client's (other-origin) callback would be blocked and the flow would die in a real browser.
        set(
            headers,
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
        );
    }
    let cacheable =
        is_docs || path.starts_with("/.well-known/") || path.starts_with("/assets/") || path == "/openapi.json";
    if !cacheable {
        set(headers, header::CACHE_CONTROL, "no-store");
        set(headers, header::PRAGMA, "no-cache");
    }
    let seconds = started.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    metrics.observe_request(route_label(&path), method.as_str(), status, seconds);
    span.in_scope(|| tracing::info!(%method, %path, status, latency_ms = seconds * 1000.0, "request"));
    Ok(resp)
}

/// The caller's `X-Request-Id` when it is a sane token (so a request can be followed across a proxy and
/// this server), otherwise a fresh one. It is echoed in the response and tags every log line of the request.
fn request_id(req: &Request) -> String {
    let sane =
        |v: &&str| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    match req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).filter(sane) {
        Some(id) => id.to_owned(),
        None => uuid::Uuid::new_v4().to_string(),
    }
}
