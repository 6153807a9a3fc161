//! One upstream connection per instance, supervised: a program started with a minimal environment and
//! restarted with backoff when it exits (its stderr goes to our log under its name), or an rmcp Streamable
//! HTTP client with the upstream's static headers. The [`Relay`] is the client side rmcp calls with what the
//! upstream sends: progress, logging and server-to-client requests go to the call they belong to, list
//! changes and resource updates to the gateway.
#![allow(deprecated)] // sampling, roots and logging are deprecated by SEP-2577 but are what upstreams use today
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rmcp::model::*;
use rmcp::service::{
    ClientCacheConfig, ClientLifecycleMode, ClientServiceExt, InboundStreamOrigin, NotificationContext, RequestContext,
    RunningService, ServiceExt,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ErrorData as McpError, Peer, RoleClient};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::catalog::Offer;
use crate::domain::upstream::{Transport, Upstream, redacted};
use crate::mcp::events::ListChanged;

/// Environment variables a program inherits from ours (everything else it gets is configured): enough to
/// find programs and a home directory, never our database URL or secrets.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];
/// Restarts within this window count towards "keeps crashing".
const CRASH_WINDOW: Duration = Duration::from_secs(300);
/// This many failures within the window mark the upstream failed (it is still retried, slowly).
const CRASHES_TO_FAIL: usize = 5;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const FAILED_RETRY: Duration = Duration::from_secs(60);
/// Longest stderr line logged.
const MAX_LOG_LINE: usize = 4096;

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Starting,
    Connected,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Connected => "connected",
            State::Failed => "failed",
        }
    }
}

/// What the supervisor tells the gateway.
#[derive(Debug, Clone)]
pub enum Event {
    /// Connected or disconnected: the catalog is to be rebuilt.
    Changed,
    /// The upstream said its tool or prompt list changed (and it was listed again): the catalog is to be
    /// rebuilt and clients told, even if the list looks the same.
    ListChanged(ListChanged),
    /// The upstream's resource list changed.
    ResourcesChanged,
    /// A resource the upstream was subscribed to changed.
    ResourceUpdated { upstream: Arc<str>, uri: String },
}

/// A server-to-client request the upstream made during a call, for the call's task to put to its client.
pub enum Ask {
    Sample(CreateMessageRequestParams, oneshot::Sender<Result<CreateMessageResult, McpError>>),
    Elicit(ElicitRequestParams, oneshot::Sender<Result<ElicitResult, McpError>>),
    Roots(oneshot::Sender<Result<ListRootsResult, McpError>>),
    Log(LoggingMessageNotificationParam),
}

/// One upstream's connection on this instance.
pub struct Connection {
    pub upstream: Upstream,
    pub relay: Arc<Relay>,
    /// The relay of the 2026-07-28 (stateless) connection to an HTTP upstream that speaks that revision.
    pub modern_relay: Arc<Relay>,
    live: RwLock<Option<Live>>,
    status: Mutex<Status>,
    stop: CancellationToken,
}

/// The connected peer and what it offers.
#[derive(Clone)]
pub struct Live {
    /// A legacy session (`initialize`): server-to-client requests come as requests.
    pub peer: Peer<RoleClient>,
    /// A 2026-07-28 connection beside it, when the upstream speaks that revision: used for 2026-07-28
    /// clients, so that what the upstream asks comes back as `input_required` results they can answer.
    pub modern: Option<Peer<RoleClient>>,
    pub offer: Arc<Offer>,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub state: State,
    pub error: Option<String>,
    pub restarts: u64,
}

impl Connection {
    /// Starts supervising `upstream`; `events` hears of every change.
    pub fn start(upstream: Upstream, events: mpsc::UnboundedSender<Event>) -> Arc<Connection> {
        let (relay_tx, relay_rx) = mpsc::unbounded_channel();
        let connection = Arc::new(Connection {
            modern_relay: Arc::new(Relay::new(&upstream.name, relay_tx.clone())),
            relay: Arc::new(Relay::new(&upstream.name, relay_tx)),
            upstream,
            live: RwLock::new(None),
            status: Mutex::new(Status { state: State::Starting, error: None, restarts: 0 }),
            stop: CancellationToken::new(),
        });
        tokio::spawn(supervise(connection.clone(), relay_rx, events));
        connection
    }

