//! The one MCP server clients see: the built-ins (unless `MCP_BUILTIN_TOOLS=off`) and every upstream the
//! caller may use. Names map back to their upstream through the catalog; resource reads go to the upstream
//! that listed the URI (or whose template matches it); lists page across upstreams with one cursor.
#![allow(deprecated)] // subscribe, logging: legacy-revision features the proxy carries

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rmcp::model::*;
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::Gateway;
use super::call::{Failure, LogLevel, call_tool, cancel_upstream_task, follow_upstream_task, forward};
use super::catalog::ToolRoute;
use crate::domain::tokens::AccessClaims;
use crate::mcp::McpContext;
use crate::mcp::events::ListChanged;
use crate::mcp::server::{context_caller, still_authorized};
use crate::mcp::tasks::{RemoteTask, TaskSupport};

/// Tools or prompts per page of a merged list.
const PAGE: usize = 200;
/// How often a session's notification forwarder checks that its token still holds.
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The built-in server `S` (the notes server, or the conformance fixtures around it) and the gateway.
#[derive(Clone)]
pub struct Front<S> {
    inner: S,
    gateway: Arc<Gateway>,
    ctx: Arc<McpContext>,
    /// Whether the built-in tools, prompts and resources are served.
    builtins: bool,
    session: Arc<FrontSession>,
}

/// What one session (legacy) or request (2026-07-28) remembers: its upstream subscriptions and log level.
#[derive(Default)]
struct FrontSession {
    subscriptions: Mutex<HashSet<(Arc<str>, String)>>,
    log_level: Mutex<Option<LoggingLevel>>,
    forwarding: Mutex<bool>,
    gateway: Mutex<Option<Arc<Gateway>>>,
}

impl Drop for FrontSession {
    /// A session that ends gives up its upstream subscriptions.
    fn drop(&mut self) {
        let subscriptions = std::mem::take(&mut *self.subscriptions.lock().expect("subscriptions lock"));
        let Some(gateway) = self.gateway.lock().expect("gateway lock").take() else {
            return;
        };
        if subscriptions.is_empty() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        tokio::spawn(async move {
            for (upstream, uri) in subscriptions {
                unsubscribe_upstream(&gateway, &upstream, uri).await;
            }
        });
    }
}

impl<S: ServerHandler + Clone> Front<S> {
    /// A call of an upstream that runs tasks itself: it decides, and a task it makes is followed by one of
    /// ours (or cancelled, when ours cannot start).
    async fn call_upstream_that_runs_tasks(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
        upstream: String,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.to_string();
        let me = context_caller(&ctx)?;
        let handle = match self.call_now(request, ctx.clone()).await? {
            CallToolResponse::Task(handle) => handle,
            answered => return Ok(answered),
        };
        let remote = RemoteTask { upstream, task_id: handle.task.task_id };
        match self.ctx.tasks.adopt(&me, &name, remote.clone(), &ctx, self.runner()).await {
            Ok(task) => Ok(CallToolResponse::Task(task)),
            Err(refused) => {
                // Ours could not start (a limit): the upstream's is not left running.
                cancel_upstream_task(&self.gateway, &remote.upstream, &remote.task_id, &ctx).await;
                Err(refused)
            }
        }
    }

    /// How a task's round runs here: the call itself, or following the upstream's task.
    fn runner(&self) -> impl crate::mcp::tasks::Runner {
        let front = self.clone();
        move |params: CallToolRequestParams, ctx: RequestContext<RoleServer>, remote: Option<RemoteTask>| {
            let front = front.clone();
            async move {
                match remote {
                    Some(remote) => {
                        // Each round under the scopes and policy of the caller now, as a call would be.
                        let me = context_caller(&ctx)?;
                        let catalog = front.gateway.catalog();
                        front.permitted(routed(&catalog, &params.name)?, &me).await?;
                        let gateway = &front.gateway;
                        follow_upstream_task(gateway, &remote.upstream, &remote.task_id, params.input_responses, &ctx)
                            .await
                    }
                    None => front.call_now(params, ctx).await,
                }
            }
        }
    }

