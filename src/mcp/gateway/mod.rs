//! Gateway mode: the upstream MCP servers behind our OAuth. The [`Gateway`] keeps one supervised
//! [`connection::Connection`] per enabled upstream (reconciled whenever the configuration changes, on any
//! instance), merges what they offer into one [`catalog::Catalog`], and reports status; [`front::Front`]
//! is the MCP server clients talk to, the built-ins and every upstream in one.
pub mod audit;
pub mod call;
pub mod catalog;
pub mod connection;
pub mod front;
pub mod personal;
pub mod rounds;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use self::audit::AuditWriter;
use self::catalog::{Catalog, Offer};
use self::connection::{Connection, Event, State};
use self::personal::{Personal, ProcessBudget};
use super::ToolScopes;
use super::events::{Events, ListChanged, ListChanges};
use crate::clock::UnixTime;
use crate::domain::policy::Policy;
use crate::domain::upstream::Upstream;
use crate::domain::upstream_accounts::UpstreamAccounts;
use crate::domain::upstreams::{StatusReport, Upstreams};
use crate::metrics::Metrics;

/// How often each instance reports its connections (and re-reads the configuration on SQLite).
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// A resource of an upstream changed.
#[derive(Debug, Clone)]
pub struct ResourceUpdate {
    pub upstream: Arc<str>,
    pub uri: String,
}

/// The gateway of one instance.
pub struct Gateway {
    upstreams: Upstreams,
    connections: Mutex<BTreeMap<String, Arc<Connection>>>,
    /// Upstreams each person reaches with their own account there.
    personals: Mutex<BTreeMap<String, Arc<Personal>>>,
    pub accounts: Arc<UpstreamAccounts>,
    /// Which groups may use which upstream and tool.
    pub policy: Arc<Policy>,
    budget: ProcessBudget,
    catalog: RwLock<Arc<Catalog>>,
    reserved_tools: HashSet<String>,
    reserved_prompts: HashSet<String>,
    tool_scopes: ToolScopes,
    list_changes: ListChanges,
    pub resource_updates: Events<ResourceUpdate>,
    /// Which upstream listed a resource URI (filled by listings; a read goes where the URI came from).
    resource_owners: Mutex<HashMap<String, Arc<str>>>,
    /// How many sessions subscribed to each (upstream, URI): the upstream is subscribed once.
    subscriptions: tokio::sync::Mutex<HashMap<(Arc<str>, String), usize>>,
    pub metrics: Metrics,
    pub audit: AuditWriter,
    /// Seals the request state of 2026-07-28 clients' `input_required` rounds.
    pub rounds: rounds::Rounds,
    /// This instance, in status reports.
    instance: String,
    /// How often the configuration is re-read without being told (SQLite has no NOTIFY).
    reload_every: Duration,
    /// Whether the last report listed anything.
    reported: std::sync::atomic::AtomicBool,
}

/// Most resource URIs remembered for routing reads (past it, the oldest listings are forgotten).
const MAX_RESOURCE_OWNERS: usize = 100_000;

/// What a gateway is made of.
pub struct GatewayParts {
    pub upstreams: Upstreams,
    /// Tool names the built-ins use (never given to an upstream's tool).
    pub reserved_tools: HashSet<String>,
    /// Prompt names the built-ins use.
    pub reserved_prompts: HashSet<String>,
    /// Shared with the guard, which learns each upstream tool's scopes from it.
    pub tool_scopes: ToolScopes,
    pub list_changes: ListChanges,
    pub metrics: Metrics,
    pub audit: AuditWriter,
    pub reload_every: Duration,
    /// Seals the state of `input_required` rounds; the same on every instance.
    pub rounds_key: String,
    pub accounts: Arc<UpstreamAccounts>,
    /// The per-person processes this instance may run, and when an idle one stops.
    pub budget: ProcessBudget,
    pub policy: Arc<Policy>,
}

