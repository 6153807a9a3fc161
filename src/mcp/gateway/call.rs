//! One proxied request, start to end: sent upstream without the client's token or `_meta`, with progress
//! passed back under the client's own token, the upstream's server-to-client requests and log messages
//! put to the client that made the call (from this call's task, so they travel on its stream), the
//! client's cancellation passed upstream, and the upstream's timeout enforced (the upstream is told).
#![allow(deprecated)] // sampling, roots and logging are deprecated by SEP-2577 but are what upstreams use today

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use rmcp::model::*;
use rmcp::service::{PeerRequestOptions, RequestContext};
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServiceError};

use super::Gateway;
use super::connection::{Ask, ProgressSubscription, Relay};
use super::personal::{LinkError, Personal};
use crate::clock::UnixTime;
use crate::domain::tokens::AccessClaims;
use crate::mcp::server::context_person;
use crate::store::{AuditKind, OwnedAuditEntry};

/// Why a proxied request did not get an answer from the upstream.
#[derive(Debug)]
pub enum Failure {
    /// Not connected (starting, failed, or disabled).
    Unavailable(String),
    /// No answer within the upstream's timeout (the upstream was told to cancel).
    Timeout(Duration),
    /// The client cancelled (the upstream was told).
    Cancelled,
    /// The upstream answered with a JSON-RPC error.
    Upstream(McpError),
    /// The connection failed while the request was in flight.
    Transport(String),
    /// The upstream refused the token it was given (401).
    Refused,
    /// The caller has no working account at a per-person upstream: they connect one at `url`.
    NeedsAccount { url: String, why: String },
    /// The policy does not let the caller use the upstream (the rule, in words).
    Policy(String),
}

impl Failure {
    /// The JSON-RPC error the client gets, naming the upstream.
    pub fn into_error(self, upstream: &str) -> McpError {
        match self {
            Failure::Upstream(mut e) => {
                e.message = format!("upstream {upstream}: {}", e.message).into();
                e
            }
            Failure::Policy(why) => McpError::invalid_request(why, Some(serde_json::json!({ "upstream": upstream }))),
            other => {
                McpError::internal_error(other.describe(upstream), Some(serde_json::json!({ "upstream": upstream })))
            }
        }
    }

    /// A sentence naming the upstream.
    pub fn describe(&self, upstream: &str) -> String {
        match self {
            Failure::Unavailable(why) => format!("upstream {upstream} is unavailable: {why}"),
            Failure::Timeout(after) => format!("upstream {upstream} did not answer within {} s", after.as_secs()),
            Failure::Cancelled => format!("the call to upstream {upstream} was cancelled"),
            Failure::Upstream(e) => format!("upstream {upstream}: {}", e.message),
            Failure::Transport(why) => format!("upstream {upstream} failed: {why}"),
            Failure::Refused => format!("upstream {upstream} refused the credentials the gateway holds for it"),
            Failure::NeedsAccount { url, why } => format!("{why}: open {url}"),
            Failure::Policy(why) => why.clone(),
        }
    }

    fn outcome(&self) -> &'static str {
        match self {
            Failure::Timeout(_) => "timeout",
            Failure::Cancelled => "cancelled",
            _ => "error",
        }
    }
}

/// Which of the upstream's log messages during a request go to the client.
#[derive(Debug, Clone, Copy)]
pub enum LogLevel {
    All,
    AtLeast(LoggingLevel),
    None,
}

impl LogLevel {
    fn passes(self, level: LoggingLevel) -> bool {
        match self {
            LogLevel::All => true,
            LogLevel::AtLeast(wanted) => severity(level) >= severity(wanted),
            LogLevel::None => false,
        }
    }
}