    pub fn live(&self) -> Option<Live> {
        self.live.read().expect("live lock").clone()
    }

    pub fn status(&self) -> Status {
        self.status.lock().expect("status lock").clone()
    }

    /// Closes the connection (ends the program) for good.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    fn set_status(&self, state: State, error: Option<String>) {
        let mut status = self.status.lock().expect("status lock");
        status.state = state;
        if error.is_some() || state == State::Connected {
            status.error = error;
        }
    }

    fn set_live(&self, live: Option<Live>) {
        *self.live.write().expect("live lock") = live;
    }
}

/// What the relay hears that the supervisor acts on.
pub(super) enum Heard {
    ToolsChanged,
    PromptsChanged,
    ResourcesChanged,
    ResourceUpdated(String),
}

/// Connects, serves, and reconnects with backoff until stopped.
async fn supervise(
    connection: Arc<Connection>,
    mut heard: mpsc::UnboundedReceiver<Heard>,
    events: mpsc::UnboundedSender<Event>,
) {
    let name: Arc<str> = Arc::from(connection.upstream.name.as_str());
    let mut failures: Vec<Instant> = Vec::new();
    let mut backoff = Duration::from_millis(500);
    loop {
        connection.set_status(State::Starting, None);
        let started = Instant::now();
        let outcome = tokio::select! {
            () = connection.stop.cancelled() => return,
            outcome = connect(&connection) => outcome,
        };
        let problem = match outcome {
            Ok(mut running) => {
                let problem = serve(&connection, &mut running, &mut heard, &events, &name).await;
                connection.set_live(None);
                let _ = events.send(Event::Changed);
                running.stop().await;
                match problem {
                    None => return,
                    Some(problem) => problem,
                }
            }
            Err(problem) => problem,
        };
        tracing::warn!(upstream = %name, problem = %problem, "upstream connection ended");
        failures.retain(|t| t.elapsed() < CRASH_WINDOW);
        failures.push(Instant::now());
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_millis(500);
        }
        let failed = failures.len() >= CRASHES_TO_FAIL;
        connection.set_status(if failed { State::Failed } else { State::Starting }, Some(problem));
        connection.status.lock().expect("status lock").restarts += 1;
        let _ = events.send(Event::Changed);
        let wait = if failed { FAILED_RETRY } else { backoff };
        backoff = (backoff * 2).min(MAX_BACKOFF);
        tokio::select! {
            () = connection.stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Serves a connected upstream until it goes away (`Some(problem)`) or the connection is stopped (`None`).
async fn serve(
    connection: &Connection,
    running: &mut Running,
    heard: &mut mpsc::UnboundedReceiver<Heard>,
    events: &mpsc::UnboundedSender<Event>,
    name: &Arc<str>,
) -> Option<String> {
    let peer = running.service.peer().clone();
    peer.set_response_cache_config(ClientCacheConfig::disabled()).await;
    let modern = running.modern.as_ref().map(|m| m.peer().clone());
    if let Some(modern) = &modern {
        modern.set_response_cache_config(ClientCacheConfig::disabled()).await;
    }
    // Log messages are filtered for each client by the gateway, so the upstream sends them all.
    if peer.peer_info().is_some_and(|i| i.capabilities.logging.is_some()) {
        let _ = peer.set_level(SetLevelRequestParams::new(LoggingLevel::Debug)).await;
    }
    let offer = match tokio::time::timeout(connection.upstream.timeout(), fetch_offer(&peer)).await {
        Ok(Ok(offer)) => offer,
        Ok(Err(e)) => return Some(format!("listing what it offers failed: {e}")),
        Err(_) => return Some("listing what it offers took too long".into()),
    };
    learn_parameter_headers(modern.as_ref(), name).await;
    tracing::info!(upstream = %name, tools = offer.tools.len(), prompts = offer.prompts.len(), "upstream connected");
    connection.set_live(Some(Live { peer: peer.clone(), modern: modern.clone(), offer: Arc::new(offer) }));
    connection.set_status(State::Connected, None);
    let _ = events.send(Event::Changed);
    loop {
        tokio::select! {
            () = connection.stop.cancelled() => return None,
            ended = running.ended() => return Some(ended),
            Some(what) = heard.recv() => match what {
                Heard::ToolsChanged | Heard::PromptsChanged => {
                    let which = if matches!(what, Heard::ToolsChanged) { ListChanged::Tools } else { ListChanged::Prompts };
                    match fetch_offer(&peer).await {
                        Ok(offer) => {
                            learn_parameter_headers(modern.as_ref(), name).await;
                            let offer = Arc::new(offer);
                            connection.set_live(Some(Live { peer: peer.clone(), modern: modern.clone(), offer }));
                            let _ = events.send(Event::ListChanged(which));
                        }
                        Err(e) => tracing::warn!(upstream = %name, error = %e, "re-listing after a change failed"),
                    }
                }
                Heard::ResourcesChanged => {
                    let _ = events.send(Event::ResourcesChanged);
                }
                Heard::ResourceUpdated(uri) => {
                    let _ = events.send(Event::ResourceUpdated { upstream: name.clone(), uri });
                }
            },
        }
    }
}

/// Lists the tools over the 2026-07-28 connection too: rmcp's client mirrors a tool's `x-mcp-header`
/// parameters in `Mcp-Param-*` headers (SEP-2243) only for tools it has listed on that connection.
async fn learn_parameter_headers(modern: Option<&Peer<RoleClient>>, name: &str) {
    if let Some(modern) = modern
        && let Err(e) = modern.list_all_tools().await
    {
        tracing::warn!(upstream = %name, error = %e, "listing tools over the 2026-07-28 connection failed");
    }
}

/// Everything the upstream offers, every page of it.
pub(super) async fn fetch_offer(peer: &Peer<RoleClient>) -> Result<Offer, rmcp::ServiceError> {
    let capabilities = peer.peer_info().map(|i| i.capabilities.clone()).unwrap_or_default();
    let tools = if capabilities.tools.is_some() { peer.list_all_tools().await? } else { vec![] };
    let prompts = if capabilities.prompts.is_some() { peer.list_all_prompts().await? } else { vec![] };
    let resources = capabilities.resources.as_ref();
    let templates = if resources.is_some() { peer.list_all_resource_templates().await? } else { vec![] };
    Ok(Offer {
        tools,
        prompts,
        templates,
        resources: resources.is_some(),
        subscribe: resources.and_then(|r| r.subscribe).unwrap_or(false),
        completions: capabilities.completions.is_some(),
    })
}

/// A connected upstream: the rmcp client and, for a program, the process.
struct Running {
    service: RunningService<RoleClient, Arc<Relay>>,
    modern: Option<RunningService<RoleClient, Arc<Relay>>>,
    child: Option<tokio::process::Child>,
    group: Group,
}

impl Running {
    /// Resolves when the upstream goes away, saying how.
    async fn ended(&mut self) -> String {
        let closed = self.service.cancellation_token();
        match &mut self.child {
            Some(child) => {
                let status = child.wait().await;
                closed.cancel();
                match status {
                    Ok(s) => format!("the program exited ({s})"),
                    Err(e) => format!("waiting for the program failed: {e}"),
                }
            }
            None => loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if self.service.is_transport_closed() || self.service.is_closed() {
                    return "the connection closed".into();
                }
            },
        }
    }

    /// Closes the connection; a program gets its standard input closed, then SIGTERM, then SIGKILL.
    async fn stop(mut self) {
        let _ = self.service.close_with_timeout(Duration::from_secs(2)).await;
        if let Some(mut modern) = self.modern.take() {
            let _ = modern.close_with_timeout(Duration::from_secs(2)).await;
        }
        if let Some(mut child) = self.child.take() {
            let group = self.group;
            if let Ok(None) = child.try_wait() {
                terminate(group);
                if tokio::time::timeout(Duration::from_secs(3), child.wait()).await.is_err() {
                    let _ = child.kill().await;
                }
            }
            kill_group(group);
        }
    }
}

async fn connect(connection: &Connection) -> Result<Running, String> {
    let relay = connection.relay.clone();
    let wait = connection.upstream.timeout().max(Duration::from_secs(30));
    match &connection.upstream.transport {
        Transport::Stdio { command, args, env, cwd } => {
            let program =
                Program { name: &connection.upstream.name, command, args, cwd: cwd.as_deref(), personal: false };
            let (service, child, group) = start_program(&program, env.iter(), relay, wait).await?;
            Ok(Running { service, modern: None, child: Some(child), group })
        }
        Transport::Http { url, headers } => {
            let mut custom = HashMap::new();
            for (name, value) in headers {
                let name = reqwest::header::HeaderName::try_from(name.as_str()).map_err(|e| e.to_string())?;
                let value = reqwest::header::HeaderValue::try_from(value.as_str()).map_err(|e| e.to_string())?;
                custom.insert(name, value);
            }
            let http = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("mcp-gateway/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())?;
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                .custom_headers(custom)
                .max_concurrent_requests(1024)
                .reinit_on_expired_session(true);
            let transport = StreamableHttpClientTransport::with_client(http.clone(), config.clone());
            match tokio::time::timeout(wait, relay.serve(transport)).await {
                Ok(Ok(service)) => {
                    let modern = connect_modern(&connection.modern_relay, http, config).await;
                    Ok(Running { service, modern, child: None, group: None })
                }
                Ok(Err(e)) => Err(match unreachable(&http, url).await {
                    Some(why) => format!("cannot reach {}: {why}", redacted(url)),
                    None => format!("initialize failed: {}", root_cause(&e)),
                }),
                Err(_) => Err(format!("it did not answer initialize within {} s", wait.as_secs())),
            }
        }
    }
}

/// A program to start: the upstream's name (for its log lines), what to run and where.
pub(super) struct Program<'a> {
    pub name: &'a str,
    pub command: &'a str,
    pub args: &'a [String],
    pub cwd: Option<&'a str>,
    /// A person's own process: its stderr (which may echo their values) is logged only at debug level.
    pub personal: bool,
}

/// Starts a program with a minimal environment plus `env`, its stderr logged under the upstream's name, and
/// connects rmcp's client to it through `relay`.
pub(super) async fn start_program<'e>(
    program: &Program<'_>,
    env: impl Iterator<Item = (&'e String, &'e String)>,
    relay: Arc<Relay>,
    wait: Duration,
) -> Result<(RunningService<RoleClient, Arc<Relay>>, tokio::process::Child, Group), String> {
    let mut cmd = tokio::process::Command::new(program.command);
    cmd.args(program.args)
        .env_clear()
        .envs(INHERITED_ENV.iter().filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))))
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(cwd) = program.cwd {
        cmd.current_dir(cwd);
    }
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|e| format!("starting {} failed: {e}", program.command))?;
    let group = group_of(&child);
    let (Some(stdout), Some(stdin), Some(stderr)) = (child.stdout.take(), child.stdin.take(), child.stderr.take())
    else {
        return Err("the program's standard streams are missing".into());
    };
    let last_words = Arc::new(Mutex::new(String::new()));
    tokio::spawn(log_stderr(program.name.to_owned(), stderr, last_words.clone(), program.personal));
    let service = match tokio::time::timeout(wait, relay.serve((stdout, stdin))).await {
        Ok(Ok(service)) => service,
        Ok(Err(e)) => {
            let exited = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
            kill_group(group);
            let mut why = match exited {
                Ok(Ok(status)) => format!("the program exited ({status}) before answering initialize"),
                _ => format!("initialize failed: {}", root_cause(&e)),
            };
            let said = last_words.lock().expect("stderr lock").clone();
            if !said.is_empty() {
                why.push_str(&format!("; its last stderr line: {said}"));
            }
            return Err(why);
        }
        Err(_) => {
            kill_group(group);
            return Err(format!("it did not answer initialize within {} s", wait.as_secs()));
        }
    };
    Ok((service, child, group))
}

