//! The gateway's upstream configuration as a service: what every face reads (the set in force, which the
//! MCP face reconciles its connections with and which adds scopes to the [`ScopeCatalog`]), the changes
//! operators make (CLI, admin page, gateway file), and what the instances report about their connections.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DbErr;
use tokio::sync::watch;

use super::scope::ScopeCatalog;
use super::upstream::{InvalidUpstream, Upstream, UpstreamFile};
use crate::clock::UnixTime;
use crate::crypto::SecretsKey;
use crate::store::{AuditEntry, AuditKind, ResealedUpstream, Store, upstream_status};

/// An instance's report counts as current for this long (instances report more often than this).
pub const REPORT_FRESH_FOR: Duration = Duration::from_secs(90);

/// Why a change to the upstreams was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Invalid(#[from] InvalidUpstream),
    #[error("an upstream named {0} already exists (remove it first, or use `upstream apply`)")]
    Exists(String),
    #[error("{0}")]
    Conflict(String),
    #[error("storage failed: {0}")]
    Storage(#[from] DbErr),
    #[error(
        "the upstream credentials in this database were sealed with secrets key {found}, but the key given is \
         {ours}: start with the key this database was set up with (every instance on one database needs the same)"
    )]
    OtherSecretsKey { found: String, ours: String },
}

/// What one instance says about one upstream.
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub instance: String,
    pub upstream: String,
    /// `starting`, `connected`, `failed` or `disabled`.
    pub state: String,
    pub error: Option<String>,
    /// The names clients see.
    pub tools: Vec<String>,
    pub updated_at: UnixTime,
}

/// Who changed the upstreams, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct ChangedBy<'a> {
    pub user_id: Option<&'a str>,
    pub via: &'static str,
}

impl ChangedBy<'_> {
    pub const CLI: ChangedBy<'static> = ChangedBy { user_id: None, via: "the CLI" };

    pub fn admin(user_id: &str) -> ChangedBy<'_> {
        ChangedBy { user_id: Some(user_id), via: "the admin page" }
    }
}

/// What every instance reports about one upstream, in a line: "connected", "connected on all 2", or
/// "connected 1/2, failed 1/2"; the most tools any instance found, and an error one of them has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub status: String,
    pub tools: Option<usize>,
    pub error: Option<String>,
}

impl Summary {
    pub fn of(enabled: bool, reports: &[StatusReport]) -> Summary {
        if !enabled {
            return Summary { status: "disabled".into(), tools: None, error: None };
        }
        if reports.is_empty() {
            return Summary { status: "no instance running".into(), tools: None, error: None };
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
        Summary {
            status,
            tools: reports.iter().map(|r| r.tools.len()).max(),
            error: reports.iter().find_map(|r| r.error.clone()),
        }
    }
}

/// The upstream configuration in force on this instance.
#[derive(Clone)]
pub struct Upstreams {
    store: Store,
    scopes: ScopeCatalog,
    /// Seals each upstream's environment and headers in the database.
    secrets: Arc<SecretsKey>,
    current: Arc<watch::Sender<Arc<Vec<Upstream>>>>,
    /// What this instance's gateway last found (for /readyz).
    local: Arc<std::sync::RwLock<Vec<StatusReport>>>,
}

impl Upstreams {
    /// Reads the configuration once ([`Upstreams::reload`] reads it again), after sealing what an older
    /// version stored in plaintext. Stored secrets sealed with another key stop the start.
    pub async fn load(
        store: Store,
        scopes: ScopeCatalog,
        secrets: Arc<SecretsKey>,
    ) -> Result<Upstreams, UpstreamError> {
        let rows = store.list_upstreams().await?;
        for row in &rows {
            if let Some(found) = row.sealed_with_another_key(&secrets) {
                return Err(UpstreamError::OtherSecretsKey { found, ours: secrets.id().to_owned() });
            }
            // A row this version cannot use is left for `reload` to log and leave out; it stops nothing.
            let Ok(upstream) = Upstream::from_row(row, &secrets) else {
                continue;
            };
            if row.needs_sealing() {
                store.save_upstreams(vec![upstream.to_row(&secrets)], None).await?;
                tracing::info!(upstream = %upstream.name, "sealed credentials stored in plaintext by an older version");
            }
        }
        let upstreams = Upstreams {
            store,
            scopes,
            secrets,
            current: Arc::new(watch::Sender::new(Arc::default())),
            local: Arc::default(),
        };
        upstreams.reload().await?;
        Ok(upstreams)
    }

