//! The one place the server is assembled; `main` and every test call [`Application::build`].
use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::endpoint::TowerCompatExt;
use poem::http::uri::Scheme;
use poem::http::{HeaderValue, Method, StatusCode, Uri, header};
use poem::listener::{Acceptor, TcpAcceptor};
use poem::middleware::{CookieJarManager, Cors};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, Server, get, post};
use poem_openapi::OpenApiService;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Config;
use crate::crypto::Passwords;
use crate::limits::Limits;
use crate::mcp::events::{ListChanges, NoteEvents};
use crate::metrics::{metrics, route_label};
use crate::oauth::api::{DiscoveryApi, OAuthApi};
use crate::oauth::jwt::AccessTokens;
use crate::oauth::keys::KeyRing;
use crate::oauth::metadata_document::MetadataDocuments;
use crate::ops::OpsApi;
use crate::state::{AppState, State};
use crate::store::{PurgeAfter, Store};
use crate::{mcp, pages};

/// Request bodies above this size are refused with 413 before they are read.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How often every instance purges expired codes, tokens and sessions (safe to overlap).
const PURGE_INTERVAL: Duration = Duration::from_secs(300);

/// The OpenAPI description of every JSON and form endpoint. It depends on no configuration, so the
/// exported `openapi/openapi.json` is the same on every machine.
pub fn openapi_service() -> OpenApiService<(DiscoveryApi, OAuthApi, OpsApi), ()> {
    OpenApiService::new((DiscoveryApi, OAuthApi, OpsApi), "mcp-gateway", env!("CARGO_PKG_VERSION")).description(
        "An MCP server (Streamable HTTP at /mcp) that is its own OAuth 2.1 authorization server. \
         Discovery: RFC 9728 and RFC 8414. Registration: RFC 7591. Tokens: RFC 9068 JWTs, PKCE S256 required.",
    )
}

pub struct Application {
    state: State,
}

impl Application {
    /// Connects to the database, applies migrations, loads (or creates) the signing keys.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let store = Store::open(&config).await?;
        store.migrate().await?;
        let keep_retired = config.access_token_ttl + config.key_reload_interval;
        let keys = KeyRing::load(store.clone(), config.jwt_secret.as_deref(), keep_retired).await?;
        let tokens = AccessTokens::new(keys, config.issuer.clone(), config.resource.as_str().to_owned());
        let passwords = Passwords::new(config.password_hash_cost);
        let note_events = NoteEvents::new(&store);
        let list_changes = ListChanges::default();
        let limits = Limits::new(config.rate_limits.as_ref());
        #[cfg(feature = "test-trust")]
        let metadata_documents = match &config.test_trust {
            Some(trust) => MetadataDocuments::with_test_trust(trust)?,
            None => MetadataDocuments::new()?,
        };
        #[cfg(not(feature = "test-trust"))]
        let metadata_documents = MetadataDocuments::new()?;
        let state = AppState {
            config,
            store,
            tokens,
            passwords,
            limits,
            metadata_documents,
            note_events,
            list_changes,
            open_streams: Default::default(),
        };
        Ok(Application { state: Arc::new(state) })
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Serves on a bound listener until the process ends.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        self.serve_until(listener, std::future::pending()).await
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (up to 10 s).
    pub async fn serve_until(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let keys = self.state.tokens.keys().clone();
        let reload_every = self.state.config.key_reload_interval;
        let reload = tokio::spawn(async move {
            let mut tick = tokio::time::interval(reload_every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = keys.reload().await {
                    tracing::warn!(error = %e, "reloading signing keys failed");
                }
            }
        });
        let store = self.state.store.clone();
        let ttls = PurgeAfter::from_config(&self.state.config);
        let state = self.state.clone();
        let purge = tokio::spawn(async move {
            let mut tick = tokio::time::interval(PURGE_INTERVAL);
            loop {
                tick.tick().await;
                state.limits.forget_idle();
                match store.purge_expired(ttls).await {
                    Ok(purged) => tracing::debug!(?purged, "purged expired rows"),
                    Err(e) => tracing::warn!(error = %e, "purging expired rows failed"),
                }
            }
        });
        // On Postgres: note changes and revocations announced by every instance.
        let relay = self.state.note_events.relay_from_postgres();
        let acceptor = NoDelay(TcpAcceptor::from_tokio(listener)?);
        tracing::info!(addr = ?acceptor.local_addr(), "listening");
        // Ends open MCP streams (GET SSE) when shutdown starts, so draining does not wait for them.
        let streams = CancellationToken::new();
        let stop_streams = streams.clone();
        let shutdown = async move {
            shutdown.await;
            stop_streams.cancel();
        };
        let result = Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(routes(self.state, streams), shutdown, Some(Duration::from_secs(10)))
            .await;
        reload.abort();
        purge.abort();
        if let Some(relay) = relay {
            relay.abort();
        }
        result
    }
}

