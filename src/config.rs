//! Configuration from the environment (and `.env`), validated once at start and handed down in sections.
//!
//! Every variable is declared once below, with its default and its parser (clap's derive, one argument per
//! variable, named by its `env`). A problem is reported as one line that names the variable, so a bad value
//! stops the start with a message an operator can act on. Nothing else reads the environment; the sections
//! are plain values, and each part of the program receives the few it needs.
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use url::Url;

#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError { variable: variable.to_owned(), problem: problem.into() }
    }
}

/// The whole configuration, by section.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub database: Database,
    pub tokens: Tokens,
    pub accounts: Accounts,
    pub mcp: Mcp,
    pub limits: Limits,
    pub logging: Logging,
    pub secrets: Secrets,
}

/// Where the server listens and how it is reached.
#[derive(Debug, Clone)]
pub struct Server {
    pub bind: IpAddr,
    pub port: u16,
    /// The issuer identifier (RFC 8414 §2): the public origin, optionally with a path, no trailing slash.
    pub issuer: String,
    /// The canonical URI of the MCP server (RFC 8707 resource, RFC 9728 `resource`).
    pub resource: Url,
    /// Browser origins allowed to call `/mcp`, each `scheme://host[:port]` without a trailing slash.
    pub allowed_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the real client address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// When set, `/metrics` answers only to `Authorization: Bearer <this>`.
    pub metrics_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub url: String,
    /// Largest number of pooled connections of this instance.
    pub max_connections: u32,
    /// How long to wait for a connection (to connect, and to get one from the pool).
    pub timeout: Duration,
    /// How long audit events are kept.
    pub audit_log_ttl: Duration,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Tokens {
    /// When set, access tokens are HS256 with this secret instead of ES256 with keys in the database.
    #[arg(long = "jwt-secret", env = "JWT_SECRET", value_parser = at_least::<32>)]
    pub jwt_secret: Option<String>,
    #[arg(long = "access-token-ttl", env = "ACCESS_TOKEN_TTL", default_value = "3600", value_parser = secs::<60, 86_400>)]
    pub access_token_ttl: Duration,
    #[arg(long = "refresh-token-ttl", env = "REFRESH_TOKEN_TTL", default_value = "2592000", value_parser = secs::<300, 31_536_000>)]
    pub refresh_token_ttl: Duration,
    /// How long after a rotation a caller presenting the rotated refresh token gets the same, still unused,
    /// successor back instead of being treated as reuse (0 turns it off).
    #[arg(long = "refresh-grace-secs", env = "REFRESH_GRACE_SECS", default_value = "5", value_parser = secs::<0, 60>)]
    pub refresh_grace: Duration,
    #[arg(long = "auth-code-ttl", env = "AUTH_CODE_TTL", default_value = "60", value_parser = secs::<1, 60>)]
    pub auth_code_ttl: Duration,
    /// How often every instance re-reads the signing keys, so a rotation elsewhere is picked up.
    #[arg(long = "key-reload-secs", env = "KEY_RELOAD_SECS", default_value = "60", value_parser = secs::<1, 3600>)]
    pub key_reload_interval: Duration,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Accounts {
    #[arg(long = "session-ttl", env = "SESSION_TTL", default_value = "43200", value_parser = secs::<60, 2_592_000>)]
    pub session_ttl: Duration,
    #[arg(long = "signup", env = "SIGNUP", default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub signup: bool,
    /// Offer the username and password form on the login page (off: people sign in only through an identity
    /// provider).
    #[arg(long = "password-login", env = "PASSWORD_LOGIN", default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub password_login: bool,
    /// Members of this group (from an identity provider's groups claim, or local) are admins.
    #[arg(long = "admin-group", env = "ADMIN_GROUP")]
    pub admin_group: Option<String>,
    #[arg(long = "password-hash-cost", env = "PASSWORD_HASH_COST", default_value = "default", value_parser = hash_cost)]
    pub password_hash_cost: HashCost,
    /// A dynamically registered client that obtains no token within this time is deleted.
    #[arg(long = "client-unused-ttl", env = "CLIENT_UNUSED_TTL", default_value = "604800", value_parser = secs::<60, 31_536_000>)]
    pub client_unused_ttl: Duration,
    /// Whether anonymous dynamic registration may register client_credentials (machine) clients.
    #[arg(long = "dcr-client-credentials", env = "DCR_CLIENT_CREDENTIALS", default_value = "off", value_parser = on_off, action = clap::ArgAction::Set)]
    pub dcr_client_credentials: bool,
}

/// How expensive argon2id password hashing is (`PASSWORD_HASH_COST`). `Low` is for tests only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashCost {
    Default,
    Low,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Mcp {
    /// A legacy MCP session unused for this long ends (404) and is purged.
    #[arg(id = "mcp_session_ttl", long = "mcp-session-ttl", env = "MCP_SESSION_TTL", default_value = "3600", value_parser = secs::<60, 604_800>)]
    pub session_ttl: Duration,
    /// How long the guard trusts what it read of a grant or a legacy session (`GUARD_CACHE_SECS`).
    #[arg(long = "guard-cache-secs", env = "GUARD_CACHE_SECS", default_value = "1", value_parser = secs::<0, 60>)]
    pub guard_cache_ttl: Duration,
    /// Most live legacy MCP sessions one person may hold; the next `initialize` is refused.
    #[arg(long = "mcp-max-sessions-per-user", env = "MCP_MAX_SESSIONS_PER_USER", default_value = "20", value_parser = count::<1, 10_000>)]
    pub max_sessions_per_user: u64,
    /// Most open 2026-07-28 notification streams one person may hold per instance.
    #[arg(long = "mcp-max-streams-per-user", env = "MCP_MAX_STREAMS_PER_USER", default_value = "20", value_parser = count::<1, 10_000>)]
    pub max_streams_per_user: u64,
    /// Serve the fixture tools, resources and prompts of the MCP conformance suite.
    #[arg(long = "mcp-conformance-fixtures", env = "MCP_CONFORMANCE_FIXTURES", default_value = "off", value_parser = on_off, action = clap::ArgAction::Set)]
    pub conformance_fixtures: bool,
    /// Serve the built-in tools (whoami, notes), their resources and prompt beside the upstreams.
    #[arg(long = "mcp-builtin-tools", env = "MCP_BUILTIN_TOOLS", default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub builtin_tools: bool,
    /// How often each instance re-reads the upstream configuration without being told (on Postgres, a
    /// change is also announced at once).
    #[arg(long = "upstream-reload-secs", env = "UPSTREAM_RELOAD_SECS", default_value = "5", value_parser = secs::<1, 3600>)]
    pub upstream_reload: Duration,
    /// Whether admins may add programs (stdio upstreams) on the admin page; off leaves that to the CLI.
    #[arg(long = "admin-page-programs", env = "ADMIN_PAGE_PROGRAMS", default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub admin_page_programs: bool,
    /// A person's own process of a stdio upstream with per-person secrets (`--env-per-user`) stops after this
    /// long without a call.
    #[arg(long = "upstream-personal-idle-secs", env = "UPSTREAM_PERSONAL_IDLE_SECS", default_value = "600", value_parser = secs::<1, 86_400>)]
    pub upstream_personal_idle: Duration,
    /// Most per-person processes (of every such upstream) one instance runs at once.
    #[arg(long = "upstream-personal-max", env = "UPSTREAM_PERSONAL_MAX", default_value = "32", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub upstream_personal_max: u32,
    /// A task (and its result) is kept this long from its creation, finished or not.
    #[arg(long = "tasks-ttl-secs", env = "TASKS_TTL_SECS", default_value = "3600", value_parser = secs::<60, 604_800>)]
    pub tasks_ttl: Duration,
    /// Most tasks one person may have working or waiting for input at once.
    #[arg(long = "tasks-max-per-user", env = "TASKS_MAX_PER_USER", default_value = "20", value_parser = count::<1, 10_000>)]
    pub tasks_max_per_user: u64,
    /// The largest result a task keeps, in bytes of JSON; a larger one fails the task.
    #[arg(long = "tasks-max-result-bytes", env = "TASKS_MAX_RESULT_BYTES", default_value = "4194304", value_parser = count::<1024, 67_108_864>)]
    pub tasks_max_result_bytes: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// `RATE_LIMITS`: `None` when off, else the overrides of the defaults (none for `on`).
    #[arg(long = "rate-limits", env = "RATE_LIMITS", default_value = "on", value_parser = rate_limits)]
    pub rate_limits: RateLimitSetting,
}

/// `RATE_LIMITS`: off, or the defaults with these overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitSetting {
    Off,
    On(Vec<RateOverride>),
}

/// One `name=count/unit` of `RATE_LIMITS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateOverride {
    pub name: LimitName,
    pub count: u32,
    pub per: Duration,
}