/// A 2026-07-28 connection to the same URL, when the upstream speaks that revision (`None` otherwise).
async fn connect_modern(
    relay: &Arc<Relay>,
    http: reqwest::Client,
    config: StreamableHttpClientTransportConfig,
) -> Option<RunningService<RoleClient, Arc<Relay>>> {
    let transport = StreamableHttpClientTransport::with_client(http, config);
    let lifecycle = ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] };
    match tokio::time::timeout(Duration::from_secs(10), relay.clone().serve_with_lifecycle(transport, lifecycle)).await
    {
        Ok(Ok(service)) => Some(service),
        Ok(Err(e)) => {
            tracing::debug!(upstream = %relay.name, error = %e, "the upstream does not speak 2026-07-28");
            None
        }
        Err(_) => None,
    }
}

/// Why `url` cannot be reached at all (refused, no such host, TLS), or `None` when it answers: rmcp's
/// errors keep only the outermost message, so after a failed initialize the cause is asked for directly.
async fn unreachable(http: &reqwest::Client, url: &str) -> Option<String> {
    match http.get(url).timeout(Duration::from_secs(5)).send().await {
        Ok(_) => None,
        Err(e) => Some(root_cause(&e)),
    }
}

/// The innermost cause of an error.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Logs a program's stderr under its upstream's name and keeps its last non-empty line (shortened) for
/// the status an operator sees when it fails to start.
async fn log_stderr(upstream: String, stderr: tokio::process::ChildStderr, last: Arc<Mutex<String>>, personal: bool) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let end = (0..=line.len().min(MAX_LOG_LINE)).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
        if personal {
            tracing::debug!(upstream = %upstream, "stderr of a person's process: {}", &line[..end]);
        } else {
            tracing::info!(upstream = %upstream, "stderr: {}", &line[..end]);
        }
        let line: String = line.trim().chars().filter(|c| !c.is_control()).collect();
        if !line.is_empty() {
            let end = (0..=line.len().min(200)).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
            *last.lock().expect("stderr lock") = line[..end].to_owned();
        }
    }
}