    /// A tool call answered now: a built-in, or an upstream's, under the caller's scopes and policy.
    async fn call_now(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if self.builtins && self.inner.get_tool(&request.name).is_some() {
            return self.inner.call_tool(request, ctx).await;
        }
        let me = context_caller(&ctx)?;
        let catalog = self.gateway.catalog();
        let route = routed(&catalog, &request.name)?;
        self.permitted(route, &me).await?;
        let mut params = CallToolRequestParams::new(route.original.clone());
        params.arguments = request.arguments;
        let (answers, state) =
            self.continuation(request.input_responses, request.request_state, &route.upstream, &request.name, &me)?;
        params.input_responses = answers;
        params.request_state = state;
        let level = self.log_level(&ctx);
        call_tool(&self.gateway, route, params, &ctx, level, &me).await
    }

    /// Whether the caller's scopes and the policy let them call the upstream tool `route` now (a refusal by
    /// policy is audited).
    async fn permitted(&self, route: &ToolRoute, me: &AccessClaims) -> Result<(), McpError> {
        if let Some(missing) = route.needs.iter().find(|s| !me.has_scope(s)) {
            return Err(McpError::invalid_request(format!("this tool needs the scope {missing}"), None));
        }
        if let Err(why) = self.policy_view(me).await?.allows(&route.upstream, Some(&route.original)) {
            let person = me.person().map(str::to_owned);
            tracing::info!(upstream = %route.upstream, tool = %route.original, "a call refused by policy");
            self.gateway.audit.record(crate::store::OwnedAuditEntry {
                at: crate::clock::UnixTime::now(),
                kind: crate::store::AuditKind::PolicyRefused,
                user_id: person,
                client_id: Some(me.client_id.clone()),
                detail: Some(format!("upstream={} tool={}", route.upstream, route.original)),
            });
            let data = serde_json::json!({ "upstream": &*route.upstream, "tool": route.original });
            return Err(McpError::invalid_request(why, Some(data)));
        }
        Ok(())
    }

    pub fn new(inner: S, gateway: Arc<Gateway>, ctx: Arc<McpContext>, builtins: bool) -> Front<S> {
        Front { inner, gateway, ctx, builtins, session: Arc::default() }
    }

    /// The policy as it applies to this caller now.
    async fn policy_view(&self, me: &AccessClaims) -> Result<crate::domain::policy::PolicyView, McpError> {
        self.gateway.policy.view(me.person()).await.map_err(|e| McpError::internal_error(e.to_string(), None))
    }

    fn may_use(claims: &AccessClaims, scope: Option<&str>) -> bool {
        scope.is_none_or(|s| claims.has_scope(s))
    }

    /// Starts passing list changes and upstream resource updates to this legacy session, once.
    fn forward_notifications(&self, peer: Peer<RoleServer>, me: AccessClaims) {
        let mut started = self.session.forwarding.lock().expect("forwarding lock");
        if *started {
            return;
        }
        *started = true;
        tokio::spawn(forward_to_session(self.gateway.clone(), self.ctx.clone(), self.session.clone(), me, peer));
    }

    /// The least severe log level the client wants relayed: the request's own (2026-07-28), else the
    /// session's (`logging/setLevel`), else everything on a legacy session and nothing on a 2026 request.
    fn log_level(&self, ctx: &RequestContext<RoleServer>) -> LogLevel {
        if let Some(level) = ctx.meta.log_level().or(*self.session.log_level.lock().expect("log level lock")) {
            return LogLevel::AtLeast(level);
        }
        if ctx.protocol_version().is_some_and(|v| v >= ProtocolVersion::V_2026_07_28) {
            LogLevel::None
        } else {
            LogLevel::All
        }
    }
}

/// Where a merged list continues: which source (`""` the built-ins, else an upstream) and its own cursor.
#[derive(Serialize, Deserialize, Debug, Default)]
struct Cursor {
    s: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    c: Option<String>,
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a cursor serializes"))
    }

    fn decode(text: &str) -> Result<Cursor, McpError> {
        URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| McpError::invalid_params("the cursor is not one this server gave out", None))
    }
}

/// A page of `items` from `offset` (given as the cursor's text), with the cursor of the next page.
fn page<T: Clone>(items: &[T], cursor: Option<&str>) -> Result<(Vec<T>, Option<String>), McpError> {
    let offset = match cursor {
        None => 0,
        Some(c) => Cursor::decode(c)?.c.and_then(|o| o.parse::<usize>().ok()).unwrap_or(usize::MAX),
    };
    if offset > items.len() {
        return Err(McpError::invalid_params("the cursor is not one this server gave out", None));
    }
    let end = (offset + PAGE).min(items.len());
    let next = (end < items.len()).then(|| Cursor { s: "offset".into(), c: Some(end.to_string()) }.encode());
    Ok((items[offset..end].to_vec(), next))
}