/// The limits `RATE_LIMITS` can change (see `limits::RateLimits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitName {
    Register,
    MetadataFetch,
    Login,
    Token,
    Signup,
}

const LIMIT_NAMES: &[(&str, LimitName)] = &[
    ("register", LimitName::Register),
    ("metadata_fetch", LimitName::MetadataFetch),
    ("login", LimitName::Login),
    ("token", LimitName::Token),
    ("signup", LimitName::Signup),
];

/// Where the key that seals stored secrets comes from; neither set: `mcp-gateway.key` in the working
/// directory, created on first start.
#[derive(Clone, clap::Args)]
pub struct Secrets {
    /// 64 hex characters.
    #[arg(long = "secrets-key", env = "SECRETS_KEY", value_parser = hex_key, conflicts_with = "key_file", hide_env_values = true)]
    pub key: Option<String>,
    /// A file holding the 64 hex characters.
    #[arg(long = "secrets-key-file", env = "SECRETS_KEY_FILE")]
    pub key_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("key", &self.key.as_ref().map(|_| "…"))
            .field("key_file", &self.key_file)
            .finish()
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct Logging {
    #[arg(long = "log-format", env = "LOG_FORMAT", default_value = "pretty", value_parser = log_format)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The variables whose defaults depend on others (the issuer on the port, the resource on the issuer…),
/// read raw and resolved by [`Config::resolve`].
#[derive(Debug, Clone, clap::Args)]
struct Raw {
    #[arg(long = "port", env = "PORT", default_value = "3000", value_parser = port)]
    port: u16,
    #[arg(long = "bind", env = "BIND", default_value = "127.0.0.1", value_parser = ip_address)]
    bind: IpAddr,
    #[arg(long = "auth-issuer", env = "AUTH_ISSUER", value_parser = issuer)]
    issuer: Option<String>,
    #[arg(long = "mcp-resource-uri", env = "MCP_RESOURCE_URI", value_parser = resource)]
    resource: Option<Url>,
    #[arg(long = "allowed-origins", env = "ALLOWED_ORIGINS", value_parser = origins)]
    allowed_origins: Option<Origins>,
    #[arg(long = "trusted-proxies", env = "TRUSTED_PROXIES", value_parser = proxies)]
    trusted_proxies: Option<Proxies>,
    #[arg(long = "metrics-token", env = "METRICS_TOKEN", value_parser = at_least::<16>)]
    metrics_token: Option<String>,
    #[arg(long = "database-url", env = "DATABASE_URL", default_value = "sqlite://mcp-gateway.db?mode=rwc", value_parser = database_url)]
    database_url: String,
    #[arg(long = "database-max-connections", env = "DATABASE_MAX_CONNECTIONS", value_parser = count::<1, 1000>)]
    database_max_connections: Option<u64>,
    #[arg(long = "database-timeout", env = "DATABASE_TIMEOUT", default_value = "10", value_parser = secs::<1, 300>)]
    database_timeout: Duration,
    #[arg(long = "audit-log-ttl", env = "AUDIT_LOG_TTL", default_value = "7776000", value_parser = secs::<86_400, 315_360_000>)]
    audit_log_ttl: Duration,
}

#[derive(Debug, Clone, clap::Parser)]
#[command(no_binary_name = true)]
struct Variables {
    #[command(flatten)]
    raw: Raw,
    #[command(flatten)]
    tokens: Tokens,
    #[command(flatten)]
    accounts: Accounts,
    #[command(flatten)]
    mcp: Mcp,
    #[command(flatten)]
    limits: Limits,
    #[command(flatten)]
    logging: Logging,
    #[command(flatten)]
    secrets: Secrets,
}

impl Config {
    /// Reads the process environment, after loading `.env` from the working directory if there is one.
    pub fn from_env() -> Result<Config, ConfigError> {
        // A missing .env is normal; a malformed one is worth stopping for.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::new("DOTENV", format!(".env could not be read: {e}"))),
        }
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from a lookup of variable names, so tests can pass values directly. Empty
    /// values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        // Each variable is one argument of the declaration above, given as `--long=value`; the process
        // environment clap would read is taken out, so the lookup is the only source.
        let command = Variables::command().mut_args(|arg| arg.env(None));
        let mut variable_of = HashMap::new();
        let mut args = Vec::new();
        for arg in Variables::command().get_arguments() {
            let (Some(env), Some(long)) = (arg.get_env().and_then(|e| e.to_str()), arg.get_long()) else {
                continue;
            };
            variable_of.insert(long.to_owned(), env.to_owned());
            if let Some(value) = lookup(env).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                args.push(format!("--{long}={value}"));
            }
        }
        let matches = command.try_get_matches_from(args).map_err(|e| explain(&e, &variable_of))?;
        let variables = Variables::from_arg_matches(&matches).map_err(|e| explain(&e, &variable_of))?;
        Config::resolve(variables)
    }

