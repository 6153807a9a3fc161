//! The assembly: every service built once from the configuration, each handed the few values it needs.
use std::collections::HashSet;
use std::sync::Arc;

use crate::config::{Config, ConfigError, HashCost, LimitName, RateLimitSetting};
use crate::crypto::{PasswordHashCost, Passwords, SecretsKey};
use crate::domain::identity_providers::Providers;
use crate::domain::keys::KeyRing;
use crate::domain::policy::Policy;
use crate::domain::registration::Registrar;
use crate::domain::resource::Resource;
use crate::domain::scope::ScopeCatalog;
use crate::domain::sessions::Sessions;
use crate::domain::tokens::AccessTokens;
use crate::domain::upstream_accounts::UpstreamAccounts;
use crate::domain::upstreams::Upstreams;
use crate::limits::{Limits, RateLimits, TrustedProxies};
use crate::mcp::events::{ListChanges, NoteEvents};
use crate::mcp::fixtures::Fixtures;
use crate::mcp::gateway::audit::AuditWriter;
use crate::mcp::gateway::personal::ProcessBudget;
use crate::mcp::gateway::{Gateway, GatewayParts};
use crate::mcp::guard::Guard;
use crate::mcp::server::McpServer;
use crate::mcp::tasks::{TaskSettings, Tasks};
use crate::mcp::trust::Trust;
use crate::mcp::{McpContext, ToolScopes};
use crate::metrics::Metrics;
use crate::oauth::authorize::Authorization;
use crate::oauth::client_auth::ClientAuthenticator;
use crate::oauth::id_jag::EnterpriseAssertions;
use crate::oauth::metadata::Discovery;
use crate::oauth::metadata_document::MetadataDocuments;
use crate::oauth::register::RegistrationService;
use crate::oauth::token::{TokenLifetimes, TokenService};
use crate::ops::Ops;
use crate::pages::Pages;
use crate::pages::views::HtmlViews;
use crate::store::{PurgeAfter, Store};

/// Settings only tests can give (never read from the environment or the command line).
#[derive(Default)]
pub struct Overrides {
    /// Started to serve: may make the secrets key file on a database that already holds plaintext secrets.
    pub serving: bool,
    /// Trust a test CA and reach a local TLS server when fetching Client ID Metadata Documents.
    #[cfg(feature = "test-trust")]
    pub test_trust: Option<crate::oauth::metadata_document::TestTrust>,
}

/// Everything the application is made of.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub metrics: Metrics,
    pub tokens: AccessTokens,
    pub limits: Arc<Limits>,
    pub trusted_proxies: TrustedProxies,
    pub registrar: Registrar,
    pub discovery: Discovery,
    pub authorization: Authorization,
    pub token_service: TokenService,
    pub registration: RegistrationService,
    pub pages: Pages,
    pub ops: Ops,
    pub mcp: Arc<McpContext>,
    pub guard: Arc<Guard>,
    pub gateway: Arc<Gateway>,
    pub upstreams: Upstreams,
    /// Every scope offered (the upstreams add theirs).
    pub scopes: ScopeCatalog,
    pub purge_after: PurgeAfter,
}