/// The upstream tool a client names.
fn routed<'a>(catalog: &'a super::catalog::Catalog, name: &str) -> Result<&'a ToolRoute, McpError> {
    catalog.tool(name).ok_or_else(|| McpError::invalid_params(format!("no tool named {name}"), None))
}

fn cache_hints<T>(ctx: &RequestContext<RoleServer>, mut result: T, set: impl FnOnce(&mut T)) -> T {
    if ctx.protocol_version().is_some_and(|v| v >= ProtocolVersion::V_2026_07_28) {
        set(&mut result);
    }
    result
}

impl<S: ServerHandler + Clone> ServerHandler for Front<S> {
    fn get_info(&self) -> ServerConfig {
        let mut info = self.inner.get_info();
        let capabilities = &mut info.capabilities;
        capabilities.tools.get_or_insert_default().list_changed = Some(true);
        capabilities.prompts.get_or_insert_default().list_changed = Some(true);
        let resources = capabilities.resources.get_or_insert_default();
        resources.list_changed = Some(true);
        resources.subscribe = Some(true);
        capabilities.completions.get_or_insert_default();
        capabilities.logging.get_or_insert_default();
        // Tool calls of clients that declare the tasks extension may run as tasks (SEP-2663).
        capabilities
            .extensions
            .get_or_insert_with(ExtensionCapabilities::new)
            .insert(TASKS_EXTENSION_ID.to_owned(), JsonObject::new());
        if !self.builtins {
            info.instructions = Some("A gateway to the MCP servers its operator configured.".into());
        }
        info
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        if self.builtins
            && let Some(tool) = self.inner.get_tool(name)
        {
            return Some(tool);
        }
        self.gateway.catalog().tool(name).map(|r| r.tool.clone())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let parts = context.extensions.get::<poem::http::request::Parts>();
        if let Some(me) = parts.and_then(|p| p.extensions.get::<AccessClaims>()) {
            self.forward_notifications(context.peer.clone(), me.clone());
        }
        self.inner.on_initialized(context).await;
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let me = context_caller(&ctx)?;
        let mut tools = if self.builtins { self.inner.list_tools(None, ctx.clone()).await?.tools } else { vec![] };
        let catalog = self.gateway.catalog();
        let view = self.policy_view(&me).await?;
        tools.extend(
            catalog
                .tools
                .iter()
                .filter(|r| r.needs.iter().all(|s| me.has_scope(s)))
                .filter(|r| view.allows(&r.upstream, Some(&r.original)).is_ok())
                .map(|r| r.tool.clone()),
        );
        let (tools, next) = page(&tools, request.as_ref().and_then(|r| r.cursor.as_deref()))?;
        let mut result = ListToolsResult::with_all_items(tools);
        result.next_cursor = next;
        Ok(cache_hints(&ctx, result, |r| {
            r.ttl_ms = Some(0);
            r.cache_scope = Some(CacheScope::Private);
        }))
    }