    fn resolve(v: Variables) -> Result<Config, ConfigError> {
        let raw = v.raw;
        let issuer = raw.issuer.unwrap_or_else(|| format!("http://localhost:{}", raw.port));
        let resource = match raw.resource {
            Some(url) => url,
            None => resource(&format!("{issuer}/mcp")).map_err(|e| ConfigError::new("MCP_RESOURCE_URI", e))?,
        };
        let sqlite = raw.database_url.starts_with("sqlite:");
        // SQLite writes one transaction at a time: more connections only race for its write lock.
        let max_connections = raw.database_max_connections.map_or(if sqlite { 4 } else { 10 }, |n| n as u32);
        if max_connections < 2 && !sqlite {
            // One connection stays with the LISTEN/NOTIFY relay on Postgres.
            return Err(ConfigError::new("DATABASE_MAX_CONNECTIONS", "must be at least 2 with Postgres"));
        }
        Ok(Config {
            server: Server {
                bind: raw.bind,
                port: raw.port,
                allowed_origins: raw.allowed_origins.map_or_else(|| vec![origin_of(&issuer)], |o| o.0),
                issuer,
                resource,
                trusted_proxies: raw.trusted_proxies.map(|p| p.0).unwrap_or_default(),
                metrics_token: raw.metrics_token,
            },
            database: Database {
                url: raw.database_url,
                max_connections,
                timeout: raw.database_timeout,
                audit_log_ttl: raw.audit_log_ttl,
            },
            tokens: v.tokens,
            accounts: v.accounts,
            mcp: v.mcp,
            limits: v.limits,
            logging: v.logging,
            secrets: v.secrets,
        })
    }
}

