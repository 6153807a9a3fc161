//! `mcp-gateway upstream …`: the MCP servers the gateway serves. Changes go to the database, which every
//! instance follows (at once on Postgres, within a few seconds on SQLite), so nothing needs a restart.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::crypto::SecretsKey;
use crate::domain::policy::Rule;
use crate::domain::scope::ScopeCatalog;
use crate::domain::upstream::{Access, DEFAULT_TIMEOUT, Transport, Upstream, UpstreamFile, UpstreamOAuth};
use crate::domain::upstreams::{ChangedBy, Summary, Upstreams};
use crate::store::{AuditEntry, AuditKind, Store};

#[derive(Debug, Subcommand)]
pub enum UpstreamCommand {
    /// Add an upstream: a program the gateway runs (--command) or a Streamable HTTP server (--url).
    Add(Box<AddArgs>),
    /// List upstreams with what the running instances report about them.
    List,
    /// Remove an upstream (its connections close on every instance).
    Remove { name: String },
    /// Stop serving an upstream, keeping its configuration.
    Disable { name: String },
    /// Serve a disabled upstream again.
    Enable { name: String },
    /// Make the configured upstreams exactly those of a TOML file (idempotent; see README, "Gateway").
    Apply { file: PathBuf },
    /// Override the scope one tool of an upstream needs: read (mcp:read), write (mcp:read and mcp:write),
    /// or default (what the tool's readOnlyHint says).
    Tool {
        name: String,
        /// The upstream's own name for the tool (without the prefix).
        tool: String,
        #[arg(value_parser = ["read", "write", "default"])]
        access: String,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// A name of 1–32 letters, digits, '-' or '_'.
    name: String,
    /// The program to run; it speaks MCP on its standard input and output.
    #[arg(long, conflicts_with_all = ["url", "headers"], required_unless_present = "url")]
    command: Option<String>,
    /// An argument of the program; repeat for several.
    #[arg(long = "arg", allow_hyphen_values = true, requires = "command")]
    args: Vec<String>,
    /// An environment variable of the program, KEY=VALUE; repeat for several.
    #[arg(long = "env", requires = "command")]
    env: Vec<String>,
    /// An environment variable each person gives the program themselves (on /connections), say an API token
    /// of theirs; each person then gets a process of their own. Repeat for several.
    #[arg(long = "env-per-user", requires = "command")]
    env_per_user: Vec<String>,
    /// The program's working directory.
    #[arg(long, requires = "command")]
    cwd: Option<String>,
    /// The URL of a Streamable HTTP MCP server.
    #[arg(long)]
    url: Option<String>,
    /// A header sent with every request to the URL, "Name: value"; repeat for several.
    #[arg(long = "header", requires = "url")]
    headers: Vec<String>,
    /// Prepended to tool and prompt names as PREFIX__name (default: the name; "" keeps them unchanged).
    #[arg(long)]
    prefix: Option<String>,
    /// An extra scope a token must carry to see or call anything of this upstream.
    #[arg(long)]
    scope: Option<String>,
    /// Seconds a call may take before it is cancelled.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT.as_secs())]
    timeout: u64,
    /// Add it disabled.
    #[arg(long)]
    disabled: bool,
    /// `oauth`: the URL is protected by its own OAuth, and each person connects their own account there
    /// (on /connections); their calls carry their own token, never the client's.
    #[arg(long, requires = "url", value_parser = ["none", "oauth"])]
    auth: Option<String>,
    /// The client id the upstream's operator gave us (else the gateway registers itself there).
    #[arg(long, requires = "auth")]
    client_id: Option<String>,
    /// The client secret that goes with --client-id.
    #[arg(long, requires = "client_id")]
    client_secret: Option<String>,
    /// The scopes to ask of the upstream, space-separated (default: what its metadata suggests).
    #[arg(long, requires = "auth")]
    scope_upstream: Option<String>,
}

pub async fn run(cmd: UpstreamCommand, store: Store, secrets: Arc<SecretsKey>) -> anyhow::Result<()> {
    let upstreams = Upstreams::load(store.clone(), ScopeCatalog::default(), secrets).await?;
    match cmd {
        UpstreamCommand::Add(args) => {
            let upstream = (*args).into_upstream()?;
            let name = upstream.name.clone();
            upstreams.add(upstream, ChangedBy::CLI).await?;
            println!("upstream {name} added");
        }
        UpstreamCommand::List => list(&upstreams).await?,
        UpstreamCommand::Remove { name } => {
            if !upstreams.remove(&name, ChangedBy::CLI).await? {
                bail!("no upstream named {name}");
            }
            println!("upstream {name} removed");
        }
        UpstreamCommand::Disable { name } => switch(&upstreams, &name, false).await?,
        UpstreamCommand::Enable { name } => switch(&upstreams, &name, true).await?,
        UpstreamCommand::Apply { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let mut parsed = UpstreamFile::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let count = parsed.upstreams.len();
            let policy = parsed.policy.take();
            let mut changed = upstreams.apply(parsed, ChangedBy::CLI).await?;
            if let Some(rules) = &policy {
                let rows = rules.iter().map(Rule::to_row).collect();
                if store.replace_policy_rules(rows).await? {
                    changed = true;
                    let said: Vec<String> = rules.iter().map(Rule::describe).collect();
                    let detail = format!("policy applied from {}: {}", file.display(), said.join("; "));
                    store
                        .audit(AuditKind::GroupChanged, AuditEntry { detail: Some(&detail), ..AuditEntry::default() })
                        .await;
                }
            }
            let rules = policy.map(|r| format!(", {} policy rules", r.len())).unwrap_or_default();
            if changed {
                println!("applied {}: {count} upstreams{rules}", file.display());
            } else {
                println!("{} is already in force ({count} upstreams{rules})", file.display());
            }
        }
        UpstreamCommand::Tool { name, tool, access } => {
            if !upstreams.set_tool_access(&name, &tool, Access::parse(&access), ChangedBy::CLI).await? {
                bail!("no upstream named {name}");
            }
            println!("tool {tool} of {name}: {access}");
        }
    }
    Ok(())
}

async fn switch(upstreams: &Upstreams, name: &str, enabled: bool) -> anyhow::Result<()> {
    if !upstreams.set_enabled(name, enabled, ChangedBy::CLI).await? {
        bail!("no upstream named {name}");
    }
    println!("upstream {name} {}", if enabled { "enabled" } else { "disabled" });
    Ok(())
}

async fn list(upstreams: &Upstreams) -> anyhow::Result<()> {
    let statuses = upstreams.statuses().await?;
    println!(
        "{:<16} {:<6} {:<12} {:<12} {:<24} {:>5}  target / last error",
        "name", "kind", "prefix", "scope", "status", "tools"
    );
    for u in upstreams.current().iter() {
        let reports = statuses.get(&u.name).map(Vec::as_slice).unwrap_or_default();
        let target = u.transport.target();
        let Summary { status, tools, error } = Summary::of(u.enabled, reports);
        let tools = tools.map_or_else(|| "-".to_owned(), |n| n.to_string());
        println!(
            "{:<16} {:<6} {:<12} {:<12} {:<24} {:>5}  {}",
            u.name,
            match (u.transport.kind(), u.is_personal()) {
                ("http", true) => "oauth",
                ("stdio", true) => "stdio*",
                (kind, _) => kind,
            },
            if u.prefix().is_empty() { "(none)" } else { u.prefix() },
            u.scope.as_deref().unwrap_or("-"),
            status,
            tools,
            match error {
                Some(e) => format!("{target}: {e}"),
                None => target,
            }
        );
    }
    Ok(())
}

impl AddArgs {
    fn into_upstream(self) -> anyhow::Result<Upstream> {
        let transport = match (self.command, self.url) {
            (Some(command), None) => {
                Transport::stdio(command, self.args, self.env.iter().map(String::as_str), self.cwd)
            }
            (None, Some(url)) => Transport::http(url, self.headers.iter().map(String::as_str)),
            _ => bail!("give either --command or --url"),
        }
        .map_err(anyhow::Error::msg)?;
        let oauth = match self.auth.as_deref() {
            Some("oauth") => Some(UpstreamOAuth {
                client_id: self.client_id,
                client_secret: self.client_secret,
                scopes: self.scope_upstream,
            }),
            _ if self.client_id.is_some() || self.scope_upstream.is_some() => {
                bail!("--client-id and --scope-upstream go with --auth oauth")
            }
            _ => None,
        };
        Ok(Upstream {
            name: self.name,
            transport,
            prefix: self.prefix,
            scope: self.scope,
            timeout_secs: self.timeout,
            enabled: !self.disabled,
            tools: BTreeMap::new(),
            oauth,
            env_per_user: self.env_per_user,
        })
    }
}
