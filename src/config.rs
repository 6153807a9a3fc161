//! Configuration from the environment (and `.env`), validated once at start.
//!
//! Every problem is reported as one line that names the variable, so a bad value stops the start with a
//! message an operator can act on. The rest of the program receives a [`Config`] value and never reads
//! the environment itself.
use std::net::IpAddr;
use std::time::Duration;

use url::Url;

use crate::oauth::resource::Resource;

#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

fn problem(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { variable, problem: problem.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// How expensive argon2id password hashing is. `Low` exists for tests and must never be used in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordHashCost {
    /// OWASP's argon2id recommendation: 19 MiB, 2 passes.
    Default,
    /// 1 MiB, 1 pass: fast enough for test suites.
    Low,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    /// The authorization server's issuer identifier (RFC 8414 §2), without a trailing slash.
    pub issuer: String,
    /// The canonical URI of the MCP server (RFC 8707 resource, RFC 9728 `resource`).
    pub resource: Resource,
    pub database_url: String,
    /// Largest number of pooled database connections of this instance.
    pub database_max_connections: u32,
    /// How long to wait for a connection (to connect, and to get one from the pool).
    pub database_timeout: Duration,
    /// When set, access tokens are HS256 with this secret instead of ES256 with keys in the database.
    pub jwt_secret: Option<String>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// How long after a rotation a caller presenting the rotated refresh token gets the same, still
    /// unused, successor back instead of being treated as reuse (0 turns it off).
    pub refresh_grace: Duration,
    pub auth_code_ttl: Duration,
    pub session_ttl: Duration,
    pub allowed_origins: Vec<String>,
    pub signup: bool,
    pub log_format: LogFormat,
    pub password_hash_cost: PasswordHashCost,
    /// When set, `/metrics` answers only to `Authorization: Bearer <this>`.
    pub metrics_token: Option<String>,
    /// How often every instance re-reads the signing keys, so a rotation elsewhere is picked up.
    pub key_reload_interval: Duration,
    /// How long the MCP guard trusts what it read of a grant or a legacy session (`GUARD_CACHE_SECS`).
    pub guard_cache_ttl: Duration,
    /// An MCP session unused for this long ends (404) and is purged.
    pub mcp_session_ttl: Duration,
    /// Most live legacy MCP sessions one person may hold; the next `initialize` is refused.
    pub mcp_max_sessions_per_user: u64,
    /// Most open 2026-07-28 notification streams (`subscriptions/listen`) one person may hold per instance.
    pub mcp_max_streams_per_user: usize,
    /// Serve the fixture tools, resources and prompts of the MCP conformance suite.
    pub conformance_fixtures: bool,
    /// A dynamically registered client that obtains no token within this time is deleted.
    pub client_unused_ttl: Duration,
    /// How long audit events are kept.
    pub audit_log_ttl: Duration,
    /// Limits on what an attacker repeats; `None` when `RATE_LIMITS=off`.
    pub rate_limits: Option<RateLimits>,
    /// Reverse proxies whose `X-Forwarded-For` names the real client address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Test-only trust for fetching metadata documents from a local TLS server. Never read from the
    /// environment, and absent from builds without the `test-trust` feature.
    #[cfg(feature = "test-trust")]
    pub test_trust: Option<crate::oauth::metadata_document::TestTrust>,
}

/// `count` events per `per`, with bursts up to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// The configurable limits (`RATE_LIMITS=register=20/h,...`); each applies per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Dynamic client registrations per client IP address.
    pub register: Rate,
    /// Fetches of Client ID Metadata Documents caused by one client IP address.
    pub metadata_fetch: Rate,
    /// Failed logins per client IP address (ten times this per account name).
    pub login: Rate,
    /// Failed client authentication per client IP address, and invalid grants per client at one address.
    pub token: Rate,
    /// Sign-up attempts (each may create an account or learn that a name is taken) per client IP address.
    pub signup: Rate,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits {
            register: Rate { count: 20, per: Duration::from_secs(3600) },
            metadata_fetch: Rate { count: 30, per: Duration::from_secs(60) },
            login: Rate { count: 10, per: Duration::from_secs(600) },
            token: Rate { count: 30, per: Duration::from_secs(60) },
            signup: Rate { count: 5, per: Duration::from_secs(3600) },
        }
    }
}