impl Server {
    /// The path part of the issuer (`""` for `https://as.example`, `"/tenant"` for `https://as.example/tenant`).
    pub fn issuer_path(&self) -> &str {
        let after_scheme = self.issuer.split_once("://").map_or("", |(_, rest)| rest);
        after_scheme.find('/').map_or("", |i| &after_scheme[i..])
    }

    /// Whether cookies must carry `Secure`: the browser reaches us over https.
    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// `Host` values `/mcp` answers to (DNS-rebinding protection): the hosts of the resource and issuer
    /// URIs, with and without port, plus the loopback names when either is local.
    pub fn allowed_hosts(&self) -> Vec<String> {
        let mut hosts = Vec::new();
        for url in [Some(self.resource.clone()), Url::parse(&self.issuer).ok()].into_iter().flatten() {
            if let Some(host) = url.host_str() {
                hosts.push(host.to_owned());
                if let Some(port) = url.port() {
                    hosts.push(format!("{host}:{port}"));
                }
                if matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
                    hosts.extend(["localhost", "127.0.0.1", "::1"].map(str::to_owned));
                }
            }
        }
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// [`Server::allowed_origins`] each with its port written out (`https://app.example:443`): an origin
    /// without a port would match any port of that host in the MCP transport's check.
    pub fn allowed_origins_with_ports(&self) -> Vec<String> {
        self.allowed_origins
            .iter()
            .filter_map(|o| Url::parse(o).ok())
            .filter_map(|u| Some(format!("{}://{}:{}", u.scheme(), u.host_str()?, u.port_or_known_default()?)))
            .collect()
    }
}

