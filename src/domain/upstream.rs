//! Upstream MCP servers the gateway puts behind its OAuth: how each is reached (a program it runs, or a
//! Streamable HTTP URL), under which prefix its names appear, and which scope it needs. The rules here need
//! no I/O; the store keeps the configuration and the MCP face runs the connections.
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::clock::UnixTime;
use crate::crypto::{SealError, SecretsKey};
use crate::domain::policy::Rule;
use crate::store::{UpstreamRow, upstream, upstream_tool};

/// The separator between an upstream's prefix and its own tool or prompt name.
pub const SEPARATOR: &str = "__";
/// Longest tool or prompt name clients accept (`^[A-Za-z0-9_-]{1,64}$`).
pub const MAX_NAME: usize = 64;
/// How long a call may take by default before it is cancelled upstream.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How an upstream is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A program each instance starts and supervises, speaking MCP on its standard input and output.
    Stdio { command: String, args: Vec<String>, env: BTreeMap<String, String>, cwd: Option<String> },
    /// A Streamable HTTP server, with static headers (an API key, say) sent on every request.
    Http { url: String, headers: BTreeMap<String, String> },
}

impl Transport {
    pub fn kind(&self) -> &'static str {
        match self {
            Transport::Stdio { .. } => "stdio",
            Transport::Http { .. } => "http",
        }
    }

    /// A program, its environment given as `KEY=VALUE` entries (CLI flags, lines of the admin form).
    pub fn stdio<'a>(
        command: String,
        args: Vec<String>,
        env: impl IntoIterator<Item = &'a str>,
        cwd: Option<String>,
    ) -> Result<Transport, String> {
        let mut vars = BTreeMap::new();
        for pair in env {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(format!("an environment variable is KEY=VALUE, not '{}'", pair.escape_default()));
            };
            vars.insert(key.to_owned(), value.to_owned());
        }
        Ok(Transport::Stdio { command, args, env: vars, cwd })
    }

    /// A URL, its headers given as `Name: value` entries.
    pub fn http<'a>(url: String, headers: impl IntoIterator<Item = &'a str>) -> Result<Transport, String> {
        let mut named = BTreeMap::new();
        for header in headers {
            let Some((name, value)) = header.split_once(':') else {
                return Err(format!("a header is \"Name: value\", not '{}'", header.escape_default()));
            };
            named.insert(name.trim().to_owned(), value.trim().to_owned());
        }
        Ok(Transport::Http { url, headers: named })
    }

    /// What an operator may be shown: the program and its arguments, or the URL; never the environment or
    /// the headers, which hold keys.
    pub fn target(&self) -> String {
        match self {
            Transport::Stdio { command, args, .. } if args.is_empty() => command.clone(),
            Transport::Stdio { command, args, .. } => format!("{command} {}", args.join(" ")),
            Transport::Http { url, .. } => redacted(url),
        }
    }
}

/// A URL as it may be shown: without user information, and with its query replaced by `?…` (services put
/// keys there).
pub fn redacted(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        return "(an unparsable URL)".into();
    };
    let had_query = parsed.query().is_some();
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    parsed.set_query(None);
    parsed.set_fragment(None);
    if had_query { format!("{parsed}?…") } else { parsed.to_string() }
}

/// Which scope a tool of an upstream needs besides `mcp:read` and the upstream's own scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// `mcp:read` is enough.
    Read,
    /// `mcp:write` too.
    Write,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }

    pub fn parse(value: &str) -> Option<Access> {
        match value {
            "read" => Some(Access::Read),
            "write" => Some(Access::Write),
            _ => None,
        }
    }
}