impl AppState {
    /// Connects to the database, applies migrations, loads (or creates) the signing keys, and builds the
    /// services.
    pub async fn build(config: Config, overrides: Overrides) -> anyhow::Result<AppState> {
        let store = Store::open(&config.database).await?;
        store.migrate().await?;
        let server = &config.server;
        let resource =
            Resource::parse(server.resource.as_str()).map_err(|e| ConfigError::new("MCP_RESOURCE_URI", e))?;
        let keep_retired = config.tokens.access_token_ttl + config.tokens.key_reload_interval;
        let may_create = overrides.serving || super::secrets::holds_nothing_sealed(&store).await?;
        let secrets = super::secrets::secrets_key(&config.secrets, may_create)?;
        let keys =
            KeyRing::load(store.clone(), secrets.clone(), config.tokens.jwt_secret.as_deref(), keep_retired).await?;
        let tokens = AccessTokens::new(keys, server.issuer.clone(), resource.as_str().to_owned());
        let passwords = passwords(config.accounts.password_hash_cost);
        let metrics = Metrics::new();
        let limits = Arc::new(Limits::new(rate_limits(&config.limits.rate_limits).as_ref()));
        let sessions = Sessions::new(
            store.clone(),
            server.secure_cookies(),
            config.accounts.session_ttl,
            config.accounts.admin_group.clone(),
        );
        let scopes = ScopeCatalog::default();
        let upstreams = Upstreams::load(store.clone(), scopes.clone(), secrets.clone()).await?;
        let upstream_accounts = UpstreamAccounts::new(store.clone(), secrets.clone(), &server.issuer);
        let providers = Providers::new()?;
        let policy = Policy::new(store.clone(), config.mcp.guard_cache_ttl);
        let registrar = Registrar::new(
            store.clone(),
            scopes.clone(),
            config.accounts.client_unused_ttl,
            config.accounts.dcr_client_credentials,
        );
        let documents = metadata_documents(&store, &limits, overrides)?;
        let clients = ClientAuthenticator::new(
            store.clone(),
            limits.clone(),
            passwords.clone(),
            documents.clone(),
            &server.issuer,
        );
        let pages = Pages {
            base: server.issuer_path().to_owned(),
            signup: config.accounts.signup,
            resource: resource.as_str().to_owned(),
            store: store.clone(),
            sessions: sessions.clone(),
            passwords: passwords.clone(),
            limits: limits.clone(),
            registrar: registrar.clone(),
            metrics: metrics.clone(),
            upstreams: upstreams.clone(),
            upstream_accounts: upstream_accounts.clone(),
            admin_programs: config.mcp.admin_page_programs,
            issuer: server.issuer.clone(),
            providers: providers.clone(),
            secrets: secrets.clone(),
            password_login: config.accounts.password_login,
            sign_in_providers: Arc::default(),
        };
        pages.refresh_sign_in_providers().await;
        let authorization = Authorization {
            store: store.clone(),
            sessions,
            documents,
            views: Arc::new(HtmlViews(pages.clone())),
            issuer: server.issuer.clone(),
            base: server.issuer_path().to_owned(),
            resource: resource.clone(),
            scopes: scopes.clone(),
            code_ttl: config.tokens.auth_code_ttl,
            policy: policy.clone(),
            upstreams: upstreams.clone(),
        };
        let lifetimes = TokenLifetimes {
            access_token: config.tokens.access_token_ttl,
            refresh_token: config.tokens.refresh_token_ttl,
            refresh_grace: config.tokens.refresh_grace,
        };
        let token_service = TokenService {
            store: store.clone(),
            tokens: tokens.clone(),
            clients: clients.clone(),
            metrics: metrics.clone(),
            resource: resource.clone(),
            issuer: server.issuer.clone(),
            lifetimes,
            scopes: scopes.clone(),
            dynamic_machine_clients: config.accounts.dcr_client_credentials,
            enterprise: EnterpriseAssertions::new(
                store.clone(),
                providers.clone(),
                server.issuer.clone(),
                resource.clone(),
            ),
        };
        let registration =
            RegistrationService::new(registrar.clone(), store.clone(), clients, limits.clone(), server.issuer.clone());
        let inputs = McpInputs {
            store: &store,
            tokens: &tokens,
            resource: &resource,
            scopes: &scopes,
            upstreams: &upstreams,
            metrics: &metrics,
            secrets: &secrets,
            accounts: &upstream_accounts,
            policy: &policy,
        };
        let (mcp, guard, gateway) = mcp_parts(&config, inputs);
        let purge_after = PurgeAfter {
            mcp_session: config.mcp.session_ttl,
            access_token: config.tokens.access_token_ttl,
            refresh_token: config.tokens.refresh_token_ttl,
            audit_event: config.database.audit_log_ttl,
        };
        Ok(AppState {
            discovery: Discovery {
                issuer: server.issuer.clone(),
                resource,
                tokens: tokens.clone(),
                scopes: scopes.clone(),
            },
            ops: Ops {
                store: store.clone(),
                metrics: metrics.clone(),
                metrics_token: server.metrics_token.clone(),
                upstreams: upstreams.clone(),
            },
            trusted_proxies: TrustedProxies(server.trusted_proxies.clone()),
            config,
            store,
            metrics,
            tokens,
            limits,
            registrar,
            authorization,
            token_service,
            registration,
            pages,
            mcp,
            guard,
            gateway,
            upstreams,
            scopes,
            purge_after,
        })
    }
}

/// What the MCP servers share, the guard in front of them, and the gateway behind them.
/// The services the MCP face is built from.
struct McpInputs<'a> {
    store: &'a Store,
    tokens: &'a AccessTokens,
    resource: &'a Resource,
    scopes: &'a ScopeCatalog,
    upstreams: &'a Upstreams,
    metrics: &'a Metrics,
    secrets: &'a Arc<SecretsKey>,
    accounts: &'a Arc<UpstreamAccounts>,
    policy: &'a Arc<Policy>,
}