/// A clap error as one line naming the variable.
fn explain(error: &clap::Error, variable_of: &HashMap<String, String>) -> ConfigError {
    use clap::error::{ContextKind, ContextValue};
    let argument = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let long = argument.trim_start_matches("--").split([' ', '=']).next().unwrap_or_default();
    let variable = variable_of.get(long).cloned().unwrap_or_else(|| "configuration".to_owned());
    let problem = match std::error::Error::source(error) {
        Some(cause) => cause.to_string(),
        None => error.kind().to_string(),
    };
    ConfigError { variable, problem }
}

fn secs<const MIN: u64, const MAX: u64>(v: &str) -> Result<Duration, String> {
    let value = v.parse::<u64>().map_err(|_| format!("'{v}' is not a whole number of seconds"))?;
    if !(MIN..=MAX).contains(&value) {
        return Err(format!("{value} is outside {MIN}..={MAX} seconds"));
    }
    Ok(Duration::from_secs(value))
}

fn count<const MIN: u64, const MAX: u64>(v: &str) -> Result<u64, String> {
    let value = v.parse::<u64>().map_err(|_| format!("'{v}' is not a whole number"))?;
    if !(MIN..=MAX).contains(&value) {
        return Err(format!("{value} is outside {MIN}..={MAX}"));
    }
    Ok(value)
}

/// The problem is said without the value: it is a key.
fn hex_key(v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "must be 64 hex characters (`mcp-gateway secrets generate-key` prints one); the value given has {}",
            v.len()
        ))
    }
}

fn at_least<const N: usize>(v: &str) -> Result<String, String> {
    if v.len() < N { Err(format!("must be at least {N} characters")) } else { Ok(v.to_owned()) }
}

fn on_off(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err(format!("'{v}' is not one of on, off")),
    }
}

fn port(v: &str) -> Result<u16, String> {
    v.parse::<u16>().map_err(|_| format!("'{v}' is not a port number (0-65535)"))
}

fn ip_address(v: &str) -> Result<IpAddr, String> {
    v.parse().map_err(|_| format!("'{v}' is not an IP address"))
}