/// Parses `off`, `on` (the defaults) or a comma-separated list of `name=count/unit` overriding defaults,
/// where unit is `s`, `min`, `h` or `d`.
fn parse_rate_limits(value: Option<&str>) -> Result<Option<RateLimits>, ConfigError> {
    let fail = |p: String| problem("RATE_LIMITS", p);
    let mut limits = RateLimits::default();
    match value {
        None | Some("on") => return Ok(Some(limits)),
        Some("off") => return Ok(None),
        Some(list) => {
            for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let (name, rate) =
                    item.split_once('=').ok_or_else(|| fail(format!("'{item}' is not name=count/unit")))?;
                let (count, unit) =
                    rate.split_once('/').ok_or_else(|| fail(format!("'{rate}' is not count/unit, e.g. 20/h")))?;
                let count = count
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|c| (1..=1_000_000).contains(c))
                    .ok_or_else(|| fail(format!("'{count}' is not a count from 1 to 1000000")))?;
                let per = Duration::from_secs(match unit.trim() {
                    "s" => 1,
                    "min" => 60,
                    "h" => 3600,
                    "d" => 86_400,
                    other => return Err(fail(format!("'{other}' is not one of s, min, h, d"))),
                });
                let rate = Rate { count, per };
                match name.trim() {
                    "register" => limits.register = rate,
                    "metadata_fetch" => limits.metadata_fetch = rate,
                    "login" => limits.login = rate,
                    "token" => limits.token = rate,
                    "signup" => limits.signup = rate,
                    other => {
                        return Err(fail(format!(
                            "'{other}' is not a limit (register, metadata_fetch, login, token, signup)"
                        )));
                    }
                }
            }
        }
    }
    Ok(Some(limits))
}