impl Gateway {
    pub fn new(parts: GatewayParts) -> Arc<Gateway> {
        Arc::new(Gateway {
            upstreams: parts.upstreams,
            connections: Mutex::default(),
            personals: Mutex::default(),
            accounts: parts.accounts,
            policy: parts.policy,
            budget: parts.budget,
            catalog: RwLock::default(),
            reserved_tools: parts.reserved_tools,
            reserved_prompts: parts.reserved_prompts,
            tool_scopes: parts.tool_scopes,
            list_changes: parts.list_changes,
            resource_updates: Events::default(),
            resource_owners: Mutex::default(),
            subscriptions: tokio::sync::Mutex::default(),
            metrics: parts.metrics,
            audit: parts.audit,
            rounds: rounds::Rounds::new(parts.rounds_key),
            instance: format!("{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]),
            reload_every: parts.reload_every,
            reported: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The merged catalog as of the last change.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().expect("catalog lock").clone()
    }

    pub fn connection(&self, upstream: &str) -> Option<Arc<Connection>> {
        self.connections.lock().expect("connections lock").get(upstream).cloned()
    }

    /// Whether an upstream runs tasks itself (its 2026-07-28 connection declares the tasks extension): then
    /// a client's task-augmented call goes to it as it is, and a task it makes is followed.
    pub fn runs_tasks(&self, upstream: &str) -> bool {
        self.connection(upstream)
            .and_then(|c| c.live())
            .and_then(|live| live.modern.as_ref().and_then(|p| p.peer_info()).map(|i| i.capabilities.supports_tasks()))
            .unwrap_or(false)
    }

    /// A per-person upstream by name.
    pub fn personal(&self, upstream: &str) -> Option<Arc<Personal>> {
        self.personals.lock().expect("personals lock").get(upstream).cloned()
    }

    /// Connections in name order.
    pub fn connections(&self) -> Vec<Arc<Connection>> {
        self.connections.lock().expect("connections lock").values().cloned().collect()
    }

    /// Upstreams that act on each person's own account, in name order.
    pub fn personals(&self) -> Vec<Arc<Personal>> {
        self.personals.lock().expect("personals lock").values().cloned().collect()
    }

    /// Remembers that `upstream` listed these resource URIs.
    pub fn saw_resources<'a>(&self, upstream: &Arc<str>, uris: impl Iterator<Item = &'a str>) {
        let mut owners = self.resource_owners.lock().expect("resource owners lock");
        for uri in uris {
            if owners.len() >= MAX_RESOURCE_OWNERS && !owners.contains_key(uri) {
                owners.clear();
            }
            owners.insert(uri.to_owned(), upstream.clone());
        }
    }

    /// The upstream a resource URI belongs to: the one that listed it, else the one template that matches.
    pub fn resource_owner(&self, uri: &str) -> Option<Arc<str>> {
        if let Some(owner) = self.resource_owners.lock().expect("resource owners lock").get(uri) {
            return Some(owner.clone());
        }
        let catalog = self.catalog();
        match catalog.template_owners(uri).as_slice() {
            [only] => Some(only.upstream.clone()),
            _ => None,
        }
    }

    /// Counts a session's subscription; `true` when it is the first, so the upstream is to be subscribed.
    pub async fn subscribe_count(&self, upstream: &Arc<str>, uri: &str) -> bool {
        let mut subscriptions = self.subscriptions.lock().await;
        let count = subscriptions.entry((upstream.clone(), uri.to_owned())).or_default();
        *count += 1;
        *count == 1
    }

    /// Uncounts a session's subscription; `true` when it was the last, so the upstream is to be unsubscribed.
    pub async fn unsubscribe_count(&self, upstream: &Arc<str>, uri: &str) -> bool {
        let mut subscriptions = self.subscriptions.lock().await;
        let key = (upstream.clone(), uri.to_owned());
        match subscriptions.get_mut(&key) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                subscriptions.remove(&key);
                true
            }
            None => false,
        }
    }

