//! The MCP server (rmcp `ServerHandler`): tools, notes as resources with subscriptions, a prompt,
//! completions and logging. One value per session (legacy) or request (stateless); what every value shares
//! is the [`McpContext`]. The conformance suite's fixtures wrap it (`super::fixtures`).
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use poem::http::request::Parts;
use rmcp::handler::server::prompt::PromptContext;
use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::*;
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler, prompt, prompt_router, schemars, tool_handler};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::McpContext;
use super::error::internal;
use super::events::ListChanged;
use super::guard::Caller;
use crate::domain::tokens::AccessClaims;
use crate::store::note;

pub const NOTE_SCHEME: &str = "note://";
/// How many resources one session may subscribe to.
const MAX_SUBSCRIPTIONS: usize = 256;
/// How often open notification streams re-check that their token still holds.
const STREAM_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
const PAGE_SIZE: u64 = 50;

#[derive(Clone)]
pub struct McpServer {
    pub(crate) ctx: Arc<McpContext>,
    tool_router: Arc<ToolRouter<McpServer>>,
    prompt_router: Arc<PromptRouter<McpServer>>,
    session: Arc<SessionLocal>,
}

/// The routers every [`McpServer`] shares.
pub struct Routers {
    tools: Arc<ToolRouter<McpServer>>,
    prompts: Arc<PromptRouter<McpServer>>,
}

impl Routers {
    pub fn new() -> Routers {
        Routers { tools: Arc::new(McpServer::tools()), prompts: Arc::new(McpServer::prompt_router()) }
    }
}

impl Default for Routers {
    fn default() -> Routers {
        Routers::new()
    }
}

/// What one session remembers: its resource subscriptions and logging level.
#[derive(Default)]
struct SessionLocal {
    subscriptions: Mutex<HashSet<String>>,
    forwarding: Mutex<bool>,
    #[allow(deprecated)]
    log_level: Mutex<Option<LoggingLevel>>,
}

impl McpServer {
    /// One server per session (legacy) or per request (stateless). The routers, with their generated
    /// JSON schemas, are built once ([`Routers::new`]) and shared.
    pub fn new(ctx: Arc<McpContext>, routers: &Routers) -> McpServer {
        McpServer {
            ctx,
            tool_router: routers.tools.clone(),
            prompt_router: routers.prompts.clone(),
            session: Arc::default(),
        }
    }

    /// Every tool this server offers, for routing and for the guard's scope decisions.
    pub fn tools() -> ToolRouter<McpServer> {
        McpServer::whoami_router() + McpServer::notes_router()
    }

    /// The names of this server's prompts (no upstream prompt may take them).
    pub fn prompt_names() -> std::collections::HashSet<String> {
        McpServer::prompt_router().list_all().into_iter().map(|p| p.name).collect()
    }

    /// Subscribes the session to `uri` (at most [`MAX_SUBSCRIPTIONS`]) and starts forwarding the changes of
    /// the caller's notes to it, once per session.
    pub(crate) fn watch(
        &self,
        uri: String,
        me: AccessClaims,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        {
            let mut subscriptions = self.session.subscriptions.lock().expect("subscriptions lock");
            if subscriptions.len() >= MAX_SUBSCRIPTIONS && !subscriptions.contains(&uri) {
                return Err(McpError::invalid_request(
                    format!("at most {MAX_SUBSCRIPTIONS} subscriptions per session"),
                    None,
                ));
            }
            subscriptions.insert(uri);
        }
        let mut started = self.session.forwarding.lock().expect("forwarding lock");
        if !*started {
            *started = true;
            tokio::spawn(forward_note_changes(self.ctx.clone(), self.session.clone(), me, ctx.peer.clone()));
        }
        Ok(())
    }

