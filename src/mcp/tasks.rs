//! Tasks (the `io.modelcontextprotocol/tasks` extension, SEP-2663): a tool call that a client which declared
//! the extension gets back as a task handle at once, then polls with `tasks/get`, answers with
//! `tasks/update` and stops with `tasks/cancel` — on any instance. Tasks live in the database: the call and
//! what it answered are sealed there, the owner is the token's subject and client (anyone else is told the
//! task is unknown), and each change of status is made once (see `store::tasks`).
//!
//! The instance that runs a call beats a heartbeat; a task whose instance stopped beating is reported
//! failed, never left working. A call that asks for input (an `input_required` result) makes the task wait
//! for `tasks/update`; once every request is answered, whichever instance got the last answer runs the call
//! again with the answers and the request state, as a multi-round-trip retry.
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::clock::{UnixTime, now};
use crate::crypto::SecretsKey;
use crate::domain::tokens::AccessClaims;
use crate::store::{NewTask, Store, TaskChange, task, task_status};

/// How often the running instance says it still works on its tasks, and learns which were cancelled.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// A working task whose instance has not beaten for this long is taken as failed.
const ABANDONED_AFTER: Duration = Duration::from_secs(30);
/// The polling interval suggested to clients.
const POLL_INTERVAL_MS: u64 = 1000;
/// How long a cancelled call has to wind down (tell its upstream) before it is dropped.
const WIND_DOWN: Duration = Duration::from_secs(5);

/// Whether a tool runs as a task for a client that declared the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSupport {
    /// Always answered at once.
    Never,
    /// A task when the client declared the extension, else answered at once.
    Optional,
    /// Only as a task: a client that did not declare the extension is refused (-32021).
    Required,
    /// Like `Required`, after an input round answered at once (the call without `inputResponses`).
    RequiredAfterInput,
}

/// The limits on tasks (`TASKS_TTL_SECS`, `TASKS_MAX_PER_USER`, `TASKS_MAX_RESULT_BYTES`).
#[derive(Debug, Clone)]
pub struct TaskSettings {
    pub ttl: Duration,
    pub max_per_user: u64,
    pub max_result_bytes: usize,
}

/// What a task holds, sealed: the call, the input it waits for, the answers so far, and its outcome.
#[derive(Debug, Default, Serialize, Deserialize)]
struct TaskState {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arguments: Option<JsonObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_requests: Option<InputRequests>,
    #[serde(default, skip_serializing_if = "InputResponses::is_empty")]
    answers: InputResponses,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<JsonObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<JsonObject>,
    /// Set when an upstream runs the call as its own task, which this one follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote: Option<RemoteTask>,
}

/// An upstream's task that one of ours follows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteTask {
    pub upstream: String,
    pub task_id: String,
}

/// Runs one round of a task's call: the front's own call (with the answers so far), or, for a task an
/// upstream runs, following that one.
pub trait Runner:
    Fn(CallToolRequestParams, RequestContext<RoleServer>, Option<RemoteTask>) -> Self::Call + Send + Sync + 'static
{
    type Call: Future<Output = Result<CallToolResponse, McpError>> + Send + 'static;
}

impl<F, Fut> Runner for F
where
    F: Fn(CallToolRequestParams, RequestContext<RoleServer>, Option<RemoteTask>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<CallToolResponse, McpError>> + Send + 'static,
{
    type Call = Fut;
}

/// The tasks of every client, as this instance runs and answers them.
#[derive(Clone)]
pub struct Tasks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    secrets: Arc<SecretsKey>,
    instance: String,
    settings: TaskSettings,
    /// The calls this instance runs, by task id: the round and how to stop it.
    running: Mutex<HashMap<String, (i64, CancellationToken)>>,
    beating: std::sync::Once,
}

impl Tasks {
    pub fn new(store: Store, secrets: Arc<SecretsKey>, instance: String, settings: TaskSettings) -> Tasks {
        let inner =
            Inner { store, secrets, instance, settings, running: Mutex::default(), beating: std::sync::Once::new() };
        Tasks { inner: Arc::new(inner) }
    }

    /// Starts `request` as a task of `me`'s, run by `run` in the background; the handle to return at once.
    pub async fn start(
        &self,
        me: &AccessClaims,
        request: CallToolRequestParams,
        ctx: &RequestContext<RoleServer>,
        run: impl Runner,
    ) -> Result<CreateTaskResult, McpError> {
        let state = TaskState {
            name: request.name.to_string(),
            arguments: request.arguments,
            answers: request.input_responses.unwrap_or_default(),
            request_state: request.request_state,
            ..TaskState::default()
        };
        self.begin(me, state, ctx, run).await
    }

