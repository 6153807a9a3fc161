//! The one place the server is assembled; `main` and every test call [`Application::build`] (tests that
//! need a test-only setting call [`Application::build_with`]).
mod http;
pub mod secrets;
mod state;

use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::{BoxEndpoint, TowerCompatExt};
use poem::listener::TcpAcceptor;
use poem::middleware::CookieJarManager;
use poem::{Endpoint, EndpointExt, Request, Response, Route, Server, get, post};
use poem_openapi::OpenApiService;
use tokio_util::sync::CancellationToken;

pub use self::state::{AppState, Overrides, passwords, resource_metadata_url};
use crate::config::Config;
use crate::mcp::fixtures::{FixtureRouters, Fixtures};
use crate::mcp::gateway::front::Front;
use crate::mcp::server::{McpServer, Routers};
use crate::mcp::{self, TransportSettings};
use crate::oauth::api::{DiscoveryApi, OAuthApi};
use crate::ops::OpsApi;
use crate::pages;

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

/// Swagger UI, made at its first request: its page inlines the UI's script and the spec (1.6 MB), memory an
/// instance keeps only once someone reads the docs there.
#[derive(Default)]
struct Docs(std::sync::OnceLock<BoxEndpoint<'static>>);

impl Endpoint for Docs {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        self.0.get_or_init(|| openapi_service().swagger_ui().map_to_response().boxed()).call(req).await
    }
}

pub struct Application {
    state: Arc<AppState>,
}

impl Application {
    /// Connects to the database, applies migrations, loads (or creates) the signing keys. The secrets key
    /// file is made only for a database that holds nothing sealed yet (see [`Application::build_to_serve`]).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Application::build_with(config, Overrides::default()).await
    }

    /// [`Application::build`] for `serve`: the first start of a database, even one from a version that kept
    /// its secrets in plaintext, may make the secrets key file.
    pub async fn build_to_serve(config: Config) -> anyhow::Result<Application> {
        Application::build_with(config, Overrides { serving: true, ..Overrides::default() }).await
    }

    /// [`Application::build`] with settings only tests can give.
    pub async fn build_with(config: Config, overrides: Overrides) -> anyhow::Result<Application> {
        Ok(Application { state: Arc::new(AppState::build(config, overrides).await?) })
    }

    pub fn state(&self) -> &AppState {
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
        let pages = self.state.pages.clone();
        let reload_every = self.state.config.tokens.key_reload_interval;
        let reload = tokio::spawn(async move {
            let mut tick = tokio::time::interval(reload_every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = keys.reload().await {
                    tracing::warn!(error = %e, "reloading signing keys failed");
                }
                // The "Sign in with" buttons of login pages shown by the authorization endpoint (the login page
                // itself reads the providers at every visit).
                pages.refresh_sign_in_providers().await;
            }
        });
        let state = self.state.clone();
        let purge = tokio::spawn(async move {
            // First after one interval, not at start: a purge at start on its own is housekeeping no one
            // waits for, and racing an operator's `purge` (or a test aging rows) it left that one nothing.
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PURGE_INTERVAL, PURGE_INTERVAL);
            loop {
                tick.tick().await;
                state.limits.forget_idle();
                match state.store.purge_expired(state.purge_after).await {
                    Ok(purged) => tracing::debug!(?purged, "purged expired rows"),
                    Err(e) => tracing::warn!(error = %e, "purging expired rows failed"),
                }
            }
        });
        // On Postgres: note changes, revocations and upstream changes announced by every instance.
        let upstream_changes = self.state.mcp.upstream_changes.clone();
        let relay = self.state.mcp.note_events.relay_from_postgres(upstream_changes.clone());
        // The gateway's upstream connections, until shutdown.
        let stop_gateway = CancellationToken::new();
        let gateway = tokio::spawn(self.state.gateway.clone().run(upstream_changes, stop_gateway.clone()));
        let acceptor = http::NoDelay(TcpAcceptor::from_tokio(listener)?);
        tracing::info!(addr = ?poem::listener::Acceptor::local_addr(&acceptor), "listening");
        // Ends open MCP streams (GET SSE) when shutdown starts, so draining does not wait for them.
        let streams = CancellationToken::new();
        let stop_streams = streams.clone();
        let shutdown = async move {
            shutdown.await;
            stop_streams.cancel();
        };
        let result = Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(routes(&self.state, streams), shutdown, Some(Duration::from_secs(10)))
            .await;
        stop_gateway.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), gateway).await;
        reload.abort();
        purge.abort();
        if let Some(relay) = relay {
            relay.abort();
        }
        result
    }
}