    /// Sends a log message if the client asked for this level or a more severe one.
    #[allow(deprecated)]
    pub(crate) async fn log(&self, peer: &Peer<RoleServer>, level: LoggingLevel, data: serde_json::Value) {
        let wanted = *self.session.log_level.lock().expect("log level lock");
        if wanted.is_some_and(|w| severity(level) >= severity(w)) {
            let _ = peer
                .notify_logging_message(LoggingMessageNotificationParam::new(level, data).with_logger("mcp-gateway"))
                .await;
        }
    }
}

#[allow(deprecated)]
fn severity(level: LoggingLevel) -> u8 {
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

/// The verified access token of the request, put there by the bearer guard.
pub(crate) fn caller(parts: &Parts) -> Result<&AccessClaims, McpError> {
    parts.extensions.get::<AccessClaims>().ok_or_else(|| McpError::invalid_request("no verified access token", None))
}

/// [`caller`] for handlers that receive the request context rather than the HTTP parts.
pub(crate) fn context_caller(ctx: &RequestContext<RoleServer>) -> Result<AccessClaims, McpError> {
    let parts = ctx.extensions.get::<Parts>().ok_or_else(|| McpError::invalid_request("no HTTP request", None))?;
    caller(parts).cloned()
}

/// [`caller`] for what belongs to a person (notes): a token a client holds for itself (client credentials)
/// has no person behind it, and is told so.
pub(crate) fn person(parts: &Parts) -> Result<&AccessClaims, McpError> {
    let me = caller(parts)?;
    match parts.extensions.get::<Caller>() {
        Some(Caller::Person { .. }) => Ok(me),
        _ => Err(McpError::invalid_request(
            format!(
                "notes belong to a person, and this token acts for the client {} itself (client credentials); \
                 sign a person in (authorization code) to use them",
                me.client_id
            ),
            None,
        )),
    }
}

/// [`person`] for handlers that receive the request context rather than the HTTP parts.
pub(crate) fn context_person(ctx: &RequestContext<RoleServer>) -> Result<AccessClaims, McpError> {
    let parts = ctx.extensions.get::<Parts>().ok_or_else(|| McpError::invalid_request("no HTTP request", None))?;
    person(parts).cloned()
}

/// Whether the request's token acts for a client itself rather than a person.
fn is_machine(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.extensions.get::<Parts>().and_then(|p| p.extensions.get::<Caller>()) == Some(&Caller::Client)
}

pub(crate) fn note_uri(id: &str) -> String {
    format!("{NOTE_SCHEME}{id}")
}

pub(crate) fn note_resource(n: &note::Model) -> Resource {
    Resource::new(note_uri(&n.id), n.title.clone())
        .with_title(n.title.clone())
        .with_mime_type("text/markdown")
        .with_size(n.body.len() as u64)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SummarizeArgs {
    /// Only notes whose title or text contains this (optional).
    pub topic: Option<String>,
}

#[prompt_router]
impl McpServer {
    /// A prompt asking the model to summarize the signed-in person's notes.
    #[prompt(name = "summarize_notes", title = "Summarize my notes")]
    async fn summarize_notes(
        &self,
        Parameters(args): Parameters<SummarizeArgs>,
        Extension(parts): Extension<Parts>,
    ) -> Result<GetPromptResult, McpError> {
        let me = person(&parts)?;
        let notes = match args.topic.as_deref().filter(|t| !t.is_empty()) {
            Some(topic) => self.ctx.store.search_notes(&me.sub, topic, 20).await,
            None => self.ctx.store.list_notes(&me.sub, 0, 20).await,
        }
        .map_err(internal)?;
        let listing: String = notes.iter().map(|n| format!("## {}\n{}\n\n", n.title, n.body)).collect();
        let text = if notes.is_empty() {
            "I have no notes yet. Say so briefly.".to_owned()
        } else {
            format!("Summarize these notes in a few bullet points, grouping related ones:\n\n{listing}")
        };
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(format!("A summary request for {} notes", notes.len())))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpServer {
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_completions()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new("mcp-gateway", env!("CARGO_PKG_VERSION")).with_title("mcp-gateway"))
        .with_instructions(
            "Notes of the signed-in person: notes_create, notes_list, notes_search, notes_get, notes_delete; \
             each note is also the resource note://{id}. whoami tells who the token belongs to.",
        )
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let prompts = self.prompt_router.list_all();
        let cache_hints = ctx.protocol_version().is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        Ok(ListPromptsResult {
            result_type: Some(ResultType::COMPLETE),
            prompts,
            meta: None,
            next_cursor: None,
            ttl_ms: cache_hints.then_some(0),
            cache_scope: cache_hints.then_some(CacheScope::Private),
        })
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let context = PromptContext::new(self, request.name, request.arguments, ctx);
        self.prompt_router.get_prompt(context).await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        if is_machine(&ctx) {
            // No person, no notes: an empty list, so a client listing every server's resources carries on.
            return Ok(ListResourcesResult::with_all_items(vec![]));
        }
        let me = context_person(&ctx)?;
        let offset = request.and_then(|r| r.cursor).and_then(|c| c.parse::<u64>().ok()).unwrap_or(0);
        let notes = self.ctx.store.list_notes(&me.sub, offset, PAGE_SIZE + 1).await.map_err(internal)?;
        let more = notes.len() as u64 > PAGE_SIZE;
        let resources = notes.iter().take(PAGE_SIZE as usize).map(note_resource).collect();
        let mut result = ListResourcesResult::with_all_items(resources);
        if more {
            result.next_cursor = Some((offset + PAGE_SIZE).to_string());
        }
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let templates = vec![
            ResourceTemplate::new(format!("{NOTE_SCHEME}{{id}}"), "note")
                .with_title("A note")
                .with_description("One of your notes, by id, as Markdown")
                .with_mime_type("text/markdown"),
        ];
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let me = context_person(&ctx)?;
        let not_found =
            || McpError::resource_not_found(format!("no resource {}", request.uri), Some(json!({"uri": request.uri})));
        let id = request.uri.strip_prefix(NOTE_SCHEME).ok_or_else(not_found)?;
        let note = self.ctx.store.find_note(&me.sub, id).await.map_err(internal)?.ok_or_else(not_found)?;
        let text = format!("# {}\n\n{}", note.title, note.body);
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, request.uri.clone()).with_mime_type("text/markdown"),
        ])
        .into())
    }

    /// Subscribes the session to one of the caller's notes (at most `MAX_SUBSCRIPTIONS` per session).
    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let me = context_person(&ctx)?;
        let own_note = match request.uri.strip_prefix(NOTE_SCHEME) {
            Some(id) if id.len() <= 64 => self.ctx.store.find_note(&me.sub, id).await.map_err(internal)?.is_some(),
            _ => false,
        };
        if !own_note {
            return Err(McpError::resource_not_found(
                format!("no resource {}", request.uri),
                Some(json!({"uri": request.uri})),
            ));
        }
        self.watch(request.uri, me, &ctx)
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.session.subscriptions.lock().expect("subscriptions lock").remove(&request.uri);
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        if is_machine(&ctx) {
            return Ok(CompleteResult::new(CompletionInfo::with_all_values(vec![]).map_err(internal)?));
        }
        let me = context_person(&ctx)?;
        let typed = request.argument.value.as_str();
        let values = match (&request.r#ref, request.argument.name.as_str()) {
            (Reference::Prompt(p), "topic") if p.name == "summarize_notes" => {
                self.ctx.store.note_titles(&me.sub, typed, 100).await.map_err(internal)?
            }
            (Reference::Resource(r), "id") if r.uri == format!("{NOTE_SCHEME}{{id}}") => {
                self.ctx.store.note_ids(&me.sub, typed, 100).await.map_err(internal)?
            }
            _ => vec![],
        };
        Ok(CompleteResult::new(CompletionInfo::with_all_values(values).map_err(internal)?))
    }

    /// 2026-07-28 subscriptions (SEP-2575): what the client asked for, limited to what this server offers.
    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    /// A 2026-07-28 subscription stream: updates of the subscribed notes, and list changes, until it closes.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let me = context_caller(context.request_context())?;
        let limit = self.ctx.max_streams_per_user;
        let Some(_slot) = self.ctx.open_streams.open(&me.sub, limit) else {
            return Err(McpError::invalid_request(
                format!("you already have {limit} open notification streams on this server; close one first"),
                None,
            ));
        };
        let accepted = context.accepted().clone();
        let watched: HashSet<String> =
            accepted.resource_subscriptions.clone().unwrap_or_default().into_iter().collect();
        let mut notes = self.ctx.note_events.subscribe();
        let mut lists = self.ctx.list_changes.subscribe();
        let mut endings = self.ctx.store.endings();
        let mut checkup = tokio::time::interval(STREAM_CHECK_INTERVAL);
        loop {
            let sent = tokio::select! {
                () = context.cancelled() => return Ok(()),
                _ = checkup.tick() => if still_authorized(&self.ctx, &me).await { Ok(()) } else { return Ok(()) },
                ended = endings.changed() => match ended {
                    Ok(()) if still_authorized(&self.ctx, &me).await => Ok(()),
                    _ => return Ok(()),
                },
                change = notes.recv() => match change {
                    Ok(change) if change.user_id == me.sub && watched.contains(&note_uri(&change.note_id)) => {
                        context.sink().notify_resource_updated(note_uri(&change.note_id)).await
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => Ok(()),
                    Err(RecvError::Closed) => return Ok(()),
                },
                change = lists.recv() => match change {
                    Ok(ListChanged::Tools) if accepted.tools_list_changed == Some(true) => context.sink().notify_tool_list_changed().await,
                    Ok(ListChanged::Prompts) if accepted.prompts_list_changed == Some(true) => {
                        context.sink().notify_prompt_list_changed().await
                    }
                    Ok(ListChanged::Resources) if accepted.resources_list_changed == Some(true) => {
                        context.sink().notify_resource_list_changed().await
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => Ok(()),
                    Err(RecvError::Closed) => return Ok(()),
                },
            };
            if sent.is_err() {
                return Ok(());
            }
        }
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        *self.session.log_level.lock().expect("log level lock") = Some(request.level);
        Ok(())
    }
}