/// The process group a child leads (its pid, taken at spawn: once the child is reaped tokio forgets it,
/// and what it started, npx's node say, may still run in the group).
pub(super) type Group = Option<i32>;

fn group_of(child: &tokio::process::Child) -> Group {
    child.id().and_then(|p| i32::try_from(p).ok())
}

#[cfg(unix)]
fn terminate(group: Group) {
    if let Some(pid) = group {
        // SAFETY: signalling the process group this child leads (it was started with process_group(0)).
        unsafe { libc::killpg(pid, libc::SIGTERM) };
    }
}

#[cfg(unix)]
pub(super) fn kill_group(group: Group) {
    if let Some(pid) = group {
        // SAFETY: as in `terminate`; ends what the program started (npx's node, say).
        unsafe { libc::killpg(pid, libc::SIGKILL) };
    }
}

#[cfg(not(unix))]
fn terminate(_: Group) {}

#[cfg(not(unix))]
pub(super) fn kill_group(_: Group) {}

/// The client side of one upstream connection.
pub struct Relay {
    name: Arc<str>,
    /// Calls in flight, by the id of the request sent upstream.
    calls: Mutex<HashMap<RequestId, mpsc::Sender<Ask>>>,
    progress: Mutex<EarlyProgress>,
    heard: mpsc::UnboundedSender<Heard>,
    /// Woken whenever a call is registered.
    registered: tokio::sync::Notify,
    /// Calls sent upstream whose id rmcp has not handed back yet.
    pending: std::sync::atomic::AtomicUsize,
    /// When a call was last given up (cancelled, timed out) while the upstream may still be working on it.
    abandoned: Mutex<Option<Instant>>,
}