/// Sends `request` to `upstream` on behalf of the client behind `ctx`, and waits for the answer while
/// relaying what the upstream says meanwhile.
pub async fn forward(
    gateway: &Gateway,
    upstream: &str,
    request: ClientRequest,
    ctx: &RequestContext<RoleServer>,
    logs: LogLevel,
) -> Result<ServerResult, Failure> {
    if let Ok(me) = crate::mcp::server::context_caller(ctx) {
        let view = gateway.policy.view(me.person()).await.map_err(|e| Failure::Unavailable(e.to_string()))?;
        view.allows(upstream, None).map_err(Failure::Policy)?;
    }
    if let Some(personal) = gateway.personal(upstream) {
        return forward_personal(&personal, request, ctx, logs).await;
    }
    let connection = gateway.connection(upstream).ok_or_else(|| Failure::Unavailable("it is not enabled".into()))?;
    let Some(live) = connection.live() else {
        // Only the state: the last error may quote the program's stderr, which is the operator's to read.
        return Err(Failure::Unavailable(format!("it is {}", connection.status().state.as_str())));
    };
    let timeout = connection.upstream.timeout();
    // A 2026-07-28 client's request goes over the upstream's 2026-07-28 connection when it has one, with the
    // client's own capabilities and log level: what the upstream then asks comes back as `input_required`.
    let modern_client = ctx.protocol_version().is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
    let (peer, relay, options) = match (&live.modern, modern_client) {
        (Some(modern), true) => {
            let mut meta = RequestMetaObject::new();
            if let Some(capabilities) = ctx.meta.client_capabilities() {
                meta.set_client_capabilities(capabilities);
            }
            if let Some(level) = ctx.meta.log_level() {
                meta.set_log_level(level);
            }
            (modern, &connection.modern_relay, PeerRequestOptions::no_options().with_meta(meta))
        }
        _ => (&live.peer, &connection.relay, PeerRequestOptions::no_options()),
    };
    exchange(peer, relay, options, request, ctx, logs, timeout).await
}

/// [`forward`] to an upstream each person reaches with their own account: over this person's own client,
/// made with their token there; a token the upstream refuses is refreshed once and the request sent again.
async fn forward_personal(
    personal: &Personal,
    request: ClientRequest,
    ctx: &RequestContext<RoleServer>,
    logs: LogLevel,
) -> Result<ServerResult, Failure> {
    let name = &personal.upstream.name;
    let me = context_person(ctx).map_err(|_| {
        Failure::Unavailable(format!("upstream {name} acts on a person's own account, and this token has no person"))
    })?;
    let timeout = personal.upstream.timeout();
    let link = personal.link(&me.sub).await.map_err(Failure::from)?;
    let options = PeerRequestOptions::no_options;
    match exchange(&link.peer, &link.relay, options(), request.clone(), ctx, logs, timeout).await {
        Err(Failure::Refused) => {
            let link = personal.relink(&me.sub, &link).await.map_err(Failure::from)?;
            exchange(&link.peer, &link.relay, options(), request, ctx, logs, timeout).await.map_err(|f| match f {
                Failure::Refused => Failure::NeedsAccount {
                    url: personal.connect_url(&me.sub),
                    why: format!("upstream {name} refuses your account's token; connect it again"),
                },
                other => other,
            })
        }
        other => other,
    }
}

impl From<LinkError> for Failure {
    fn from(error: LinkError) -> Failure {
        match error {
            LinkError::NeedsAccount { url, why } => Failure::NeedsAccount { url, why },
            LinkError::Unavailable(why) => Failure::Unavailable(why),
        }
    }
}