/// RFC 8414 §2: https (or http for local development), no query, no fragment; kept without a trailing slash.
fn issuer(v: &str) -> Result<String, String> {
    let url = Url::parse(v).map_err(|e| format!("'{v}' is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http(s) URL with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err("must not have a query, fragment or user info".into());
    }
    Ok(v.trim_end_matches('/').to_owned())
}

/// An absolute http(s) URI without fragment or user info (RFC 8707 §2).
fn resource(v: &str) -> Result<Url, String> {
    let url = Url::parse(v).map_err(|e| format!("'{v}' is not an absolute URI: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("'{v}' is not an http(s) URI"));
    }
    if url.fragment().is_some() || v.contains('#') || !url.username().is_empty() || url.password().is_some() {
        return Err(format!("'{v}' must not contain a fragment or user info"));
    }
    Ok(url)
}

fn database_url(v: &str) -> Result<String, String> {
    if ["sqlite:", "postgres://", "postgresql://"].iter().any(|p| v.starts_with(p)) {
        Ok(v.to_owned())
    } else {
        Err("must start with sqlite:, postgres:// or postgresql://".into())
    }
}

#[derive(Debug, Clone)]
struct Origins(Vec<String>);

fn origins(v: &str) -> Result<Origins, String> {
    let parse = |o: &str| {
        Url::parse(o)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.path() == "/")
            .map(|_| o.trim_end_matches('/').to_owned())
            .ok_or_else(|| format!("'{o}' is not an origin like https://app.example"))
    };
    Ok(Origins(v.split(',').map(str::trim).filter(|o| !o.is_empty()).map(parse).collect::<Result<_, _>>()?))
}

#[derive(Debug, Clone)]
struct Proxies(Vec<ipnet::IpNet>);

fn proxies(v: &str) -> Result<Proxies, String> {
    let parse = |p: &str| {
        p.parse::<ipnet::IpNet>()
            .or_else(|_| p.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| format!("'{p}' is not an IP address or CIDR range"))
    };
    Ok(Proxies(v.split(',').map(str::trim).filter(|p| !p.is_empty()).map(parse).collect::<Result<_, _>>()?))
}

fn log_format(v: &str) -> Result<LogFormat, String> {
    match v {
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("'{v}' is not one of pretty, json")),
    }
}

fn hash_cost(v: &str) -> Result<HashCost, String> {
    match v {
        "default" => Ok(HashCost::Default),
        "low" => Ok(HashCost::Low),
        _ => Err(format!("'{v}' is not one of default, low")),
    }
}

/// `off`, `on` (the defaults) or a comma-separated list of `name=count/unit` overriding defaults, where
/// unit is `s`, `min`, `h` or `d`.
fn rate_limits(v: &str) -> Result<RateLimitSetting, String> {
    let list = v.to_ascii_lowercase();
    match list.as_str() {
        "on" => return Ok(RateLimitSetting::On(vec![])),
        "off" => return Ok(RateLimitSetting::Off),
        _ => {}
    }
    let mut overrides = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, rate) = item.split_once('=').ok_or_else(|| format!("'{item}' is not name=count/unit"))?;
        let (count, unit) = rate.split_once('/').ok_or_else(|| format!("'{rate}' is not count/unit, e.g. 20/h"))?;
        let count = count
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|c| (1..=1_000_000).contains(c))
            .ok_or_else(|| format!("'{count}' is not a count from 1 to 1000000"))?;
        let per = Duration::from_secs(match unit.trim() {
            "s" => 1,
            "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            other => return Err(format!("'{other}' is not one of s, min, h, d")),
        });
        let names = LIMIT_NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        let name = LIMIT_NAMES
            .iter()
            .find(|(n, _)| *n == name.trim())
            .map(|(_, limit)| *limit)
            .ok_or_else(|| format!("'{}' is not a limit ({names})", name.trim()))?;
        overrides.push(RateOverride { name, count, per });
    }
    Ok(RateLimitSetting::On(overrides))
}