/// Accepts connections with `TCP_NODELAY`. An SSE answer (a legacy session's `tools/call`) is written in
/// several pieces; with Nagle's algorithm the last piece waited for the client's delayed ACK, ~40 ms on every
/// response of a kept-alive connection (a session ran at 23 requests/s per connection).
struct NoDelay(TcpAcceptor);

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

/// Every route of the server. `mcp_streams` ends the MCP service's open streams.
pub fn routes(state: State, mcp_streams: CancellationToken) -> impl Endpoint<Output = Response> {
    let api = openapi_service();
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    let guarded_state = state.clone();
    let mcp = mcp::service(state.clone(), mcp_streams)
        .compat()
        .around(move |ep, req| mcp::guard::require_bearer(ep, req, guarded_state.clone()));
    let config = state.config.clone();
    Route::new()
        .nest_no_strip("/oauth", api.with(cors()))
        .nest_no_strip("/.well-known", openapi_service().with(cors()))
        .at("/healthz", openapi_service())
        .at("/readyz", openapi_service())
        .at("/metrics", openapi_service())
        .at("/", get(pages::home))
        .at("/login", get(pages::login_form).post(pages::login))
        .at("/signup", get(pages::signup_form).post(pages::signup))
        .at("/logout", post(pages::logout))
        .at("/apps", get(pages::apps::list).post(pages::apps::create))
        .at("/apps/:client_id", get(pages::apps::show).post(pages::apps::update))
        .at("/apps/:client_id/secret", post(pages::apps::rotate_secret))
        .at("/apps/:client_id/delete", post(pages::apps::delete))
        .at("/connections", get(pages::connections::list))
        .at("/connections/revoke", post(pages::connections::revoke))
        .at("/admin", get(pages::admin::page))
        .at("/admin/clients", post(pages::admin::switch_client))
        .at("/admin/users", post(pages::admin::switch_user))
        .at("/assets/style.css", get(pages::stylesheet))
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .at("/mcp", mcp.with(cors()))
        .catch_error(|_: poem::error::NotFoundError| async {
            poem::error::ResponseError::as_response(&crate::error::PageError::not_found())
        })
        .with(CookieJarManager::new())
        .around(limit_body)
        .data(state)
        .around(move |ep, req| rewrite_paths(ep, req, config.clone()))
        .around(observe)
        .map_to_response()
}

/// Browser-based clients (the MCP Inspector, SDKs in a web page) call discovery, registration, the token
/// endpoint and `/mcp` across origins. No credentials: these endpoints authenticate by bearer token or
/// client credentials, never by cookie. Outermost on `/mcp`, so a preflight never meets the bearer guard.
fn cors() -> Cors {
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

/// Maps the other spellings of our routes onto the canonical ones: the issuer's path prefix, the
/// path-inserted well-known URLs (RFC 8414 §3.1, RFC 9728 §3.1) and the root aliases `/authorize`,
/// `/token`, `/register` that 2025-03-26 MCP clients use without metadata.
async fn rewrite_paths<E: Endpoint>(ep: E, mut req: Request, config: Config) -> poem::Result<E::Output> {
    let path = req.uri().path();
    let issuer_path = config.issuer_path();
    let resource_path = config.resource.url().path().trim_end_matches('/').to_owned();
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

/// Refuses bodies over [`MAX_BODY_BYTES`] ([`mcp::MAX_BODY_BYTES`] on `/mcp`) with 413: by
/// `Content-Length` before reading, otherwise by reading at most that much.
async fn limit_body<E: Endpoint>(ep: E, mut req: Request) -> poem::Result<E::Output> {
    let limit = if req.uri().path() == "/mcp" { mcp::MAX_BODY_BYTES } else { MAX_BODY_BYTES };
    let too_large = || poem::Error::from_string("request body too large", StatusCode::PAYLOAD_TOO_LARGE);
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(|v| v.parse::<usize>());
    match declared {
        Some(Ok(len)) if len > limit => return Err(too_large()),
        Some(Ok(_)) => {}
        Some(Err(_)) => {
            return Err(poem::Error::from_string("invalid Content-Length", StatusCode::BAD_REQUEST));
        }
        // Chunked HTTP/1.1 or an HTTP/2 stream without a declared length: read at most the limit.
        None => {
            let body = req.take_body().into_bytes_limit(limit).await.map_err(|_| too_large())?;
            req.set_body(body);
        }
    }
    ep.call(req).await
}

/// Security headers on every response and one log line per request (method, path without the query,
/// status, latency: never a token, code or secret).
async fn observe<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
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
        // No form-action: Chromium applies it to the redirect after the consent POST (see DESIGN.md).
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
    metrics().observe_request(route_label(&path), method.as_str(), status, seconds);
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