/// Sends one request over `peer` and waits for its answer, relaying what the upstream says meanwhile.
async fn exchange(
    peer: &Peer<rmcp::RoleClient>,
    relay: &Arc<Relay>,
    options: PeerRequestOptions,
    request: ClientRequest,
    ctx: &RequestContext<RoleServer>,
    logs: LogLevel,
    timeout: Duration,
) -> Result<ServerResult, Failure> {
    let sending = relay.sending();
    let handle = peer.send_cancellable_request(request, options).await.map_err(transport_failure)?;
    let (id, upstream_peer) = (handle.id.clone(), handle.peer.clone());
    let (_call, mut asks) = relay.open_call(id.clone());
    drop(sending);
    let down_token = ctx.meta.get_progress_token();
    let mut progress = match &down_token {
        Some(_) => Some(relay.progress_of(handle.progress_token.clone())),
        None => None,
    };
    let response = handle.await_response();
    tokio::pin!(response);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut answering: FuturesUnordered<Pin<Box<dyn Future<Output = ()> + Send>>> = FuturesUnordered::new();
    // Whether the upstream has sent this call any notification or request yet.
    let mut noticed = false;
    loop {
        tokio::select! {
            result = &mut response => {
                // What the upstream sent just before its answer is passed on first. rmcp hands each notification
                // to a task of its own, so one sent just before the answer may reach us just after it: a call
                // that asked for progress, or has had notifications, waits a moment (bounded) for stragglers.
                if down_token.is_some() || noticed {
                    let stragglers = tokio::time::Instant::now() + PROGRESS_STRAGGLERS_MAX;
                    loop {
                        let gap =
                            PROGRESS_STRAGGLER_GAP.min(stragglers.saturating_duration_since(tokio::time::Instant::now()));
                        tokio::select! {
                            Some(mut note) = next_progress(&mut progress) => {
                                if let Some(token) = &down_token {
                                    note.progress_token = token.clone();
                                    let _ = ctx.peer.notify_progress(note).await;
                                }
                            }
                            Some(ask) = asks.recv() => {
                                if let Some(answer) = answer(ask, ctx, logs) {
                                    answering.push(answer);
                                }
                            }
                            () = tokio::time::sleep(gap) => break,
                        }
                    }
                }
                while let Ok(ask) = asks.try_recv() {
                    if let Some(answer) = answer(ask, ctx, logs) {
                        answering.push(answer);
                    }
                }
                while answering.next().await.is_some() {}
                return result.map_err(transport_failure);
            }
            Some(mut note) = next_progress(&mut progress) => {
                noticed = true;
                if let Some(token) = &down_token {
                    note.progress_token = token.clone();
                    let _ = ctx.peer.notify_progress(note).await;
                }
            }
            Some(ask) = asks.recv() => {
                noticed = true;
                if let Some(answer) = answer(ask, ctx, logs) {
                    answering.push(answer);
                }
            }
            Some(()) = answering.next(), if !answering.is_empty() => {}
            () = ctx.ct.cancelled() => {
                relay.abandoned();
                cancel_upstream(&upstream_peer, id, "the client cancelled the request").await;
                return Err(Failure::Cancelled);
            }
            () = &mut deadline => {
                relay.abandoned();
                cancel_upstream(&upstream_peer, id, "the gateway's timeout for this upstream passed").await;
                return Err(Failure::Timeout(timeout));
            }
        }
    }
}

/// Whether the client that made the request can open a URL for its user (URL-mode elicitation, 2025-11-25).
fn asks_by_url(ctx: &RequestContext<RoleServer>) -> bool {
    let capabilities =
        ctx.meta.client_capabilities().or_else(|| ctx.peer.peer_info().map(|info| info.capabilities.clone()));
    capabilities.and_then(|c| c.elicitation).is_some_and(|e| e.url.is_some())
}

/// The `URLElicitationRequiredError` (-32042) the MCP specification defines for third-party authorization:
/// the client shows the user our own connect page, and calls again once they are done.
pub fn url_elicitation_required(url: &str, why: &str) -> McpError {
    McpError::new(
        ErrorCode(URL_ELICITATION_REQUIRED),
        why.to_owned(),
        Some(serde_json::json!({
            "elicitations": [{
                "mode": "url",
                "elicitationId": uuid::Uuid::new_v4().to_string(),
                "url": url,
                "message": why,
            }]
        })),
    )
}

/// JSON-RPC error code of `URLElicitationRequiredError`.
pub const URL_ELICITATION_REQUIRED: i32 = -32042;

/// A request that got no answer: the upstream's JSON-RPC error, its 401 (the token it was given is not
/// good there), or a transport failure.
fn transport_failure(error: ServiceError) -> Failure {
    match error {
        ServiceError::McpError(e) => Failure::Upstream(e),
        other if other.is_authorization_required() => Failure::Refused,
        other => Failure::Transport(other.to_string()),
    }
}

/// How long a call that asked for progress (or had notifications) waits, after the upstream's answer, for
/// one more notification still on its way through rmcp; and the most it waits in all.
const PROGRESS_STRAGGLER_GAP: Duration = Duration::from_millis(20);
const PROGRESS_STRAGGLERS_MAX: Duration = Duration::from_millis(200);

async fn next_progress(progress: &mut Option<ProgressSubscription>) -> Option<ProgressNotificationParam> {
    match progress {
        Some(p) => p.next().await,
        None => std::future::pending().await,
    }
}

async fn cancel_upstream(peer: &Peer<rmcp::RoleClient>, id: RequestId, reason: &str) {
    let note = CancelledNotificationParam::new(Some(id), Some(reason.to_owned()));
    let _ = peer.notify_cancelled(note).await;
}