/// Delivers `notifications/resources/updated` for the session's subscriptions until the session ends or
/// the token that subscribed stops being valid (expired, grant revoked, user disabled). A revocation is
/// heard at once (see `Store::endings`); the periodic check catches expiry and a closed transport.
async fn forward_note_changes(
    ctx: Arc<McpContext>,
    session: Arc<SessionLocal>,
    me: AccessClaims,
    peer: Peer<RoleServer>,
) {
    let mut changes = ctx.note_events.subscribe();
    let mut endings = ctx.store.endings();
    let mut checkup = tokio::time::interval(STREAM_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = checkup.tick() => {
                if peer.is_transport_closed() || !still_authorized(&ctx, &me).await {
                    return;
                }
            }
            ended = endings.changed() => {
                if ended.is_err() || !still_authorized(&ctx, &me).await {
                    return;
                }
            }
            change = changes.recv() => {
                let change = match change {
                    Ok(change) => change,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                let uri = note_uri(&change.note_id);
                let subscribed =
                    change.user_id == me.sub && session.subscriptions.lock().expect("subscriptions lock").contains(&uri);
                if subscribed && peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Whether notifications may still flow to the holder of this token.
pub(crate) async fn still_authorized(ctx: &McpContext, me: &AccessClaims) -> bool {
    !me.has_expired() && ctx.store.grant_is_active(&me.grant_id).await.unwrap_or(false)
}