/// How long after a call was given up a request without a stream to tell it by is not given to whichever
/// call is alone then: it may be the abandoned call's, and would reach another person.
const ABANDONED_GRACE: Duration = Duration::from_secs(30);

/// How long a request from the upstream waits for its call to be registered: the upstream may ask before
/// rmcp has handed the gateway the id of the request it sent.
const REGISTRATION_WAIT: Duration = Duration::from_secs(2);

impl Relay {
    pub(super) fn new(name: &str, heard: mpsc::UnboundedSender<Heard>) -> Relay {
        Relay {
            name: Arc::from(name),
            calls: Mutex::default(),
            progress: Mutex::default(),
            heard,
            registered: tokio::sync::Notify::new(),
            pending: std::sync::atomic::AtomicUsize::new(0),
            abandoned: Mutex::new(None),
        }
    }

    /// Notes that a call was given up while the upstream may still be working on it.
    pub fn abandoned(&self) {
        *self.abandoned.lock().expect("abandoned lock") = Some(Instant::now());
    }

    fn recently_abandoned(&self) -> bool {
        self.abandoned.lock().expect("abandoned lock").is_some_and(|at| at.elapsed() < ABANDONED_GRACE)
    }

    /// Marks a call about to be sent: until it is registered (or the guard dropped), a request from the
    /// upstream without a stream to tell it by waits instead of being given to another call.
    pub fn sending(self: &Arc<Relay>) -> Sending {
        self.pending.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Sending { relay: self.clone() }
    }