fn mcp_parts(config: &Config, inputs: McpInputs<'_>) -> (Arc<McpContext>, Arc<Guard>, Arc<Gateway>) {
    let McpInputs { store, tokens, resource, scopes, upstreams, metrics, secrets, accounts, policy } = inputs;
    let context = Arc::new(McpContext {
        store: store.clone(),
        note_events: NoteEvents::new(store),
        list_changes: ListChanges::default(),
        open_streams: Default::default(),
        max_streams_per_user: usize::try_from(config.mcp.max_streams_per_user).unwrap_or(usize::MAX),
        upstream_changes: Arc::default(),
        tasks: Tasks::new(
            store.clone(),
            secrets.clone(),
            format!("{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]),
            TaskSettings {
                ttl: config.mcp.tasks_ttl,
                max_per_user: config.mcp.tasks_max_per_user,
                max_result_bytes: usize::try_from(config.mcp.tasks_max_result_bytes).unwrap_or(usize::MAX),
            },
        ),
    });
    let mut tool_scopes = ToolScopes::of(&[&McpServer::tools()]);
    let mut prompts: HashSet<String> = McpServer::prompt_names();
    if config.mcp.conformance_fixtures {
        tool_scopes = tool_scopes.with(&Fixtures::tools());
        prompts.extend(Fixtures::prompt_names());
    }
    if !config.mcp.builtin_tools {
        tool_scopes = tool_scopes.without_builtins();
        prompts.clear();
    }
    let gateway = Gateway::new(GatewayParts {
        upstreams: upstreams.clone(),
        reserved_tools: tool_scopes.builtin_names(),
        reserved_prompts: prompts,
        tool_scopes: tool_scopes.clone(),
        list_changes: context.list_changes.clone(),
        metrics: metrics.clone(),
        audit: AuditWriter::start(store.clone()),
        reload_every: config.mcp.upstream_reload,
        rounds_key: secrets.derive("gateway input_required rounds"),
        accounts: accounts.clone(),
        budget: ProcessBudget::new(
            usize::try_from(config.mcp.upstream_personal_max).unwrap_or(usize::MAX),
            config.mcp.upstream_personal_idle,
        ),
        policy: policy.clone(),
    });
    let guard = Arc::new(Guard {
        tokens: tokens.clone(),
        trust: Trust::new(store.clone(), config.mcp.guard_cache_ttl),
        store: store.clone(),
        tool_scopes,
        scopes: scopes.clone(),
        resource_metadata_url: resource_metadata_url(resource),
        session_ttl: config.mcp.session_ttl,
        max_sessions_per_user: config.mcp.max_sessions_per_user,
    });
    (context, guard, gateway)
}

/// Password hashing at the configured cost (`PASSWORD_HASH_COST`).
pub fn passwords(cost: HashCost) -> Passwords {
    Passwords::new(match cost {
        HashCost::Default => PasswordHashCost::Default,
        HashCost::Low => PasswordHashCost::Low,
    })
}

/// The limits `RATE_LIMITS` asks for: the defaults with its overrides, or none when it is `off`.
fn rate_limits(setting: &RateLimitSetting) -> Option<RateLimits> {
    let RateLimitSetting::On(overrides) = setting else {
        return None;
    };
    let mut limits = RateLimits::default();
    for o in overrides {
        let rate = crate::limits::Rate { count: o.count, per: o.per };
        match o.name {
            LimitName::Register => limits.register = rate,
            LimitName::MetadataFetch => limits.metadata_fetch = rate,
            LimitName::Login => limits.login = rate,
            LimitName::Token => limits.token = rate,
            LimitName::Signup => limits.signup = rate,
        }
    }
    Some(limits)
}

#[cfg(feature = "test-trust")]
fn metadata_documents(store: &Store, limits: &Arc<Limits>, overrides: Overrides) -> anyhow::Result<MetadataDocuments> {
    match &overrides.test_trust {
        Some(trust) => MetadataDocuments::with_test_trust(store.clone(), limits.clone(), trust),
        None => MetadataDocuments::new(store.clone(), limits.clone()),
    }
}

#[cfg(not(feature = "test-trust"))]
fn metadata_documents(store: &Store, limits: &Arc<Limits>, _: Overrides) -> anyhow::Result<MetadataDocuments> {
    MetadataDocuments::new(store.clone(), limits.clone())
}

/// The RFC 9728 metadata URL that `WWW-Authenticate` points clients to (RFC 9728 §3.1: the well-known path
/// inserted before the resource's path).
pub fn resource_metadata_url(resource: &Resource) -> String {
    let url = resource.url();
    let path = url.path().trim_end_matches('/');
    format!("{}/.well-known/oauth-protected-resource{path}", url.origin().ascii_serialization())
}