/// The MCP endpoint: rmcp's service for the gateway's front (the built-in server, wrapped by the
/// conformance fixtures when they are on, and the upstreams), behind the bearer guard.
fn mcp_endpoint(state: &AppState, streams: CancellationToken) -> poem::endpoint::BoxEndpoint<'static, Response> {
    let server = &state.config.server;
    let settings = || TransportSettings {
        allowed_hosts: server.allowed_hosts(),
        allowed_origins: server.allowed_origins_with_ports(),
        session_ttl: state.config.mcp.session_ttl,
    };
    let guard = state.guard.clone();
    let context = state.mcp.clone();
    let gateway = state.gateway.clone();
    let builtins = state.config.mcp.builtin_tools;
    let routers = Routers::new();
    if state.config.mcp.conformance_fixtures {
        let fixtures = FixtureRouters::new();
        let factory = move || {
            let inner = Fixtures::new(McpServer::new(context.clone(), &routers), &fixtures);
            Front::new(inner, gateway.clone(), context.clone(), builtins)
        };
        let service = mcp::service(factory, state.store.clone(), settings(), streams).compat();
        service.around(move |ep, req| mcp::guard::require_bearer(ep, req, guard.clone())).boxed()
    } else {
        let factory =
            move || Front::new(McpServer::new(context.clone(), &routers), gateway.clone(), context.clone(), builtins);
        let service = mcp::service(factory, state.store.clone(), settings(), streams).compat();
        service.around(move |ep, req| mcp::guard::require_bearer(ep, req, guard.clone())).boxed()
    }
}

/// Every route of the server. `mcp_streams` ends the MCP service's open streams. `/mcp` sits outside the
/// pages' and OAuth endpoints' request data: its hot path carries none of it.
pub fn routes(state: &AppState, mcp_streams: CancellationToken) -> impl Endpoint<Output = Response> + use<> {
    let api = openapi_service();
    let spec = api.spec_endpoint();
    let paths = Arc::new(http::Paths {
        issuer: state.config.server.issuer_path().to_owned(),
        resource: state.config.server.resource.path().trim_end_matches('/').to_owned(),
    });
    let metrics = Arc::new(state.metrics.clone());
    let site = Route::new()
        .nest_no_strip("/oauth", api.with(http::cors()))
        .nest_no_strip("/.well-known", openapi_service().with(http::cors()))
        .at("/healthz", openapi_service())
        .at("/readyz", openapi_service())
        .at("/metrics", openapi_service())
        .at("/", get(pages::home))
        .at("/login", get(pages::account::login_form).post(pages::account::login))
        .at("/signup", get(pages::account::signup_form).post(pages::account::signup))
        .at("/logout", post(pages::account::logout))
        .at("/apps", get(pages::apps::list).post(pages::apps::create))
        .at("/apps/:client_id", get(pages::apps::show).post(pages::apps::update))
        .at("/apps/:client_id/secret", post(pages::apps::rotate_secret))
        .at("/apps/:client_id/delete", post(pages::apps::delete))
        .at("/connections", get(pages::connections::list))
        .at("/connections/revoke", post(pages::connections::revoke))
        .at("/connections/connect", get(pages::connections::connect_page).post(pages::connections::connect))
        .at("/connections/callback/:upstream", get(pages::connections::callback))
        .at("/connections/disconnect", post(pages::connections::disconnect))
        .at("/connections/values", post(pages::connections::save_values))
        .at("/login/idp/:name", get(pages::sign_in::start).post(pages::sign_in::link))
        .at("/login/idp/:name/callback", get(pages::sign_in::callback))
        .at("/login/idp/:name/unlink", post(pages::sign_in::unlink))
        .at("/admin", get(pages::admin::page))
        .at("/admin/clients", post(pages::admin::switch_client))
        .at("/admin/users", post(pages::admin::switch_user))
        .at("/admin/idps", post(pages::admin::switch_idp))
        .at("/admin/upstreams", post(pages::admin::change_upstream))
        .at("/admin/policy", post(pages::admin::change_policy))
        .at("/admin/groups", post(pages::admin::change_member))
        .at("/assets/style.css", get(pages::stylesheet))
        .nest("/docs", Docs::default())
        .at("/openapi.json", spec)
        .catch_error(|_: poem::error::NotFoundError| async {
            poem::error::ResponseError::as_response(&pages::error::PageError::not_found())
        })
        .with(CookieJarManager::new())
        .data(Arc::new(state.discovery.clone()))
        .data(Arc::new(state.authorization.clone()))
        .data(Arc::new(state.token_service.clone()))
        .data(Arc::new(state.registration.clone()))
        .data(Arc::new(state.pages.clone()))
        .data(Arc::new(state.pages.sessions.clone()))
        .data(Arc::new(state.ops.clone()))
        .data(Arc::new(state.trusted_proxies.clone()));
    Route::new()
        .at("/mcp", mcp_endpoint(state, mcp_streams).with(http::cors()))
        .nest_no_strip("/", site)
        .around(http::limit_body)
        .around(move |ep, req| http::rewrite_paths(ep, req, paths.clone()))
        .around(move |ep, req| http::observe(ep, req, metrics.clone()))
        .map_to_response()
}