impl Config {
    /// Reads the process environment, after loading `.env` from the working directory if there is one.
    pub fn from_env() -> Result<Config, ConfigError> {
        // A missing .env is normal; a malformed one is worth stopping for.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(problem("DOTENV", format!(".env could not be read: {e}"))),
        }
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from a lookup of variable names, so tests can pass values directly.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        let port = match get("PORT") {
            None => 3000,
            Some(v) => {
                v.parse::<u16>().map_err(|_| problem("PORT", format!("'{v}' is not a port number (0-65535)")))?
            }
        };
        let bind = match get("BIND") {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(v) => v.parse().map_err(|_| problem("BIND", format!("'{v}' is not an IP address")))?,
        };
        let issuer = match get("AUTH_ISSUER") {
            None => format!("http://localhost:{port}"),
            Some(v) => parse_issuer(&v)?,
        };
        let resource = match get("MCP_RESOURCE_URI") {
            None => Resource::parse(&format!("{issuer}/mcp")),
            Some(v) => Resource::parse(&v),
        }
        .map_err(|e| problem("MCP_RESOURCE_URI", e))?;
        let database_url = get("DATABASE_URL").unwrap_or_else(|| "sqlite://mcp-gateway.db?mode=rwc".to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(problem("DATABASE_URL", "must start with sqlite:, postgres:// or postgresql://"));
        }
        let sqlite = database_url.starts_with("sqlite:");
        let database_max_connections =
            match get("DATABASE_MAX_CONNECTIONS") {
                // SQLite writes one transaction at a time: more connections only race for its write lock (with
                // 10 instead of 4, 64 concurrent writers saw p99 77 ms instead of 20 ms, at the same rate).
                None if sqlite => 4,
                None => 10,
                Some(v) => v.parse::<u32>().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                    problem("DATABASE_MAX_CONNECTIONS", format!("'{v}' is not a number from 1 to 1000"))
                })?,
            };
        let database_timeout = seconds(&get, "DATABASE_TIMEOUT", 10, 1, 300)?;
        if database_max_connections < 2 && !sqlite {
            // One connection stays with the LISTEN/NOTIFY relay on Postgres.
            return Err(problem("DATABASE_MAX_CONNECTIONS", "must be at least 2 with Postgres"));
        }
        let jwt_secret = match get("JWT_SECRET") {
            None => None,
            Some(v) if v.len() < 32 => {
                return Err(problem("JWT_SECRET", "must be at least 32 characters"));
            }
            Some(v) => Some(v),
        };
        let access_token_ttl = seconds(&get, "ACCESS_TOKEN_TTL", 3600, 60, 86_400)?;
        let refresh_token_ttl = seconds(&get, "REFRESH_TOKEN_TTL", 30 * 86_400, 300, 365 * 86_400)?;
        let auth_code_ttl = seconds(&get, "AUTH_CODE_TTL", 60, 1, 60)?;
        let refresh_grace = seconds(&get, "REFRESH_GRACE_SECS", 5, 0, 60)?;
        let session_ttl = seconds(&get, "SESSION_TTL", 12 * 3600, 60, 30 * 86_400)?;
        let allowed_origins = match get("ALLOWED_ORIGINS") {
            None => vec![origin_of(&issuer)],
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(|o| {
                    Url::parse(o)
                        .ok()
                        .filter(|u| matches!(u.scheme(), "http" | "https") && u.path() == "/")
                        .map(|_| o.trim_end_matches('/').to_owned())
                        .ok_or_else(|| {
                            problem("ALLOWED_ORIGINS", format!("'{o}' is not an origin like https://app.example"))
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let signup = on_off(&get, "SIGNUP", true)?;
        let mcp_session_ttl = seconds(&get, "MCP_SESSION_TTL", 3600, 60, 7 * 86_400)?;
        let mcp_max_sessions_per_user = count(&get, "MCP_MAX_SESSIONS_PER_USER", 20, 1, 10_000)?;
        let mcp_max_streams_per_user = count(&get, "MCP_MAX_STREAMS_PER_USER", 20, 1, 10_000)? as usize;
        let key_reload_interval = seconds(&get, "KEY_RELOAD_SECS", 60, 1, 3600)?;
        let guard_cache_ttl = seconds(&get, "GUARD_CACHE_SECS", 1, 0, 60)?;
        let metrics_token = match get("METRICS_TOKEN") {
            Some(v) if v.len() < 16 => return Err(problem("METRICS_TOKEN", "must be at least 16 characters")),
            other => other,
        };
        let conformance_fixtures = on_off(&get, "MCP_CONFORMANCE_FIXTURES", false)?;
        let client_unused_ttl = seconds(&get, "CLIENT_UNUSED_TTL", 7 * 86_400, 60, 365 * 86_400)?;
        let audit_log_ttl = seconds(&get, "AUDIT_LOG_TTL", 90 * 86_400, 86_400, 10 * 365 * 86_400)?;
        let rate_limits = parse_rate_limits(get("RATE_LIMITS").map(|v| v.to_ascii_lowercase()).as_deref())?;
        let trusted_proxies = match get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<ipnet::IpNet>()
                        .or_else(|_| p.parse::<IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| problem("TRUSTED_PROXIES", format!("'{p}' is not an IP address or CIDR range")))
                })
                .collect::<Result<_, _>>()?,
        };
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(v) => {
                return Err(problem("LOG_FORMAT", format!("'{v}' is not one of pretty, json")));
            }
        };
        let password_hash_cost = match get("PASSWORD_HASH_COST").as_deref() {
            None | Some("default") => PasswordHashCost::Default,
            Some("low") => PasswordHashCost::Low,
            Some(v) => {
                return Err(problem("PASSWORD_HASH_COST", format!("'{v}' is not one of default, low")));
            }
        };

        Ok(Config {
            bind,
            port,
            issuer,
            resource,
            database_url,
            database_max_connections,
            database_timeout,
            jwt_secret,
            access_token_ttl,
            refresh_token_ttl,
            refresh_grace,
            auth_code_ttl,
            session_ttl,
            allowed_origins,
            signup,
            log_format,
            password_hash_cost,
            metrics_token,
            key_reload_interval,
            guard_cache_ttl,
            mcp_session_ttl,
            mcp_max_sessions_per_user,
            mcp_max_streams_per_user,
            conformance_fixtures,
            client_unused_ttl,
            audit_log_ttl,
            rate_limits,
            trusted_proxies,
            #[cfg(feature = "test-trust")]
            test_trust: None,
        })
    }

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
        for url in [Some(self.resource.url().clone()), Url::parse(&self.issuer).ok()].into_iter().flatten() {
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

    /// [`Config::allowed_origins`] each with its port written out (`https://app.example:443`): an origin
    /// without a port would match any port of that host in the MCP transport's check.
    pub fn allowed_origins_with_ports(&self) -> Vec<String> {
        self.allowed_origins
            .iter()
            .filter_map(|o| Url::parse(o).ok())
            .filter_map(|u| Some(format!("{}://{}:{}", u.scheme(), u.host_str()?, u.port_or_known_default()?)))
            .collect()
    }

    /// The RFC 9728 metadata URL that `WWW-Authenticate` points clients to.
    pub fn resource_metadata_url(&self) -> String {
        let url = self.resource.url();
        let path = url.path().trim_end_matches('/');
        format!("{}/.well-known/oauth-protected-resource{path}", origin_of(url.as_str()))
    }
}