    /// Makes a task of ours that follows `remote`, the task an upstream made of `tool`'s call.
    pub async fn adopt(
        &self,
        me: &AccessClaims,
        tool: &str,
        remote: RemoteTask,
        ctx: &RequestContext<RoleServer>,
        run: impl Runner,
    ) -> Result<CreateTaskResult, McpError> {
        let state = TaskState { name: tool.to_owned(), remote: Some(remote), ..TaskState::default() };
        self.begin(me, state, ctx, run).await
    }

    async fn begin(
        &self,
        me: &AccessClaims,
        state: TaskState,
        ctx: &RequestContext<RoleServer>,
        run: impl Runner,
    ) -> Result<CreateTaskResult, McpError> {
        let id = uuid::Uuid::new_v4().to_string();
        let created = now();
        let new = NewTask {
            id: id.clone(),
            owner_sub: me.sub.clone(),
            owner_client: me.client_id.clone(),
            tool: state.name.clone(),
            sealed: self.seal(&id, &state),
            instance: self.inner.instance.clone(),
            expires_at: created + self.inner.settings.ttl,
        };
        let alive_since = now() - ABANDONED_AFTER;
        if !self.inner.store.insert_task(new, self.inner.settings.max_per_user, alive_since).await.map_err(internal)? {
            return Err(McpError::invalid_request(
                format!(
                    "at most {} tasks may be working or waiting for input at once per person (TASKS_MAX_PER_USER)",
                    self.inner.settings.max_per_user
                ),
                None,
            ));
        }
        tracing::info!(task = %id, tool = %state.name, "task started");
        self.run_round(id.clone(), 0, state, ctx.clone(), Arc::new(run));
        Ok(CreateTaskResult::new(self.handle(&id, TaskStatus::Working, created, created)))
    }

    /// `tasks/get`: the task as it stands, for its owner.
    pub async fn get(&self, me: &AccessClaims, id: &str) -> Result<GetTaskResult, McpError> {
        let mut row = self.owned(me, id).await?;
        if row.status == task_status::WORKING && row.heartbeat_at < now() - ABANDONED_AFTER {
            let mut state = self.open(&row)?;
            state.error = Some(error_object(&McpError::internal_error(
                "the instance that ran this task stopped; what its call did is unknown",
                None,
            )));
            let cutoff = now() - ABANDONED_AFTER;
            let sealed = self.seal(id, &state);
            let change = TaskChange::Abandoned { before: cutoff, sealed: &sealed };
            if self.inner.store.change_task(id, row.round, change).await.map_err(internal)? {
                tracing::warn!(task = %id, "a task whose instance stopped is reported failed");
            }
            row = self.owned(me, id).await?;
        }
        let state = self.open(&row)?;
        let status = parse_status(&row.status);
        let payload = match status {
            TaskStatus::InputRequired => {
                TaskPayload::InputRequired { input_requests: state.input_requests.unwrap_or_default() }
            }
            TaskStatus::Completed => TaskPayload::Completed { result: state.result.unwrap_or_default() },
            TaskStatus::Failed => TaskPayload::Failed { error: state.error.unwrap_or_default() },
            TaskStatus::Cancelled => TaskPayload::Cancelled,
            _ => TaskPayload::Working,
        };
        let task = self.handle(id, status, row.created_at, row.updated_at);
        Ok(GetTaskResult::new(DetailedTask::new(task, payload)))
    }

    /// `tasks/update`: answers to what the task waits for (answers to anything else are ignored). When
    /// nothing is left unanswered, the call runs again here with every answer.
    pub async fn update(
        &self,
        me: &AccessClaims,
        id: &str,
        responses: InputResponses,
        ctx: &RequestContext<RoleServer>,
        run: impl Runner,
    ) -> Result<(), McpError> {
        let run = Arc::new(run);
        // Two answers at once: the one that loses the round reads again and adds its own.
        for _ in 0..5 {
            let row = self.owned(me, id).await?;
            if row.status != task_status::INPUT_REQUIRED {
                return Ok(());
            }
            let mut state = self.open(&row)?;
            let pending = state.input_requests.get_or_insert_default();
            let mut new = false;
            for (key, value) in &responses {
                if pending.remove(key).is_some() {
                    state.answers.insert(key.clone(), value.clone());
                    new = true;
                }
            }
            if !new {
                return Ok(());
            }
            let resume = state.input_requests.as_ref().is_none_or(|p| p.is_empty());
            if resume {
                state.input_requests = None;
            }
            let sealed = self.seal(id, &state);
            let instance = resume.then_some(self.inner.instance.as_str());
            if self.inner.store.answer_task(id, row.round, &sealed, instance).await.map_err(internal)? {
                if resume {
                    tracing::info!(task = %id, "a task's input arrived; it works again");
                    self.run_round(id.to_owned(), row.round + 1, state, ctx.clone(), run.clone());
                }
                return Ok(());
            }
        }
        Err(McpError::internal_error("the task changed too often to take the answers; send them again", None))
    }