    /// The upstreams as last read, by name.
    pub fn current(&self) -> Arc<Vec<Upstream>> {
        self.current.borrow().clone()
    }

    /// Changes whenever a reload finds a different configuration.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Vec<Upstream>>> {
        self.current.subscribe()
    }

    /// Reads the configuration again (another instance, or the CLI, may have changed it). A stored upstream
    /// this version cannot use is logged and left out.
    pub async fn reload(&self) -> Result<(), DbErr> {
        let rows = self.store.list_upstreams().await?;
        let upstreams: Vec<Upstream> = rows
            .iter()
            .filter_map(|row| {
                Upstream::from_row(row, &self.secrets)
                    .inspect_err(|e| tracing::error!(error = %e, "unusable upstream row"))
                    .ok()
            })
            .collect();
        self.scopes.set_extra(scope_descriptions(&upstreams));
        self.current.send_if_modified(|current| {
            if **current == upstreams {
                return false;
            }
            *current = Arc::new(upstreams);
            true
        });
        Ok(())
    }

    /// Adds a new upstream.
    pub async fn add(&self, upstream: Upstream, by: ChangedBy<'_>) -> Result<(), UpstreamError> {
        upstream.validate()?;
        let mut all: Vec<Upstream> = self.stored().await?;
        if all.iter().any(|u| u.name == upstream.name) {
            return Err(UpstreamError::Exists(upstream.name));
        }
        all.push(upstream.clone());
        check_prefixes(&all)?;
        self.store.save_upstreams(vec![upstream.to_row(&self.secrets)], None).await?;
        self.audit(by, &format!("added {} ({})", upstream.name, upstream.transport.kind())).await;
        self.reload().await?;
        Ok(())
    }

    /// Makes the stored set exactly the file's (adds, changes and removes); `Ok(false)` when it already was.
    pub async fn apply(&self, file: UpstreamFile, by: ChangedBy<'_>) -> Result<bool, UpstreamError> {
        for upstream in &file.upstreams {
            upstream.validate()?;
        }
        check_prefixes(&file.upstreams)?;
        // Sealed values differ at every sealing, so what changed is decided here, on the opened ones.
        let stored: Vec<Upstream> = self.stored().await?.iter().map(Upstream::normalized).collect();
        let rows = file
            .upstreams
            .iter()
            .filter(|u| !stored.contains(&u.normalized()))
            .map(|u| u.to_row(&self.secrets))
            .collect();
        let names: Vec<String> = file.upstreams.iter().map(|u| u.name.clone()).collect();
        let changed = self.store.save_upstreams(rows, Some(&names)).await?;
        if changed {
            let names: Vec<&str> = file.upstreams.iter().map(|u| u.name.as_str()).collect();
            self.audit(by, &format!("applied a set of {}: {}", names.len(), names.join(", "))).await;
        }
        self.reload().await?;
        Ok(changed)
    }

    /// Overrides (or, with `None`, resets) the scope one tool of an upstream needs; `Ok(false)` when there
    /// is no upstream by that name.
    pub async fn set_tool_access(
        &self,
        name: &str,
        tool: &str,
        access: Option<super::upstream::Access>,
        by: ChangedBy<'_>,
    ) -> Result<bool, UpstreamError> {
        let Some(mut upstream) = self.stored().await?.into_iter().find(|u| u.name == name) else {
            return Ok(false);
        };
        match access {
            Some(access) => upstream.tools.insert(tool.to_owned(), access),
            None => upstream.tools.remove(tool),
        };
        self.store.save_upstreams(vec![upstream.to_row(&self.secrets)], None).await?;
        let access = access.map_or("default", |a| a.as_str());
        self.audit(by, &format!("tool {tool} of {name} set to {access}")).await;
        self.reload().await?;
        Ok(true)
    }

    /// Removes an upstream; `Ok(false)` when there is none by that name.
    pub async fn remove(&self, name: &str, by: ChangedBy<'_>) -> Result<bool, UpstreamError> {
        let removed = self.store.remove_upstream(name).await?;
        if removed {
            self.audit(by, &format!("removed {name}")).await;
        }
        self.reload().await?;
        Ok(removed)
    }

    /// Enables or disables an upstream; `Ok(false)` when there is none by that name.
    pub async fn set_enabled(&self, name: &str, enabled: bool, by: ChangedBy<'_>) -> Result<bool, UpstreamError> {
        let found = self.store.set_upstream_enabled(name, enabled).await?;
        if found {
            self.audit(by, &format!("{} {name}", if enabled { "enabled" } else { "disabled" })).await;
        }
        self.reload().await?;
        Ok(found)
    }