    /// Runs until `stop`: follows the configuration (`changed` is notified when another instance announces
    /// a change), keeps the connections in line with it, rebuilds the catalog and reports status.
    pub async fn run(self: Arc<Gateway>, changed: Arc<Notify>, stop: CancellationToken) {
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let mut config = self.upstreams.subscribe();
        self.reconcile(&config.borrow_and_update().clone(), &events_tx);
        let mut reload = tokio::time::interval(self.reload_every);
        let mut report = tokio::time::interval(REPORT_EVERY);
        let mut report_soon = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = changed.notified() => self.reload().await,
                _ = reload.tick() => self.reload().await,
                Ok(()) = config.changed() => {
                    let current = config.borrow_and_update().clone();
                    self.reconcile(&current, &events_tx);
                    report_soon = true;
                }
                Some(event) = events.recv() => {
                    match event {
                        Event::Changed => {
                            self.rebuild();
                            report_soon = true;
                        }
                        Event::ListChanged(which) => {
                            if !self.rebuild().contains(&which) {
                                self.list_changes.publish(which);
                            }
                            report_soon = true;
                        }
                        Event::ResourcesChanged => self.list_changes.publish(ListChanged::Resources),
                        Event::ResourceUpdated { upstream, uri } => {
                            self.resource_updates.publish(ResourceUpdate { upstream, uri });
                        }
                    }
                }
                _ = report.tick() => report_soon = !self.report().await,
                () = tokio::time::sleep(Duration::from_millis(200)), if report_soon => {
                    report_soon = !self.report().await;
                }
            }
        }
        for connection in self.connections() {
            connection.stop();
        }
        for personal in self.personals.lock().expect("personals lock").values() {
            personal.stop();
        }
        if let Err(e) = self.upstreams.withdraw_reports(&self.instance).await {
            tracing::debug!(error = %e, "withdrawing upstream reports failed");
        }
        self.audit.flush().await;
    }

    async fn reload(&self) {
        if let Err(e) = self.upstreams.reload().await {
            tracing::warn!(error = %e, "re-reading the upstream configuration failed");
        }
    }

    /// Starts, restarts and stops connections so that exactly the enabled upstreams run, each with its
    /// current configuration.
    fn reconcile(&self, config: &[Upstream], events: &mpsc::UnboundedSender<Event>) {
        let mut personals = self.personals.lock().expect("personals lock");
        let personal: BTreeMap<&str, &Upstream> =
            config.iter().filter(|u| u.enabled && u.is_personal()).map(|u| (u.name.as_str(), u)).collect();
        personals.retain(|name, p| {
            let keep = personal.get(name.as_str()).is_some_and(|u| **u == p.upstream);
            if !keep {
                p.stop();
                self.metrics.upstream_removed(name);
            }
            keep
        });
        for (name, upstream) in personal {
            if !personals.contains_key(name) {
                tracing::info!(upstream = %name, "serving upstream with each person's own credentials");
                let personal =
                    Personal::start(upstream.clone(), self.accounts.clone(), events.clone(), self.budget.clone());
                personals.insert(name.to_owned(), personal);
            }
        }
        drop(personals);
        let mut connections = self.connections.lock().expect("connections lock");
        let wanted: BTreeMap<&str, &Upstream> =
            config.iter().filter(|u| u.enabled && !u.is_personal()).map(|u| (u.name.as_str(), u)).collect();
        connections.retain(|name, connection| {
            let keep = wanted.get(name.as_str()).is_some_and(|u| **u == connection.upstream);
            if !keep {
                connection.stop();
                self.metrics.upstream_removed(name);
                tracing::info!(upstream = %name, "upstream connection stopped (configuration changed)");
            }
            keep
        });
        for (name, upstream) in wanted {
            if !connections.contains_key(name) {
                tracing::info!(upstream = %name, kind = upstream.transport.kind(), "starting upstream connection");
                connections.insert(name.to_owned(), Connection::start(upstream.clone(), events.clone()));
            }
        }
        drop(connections);
        self.rebuild();
    }

    /// Merges what the connected upstreams offer; tells listening clients when their lists changed (and
    /// returns which).
    fn rebuild(&self) -> Vec<ListChanged> {
        let connections = self.connections();
        let lives: Vec<(Arc<Connection>, Arc<Offer>)> =
            connections.iter().filter_map(|c| c.live().map(|l| (c.clone(), l.offer))).collect();
        let personals = self.personals();
        let learned: Vec<(&Upstream, Arc<Offer>)> =
            personals.iter().filter_map(|p| p.offer().map(|o| (&p.upstream, o))).collect();
        let mut offers: Vec<(&Upstream, &Offer)> = lives.iter().map(|(c, o)| (&c.upstream, o.as_ref())).collect();
        offers.extend(learned.iter().map(|(u, o)| (*u, o.as_ref())));
        let catalog = Catalog::build(&self.reserved_tools, &self.reserved_prompts, &offers);
        for (connection, _) in &lives {
            if let Some(problems) = catalog.problems.get(&connection.upstream.name) {
                tracing::warn!(upstream = %connection.upstream.name, ?problems, "names left out of the catalog");
            }
        }
        for connection in &connections {
            let status = connection.status();
            self.metrics.upstream_state(&connection.upstream.name, status.state == State::Connected, status.restarts);
        }
        for personal in &personals {
            self.metrics.upstream_state(&personal.upstream.name, personal.offer().is_some(), 0);
        }
        self.tool_scopes.set_upstream(catalog.tool_needs());
        let previous = std::mem::replace(&mut *self.catalog.write().expect("catalog lock"), Arc::new(catalog));
        let current = self.catalog();
        let mut changed = Vec::new();
        let tools = |c: &Catalog| c.tools.iter().map(|t| t.tool.clone()).collect::<Vec<_>>();
        if tools(&previous) != tools(&current) {
            changed.push(ListChanged::Tools);
        }
        let prompts = |c: &Catalog| c.prompts.iter().map(|p| p.prompt.clone()).collect::<Vec<_>>();
        if prompts(&previous) != prompts(&current) {
            changed.push(ListChanged::Prompts);
        }
        let templates = |c: &Catalog| c.templates.iter().map(|t| t.template.clone()).collect::<Vec<_>>();
        if templates(&previous) != templates(&current) {
            changed.push(ListChanged::Resources);
        }
        for which in &changed {
            self.list_changes.publish(*which);
        }
        changed
    }

    /// This instance's view of every configured upstream, for `upstream list`, the admin page and /readyz.
    pub fn reports(&self) -> Vec<StatusReport> {
        let catalog = self.catalog();
        let connections = self.connections.lock().expect("connections lock");
        let personals = self.personals.lock().expect("personals lock");
        self.upstreams
            .current()
            .iter()
            .map(|u| {
                let (state, error) = match connections.get(&u.name) {
                    _ if !u.enabled => ("disabled".to_owned(), None),
                    _ if u.is_personal() => match personals.get(&u.name) {
                        Some(p) if p.offer().is_some() => (
                            "connected".to_owned(),
                            Some(format!("per person: {} people's clients open here", p.open_links())),
                        ),
                        _ => {
                            ("starting".to_owned(), Some("per person: no one has connected an account yet".to_owned()))
                        }
                    },
                    Some(c) => {
                        let status = c.status();
                        let problems = catalog.problems.get(&u.name).map(|p| p.join("; "));
                        (status.state.as_str().to_owned(), status.error.or(problems))
                    }
                    None => ("starting".to_owned(), None),
                };
                StatusReport {
                    instance: self.instance.clone(),
                    upstream: u.name.clone(),
                    state,
                    error,
                    tools: catalog.exposed.get(&u.name).cloned().unwrap_or_default(),
                    updated_at: UnixTime::now(),
                }
            })
            .collect()
    }

    /// Writes this instance's reports; `false` when that failed (it is tried again shortly).
    async fn report(&self) -> bool {
        let reports = self.reports();
        // An instance with no upstreams writes nothing (and keeps SQLite's write lock free).
        let reported_before = self.reported.swap(!reports.is_empty(), std::sync::atomic::Ordering::Relaxed);
        if reports.is_empty() && !reported_before {
            return true;
        }
        match self.upstreams.report(&self.instance, &reports).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "reporting upstream status failed");
                false
            }
        }
    }
}
