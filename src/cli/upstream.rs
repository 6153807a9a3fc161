//! `mcp-gateway upstream …`: the MCP servers the gateway serves. Changes go to the database, which every
//! instance follows (at once on Postgres, within a few seconds on SQLite), so nothing needs a restart.
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::domain::scope::ScopeCatalog;
use crate::domain::upstream::{Access, DEFAULT_TIMEOUT, Transport, Upstream, UpstreamFile};
use crate::domain::upstreams::{StatusReport, Upstreams};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum UpstreamCommand {
    /// Add an upstream: a program the gateway runs (--command) or a Streamable HTTP server (--url).
    Add(AddArgs),
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
}

pub async fn run(cmd: UpstreamCommand, store: Store) -> anyhow::Result<()> {
    let upstreams = Upstreams::load(store, ScopeCatalog::default()).await?;
    match cmd {
        UpstreamCommand::Add(args) => {
            let upstream = args.into_upstream()?;
            let name = upstream.name.clone();
            upstreams.add(upstream).await?;
            println!("upstream {name} added");
        }
        UpstreamCommand::List => list(&upstreams).await?,
        UpstreamCommand::Remove { name } => {
            if !upstreams.remove(&name).await? {
                bail!("no upstream named {name}");
            }
            println!("upstream {name} removed");
        }
        UpstreamCommand::Disable { name } => switch(&upstreams, &name, false).await?,
        UpstreamCommand::Enable { name } => switch(&upstreams, &name, true).await?,
        UpstreamCommand::Apply { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let parsed = UpstreamFile::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let count = parsed.upstreams.len();
            if upstreams.apply(parsed).await? {
                println!("applied {}: {count} upstreams", file.display());
            } else {
                println!("{} is already in force ({count} upstreams)", file.display());
            }
        }
        UpstreamCommand::Tool { name, tool, access } => {
            let Some(mut upstream) = upstreams.current().iter().find(|u| u.name == name).cloned() else {
                bail!("no upstream named {name}");
            };
            match Access::parse(&access) {
                Some(access) => upstream.tools.insert(tool.clone(), access),
                None => upstream.tools.remove(&tool),
            };
            let mut all: Vec<Upstream> = upstreams.current().iter().cloned().collect();
            all.retain(|u| u.name != name);
            all.push(upstream);
            upstreams.apply(UpstreamFile { upstreams: all }).await?;
            println!("tool {tool} of {name}: {access}");
        }
    }
    Ok(())
}

async fn switch(upstreams: &Upstreams, name: &str, enabled: bool) -> anyhow::Result<()> {
    if !upstreams.set_enabled(name, enabled).await? {
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
        let target = match &u.transport {
            Transport::Stdio { command, args, .. } => format!("{command} {}", args.join(" ")),
            Transport::Http { url, .. } => url.clone(),
        };
        let (status, tools, error) = summary(u.enabled, reports);
        println!(
            "{:<16} {:<6} {:<12} {:<12} {:<24} {:>5}  {}",
            u.name,
            u.transport.kind(),
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

/// One line's status from every instance's report: "connected", or "connected 1/2" when they differ.
fn summary(enabled: bool, reports: &[StatusReport]) -> (String, String, Option<String>) {
    if !enabled {
        return ("disabled".into(), "-".into(), None);
    }
    if reports.is_empty() {
        return ("no instance running".into(), "-".into(), None);
    }
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reports {
        *states.entry(r.state.as_str()).or_default() += 1;
    }
    let status = match states.len() {
        1 if reports.len() == 1 => reports[0].state.clone(),
        1 => format!("{} on all {}", reports[0].state, reports.len()),
        _ => states.iter().map(|(s, n)| format!("{s} {n}/{}", reports.len())).collect::<Vec<_>>().join(", "),
    };
    let tools = reports.iter().map(|r| r.tools.len()).max().unwrap_or(0).to_string();
    let error = reports.iter().find_map(|r| r.error.clone());
    (status, tools, error)
}

impl AddArgs {
    fn into_upstream(self) -> anyhow::Result<Upstream> {
        let transport = match (self.command, self.url) {
            (Some(command), None) => {
                let mut env = BTreeMap::new();
                for pair in self.env {
                    let Some((key, value)) = pair.split_once('=') else {
                        bail!("--env takes KEY=VALUE, not '{pair}'");
                    };
                    env.insert(key.to_owned(), value.to_owned());
                }
                Transport::Stdio { command, args: self.args, env, cwd: self.cwd }
            }
            (None, Some(url)) => {
                let mut headers = BTreeMap::new();
                for header in self.headers {
                    let Some((name, value)) = header.split_once(':') else {
                        bail!("--header takes \"Name: value\", not '{header}'");
                    };
                    headers.insert(name.trim().to_owned(), value.trim().to_owned());
                }
                Transport::Http { url, headers }
            }
            _ => bail!("give either --command or --url"),
        };
        Ok(Upstream {
            name: self.name,
            transport,
            prefix: self.prefix,
            scope: self.scope,
            timeout_secs: self.timeout,
            enabled: !self.disabled,
            tools: BTreeMap::new(),
        })
    }
}