    /// A tool call, answered at once; or, for a client that declared the tasks extension, started as a task
    /// (upstream tools and the fixtures that take tasks; the built-ins answer at once), whose handle it gets
    /// back at once. A task is started only for a call that would be allowed now.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let builtin = self.builtins && self.inner.get_tool(&request.name).is_some();
        let declared = ctx.client_capabilities().is_some_and(|c| c.supports_tasks());
        let catalog = self.gateway.catalog();
        let support = if builtin {
            crate::mcp::fixtures::task_support(&request.name)
        } else {
            match catalog.tool(&request.name) {
                Some(route) if declared && self.gateway.runs_tasks(&route.upstream) => {
                    let upstream = route.upstream.to_string();
                    return self.call_upstream_that_runs_tasks(request, ctx, upstream).await;
                }
                _ => TaskSupport::Optional,
            }
        };
        let as_task = match support {
            TaskSupport::Never => false,
            TaskSupport::Optional => declared,
            TaskSupport::Required | TaskSupport::RequiredAfterInput if !declared => {
                return Err(McpError::missing_required_client_capability(
                    ClientCapabilities::builder().enable_tasks().build(),
                ));
            }
            TaskSupport::Required => true,
            TaskSupport::RequiredAfterInput => request.input_responses.is_some(),
        };
        if !as_task {
            return self.call_now(request, ctx).await;
        }
        let me = context_caller(&ctx)?;
        if !builtin {
            self.permitted(routed(&catalog, &request.name)?, &me).await?;
        }
        self.ctx.tasks.start(&me, request, &ctx, self.runner()).await.map(CallToolResponse::Task)
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        self.ctx.tasks.get(&context_caller(&ctx)?, &request.task_id).await
    }

    async fn update_task(&self, request: UpdateTaskParams, ctx: RequestContext<RoleServer>) -> Result<(), McpError> {
        let me = context_caller(&ctx)?;
        self.ctx.tasks.update(&me, &request.task_id, request.input_responses, &ctx, self.runner()).await
    }

    async fn cancel_task(&self, request: CancelTaskParams, ctx: RequestContext<RoleServer>) -> Result<(), McpError> {
        if let Some(remote) = self.ctx.tasks.cancel(&context_caller(&ctx)?, &request.task_id).await? {
            cancel_upstream_task(&self.gateway, &remote.upstream, &remote.task_id, &ctx).await;
        }
        Ok(())
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let me = context_caller(&ctx)?;
        let mut prompts =
            if self.builtins { self.inner.list_prompts(None, ctx.clone()).await?.prompts } else { vec![] };
        let catalog = self.gateway.catalog();
        let view = self.policy_view(&me).await?;
        prompts.extend(
            catalog
                .prompts
                .iter()
                .filter(|r| Self::may_use(&me, r.scope.as_deref()) && view.allows(&r.upstream, None).is_ok())
                .map(|r| r.prompt.clone()),
        );
        let (prompts, next) = page(&prompts, request.as_ref().and_then(|r| r.cursor.as_deref()))?;
        let mut result = ListPromptsResult::with_all_items(prompts);
        result.next_cursor = next;
        Ok(cache_hints(&ctx, result, |r| {
            r.ttl_ms = Some(0);
            r.cache_scope = Some(CacheScope::Private);
        }))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let catalog = self.gateway.catalog();
        let Some(route) = catalog.prompt(&request.name) else {
            if self.builtins {
                return self.inner.get_prompt(request, ctx).await;
            }
            return Err(McpError::invalid_params(format!("no prompt named {}", request.name), None));
        };
        let me = context_caller(&ctx)?;
        if !Self::may_use(&me, route.scope.as_deref()) {
            return Err(McpError::invalid_params(format!("no prompt named {}", request.name), None));
        }
        let mut params = GetPromptRequestParams::new(route.original.clone());
        params.arguments = request.arguments;
        let (answers, state) =
            self.continuation(request.input_responses, request.request_state, &route.upstream, &request.name, &me)?;
        params.input_responses = answers;
        params.request_state = state;
        let forwarded = ClientRequest::GetPromptRequest(GetPromptRequest::new(params));
        match forward(&self.gateway, &route.upstream, forwarded, &ctx, self.log_level(&ctx)).await {
            Ok(ServerResult::GetPromptResult(mut result)) => {
                result.result_type = Some(ResultType::COMPLETE);
                Ok(result.into())
            }
            Ok(ServerResult::InputRequiredResult(round)) => Ok(GetPromptResponse::InputRequired(
                self.gateway.rounds.wrap(&route.upstream, &request.name, &me, round),
            )),
            Ok(_) => {
                Err(Failure::Transport("it answered prompts/get with something else".into())
                    .into_error(&route.upstream))
            }
            Err(failure) => Err(failure.into_error(&route.upstream)),
        }
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let me = context_caller(&ctx)?;
        let cursor = match request.as_ref().and_then(|r| r.cursor.as_deref()) {
            None => Cursor { s: if self.builtins { String::new() } else { "\u{0}".into() }, c: None },
            Some(text) => Cursor::decode(text)?,
        };
        // The sources in name order: the built-ins (""), then every upstream with resources the caller may
        // use: connected ones, and for a person those that act on each person's own account (theirs is asked;
        // a client's token of its own has no person there).
        let view = self.policy_view(&me).await?;
        let shared = self.gateway.connections().into_iter().filter(|c| c.live().is_some_and(|l| l.offer.resources));
        let shared = shared.map(|c| (c.upstream.name.clone(), c.upstream.scope.clone()));
        let a_person = me.person().is_some();
        let personal =
            self.gateway.personals().into_iter().filter(|p| a_person && p.offer().is_some_and(|o| o.resources));
        let personal = personal.map(|p| (p.upstream.name.clone(), p.upstream.scope.clone()));
        let mut upstreams: Vec<String> = shared
            .chain(personal)
            .filter(|(name, scope)| Self::may_use(&me, scope.as_deref()) && view.allows(name, None).is_ok())
            .map(|(name, _)| name)
            .collect();
        upstreams.sort();
        let next_source = |after: &str| -> Option<String> { upstreams.iter().find(|n| n.as_str() > after).cloned() };
        let mut source = cursor.s;
        let mut inner_cursor = cursor.c;
        if source == "\u{0}" {
            match next_source("") {
                Some(first) => source = first,
                None => return Ok(ListResourcesResult::with_all_items(vec![])),
            }
        }
        let (resources, more) = if source.is_empty() {
            let params = inner_cursor.take().map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
            let result = self.inner.list_resources(params, ctx.clone()).await?;
            (result.resources, result.next_cursor)
        } else {
            if !upstreams.contains(&source) {
                return Err(McpError::invalid_params("the cursor names a server that is no longer available", None));
            }
            let params = inner_cursor.take().map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
            let request = ClientRequest::ListResourcesRequest(ListResourcesRequest { params, ..Default::default() });
            match forward(&self.gateway, &source, request, &ctx, self.log_level(&ctx)).await {
                Ok(ServerResult::ListResourcesResult(result)) => {
                    let owner: Arc<str> = Arc::from(source.as_str());
                    self.gateway.saw_resources(&owner, result.resources.iter().map(|r| r.uri.as_str()));
                    (result.resources, result.next_cursor)
                }
                Ok(_) => {
                    return Err(
                        Failure::Transport("it answered resources/list with something else".into()).into_error(&source)
                    );
                }
                // Someone who has not connected their account there has none of its resources.
                Err(Failure::NeedsAccount { .. }) => (vec![], None),
                Err(failure) => return Err(failure.into_error(&source)),
            }
        };
        let next = match more {
            Some(c) => Some(Cursor { s: source, c: Some(c) }.encode()),
            None => next_source(&source).map(|s| Cursor { s, c: None }.encode()),
        };
        let mut result = ListResourcesResult::with_all_items(resources);
        result.next_cursor = next;
        Ok(cache_hints(&ctx, result, |r| {
            r.ttl_ms = Some(0);
            r.cache_scope = Some(CacheScope::Private);
        }))
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let me = context_caller(&ctx)?;
        let mut templates = if self.builtins {
            self.inner.list_resource_templates(None, ctx.clone()).await?.resource_templates
        } else {
            vec![]
        };
        let catalog = self.gateway.catalog();
        let view = self.policy_view(&me).await?;
        templates.extend(
            catalog
                .templates
                .iter()
                .filter(|t| Self::may_use(&me, t.scope.as_deref()) && view.allows(&t.upstream, None).is_ok())
                .map(|t| t.template.clone()),
        );
        let (templates, next) = page(&templates, request.as_ref().and_then(|r| r.cursor.as_deref()))?;
        let mut result = ListResourceTemplatesResult::with_all_items(templates);
        result.next_cursor = next;
        Ok(result)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let Some((upstream, scope)) = self.owner(&request.uri) else {
            if self.builtins {
                return self.inner.read_resource(request, ctx).await;
            }
            return Err(not_found(&request.uri));
        };
        let me = context_caller(&ctx)?;
        if !Self::may_use(&me, scope.as_deref()) {
            return Err(not_found(&request.uri));
        }
        let mut params = ReadResourceRequestParams::new(request.uri.clone());
        let (answers, state) =
            self.continuation(request.input_responses, request.request_state, &upstream, &request.uri, &me)?;
        params.input_responses = answers;
        params.request_state = state;
        let forwarded = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(params));
        match forward(&self.gateway, &upstream, forwarded, &ctx, self.log_level(&ctx)).await {
            Ok(ServerResult::ReadResourceResult(mut result)) => {
                result.result_type = Some(ResultType::COMPLETE);
                Ok(result.into())
            }
            Ok(ServerResult::InputRequiredResult(round)) => {
                Ok(ReadResourceResponse::InputRequired(self.gateway.rounds.wrap(&upstream, &request.uri, &me, round)))
            }
            Ok(_) => {
                Err(Failure::Transport("it answered resources/read with something else".into()).into_error(&upstream))
            }
            Err(failure) => Err(failure.into_error(&upstream)),
        }
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let me = context_caller(&ctx)?;
        let Some((upstream, scope)) = self.owner(&request.uri) else {
            if self.builtins {
                return self.inner.subscribe(request, ctx).await;
            }
            return Err(not_found(&request.uri));
        };
        if !Self::may_use(&me, scope.as_deref()) {
            return Err(not_found(&request.uri));
        }
        let key = (upstream.clone(), request.uri.clone());
        if self.session.subscriptions.lock().expect("subscriptions lock").contains(&key) {
            return Ok(());
        }
        subscribe_upstream(&self.gateway, &upstream, &request.uri).await?;
        self.session.subscriptions.lock().expect("subscriptions lock").insert(key);
        *self.session.gateway.lock().expect("gateway lock") = Some(self.gateway.clone());
        self.forward_notifications(ctx.peer.clone(), me);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let owned = self.owner(&request.uri);
        let removed = owned.as_ref().is_some_and(|(upstream, _)| {
            self.session
                .subscriptions
                .lock()
                .expect("subscriptions lock")
                .remove(&(upstream.clone(), request.uri.clone()))
        });
        match owned {
            Some((upstream, _)) if removed => {
                unsubscribe_upstream(&self.gateway, &upstream, request.uri).await;
                Ok(())
            }
            _ if self.builtins => self.inner.unsubscribe(request, ctx).await,
            _ => Ok(()),
        }
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let catalog = self.gateway.catalog();
        let (upstream, scope, reference) = match &request.r#ref {
            Reference::Prompt(p) => match catalog.prompt(&p.name) {
                Some(route) => {
                    let mut renamed = p.clone();
                    renamed.name = route.original.clone();
                    (route.upstream.clone(), route.scope.clone(), Reference::Prompt(renamed))
                }
                _ => return self.inner.complete(request, ctx).await,
            },
            Reference::Resource(r) => match catalog.templates.iter().find(|t| t.template.uri_template == r.uri) {
                Some(t) => (t.upstream.clone(), t.scope.clone(), request.r#ref.clone()),
                None => return self.inner.complete(request, ctx).await,
            },
            _ => return self.inner.complete(request, ctx).await,
        };
        let me = context_caller(&ctx)?;
        if !Self::may_use(&me, scope.as_deref()) {
            return Ok(CompleteResult::new(CompletionInfo::with_all_values(vec![]).unwrap_or_default()));
        }
        let mut params = CompleteRequestParams::new(reference, request.argument.clone());
        params.context = request.context.clone();
        match forward(
            &self.gateway,
            &upstream,
            ClientRequest::CompleteRequest(CompleteRequest::new(params)),
            &ctx,
            self.log_level(&ctx),
        )
        .await
        {
            Ok(ServerResult::CompleteResult(mut result)) => {
                result.result_type = Some(ResultType::COMPLETE);
                Ok(result)
            }
            Ok(_) => {
                Err(Failure::Transport("it answered completion/complete with something else".into())
                    .into_error(&upstream))
            }
            Err(failure) => Err(failure.into_error(&upstream)),
        }
    }

    async fn set_level(&self, request: SetLevelRequestParams, ctx: RequestContext<RoleServer>) -> Result<(), McpError> {
        *self.session.log_level.lock().expect("log level lock") = Some(request.level);
        self.inner.set_level(request, ctx).await
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    /// A 2026-07-28 subscription stream: the built-in server's notifications, plus updates of the upstream
    /// resources it names.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let me = context_caller(context.request_context())?;
        let wanted: Vec<(Arc<str>, String)> = context
            .accepted()
            .resource_subscriptions
            .iter()
            .flatten()
            .filter_map(|uri| {
                self.owner(uri).filter(|(_, s)| Self::may_use(&me, s.as_deref())).map(|(u, _)| (u, uri.clone()))
            })
            .collect();
        for (upstream, uri) in &wanted {
            subscribe_upstream(&self.gateway, upstream, uri).await?;
        }
        let sink = context.sink().clone();
        let mut updates = self.gateway.resource_updates.subscribe();
        let watched: HashSet<(Arc<str>, String)> = wanted.iter().cloned().collect();
        let relay = tokio::spawn(async move {
            loop {
                match updates.recv().await {
                    Ok(update) if watched.contains(&(update.upstream.clone(), update.uri.clone())) => {
                        if sink.notify_resource_updated(update.uri).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        });
        let result = self.inner.listen(context).await;
        relay.abort();
        for (upstream, uri) in wanted {
            unsubscribe_upstream(&self.gateway, &upstream, uri).await;
        }
        result
    }
}

impl<S: ServerHandler + Clone> Front<S> {
    /// A retry's answers and the upstream's own request state, from what the client sent back (the state
    /// is ours, sealed, and must match the caller, upstream and target).
    fn continuation(
        &self,
        answers: Option<InputResponses>,
        state: Option<String>,
        upstream: &str,
        target: &str,
        me: &AccessClaims,
    ) -> Result<(Option<InputResponses>, Option<String>), McpError> {
        let state = match state {
            Some(sealed) => self.gateway.rounds.open(&sealed, upstream, target, me)?,
            None => None,
        };
        Ok((answers, state))
    }

    /// The upstream a resource URI belongs to, with that upstream's scope.
    fn owner(&self, uri: &str) -> Option<(Arc<str>, Option<String>)> {
        let upstream = self.gateway.resource_owner(uri)?;
        let scope = match self.gateway.connection(&upstream) {
            Some(connection) => connection.upstream.scope.clone(),
            None => self.gateway.personal(&upstream)?.upstream.scope.clone(),
        };
        Some((upstream, scope))
    }
}

fn not_found(uri: &str) -> McpError {
    McpError::resource_not_found(format!("no resource {uri}"), Some(serde_json::json!({ "uri": uri })))
}

async fn subscribe_upstream(gateway: &Gateway, upstream: &Arc<str>, uri: &str) -> Result<(), McpError> {
    if !gateway.subscribe_count(upstream, uri).await {
        return Ok(());
    }
    let live = gateway.connection(upstream).and_then(|c| c.live());
    let result = match live {
        Some(live) if live.offer.subscribe => {
            live.peer.subscribe(SubscribeRequestParams::new(uri.to_owned())).await.map_err(|e| e.to_string())
        }
        Some(_) => Err("it does not offer subscriptions".to_owned()),
        None => Err("it is not connected".to_owned()),
    };
    if let Err(why) = result {
        gateway.unsubscribe_count(upstream, uri).await;
        return Err(Failure::Unavailable(why).into_error(upstream));
    }
    Ok(())
}

async fn unsubscribe_upstream(gateway: &Gateway, upstream: &Arc<str>, uri: String) {
    if gateway.unsubscribe_count(upstream, &uri).await
        && let Some(live) = gateway.connection(upstream).and_then(|c| c.live())
    {
        let _ = live.peer.unsubscribe(UnsubscribeRequestParams::new(uri)).await;
    }
}

/// Passes list changes and the session's upstream resource updates to a legacy session until it closes or
/// its token stops being valid.
async fn forward_to_session(
    gateway: Arc<Gateway>,
    ctx: Arc<McpContext>,
    session: Arc<FrontSession>,
    me: AccessClaims,
    peer: Peer<RoleServer>,
) {
    let mut lists = ctx.list_changes.subscribe();
    let mut updates = gateway.resource_updates.subscribe();
    let mut endings = ctx.store.endings();
    let mut checkup = tokio::time::interval(CHECK_EVERY);
    loop {
        let sent = tokio::select! {
            _ = checkup.tick() => {
                if peer.is_transport_closed() || !still_authorized(&ctx, &me).await {
                    return;
                }
                Ok(())
            }
            ended = endings.changed() => {
                if ended.is_err() || !still_authorized(&ctx, &me).await {
                    return;
                }
                Ok(())
            }
            change = lists.recv() => match change {
                Ok(ListChanged::Tools) => peer.notify_tool_list_changed().await,
                Ok(ListChanged::Prompts) => peer.notify_prompt_list_changed().await,
                Ok(ListChanged::Resources) => peer.notify_resource_list_changed().await,
                Err(RecvError::Lagged(_)) => Ok(()),
                Err(RecvError::Closed) => return,
            },
            update = updates.recv() => match update {
                Ok(update) => {
                    let key = (update.upstream.clone(), update.uri.clone());
                    let subscribed = session.subscriptions.lock().expect("subscriptions lock").contains(&key);
                    if subscribed {
                        peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(update.uri)).await
                    } else {
                        Ok(())
                    }
                }
                Err(RecvError::Lagged(_)) => Ok(()),
                Err(RecvError::Closed) => return,
            },
        };
        if sent.is_err() {
            return;
        }
    }
}