    /// Registers a call in flight; what the upstream asks during it arrives on the returned receiver until
    /// the guard is dropped.
    pub fn open_call(self: &Arc<Relay>, id: RequestId) -> (CallGuard, mpsc::Receiver<Ask>) {
        let (tx, rx) = mpsc::channel(16);
        self.calls.lock().expect("calls lock").insert(id.clone(), tx);
        self.registered.notify_waiters();
        (CallGuard { relay: self.clone(), id }, rx)
    }

    /// The call a message from the upstream belongs to: the one whose response stream it came on, or the
    /// only call in flight while no other is being sent and none was given up lately. Never a guess among
    /// several.
    fn call_for(&self, extensions: &Extensions) -> Option<mpsc::Sender<Ask>> {
        let calls = self.calls.lock().expect("calls lock");
        match extensions.get::<InboundStreamOrigin>() {
            Some(InboundStreamOrigin::OutboundRequest(id)) => calls.get(id).cloned(),
            _ if calls.len() == 1
                && self.pending.load(std::sync::atomic::Ordering::SeqCst) == 0
                && !self.recently_abandoned() =>
            {
                calls.values().next().cloned()
            }
            _ => None,
        }
    }

    /// Whether a call could still claim a request: one is being sent, or the request came on the stream of
    /// a call not registered yet.
    fn may_be_claimed(&self, extensions: &Extensions) -> bool {
        self.pending.load(std::sync::atomic::Ordering::SeqCst) > 0
            || matches!(extensions.get::<InboundStreamOrigin>(), Some(InboundStreamOrigin::OutboundRequest(_)))
    }

    async fn ask<T>(
        &self,
        extensions: &Extensions,
        what: &str,
        make: impl FnOnce(oneshot::Sender<Result<T, McpError>>) -> Ask,
    ) -> Result<T, McpError> {
        let deadline = tokio::time::Instant::now() + REGISTRATION_WAIT;
        let call = loop {
            let registered = self.registered.notified();
            tokio::pin!(registered);
            registered.as_mut().enable();
            if let Some(call) = self.call_for(extensions) {
                break call;
            }
            // Asked outside any call (at start-up, say): nobody to put it to, so no waiting either.
            if !self.may_be_claimed(extensions) || tokio::time::timeout_at(deadline, registered).await.is_err() {
                return Err(McpError::invalid_request(
                    format!("the gateway passes {what} requests on only during a call it can tell them apart by"),
                    None,
                ));
            }
        };
        let (tx, rx) = oneshot::channel();
        call.send(make(tx)).await.map_err(|_| McpError::internal_error("the call has ended", None))?;
        rx.await.map_err(|_| McpError::internal_error("the call has ended", None))?
    }
}

/// A call on its way upstream; see [`Relay::sending`].
pub struct Sending {
    relay: Arc<Relay>,
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.relay.pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.relay.registered.notify_waiters();
    }
}

/// Progress notifications by token for the calls in flight. One that arrives before its call subscribed
/// (a fast upstream reports progress before rmcp has handed the gateway the request's token) is kept for a
/// few seconds and given to the subscriber when it comes, so a client never misses the first.
#[derive(Default)]
struct EarlyProgress {
    subscribers: HashMap<ProgressToken, mpsc::UnboundedSender<ProgressNotificationParam>>,
    early: HashMap<ProgressToken, (Instant, Vec<ProgressNotificationParam>)>,
}

/// How long, for how many tokens and how many notifications each, progress waits for its call.
const EARLY_PROGRESS_KEPT: Duration = Duration::from_secs(10);
const EARLY_PROGRESS_TOKENS: usize = 256;
const EARLY_PROGRESS_EACH: usize = 32;

impl EarlyProgress {
    fn deliver(&mut self, note: ProgressNotificationParam) {
        if let Some(subscriber) = self.subscribers.get(&note.progress_token) {
            let _ = subscriber.send(note);
            return;
        }
        self.early.retain(|_, (at, _)| at.elapsed() < EARLY_PROGRESS_KEPT);
        if self.early.len() >= EARLY_PROGRESS_TOKENS && !self.early.contains_key(&note.progress_token) {
            return;
        }
        let (_, kept) = self.early.entry(note.progress_token.clone()).or_insert_with(|| (Instant::now(), Vec::new()));
        if kept.len() < EARLY_PROGRESS_EACH {
            kept.push(note);
        }
    }
}