    /// `tasks/cancel`: a task working or waiting for input is cancelled (its call is stopped, and an
    /// upstream told, within a heartbeat wherever it runs); a finished one stays as it is. Returns the
    /// upstream's task a cancelled one followed, for the caller to cancel too (no call of ours may be
    /// running to do it: the task may have been waiting for input, or just have started to).
    pub async fn cancel(&self, me: &AccessClaims, id: &str) -> Result<Option<RemoteTask>, McpError> {
        let row = self.owned(me, id).await?;
        if !self.inner.store.cancel_task(id).await.map_err(internal)? {
            return Ok(None);
        }
        tracing::info!(task = %id, "task cancelled");
        if let Some((_, token)) = self.inner.running.lock().expect("running lock").get(id) {
            token.cancel();
        }
        // Whether or not a call of ours still runs to tell it (telling it twice does no harm).
        Ok(self.open(&row)?.remote)
    }

    /// The task if `me` owns it; anyone else (and an expired or unknown id) gets the same -32602.
    async fn owned(&self, me: &AccessClaims, id: &str) -> Result<task::Model, McpError> {
        let row = self.inner.store.find_task(id).await.map_err(internal)?;
        row.filter(|t| t.owner_sub == me.sub && t.owner_client == me.client_id)
            .ok_or_else(|| McpError::invalid_params("unknown task", Some(serde_json::json!({"taskId": id}))))
    }

    /// Runs one round of the call in the background and records how it ends.
    fn run_round(
        &self,
        id: String,
        round: i64,
        mut state: TaskState,
        ctx: RequestContext<RoleServer>,
        run: Arc<impl Runner>,
    ) {
        self.start_heartbeat();
        let token = CancellationToken::new();
        self.inner.running.lock().expect("running lock").insert(id.clone(), (round, token.clone()));
        let mut ctx = ctx;
        // The request that started it has ended; the call stops with the task, not with that request.
        ctx.ct = token.clone();
        let mut params = CallToolRequestParams::new(state.name.clone());
        params.arguments = state.arguments.clone();
        params.input_responses = (!state.answers.is_empty()).then(|| state.answers.clone());
        params.request_state = state.request_state.clone();
        let tasks = self.clone();
        let remote = state.remote.clone();
        tokio::spawn(async move {
            // Leaves the running calls however this ends (a panicking call included).
            let _running = Running { tasks: tasks.clone(), id: id.clone(), round };
            let call = run(params, ctx, remote);
            tokio::pin!(call);
            let outcome = tokio::select! {
                outcome = &mut call => Some(outcome),
                () = token.cancelled() => None,
            };
            let Some(outcome) = outcome else {
                // Cancelled: let the call tell its upstream, then drop it.
                let _ = tokio::time::timeout(WIND_DOWN, call).await;
                return;
            };
            let mut fail = |error: &McpError| {
                state.error = Some(error_object(error));
                task_status::FAILED
            };
            let status = match outcome {
                Ok(CallToolResponse::InputRequired(asked))
                    if asked.input_requests.as_ref().is_some_and(|r| !r.is_empty()) =>
                {
                    state.input_requests = asked.input_requests;
                    state.request_state = asked.request_state;
                    state.answers.clear();
                    task_status::INPUT_REQUIRED
                }
                Ok(CallToolResponse::InputRequired(_)) => {
                    fail(&McpError::internal_error("the call asked for input without saying what", None))
                }
                Ok(CallToolResponse::Complete(result)) => {
                    let value = serde_json::to_value(&result).unwrap_or_default();
                    let (size, max) = (value.to_string().len(), tasks.inner.settings.max_result_bytes);
                    match value {
                        _ if size > max => {
                            let why =
                                format!("the result ({size} bytes) is larger than TASKS_MAX_RESULT_BYTES ({max})");
                            fail(&McpError::internal_error(why, None))
                        }
                        serde_json::Value::Object(mut result) => {
                            result.remove("resultType");
                            state.result = Some(result);
                            task_status::COMPLETED
                        }
                        _ => fail(&McpError::internal_error("the call's result does not serialize", None)),
                    }
                }
                Ok(_) => fail(&McpError::internal_error("the call answered with a task", None)),
                Err(error) => fail(&error),
            };
            if status != task_status::INPUT_REQUIRED {
                // Finished: what it was called with is no longer needed.
                state.arguments = None;
            }
            let sealed = tasks.seal(&id, &state);
            let change = match status {
                task_status::INPUT_REQUIRED => TaskChange::AwaitInput { sealed: &sealed },
                status => TaskChange::Finish { status, sealed: &sealed },
            };
            match tasks.inner.store.change_task(&id, round, change).await {
                Ok(true) => tracing::info!(task = %id, status, "task changed"),
                Ok(false) => tracing::info!(task = %id, "a task's call ended after it was cancelled or expired"),
                Err(e) => tracing::error!(task = %id, error = %e, "recording how a task ended failed"),
            }
        });
    }