/// Puts an upstream's request to the client (from this call's task, so it travels on the call's own
/// stream), or passes a log message on at the level the client asked for.
fn answer(
    ask: Ask,
    ctx: &RequestContext<RoleServer>,
    logs: LogLevel,
) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
    let peer = ctx.peer.clone();
    let failed = |e: ServiceError| match e {
        ServiceError::McpError(e) => e,
        other => McpError::internal_error(format!("the client did not answer: {other}"), None),
    };
    let declared =
        ctx.meta.client_capabilities().or_else(|| ctx.peer.peer_info().map(|info| info.capabilities.clone()));
    let has = |what: fn(&ClientCapabilities) -> bool| declared.as_ref().is_some_and(what);
    let undeclared = |what: &str| McpError::invalid_request(format!("the client did not declare {what}"), None);
    Some(match ask {
        Ask::Sample(_, reply) if !has(|c| c.sampling.is_some()) => {
            let _ = reply.send(Err(undeclared("sampling")));
            return None;
        }
        Ask::Elicit(_, reply) if !has(|c| c.elicitation.is_some()) => {
            let _ = reply.send(Err(undeclared("elicitation")));
            return None;
        }
        Ask::Roots(reply) if !has(|c| c.roots.is_some()) => {
            let _ = reply.send(Err(undeclared("roots")));
            return None;
        }
        Ask::Sample(params, reply) => Box::pin(async move {
            let _ = reply.send(peer.create_message(params).await.map_err(failed));
        }),
        Ask::Elicit(params, reply) => Box::pin(async move {
            let _ = reply.send(peer.create_elicitation(params).await.map_err(failed));
        }),
        Ask::Roots(reply) => Box::pin(async move {
            let _ = reply.send(peer.list_roots().await.map_err(failed));
        }),
        Ask::Log(message) => {
            if !logs.passes(message.level) {
                return None;
            }
            Box::pin(async move {
                let _ = peer.notify_logging_message(message).await;
            })
        }
    })
}

pub(crate) fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// A `tools/call` of an upstream tool (`params` already name the upstream's tool): the result as the
/// upstream gave it (content, structured content, `isError`), an `input_required` round for a 2026-07-28
/// client, or a failure as an `isError` result naming the upstream; counted and audited either way.
pub async fn call_tool(
    gateway: &Gateway,
    route: &super::catalog::ToolRoute,
    params: CallToolRequestParams,
    ctx: &RequestContext<RoleServer>,
    logs: LogLevel,
    caller: &AccessClaims,
) -> Result<CallToolResponse, McpError> {
    let started = Instant::now();
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
    let outcome = forward(gateway, &route.upstream, request, ctx, logs).await;
    let failed = |failure: Failure| CallToolResult::error(vec![ContentBlock::text(failure.describe(&route.upstream))]);
    let (result, label) = match outcome {
        Ok(ServerResult::CallToolResult(mut result)) => {
            let label = if result.is_error == Some(true) { "tool_error" } else { "ok" };
            result.result_type = Some(ResultType::COMPLETE);
            (Ok(result.into()), label)
        }
        Ok(ServerResult::EmptyResult(_)) => (Ok(CallToolResult::success(vec![]).into()), "ok"),
        Ok(ServerResult::InputRequiredResult(round)) => {
            let round = gateway.rounds.wrap(&route.upstream, &route.tool.name, caller, round);
            (Ok(CallToolResponse::InputRequired(round)), "input_required")
        }
        // The upstream made a task of it (the client declared the tasks extension): the front adopts it.
        Ok(ServerResult::CreateTaskResult(handle)) => (Ok(CallToolResponse::Task(handle)), "task"),
        Ok(_) => (Ok(failed(Failure::Transport("it answered tools/call with something else".into())).into()), "error"),
        Err(Failure::Upstream(e)) => (Err(Failure::Upstream(e).into_error(&route.upstream)), "error"),
        Err(Failure::NeedsAccount { url, why }) if asks_by_url(ctx) => {
            (Err(url_elicitation_required(&url, &why)), "needs_account")
        }
        Err(failure @ Failure::NeedsAccount { .. }) => (Ok(failed(failure).into()), "needs_account"),
        Err(failure) => {
            let label = failure.outcome();
            (Ok(failed(failure).into()), label)
        }
    };
    let elapsed = started.elapsed();
    gateway.metrics.upstream_call(&route.upstream, label, elapsed.as_secs_f64());
    gateway.audit.record(OwnedAuditEntry {
        at: UnixTime::now(),
        kind: AuditKind::UpstreamCall,
        // A client's own token (client credentials) has the client as `sub` and no person to name.
        user_id: caller.person().map(str::to_owned),
        client_id: Some(caller.client_id.clone()),
        detail: Some(format!(
            "upstream={} tool={} outcome={label} ms={}",
            route.upstream,
            route.original,
            elapsed.as_millis()
        )),
    });
    result
}