/// The progress of one call, until dropped.
pub struct ProgressSubscription {
    relay: Arc<Relay>,
    token: ProgressToken,
    notes: mpsc::UnboundedReceiver<ProgressNotificationParam>,
}

impl ProgressSubscription {
    pub async fn next(&mut self) -> Option<ProgressNotificationParam> {
        self.notes.recv().await
    }
}

impl Drop for ProgressSubscription {
    fn drop(&mut self) {
        self.relay.progress.lock().expect("progress lock").subscribers.remove(&self.token);
    }
}

impl Relay {
    /// Subscribes to a call's progress, starting with what arrived before.
    pub fn progress_of(self: &Arc<Relay>, token: ProgressToken) -> ProgressSubscription {
        let (tx, notes) = mpsc::unbounded_channel();
        let mut progress = self.progress.lock().expect("progress lock");
        if let Some((_, early)) = progress.early.remove(&token) {
            for note in early {
                let _ = tx.send(note);
            }
        }
        progress.subscribers.insert(token.clone(), tx);
        ProgressSubscription { relay: self.clone(), token, notes }
    }
}

/// Removes a call from its relay's table when the call ends, however it ends.
pub struct CallGuard {
    relay: Arc<Relay>,
    id: RequestId,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.relay.calls.lock().expect("calls lock").remove(&self.id);
    }
}

impl ClientHandler for Relay {
    fn get_info(&self) -> ClientConfig {
        #[allow(deprecated)]
        let capabilities = ClientCapabilities::builder().enable_sampling().enable_elicitation().enable_roots().build();
        ClientConfig::new(capabilities, Implementation::new("mcp-gateway", env!("CARGO_PKG_VERSION")))
            .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        self.ask(&context.extensions, "sampling", |tx| Ask::Sample(params, tx)).await
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        self.ask(&context.extensions, "elicitation", |tx| Ask::Elicit(request, tx)).await
    }

    async fn list_roots(&self, context: RequestContext<RoleClient>) -> Result<ListRootsResult, McpError> {
        self.ask(&context.extensions, "roots", Ask::Roots).await
    }

    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.progress.lock().expect("progress lock").deliver(params);
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        context: NotificationContext<RoleClient>,
    ) {
        match self.call_for(&context.extensions) {
            Some(call) => {
                let _ = call.try_send(Ask::Log(params));
            }
            None => tracing::debug!(upstream = %self.name, "a log message outside any one call was not passed on"),
        }
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.heard.send(Heard::ResourceUpdated(params.uri));
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.heard.send(Heard::ResourcesChanged);
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.heard.send(Heard::ToolsChanged);
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.heard.send(Heard::PromptsChanged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(token: u32, progress: f64) -> ProgressNotificationParam {
        ProgressNotificationParam::new(ProgressToken(NumberOrString::Number(i64::from(token))), progress)
    }

    #[tokio::test]
    async fn progress_that_comes_before_its_call_subscribed_is_not_lost() {
        let (heard, _) = mpsc::unbounded_channel();
        let relay = Arc::new(Relay::new("up", heard));
        relay.progress.lock().unwrap().deliver(note(7, 1.0));
        relay.progress.lock().unwrap().deliver(note(8, 1.0));
        let mut seven = relay.progress_of(ProgressToken(NumberOrString::Number(7)));
        relay.progress.lock().unwrap().deliver(note(7, 2.0));
        assert_eq!(seven.next().await.unwrap().progress, 1.0, "the early one first");
        assert_eq!(seven.next().await.unwrap().progress, 2.0);
        drop(seven);
        assert!(relay.progress.lock().unwrap().subscribers.is_empty(), "gone with its call");
        for token in 0..1000 {
            relay.progress.lock().unwrap().deliver(note(100 + token, 1.0));
        }
        assert!(relay.progress.lock().unwrap().early.len() <= EARLY_PROGRESS_TOKENS, "an upstream cannot grow it");
    }
}