/// RFC 8414 §2: https (or http for local development), no query, no fragment; stored without a trailing slash.
fn parse_issuer(value: &str) -> Result<String, ConfigError> {
    let url = Url::parse(value).map_err(|e| problem("AUTH_ISSUER", format!("'{value}' is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(problem("AUTH_ISSUER", "must be an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(problem("AUTH_ISSUER", "must not have a query, fragment or user info"));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn origin_of(url: &str) -> String {
    Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_default()
}

fn seconds(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    let value = match get(variable) {
        None => default,
        Some(v) => {
            v.parse::<u64>().map_err(|_| problem(variable, format!("'{v}' is not a whole number of seconds")))?
        }
    };
    if !(min..=max).contains(&value) {
        return Err(problem(variable, format!("{value} is outside {min}..={max} seconds")));
    }
    Ok(Duration::from_secs(value))
}

fn count(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let value = match get(variable) {
        None => default,
        Some(v) => v.parse::<u64>().map_err(|_| problem(variable, format!("'{v}' is not a whole number")))?,
    };
    if !(min..=max).contains(&value) {
        return Err(problem(variable, format!("{value} is outside {min}..={max}")));
    }
    Ok(value)
}

fn on_off(get: &impl Fn(&str) -> Option<String>, variable: &'static str, default: bool) -> Result<bool, ConfigError> {
    match get(variable).map(|v| v.to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("on" | "true" | "1" | "yes") => Ok(true),
        Some("off" | "false" | "0" | "no") => Ok(false),
        Some(v) => Err(problem(variable, format!("'{v}' is not one of on, off"))),
    }
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
        assert_eq!(c.issuer, "http://localhost:3000");
        assert_eq!(c.resource.as_str(), "http://localhost:3000/mcp");
        assert_eq!(c.resource_metadata_url(), "http://localhost:3000/.well-known/oauth-protected-resource/mcp");
        assert!(c.signup);
        assert_eq!(c.database_max_connections, 4);
        assert_eq!(config(&[("DATABASE_URL", "postgres://db/gw")]).unwrap().database_max_connections, 10);
        assert_eq!(c.guard_cache_ttl, Duration::from_secs(1));
    }

    #[test]
    fn rate_limits_default_on_and_can_be_tuned_or_turned_off() {
        assert_eq!(config(&[]).unwrap().rate_limits, Some(RateLimits::default()));
        assert_eq!(config(&[("RATE_LIMITS", "OFF")]).unwrap().rate_limits, None);
        let tuned = config(&[("RATE_LIMITS", "register=3/min")]).unwrap().rate_limits.unwrap();
        assert_eq!(tuned.register, Rate { count: 3, per: Duration::from_secs(60) });
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
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var);
            assert!(err.to_string().starts_with(var));
        }
    }

    #[test]
    fn allowed_origins_name_their_port() {
        let c = config(&[("AUTH_ISSUER", "https://mcp.example")]).unwrap();
        assert_eq!(c.allowed_origins_with_ports(), ["https://mcp.example:443"]);
        let c = config(&[("ALLOWED_ORIGINS", "http://localhost:6274, http://[::1]:3000,https://a.example/")]).unwrap();
        assert_eq!(
            c.allowed_origins_with_ports(),
            ["http://localhost:6274", "http://[::1]:3000", "https://a.example:443"]
        );
    }

    #[test]
    fn issuer_path_and_trailing_slash() {
        let c = config(&[("AUTH_ISSUER", "https://as.example/tenant/")]).unwrap();
        assert_eq!(c.issuer, "https://as.example/tenant");
        assert_eq!(c.issuer_path(), "/tenant");
        assert!(c.secure_cookies());
    }
}