    /// The current reports of every instance, by upstream.
    pub async fn statuses(&self) -> Result<BTreeMap<String, Vec<StatusReport>>, DbErr> {
        let rows = self.store.upstream_statuses(UnixTime::now() - REPORT_FRESH_FOR).await?;
        let mut by_upstream: BTreeMap<String, Vec<StatusReport>> = BTreeMap::new();
        for row in rows {
            by_upstream.entry(row.upstream.clone()).or_default().push(StatusReport {
                tools: serde_json::from_str(&row.tools).unwrap_or_default(),
                instance: row.instance,
                upstream: row.upstream,
                state: row.state,
                error: row.error,
                updated_at: row.updated_at,
            });
        }
        Ok(by_upstream)
    }

    /// What this instance's gateway last found about each upstream.
    pub fn local_reports(&self) -> Vec<StatusReport> {
        self.local.read().expect("reports lock").clone()
    }

    /// Replaces what this instance reports (kept here too, for /readyz).
    pub async fn report(&self, instance: &str, reports: &[StatusReport]) -> Result<(), DbErr> {
        *self.local.write().expect("reports lock") = reports.to_vec();
        let rows = reports
            .iter()
            .map(|r| upstream_status::Model {
                instance: instance.to_owned(),
                upstream: r.upstream.clone(),
                state: r.state.clone(),
                error: r.error.clone(),
                tools: serde_json::to_string(&r.tools).expect("strings serialize"),
                updated_at: r.updated_at,
            })
            .collect();
        self.store.report_upstream_status(instance, rows).await
    }

    /// Withdraws what this instance reported (it is stopping).
    pub async fn withdraw_reports(&self, instance: &str) -> Result<(), DbErr> {
        self.store.clear_upstream_status(instance).await
    }

    async fn audit(&self, by: ChangedBy<'_>, what: &str) {
        let detail = format!("{what}, by {}", by.via);
        let entry = AuditEntry { user_id: by.user_id, detail: Some(&detail), ..AuditEntry::default() };
        self.store.audit(AuditKind::UpstreamChanged, entry).await;
    }

    async fn stored(&self) -> Result<Vec<Upstream>, DbErr> {
        Ok(self
            .store
            .list_upstreams()
            .await?
            .iter()
            .filter_map(|row| Upstream::from_row(row, &self.secrets).ok())
            .collect())
    }
}

/// Every upstream's stored environment and headers sealed again under `to`, for [`Store::replace_sealed`]
/// (`mcp-gateway secrets rotate-key`).
pub async fn resealed_upstreams(
    store: &Store,
    from: &SecretsKey,
    to: &SecretsKey,
) -> Result<Vec<ResealedUpstream>, UpstreamError> {
    let mut resealed = Vec::new();
    for row in store.list_upstreams().await? {
        let new = Upstream::from_row(&row, from)?.to_row(to).upstream;
        let old = row.upstream;
        resealed.push(ResealedUpstream {
            name: old.name,
            old_env: old.env,
            old_headers: old.headers,
            old_oauth: old.oauth,
            env: new.env,
            headers: new.headers,
            oauth: new.oauth,
        });
    }
    Ok(resealed)
}

/// Two upstreams under one non-empty prefix would expose colliding names.
fn check_prefixes(upstreams: &[Upstream]) -> Result<(), UpstreamError> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for u in upstreams {
        let prefix = u.prefix();
        if prefix.is_empty() {
            continue;
        }
        if let Some(other) = seen.insert(prefix, &u.name) {
            return Err(UpstreamError::Conflict(format!(
                "upstreams {other} and {} both use the prefix '{prefix}'; give one --prefix",
                u.name
            )));
        }
    }
    Ok(())
}

/// The scopes upstreams add, each described by the upstreams it opens (for the consent page).
pub fn scope_descriptions(upstreams: &[Upstream]) -> Vec<(String, String)> {
    let mut by_scope: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for u in upstreams.iter().filter(|u| u.enabled) {
        if let Some(scope) = &u.scope {
            by_scope.entry(scope).or_default().push(&u.name);
        }
    }
    by_scope
        .into_iter()
        .map(|(scope, names)| {
            let names = names.join(", ");
            (scope.to_owned(), format!("Use the tools, prompts and resources of the upstream server {names}"))
        })
        .collect()
}