/// One upstream, as configured (by the CLI, the admin page or a TOML file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    pub transport: Transport,
    /// Prepended to the upstream's tool and prompt names with `__`; empty mounts them unchanged. `None`:
    /// the name.
    pub prefix: Option<String>,
    /// An extra scope a token must carry to see or call anything of this upstream.
    pub scope: Option<String>,
    pub timeout_secs: u64,
    pub enabled: bool,
    /// Per-tool overrides of the scope its annotations imply (by the upstream's own tool name).
    pub tools: BTreeMap<String, Access>,
    /// An HTTP upstream protected by its own OAuth: each person connects their own account there, and
    /// their calls carry their own token.
    pub oauth: Option<UpstreamOAuth>,
    /// Environment variables of a program that each person gives themselves (an API token of theirs, say):
    /// each person then gets a process of their own.
    pub env_per_user: Vec<String>,
}

/// How the gateway signs people in to an OAuth-protected upstream: as a client it registers itself (by its
/// Client ID Metadata Document or dynamic registration), or as the client the operator registered there.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamOAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The scopes asked of the upstream (space-separated); when absent, what its metadata suggests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<String>,
}

impl std::fmt::Debug for UpstreamOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamOAuth")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[REDACTED]"))
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Why an upstream's configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upstream {name}: {problem}")]
pub struct InvalidUpstream {
    pub name: String,
    pub problem: String,
}

impl Upstream {
    /// The same upstream with its prefix spelled out, for comparing a configured one with a stored one.
    pub fn normalized(&self) -> Upstream {
        Upstream { prefix: Some(self.prefix().to_owned()), ..self.clone() }
    }