fn origin_of(url: &str) -> String {
    Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn defaults_serve_localhost_3000_with_mcp_resource() {
        let c = config(&[]).unwrap();
        assert_eq!(c.server.issuer, "http://localhost:3000");
        assert_eq!(c.server.resource.as_str(), "http://localhost:3000/mcp");
        assert!(c.accounts.signup);
        assert_eq!(c.database.max_connections, 4);
        assert_eq!(config(&[("DATABASE_URL", "postgres://db/gw")]).unwrap().database.max_connections, 10);
        assert_eq!(c.mcp.guard_cache_ttl, Duration::from_secs(1));
        assert_eq!(c.server.allowed_origins, ["http://localhost:3000"]);
    }

    #[test]
    fn rate_limits_default_on_and_can_be_tuned_or_turned_off() {
        assert_eq!(config(&[]).unwrap().limits.rate_limits, RateLimitSetting::On(vec![]));
        assert_eq!(config(&[("RATE_LIMITS", "OFF")]).unwrap().limits.rate_limits, RateLimitSetting::Off);
        let tuned = config(&[("RATE_LIMITS", "register=3/min")]).unwrap().limits.rate_limits;
        let three = RateOverride { name: LimitName::Register, count: 3, per: Duration::from_secs(60) };
        assert_eq!(tuned, RateLimitSetting::On(vec![three]));
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (var, value) in [
            ("PORT", "abc"),
            ("AUTH_ISSUER", "ftp://x"),
            ("JWT_SECRET", "short"),
            ("ACCESS_TOKEN_TTL", "-1"),
            ("AUTH_CODE_TTL", "600"),
            ("SIGNUP", "maybe"),
            ("MCP_RESOURCE_URI", "http://x/mcp#frag"),
            ("REFRESH_GRACE_SECS", "61"),
            ("DATABASE_MAX_CONNECTIONS", "0"),
            ("DATABASE_TIMEOUT", "x"),
            ("KEY_RELOAD_SECS", "0"),
            ("METRICS_TOKEN", "short"),
            ("MCP_SESSION_TTL", "5"),
            ("MCP_MAX_SESSIONS_PER_USER", "0"),
            ("MCP_MAX_STREAMS_PER_USER", "many"),
            ("CLIENT_UNUSED_TTL", "1"),
            ("RATE_LIMITS", "register=0/h"),
            ("RATE_LIMITS", "register=5/week"),
            ("RATE_LIMITS", "logins=5/h"),
            ("RATE_LIMITS", "register"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("TRUSTED_PROXIES", "proxy.local"),
            ("LOG_FORMAT", "xml"),
            ("PASSWORD_HASH_COST", "none"),
            ("DATABASE_URL", "mysql://x"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var, "{err}");
            assert!(err.to_string().starts_with(var), "{err}");
            assert!(!err.problem.is_empty() && !err.problem.contains("--"), "{err}");
        }
        assert!(!config(&[("SIGNUP", "off")]).unwrap().accounts.signup);
        assert!(config(&[("MCP_CONFORMANCE_FIXTURES", "on")]).unwrap().mcp.conformance_fixtures);
        assert_eq!(config(&[("MCP_SESSION_TTL", "120")]).unwrap().mcp.session_ttl, Duration::from_secs(120));
        let err = config(&[("PORT", "abc")]).unwrap_err();
        assert_eq!(err.to_string(), "PORT: 'abc' is not a port number (0-65535)");
    }

    #[test]
    fn the_process_environment_is_not_read_by_from_lookup() {
        // SAFETY-free check: a variable of this process (PATH) is never a configuration variable, and an
        // empty lookup gives exactly the defaults.
        let c = config(&[]).unwrap();
        assert_eq!(c.server.port, 3000);
        assert_eq!(c.database.url, "sqlite://mcp-gateway.db?mode=rwc");
    }

    #[test]
    fn issuer_path_and_trailing_slash() {
        let c = config(&[("AUTH_ISSUER", "https://as.example/tenant/")]).unwrap();
        assert_eq!(c.server.issuer, "https://as.example/tenant");
        assert_eq!(c.server.issuer_path(), "/tenant");
        assert!(c.server.secure_cookies());
    }

    #[test]
    fn allowed_origins_name_their_port() {
        let c = config(&[("AUTH_ISSUER", "https://mcp.example")]).unwrap();
        assert_eq!(c.server.allowed_origins_with_ports(), ["https://mcp.example:443"]);
        let c = config(&[("ALLOWED_ORIGINS", "http://localhost:6274, http://[::1]:3000,https://a.example/")]).unwrap();
        assert_eq!(
            c.server.allowed_origins_with_ports(),
            ["http://localhost:6274", "http://[::1]:3000", "https://a.example:443"]
        );
    }
}