/// Follows a task an upstream runs (`task_id` there) for one of our tasks: gives it the client's `answers`
/// first (`tasks/update`), then polls `tasks/get` until it stops working, and answers as the call would have:
/// its result, its input requests (this task then waits for the client), or its error. Cancelling `ctx`
/// cancels it upstream (`tasks/cancel`).
pub async fn follow_upstream_task(
    gateway: &Gateway,
    upstream: &str,
    task_id: &str,
    answers: Option<InputResponses>,
    ctx: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, McpError> {
    let ask = |request: ClientRequest| forward(gateway, upstream, request, ctx, LogLevel::None);
    if let Some(answers) = answers.filter(|a| !a.is_empty()) {
        let update = UpdateTaskRequest::new(UpdateTaskParams::new(task_id, answers));
        ask(ClientRequest::UpdateTaskRequest(update)).await.map_err(|f| f.into_error(upstream))?;
    }
    let mut wait = Duration::from_millis(200);
    loop {
        let got = ask(ClientRequest::GetTaskRequest(GetTaskRequest::new(GetTaskParams::new(task_id))));
        let got = tokio::select! {
            got = got => got,
            () = ctx.ct.cancelled() => return Err(cancel_upstream_task(gateway, upstream, task_id, ctx).await),
        };
        let ServerResult::GetTaskResult(task) = got.map_err(|f| f.into_error(upstream))? else {
            return Err(McpError::internal_error(
                format!("upstream {upstream} answered tasks/get with something else"),
                None,
            ));
        };
        if let Some(ms) = task.task.task.poll_interval_ms {
            wait = Duration::from_millis(ms.clamp(200, 5000));
        }
        match task.task.payload {
            TaskPayload::Completed { result } => {
                let result: CallToolResult =
                    serde_json::from_value(serde_json::Value::Object(result)).map_err(|_| {
                        McpError::internal_error(
                            format!("upstream {upstream} finished its task with no tool result"),
                            None,
                        )
                    })?;
                return Ok(CallToolResponse::Complete(result));
            }
            TaskPayload::InputRequired { input_requests } => {
                return Ok(CallToolResponse::InputRequired(InputRequiredResult::new(Some(input_requests), None)));
            }
            TaskPayload::Failed { error } => {
                let error: McpError = serde_json::from_value(serde_json::Value::Object(error))
                    .unwrap_or_else(|_| McpError::internal_error(format!("upstream {upstream}'s task failed"), None));
                return Err(error);
            }
            TaskPayload::Cancelled => {
                return Err(McpError::internal_error(format!("upstream {upstream} cancelled the task"), None));
            }
            _ => {}
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = ctx.ct.cancelled() => return Err(cancel_upstream_task(gateway, upstream, task_id, ctx).await),
        }
    }
}

/// Tells an upstream to cancel its task; the error that ends ours.
pub async fn cancel_upstream_task(
    gateway: &Gateway,
    upstream: &str,
    task_id: &str,
    ctx: &RequestContext<RoleServer>,
) -> McpError {
    let cancel = ClientRequest::CancelTaskRequest(CancelTaskRequest::new(CancelTaskParams::new(task_id)));
    // Sent on behalf of the same client, but not stopped by the cancellation it carries out.
    let mut ctx = ctx.clone();
    ctx.ct = tokio_util::sync::CancellationToken::new();
    if let Err(failure) = forward(gateway, upstream, cancel, &ctx, LogLevel::None).await {
        tracing::info!(upstream, why = %failure.describe(upstream), "cancelling an upstream's task failed");
    }
    McpError::internal_error("cancelled", None)
}