    /// The prefix in effect: the configured one, or the name.
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(&self.name)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Whether each person reaches it with their own credentials (their account there, or their own
    /// environment values), and so through a client or process of their own.
    pub fn is_personal(&self) -> bool {
        self.oauth.is_some() || !self.env_per_user.is_empty()
    }

    /// Where its secrets go: the program or the URL.
    fn transport_target(&self) -> &str {
        match &self.transport {
            Transport::Stdio { command, .. } => command,
            Transport::Http { url, .. } => url,
        }
    }

    /// The URL of an HTTP upstream.
    pub fn url(&self) -> Option<&str> {
        match &self.transport {
            Transport::Http { url, .. } => Some(url),
            Transport::Stdio { .. } => None,
        }
    }

    /// Checks everything that can be checked without starting it.
    pub fn validate(&self) -> Result<(), InvalidUpstream> {
        let fail = |problem: String| Err(InvalidUpstream { name: self.name.clone(), problem });
        if self.name.is_empty() || self.name.len() > 32 || !self.name.bytes().all(is_name_byte) {
            return fail("the name must be 1–32 letters, digits, '-' or '_'".into());
        }
        let prefix = self.prefix();
        // A prefix must leave room for `__` and at least one character of the upstream's own name.
        if prefix.len() > MAX_NAME - SEPARATOR.len() - 1 || !prefix.bytes().all(is_name_byte) {
            return fail(format!(
                "the prefix must be at most {} letters, digits, '-' or '_', so that PREFIX__name fits in {MAX_NAME}",
                MAX_NAME - SEPARATOR.len() - 1
            ));
        }
        if let Some(scope) = &self.scope
            && (scope.is_empty()
                || scope.len() > 64
                || !scope.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
                || scope.starts_with("mcp:"))
        {
            return fail("the scope must be one word of printable characters, not one of the mcp: scopes".into());
        }
        if !(1..=3600).contains(&self.timeout_secs) {
            return fail("the timeout must be 1 to 3600 seconds".into());
        }
        if let Some(oauth) = &self.oauth {
            if !matches!(self.transport, Transport::Http { .. }) {
                return fail("--auth oauth is for HTTP upstreams".into());
            }
            if oauth.client_secret.is_some() && oauth.client_id.is_none() {
                return fail("a client secret needs its --client-id".into());
            }
            let printable = |v: &str| !v.is_empty() && v.len() <= 1024 && !v.chars().any(char::is_control);
            if ![&oauth.client_id, &oauth.client_secret, &oauth.scopes]
                .iter()
                .all(|v| v.as_deref().is_none_or(printable))
            {
                return fail("the OAuth client id, secret and scopes must be printable text".into());
            }
        }
        if !self.env_per_user.is_empty() {
            let Transport::Stdio { env, .. } = &self.transport else {
                return fail("--env-per-user is for programs (stdio upstreams)".into());
            };
            let mut seen = std::collections::BTreeSet::new();
            for key in &self.env_per_user {
                let valid = !key.is_empty()
                    && key.len() <= 128
                    && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !key.as_bytes()[0].is_ascii_digit();
                if !valid {
                    return fail(format!("'{}' is not an environment variable name", key.escape_default()));
                }
                if env.contains_key(key) || !seen.insert(key) {
                    return fail(format!("{key} is given twice (--env and --env-per-user, or twice per person)"));
                }
            }
            if self.env_per_user.len() > 16 {
                return fail("at most 16 variables per person".into());
            }
        }
        match &self.transport {
            Transport::Stdio { command, env, .. } => {
                if command.trim().is_empty() {
                    return fail("the command is empty".into());
                }
                if let Some(key) = env.keys().find(|k| k.is_empty() || k.contains('=') || k.contains('\0')) {
                    return fail(format!("'{}' is not an environment variable name", key.escape_default()));
                }
            }
            Transport::Http { url, headers } => {
                let parsed = Url::parse(url).map_err(|e| InvalidUpstream {
                    name: self.name.clone(),
                    problem: format!("'{url}' is not a URL: {e}"),
                })?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return fail("the URL must be http(s) with a host".into());
                }
                for (name, value) in headers {
                    let valid = poem::http::HeaderName::try_from(name.as_str()).is_ok()
                        && poem::http::HeaderValue::try_from(value.as_str()).is_ok();
                    if !valid {
                        return fail(format!("'{}' is not a valid header", name.escape_default()));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Upstream {
    /// The rows that store this upstream; its environment and headers (which hold keys) sealed with
    /// `secrets`.
    pub fn to_row(&self, secrets: &SecretsKey) -> UpstreamRow {
        let (command, args, env, cwd, url, headers) = match &self.transport {
            Transport::Stdio { command, args, env, cwd } => {
                let env = sealed_map(secrets, &self.name, "env", command, env);
                (Some(command.clone()), json(args), env, cwd.clone(), None, "{}".to_owned())
            }
            Transport::Http { url, headers } => {
                let headers = sealed_map(secrets, &self.name, "headers", url, headers);
                (None, "[]".to_owned(), "{}".to_owned(), None, Some(url.clone()), headers)
            }
        };
        let now = UnixTime::now();
        let (auth, oauth) = match &self.oauth {
            None => ("none", "{}".to_owned()),
            Some(settings) => {
                let map: BTreeMap<String, String> =
                    serde_json::from_value(serde_json::to_value(settings).expect("settings serialize"))
                        .expect("settings are a map of strings");
                ("oauth", sealed_map(secrets, &self.name, "oauth", self.transport_target(), &map))
            }
        };
        UpstreamRow {
            upstream: upstream::Model {
                name: self.name.clone(),
                kind: self.transport.kind().to_owned(),
                command,
                args,
                env,
                cwd,
                url,
                headers,
                prefix: self.prefix().to_owned(),
                scope: self.scope.clone(),
                timeout_secs: i64::try_from(self.timeout_secs).unwrap_or(i64::MAX),
                enabled: self.enabled,
                created_at: now,
                updated_at: now,
                auth: auth.to_owned(),
                oauth,
                env_per_user: json(&self.env_per_user),
            },
            tools: self
                .tools
                .iter()
                .map(|(tool, access)| upstream_tool::Model {
                    upstream: self.name.clone(),
                    tool: tool.clone(),
                    access: access.as_str().to_owned(),
                })
                .collect(),
        }
    }

    /// A stored upstream, or why it cannot be used. Environment and headers stored in plaintext by an
    /// older version are read as they are (and sealed on the next start, [`UpstreamRow::needs_sealing`]).
    pub fn from_row(row: &UpstreamRow, secrets: &SecretsKey) -> Result<Upstream, InvalidUpstream> {
        let u = &row.upstream;
        let invalid = |problem: &str| InvalidUpstream { name: u.name.clone(), problem: problem.to_owned() };
        let open = |part: &str, stored: &str| -> Result<BTreeMap<String, String>, InvalidUpstream> {
            let text = if SecretsKey::is_sealed(stored) {
                secrets.open(&sealing_context(&u.name, part, row_target(u)), stored).map_err(|e| match e {
                    SealError::OtherKey(found) => InvalidUpstream {
                        name: u.name.clone(),
                        problem: format!(
                            "its {part} was sealed with secrets key {found}, but the key given is {}",
                            secrets.id()
                        ),
                    },
                    SealError::Damaged => invalid(&format!("its stored {part} does not open: the row is damaged")),
                })?
            } else {
                stored.to_owned()
            };
            serde_json::from_str(&text).map_err(|_| invalid(&format!("its stored {part} is not a map")))
        };
        let transport = match (u.kind.as_str(), &u.command, &u.url) {
            ("stdio", Some(command), _) => Transport::Stdio {
                command: command.clone(),
                args: serde_json::from_str(&u.args).map_err(|_| invalid("stored arguments are not a list"))?,
                env: open("env", &u.env)?,
                cwd: u.cwd.clone(),
            },
            ("http", _, Some(url)) => Transport::Http { url: url.clone(), headers: open("headers", &u.headers)? },
            _ => return Err(invalid("stored kind is unknown")),
        };
        let mut tools = BTreeMap::new();
        for t in &row.tools {
            tools.insert(
                t.tool.clone(),
                Access::parse(&t.access).ok_or_else(|| invalid("stored tool access is unknown"))?,
            );
        }
        let oauth = match u.auth.as_str() {
            "none" => None,
            "oauth" => {
                let map = open("oauth", &u.oauth)?;
                let value = serde_json::to_value(map).expect("a map serializes");
                Some(serde_json::from_value(value).map_err(|_| invalid("its stored OAuth settings are unknown"))?)
            }
            _ => return Err(invalid("stored auth is unknown")),
        };
        let upstream = Upstream {
            name: u.name.clone(),
            transport,
            prefix: Some(u.prefix.clone()),
            scope: u.scope.clone(),
            timeout_secs: u64::try_from(u.timeout_secs).unwrap_or(0),
            enabled: u.enabled,
            tools,
            oauth,
            env_per_user: serde_json::from_str(&u.env_per_user)
                .map_err(|_| invalid("its stored per-person variables are not a list"))?,
        };
        upstream.validate()?;
        Ok(upstream)
    }
}

/// A stored list or map, as JSON text.
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("strings serialize")
}

/// The context an upstream's environment or headers are sealed under: its name and where they go (the
/// program or the URL), so that sealed headers moved to another row, or left behind a URL changed in the
/// database, do not open.
fn sealing_context(name: &str, part: &str, target: &str) -> String {
    format!("upstream:{name}:{part}:{target}")
}

/// A map of secrets as stored: sealed JSON, or `{}` when there is nothing to hide.
fn sealed_map(secrets: &SecretsKey, name: &str, part: &str, target: &str, map: &BTreeMap<String, String>) -> String {
    if map.is_empty() { "{}".to_owned() } else { secrets.seal(&sealing_context(name, part, target), &json(map)) }
}

/// Where a stored row's secrets go: its program or its URL.
fn row_target(u: &upstream::Model) -> &str {
    u.command.as_deref().or(u.url.as_deref()).unwrap_or_default()
}

impl UpstreamRow {
    /// Whether an older version stored this row's environment or headers in plaintext.
    pub fn needs_sealing(&self) -> bool {
        [&self.upstream.env, &self.upstream.headers, &self.upstream.oauth]
            .iter()
            .any(|v| v.as_str() != "{}" && !SecretsKey::is_sealed(v))
    }

    /// The id of another secrets key this row's values were sealed with, if any (the start must stop).
    pub fn sealed_with_another_key(&self, secrets: &SecretsKey) -> Option<String> {
        let u = &self.upstream;
        [("env", &u.env), ("headers", &u.headers), ("oauth", &u.oauth)].into_iter().find_map(|(part, value)| {
            match secrets.open(&sealing_context(&u.name, part, row_target(u)), value) {
                Err(SealError::OtherKey(id)) => Some(id),
                _ => None,
            }
        })
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Whether clients accept `name` as a tool or prompt name (`^[A-Za-z0-9_-]{1,64}$`).
pub fn is_valid_exposed_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len()) && name.bytes().all(is_name_byte)
}

/// The name clients see for an upstream's `name` under `prefix`, or `None` when it cannot be expressed.
pub fn exposed_name(prefix: &str, name: &str) -> Option<String> {
    let exposed = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}{SEPARATOR}{name}") };
    is_valid_exposed_name(&exposed).then_some(exposed)
}

/// A gateway file (`mcp-gateway upstream apply FILE`): the whole set of upstreams, as TOML, one
/// `[[upstream]]` table each with the CLI's fields.
#[derive(Debug, Clone)]
pub struct UpstreamFile {
    pub upstreams: Vec<Upstream>,
    /// The file's `[[policy]]` tables: when it has any, the policy rules become exactly these.
    pub policy: Option<Vec<Rule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    #[serde(default)]
    upstream: Vec<Entry>,
    policy: Option<Vec<PolicyEntry>>,
}

/// One `[[policy]]` table: a group may use an upstream (or `*`), some or all of its tools.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    group: String,
    upstream: String,
    #[serde(default)]
    tools: Vec<String>,
    #[serde(default)]
    deny_tools: Vec<String>,
}

/// One `[[upstream]]` table, as written.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    prefix: Option<String>,
    scope: Option<String>,
    timeout_secs: Option<u64>,
    enabled: Option<bool>,
    #[serde(default)]
    tools: BTreeMap<String, Access>,
    /// `oauth`: each person connects their own account at the upstream.
    auth: Option<String>,
    /// Environment variables each person gives the program themselves.
    #[serde(default)]
    env_per_user: Vec<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    upstream_scopes: Option<String>,
}

impl UpstreamFile {
    pub fn parse(text: &str) -> Result<UpstreamFile, String> {
        let file: FileText = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut names = std::collections::BTreeSet::new();
        let mut upstreams = Vec::new();
        for entry in file.upstream {
            let transport = match (entry.command, entry.url) {
                (Some(command), None) => Transport::Stdio { command, args: entry.args, env: entry.env, cwd: entry.cwd },
                (None, Some(url)) => Transport::Http { url, headers: entry.headers },
                _ => return Err(format!("upstream {}: give either command or url", entry.name)),
            };
            let oauth = match entry.auth.as_deref() {
                None | Some("none") if entry.client_id.is_none() && entry.upstream_scopes.is_none() => None,
                Some("oauth") => Some(UpstreamOAuth {
                    client_id: entry.client_id,
                    client_secret: entry.client_secret,
                    scopes: entry.upstream_scopes,
                }),
                _ => {
                    return Err(format!(
                        "upstream {}: auth is \"none\" or \"oauth\" (client_id and upstream_scopes go with \"oauth\")",
                        entry.name
                    ));
                }
            };
            let upstream = Upstream {
                name: entry.name,
                transport,
                prefix: entry.prefix,
                scope: entry.scope,
                timeout_secs: entry.timeout_secs.unwrap_or(DEFAULT_TIMEOUT.as_secs()),
                enabled: entry.enabled.unwrap_or(true),
                tools: entry.tools,
                oauth,
                env_per_user: entry.env_per_user,
            };
            upstream.validate().map_err(|e| e.to_string())?;
            if !names.insert(upstream.name.clone()) {
                return Err(format!("upstream {} is listed twice", upstream.name));
            }
            upstreams.push(upstream);
        }
        let policy = match file.policy {
            None => None,
            Some(entries) => {
                let mut rules = Vec::new();
                let mut seen = std::collections::BTreeSet::new();
                for entry in entries {
                    if entry.upstream != "*" && !names.contains(&entry.upstream) {
                        return Err(format!(
                            "policy for group {}: no upstream {} in this file",
                            entry.group, entry.upstream
                        ));
                    }
                    let rule = Rule {
                        group: entry.group,
                        upstream: entry.upstream,
                        allow: entry.tools,
                        deny: entry.deny_tools,
                    };
                    rule.validate()?;
                    if !seen.insert((rule.group.clone(), rule.upstream.clone())) {
                        return Err(format!(
                            "policy: group {} and upstream {} are listed twice",
                            rule.group, rule.upstream
                        ));
                    }
                    rules.push(rule);
                }
                Some(rules)
            }
        };
        Ok(UpstreamFile { upstreams, policy })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdio(name: &str, prefix: Option<&str>) -> Upstream {
        Upstream {
            name: name.into(),
            transport: Transport::Stdio { command: "npx".into(), args: vec![], env: BTreeMap::new(), cwd: None },
            prefix: prefix.map(str::to_owned),
            scope: None,
            timeout_secs: 60,
            enabled: true,
            tools: BTreeMap::new(),
            oauth: None,
            env_per_user: vec![],
        }
    }

    #[test]
    fn names_are_prefixed_with_two_underscores_and_must_fit_what_clients_accept() {
        assert_eq!(exposed_name("fs", "read_file").as_deref(), Some("fs__read_file"));
        assert_eq!(exposed_name("", "read_file").as_deref(), Some("read_file"));
        assert_eq!(exposed_name("fs", "has space"), None);
        assert_eq!(exposed_name("fs", &"x".repeat(61)), None, "over 64 with the prefix");
        assert!(stdio("files", None).validate().is_ok());
        assert!(stdio("files", Some("")).validate().is_ok(), "an empty prefix mounts the names unchanged");
        assert!(stdio("files", Some(&"p".repeat(62))).validate().is_err(), "no room left for a name");
        assert!(stdio("bad name", None).validate().is_err());
        assert!(stdio("files", Some("a.b")).validate().is_err());
    }

    #[test]
    fn a_gateway_file_lists_every_upstream_once() {
        let file = UpstreamFile::parse(
            r#"
            [[upstream]]
            name = "files"
            command = "npx"
            args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv"]
            scope = "files"
            [upstream.tools]
            write_file = "write"

            [[upstream]]
            name = "search"
            url = "https://search.example/mcp"
            headers = { "X-API-Key" = "k" }
            prefix = ""
            "#,
        )
        .unwrap();
        assert_eq!(file.upstreams.len(), 2);
        assert_eq!(file.upstreams[0].tools.get("write_file"), Some(&Access::Write));
        assert!(matches!(file.upstreams[1].transport, Transport::Http { .. }));
        assert_eq!(file.upstreams[1].prefix(), "");
        let twice = "[[upstream]]\nname = \"a\"\ncommand = \"x\"\n[[upstream]]\nname = \"a\"\ncommand = \"y\"\n";
        assert!(UpstreamFile::parse(twice).is_err());
        assert!(UpstreamFile::parse("[[upstream]]\nname = \"a\"\n").is_err(), "neither command nor url");
        assert!(UpstreamFile::parse("[[upstream]]\nname = \"a\"\ncommand = \"x\"\nbogus = 1\n").is_err());
    }
}