    /// Beats for this instance's running tasks, and stops those cancelled (or failed) elsewhere.
    fn start_heartbeat(&self) {
        let inner = self.inner.clone();
        self.inner.beating.call_once(move || {
            let weak = Arc::downgrade(&inner);
            drop(inner);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(HEARTBEAT);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else {
                        return;
                    };
                    // The calls as they run now: a call that ends and a next round that starts meanwhile
                    // keep their own token, which this beat never cancels.
                    let calls: Vec<(String, CancellationToken)> = inner
                        .running
                        .lock()
                        .expect("running lock")
                        .iter()
                        .map(|(id, (_, token))| (id.clone(), token.clone()))
                        .collect();
                    let ids: Vec<String> = calls.iter().map(|(id, _)| id.clone()).collect();
                    match inner.store.task_heartbeat(&inner.instance, &ids).await {
                        Ok(stopped) => {
                            for (_, token) in calls.iter().filter(|(id, _)| stopped.contains(id)) {
                                token.cancel();
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "the tasks' heartbeat failed"),
                    }
                }
            });
        });
    }

    fn handle(&self, id: &str, status: TaskStatus, created: UnixTime, updated: UnixTime) -> Task {
        let ttl_ms = u64::try_from(self.inner.settings.ttl.as_millis()).unwrap_or(u64::MAX);
        Task::new(id, status, created.rfc3339(), updated.rfc3339())
            .with_ttl_ms(ttl_ms)
            .with_poll_interval_ms(POLL_INTERVAL_MS)
    }

    fn seal(&self, id: &str, state: &TaskState) -> String {
        let json = serde_json::to_string(state).expect("a task's state serializes");
        self.inner.secrets.seal(&context(id), &json)
    }

    fn open(&self, row: &task::Model) -> Result<TaskState, McpError> {
        let json = self
            .inner
            .secrets
            .open(&context(&row.id), &row.sealed)
            .map_err(|_| McpError::internal_error("a task's state does not open", None))?;
        serde_json::from_str(&json).map_err(|_| McpError::internal_error("a task's state does not read", None))
    }
}

/// A call in `running` while it runs; removed when it ends, unless a next round took its place already.
struct Running {
    tasks: Tasks,
    id: String,
    round: i64,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.tasks.inner.running.lock().expect("running lock");
        if running.get(&self.id).is_some_and(|(round, _)| *round == self.round) {
            running.remove(&self.id);
        }
    }
}

fn context(id: &str) -> String {
    format!("task:{id}")
}

fn parse_status(status: &str) -> TaskStatus {
    match status {
        task_status::INPUT_REQUIRED => TaskStatus::InputRequired,
        task_status::COMPLETED => TaskStatus::Completed,
        task_status::FAILED => TaskStatus::Failed,
        task_status::CANCELLED => TaskStatus::Cancelled,
        _ => TaskStatus::Working,
    }
}

/// A JSON-RPC error as a task's `error`.
fn error_object(error: &McpError) -> JsonObject {
    match serde_json::to_value(error) {
        Ok(serde_json::Value::Object(object)) => object,
        _ => JsonObject::new(),
    }
}

fn internal(e: sea_orm::DbErr) -> McpError {
    tracing::error!(error = %e, "a task's storage failed");
    McpError::internal_error("storage failed", None)
}
