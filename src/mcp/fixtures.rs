//! The fixtures the official MCP conformance suite (`@modelcontextprotocol/conformance`) exercises,
//! served only with `MCP_CONFORMANCE_FIXTURES=on`: tools, resources under `test://`, prompts and a
//! completion. Strings are the ones the suite compares.
#![allow(deprecated)] // logging, sampling and elicitation are deprecated by SEP-2577 but are 2025-11-25 features

use std::time::Duration;

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::tool::{InputResponses as ToolInputResponses, RequestState};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, prompt, prompt_router, schemars, tool, tool_router};
use serde::Deserialize;
use serde_json::json;

use super::events::ListChanged;
use super::server::{McpServer, context_caller};
use rmcp::ServerHandler;
use rmcp::handler::server::prompt::PromptContext;
use rmcp::handler::server::router::tool::{ToolRoute, ToolRouter};
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::service::SubscriptionContext;
use std::sync::Arc;

/// The MCP server with the conformance suite's fixtures around it: the fixture tools, prompts, resources
/// and completions come first, everything else is the server's own.
#[derive(Clone)]
pub struct Fixtures {
    inner: McpServer,
    tools: Arc<ToolRouter<Fixtures>>,
    prompts: Arc<PromptRouter<Fixtures>>,
}

/// The fixtures' routers, built once and shared by every [`Fixtures`].
pub struct FixtureRouters {
    tools: Arc<ToolRouter<Fixtures>>,
    prompts: Arc<PromptRouter<Fixtures>>,
}

impl FixtureRouters {
    pub fn new() -> FixtureRouters {
        FixtureRouters { tools: Arc::new(Fixtures::tools()), prompts: Arc::new(Fixtures::conformance_prompts()) }
    }
}

impl Default for FixtureRouters {
    fn default() -> FixtureRouters {
        FixtureRouters::new()
    }
}

impl Fixtures {
    pub fn new(inner: McpServer, routers: &FixtureRouters) -> Fixtures {
        Fixtures { inner, tools: routers.tools.clone(), prompts: routers.prompts.clone() }
    }

    /// The fixture tools, for routing and for the guard's scope decisions.
    pub fn tools() -> ToolRouter<Fixtures> {
        Fixtures::conformance_router()
            + Fixtures::conformance_mrtr_router()
            + Fixtures::conformance_tasks_router()
            + schema_router()
    }

    /// The names of the fixture prompts.
    pub fn prompt_names() -> Vec<String> {
        let mut names: Vec<String> = Fixtures::conformance_prompts().list_all().into_iter().map(|p| p.name).collect();
        names.push(INPUT_REQUIRED_PROMPT.to_owned());
        names
    }
}

impl ServerHandler for Fixtures {
    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.get(name).cloned().or_else(|| self.inner.get_tool(name))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut result = self.inner.list_tools(request, ctx).await?;
        let mut tools = self.tools.list_all();
        tools.append(&mut result.tools);
        result.tools = tools;
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if self.tools.has_route(&request.name) {
            return self.tools.call(ToolCallContext::new(self, request, ctx)).await;
        }
        self.inner.call_tool(request, ctx).await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let mut result = self.inner.list_prompts(request, ctx).await?;
        result.prompts.extend(self.prompts.list_all());
        result.prompts.push(input_required_prompt());
        Ok(result)
    }

    /// The fixture that needs the retry's `inputResponses` (SEP-2322) is answered here, since router
    /// handlers do not receive them.
    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        if request.name == INPUT_REQUIRED_PROMPT {
            return Ok(input_required_prompt_answer(request.input_responses.as_ref()));
        }
        if self.prompts.has_route(&request.name) {
            return self.prompts.get_prompt(PromptContext::new(self, request.name, request.arguments, ctx)).await;
        }
        self.inner.get_prompt(request, ctx).await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let first_page = request.as_ref().is_none_or(|r| r.cursor.is_none());
        let mut result = self.inner.list_resources(request, ctx).await?;
        if first_page {
            let mut resources = resources();
            resources.append(&mut result.resources);
            result.resources = resources;
        }
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let mut result = self.inner.list_resource_templates(request, ctx).await?;
        result.resource_templates.push(resource_template());
        Ok(result)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        match read(&request.uri) {
            Some(contents) => Ok(ReadResourceResult::new(vec![contents]).into()),
            None => self.inner.read_resource(request, ctx).await,
        }
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if read(&request.uri).is_some() {
            let me = context_caller(&ctx)?;
            return self.inner.watch(request.uri, me, &ctx);
        }
        self.inner.subscribe(request, ctx).await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.inner.unsubscribe(request, ctx).await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        if let Reference::Prompt(p) = &request.r#ref
            && let Some(values) = complete(&p.name, &request.argument.name, &request.argument.value)
        {
            return Ok(CompleteResult::new(
                CompletionInfo::with_all_values(values).map_err(|e| McpError::internal_error(e.to_string(), None))?,
            ));
        }
        self.inner.complete(request, ctx).await
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        self.inner.accepted_subscription_filter(requested)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        self.inner.listen(context).await
    }

    async fn set_level(&self, request: SetLevelRequestParams, ctx: RequestContext<RoleServer>) -> Result<(), McpError> {
        self.inner.set_level(request, ctx).await
    }
}

/// A 1×1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A minimal WAV file.
const WAV: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";
const TEMPLATE: &str = "test://template/{id}/data";

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PromptText {
    /// The prompt to send to the client's model.
    pub prompt: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ElicitMessage {
    /// The message to show the user.
    pub message: String,
}

fn text(t: &str) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(t)])
}

async fn elicit(ctx: &RequestContext<RoleServer>, params: serde_json::Value) -> Result<CallToolResult, McpError> {
    let params: ElicitRequestParams =
        serde_json::from_value(params).map_err(|e| McpError::internal_error(e.to_string(), None))?;
    let answer =
        ctx.peer.create_elicitation(params).await.map_err(|e| McpError::internal_error(e.to_string(), None))?;
    let content = answer.content.unwrap_or_default();
    Ok(text(&format!(
        "Elicitation completed: action={}, content={content}",
        serde_json::to_string(&answer.action).unwrap_or_default()
    )))
}

#[tool_router(router = conformance_router, vis = "pub(crate)")]
impl Fixtures {
    /// A tool that returns simple text content.
    #[tool(name = "test_simple_text", annotations(read_only_hint = true))]
    async fn test_simple_text(&self) -> CallToolResult {
        text("This is a simple text response for testing.")
    }

    /// A tool that returns an image.
    #[tool(name = "test_image_content", annotations(read_only_hint = true))]
    async fn test_image_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::image(PNG, "image/png")])
    }

    /// A tool that returns audio.
    #[tool(name = "test_audio_content", annotations(read_only_hint = true))]
    async fn test_audio_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::audio(WAV, "audio/wav")])
    }

    /// A tool that returns an embedded resource.
    #[tool(name = "test_embedded_resource", annotations(read_only_hint = true))]
    async fn test_embedded_resource(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::resource(
            ResourceContents::text("This is an embedded resource content.", "test://embedded-resource")
                .with_mime_type("text/plain"),
        )])
    }

    /// A tool that returns text, an image and a resource.
    #[tool(name = "test_multiple_content_types", annotations(read_only_hint = true))]
    async fn test_multiple_content_types(&self) -> CallToolResult {
        CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(PNG, "image/png"),
            ContentBlock::resource(
                ResourceContents::text(r#"{"test":"data","value":123}"#, "test://mixed-content-resource")
                    .with_mime_type("application/json"),
            ),
        ])
    }

    /// A tool that sends log messages while it runs.
    #[tool(name = "test_tool_with_logging", annotations(read_only_hint = true))]
    async fn test_tool_with_logging(&self, ctx: RequestContext<RoleServer>) -> CallToolResult {
        for (i, message) in
            ["Tool execution started", "Tool processing data", "Tool execution completed"].iter().enumerate()
        {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.inner.log(&ctx.peer, LoggingLevel::Info, json!(message)).await;
        }
        text("Tool with logging executed successfully")
    }

    /// A tool that always fails.
    #[tool(name = "test_error_handling", annotations(read_only_hint = true))]
    async fn test_error_handling(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text("This tool intentionally returns an error for testing")])
    }

    /// A tool that reports progress.
    #[tool(name = "test_tool_with_progress", annotations(read_only_hint = true))]
    async fn test_tool_with_progress(&self, ctx: RequestContext<RoleServer>) -> CallToolResult {
        if let Some(token) = ctx.meta.get_progress_token() {
            for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let _ = ctx
                    .peer
                    .notify_progress(ProgressNotificationParam::new(token.clone(), progress).with_total(100.0))
                    .await;
            }
        }
        text("Progress tool completed")
    }

    /// A tool that asks the client's model for a completion.
    #[tool(name = "test_sampling", annotations(read_only_hint = true))]
    async fn test_sampling(
        &self,
        Parameters(args): Parameters<PromptText>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let request = CreateMessageRequestParams::new(
            vec![SamplingMessage::new(Role::User, SamplingMessageContentBlock::text(args.prompt))],
            100,
        );
        let answer =
            ctx.peer.create_message(request).await.map_err(|e| McpError::internal_error(e.to_string(), None))?;
        let reply =
            answer.message.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).unwrap_or_default();
        Ok(text(&format!("LLM response: {reply}")))
    }

    /// A tool that asks the user for information.
    #[tool(name = "test_elicitation", annotations(read_only_hint = true))]
    async fn test_elicitation(
        &self,
        Parameters(args): Parameters<ElicitMessage>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        elicit(
            &ctx,
            json!({"mode": "form", "message": args.message, "requestedSchema": {"type": "object", "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"}},
                "required": ["username", "email"]}}),
        )
        .await
    }

    /// Elicitation with default values (SEP-1034).
    #[tool(name = "test_elicitation_sep1034_defaults", annotations(read_only_hint = true))]
    async fn test_elicitation_sep1034_defaults(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        elicit(
            &ctx,
            json!({"mode": "form", "message": "Please review and update the form fields with defaults", "requestedSchema": {"type": "object", "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
                "verified": {"type": "boolean", "description": "Verification status", "default": true}}}}),
        )
        .await
    }

    /// Elicitation with every enum form (SEP-1330).
    #[tool(name = "test_elicitation_sep1330_enums", annotations(read_only_hint = true))]
    async fn test_elicitation_sep1330_enums(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        elicit(
            &ctx,
            json!({"mode": "form", "message": "Please select options from the enum fields", "requestedSchema": {"type": "object", "properties": {
                "untitledSingle": {"type": "string", "description": "Select one option", "enum": ["option1", "option2", "option3"]},
                "titledSingle": {"type": "string", "description": "Select one option with titles", "oneOf": [
                    {"const": "value1", "title": "First Option"}, {"const": "value2", "title": "Second Option"}, {"const": "value3", "title": "Third Option"}]},
                "legacyEnum": {"type": "string", "description": "Select one option (legacy)", "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"]},
                "untitledMulti": {"type": "array", "description": "Select multiple options", "minItems": 1, "maxItems": 3,
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                "titledMulti": {"type": "array", "description": "Select multiple options with titles", "minItems": 1, "maxItems": 3,
                    "items": {"anyOf": [{"const": "value1", "title": "First Choice"}, {"const": "value2", "title": "Second Choice"}, {"const": "value3", "title": "Third Choice"}]}}}}}),
        )
        .await
    }

    /// 2026-07-28: needs the client's sampling capability, and says so (-32021) when it is missing.
    #[tool(name = "test_missing_capability", annotations(read_only_hint = true))]
    async fn test_missing_capability(&self) -> Result<CallToolResult, McpError> {
        Err(McpError::new(
            ErrorCode(-32021),
            "this tool needs the client's sampling capability",
            Some(json!({"requiredCapabilities": {"sampling": {}}})),
        ))
    }

    /// 2026-07-28: must not send a server-to-client request on the response stream.
    #[tool(name = "test_streaming_elicitation", annotations(read_only_hint = true))]
    async fn test_streaming_elicitation(&self) -> CallToolResult {
        text("Elicitation is not requested over a stateless stream")
    }

    /// 2026-07-28: logs only when the request asks for a log level.
    #[tool(name = "test_logging_tool", annotations(read_only_hint = true))]
    async fn test_logging_tool(&self) -> CallToolResult {
        text("Logging tool completed")
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TwoArgs {
    /// First argument.
    pub arg1: String,
    /// Second argument.
    pub arg2: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceArg {
    /// URI of the resource to embed.
    pub resource_uri: String,
}

#[prompt_router(router = "conformance_prompts", vis = "pub(crate)")]
impl Fixtures {
    /// A simple prompt without arguments.
    #[prompt(name = "test_simple_prompt")]
    async fn test_simple_prompt(&self) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(Role::User, "This is a simple prompt for testing.")]
    }

    /// A prompt with two required arguments.
    #[prompt(name = "test_prompt_with_arguments")]
    async fn test_prompt_with_arguments(&self, Parameters(args): Parameters<TwoArgs>) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            format!("Prompt with arguments: arg1='{}', arg2='{}'", args.arg1, args.arg2),
        )]
    }

    /// A prompt that embeds a resource.
    #[prompt(name = "test_prompt_with_embedded_resource")]
    async fn test_prompt_with_embedded_resource(
        &self,
        Parameters(args): Parameters<ResourceArg>,
    ) -> Vec<PromptMessage> {
        vec![
            PromptMessage::new(
                Role::User,
                ContentBlock::resource(
                    ResourceContents::text("Embedded resource content for testing.", args.resource_uri)
                        .with_mime_type("text/plain"),
                ),
            ),
            PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
        ]
    }

    /// A prompt that contains an image.
    #[prompt(name = "test_prompt_with_image")]
    async fn test_prompt_with_image(&self) -> Vec<PromptMessage> {
        vec![
            PromptMessage::new(Role::User, ContentBlock::image(PNG, "image/png")),
            PromptMessage::new_text(Role::User, "Please analyze the image above."),
        ]
    }
}

/// The prompt that asks for input before it answers (SEP-2322, a request other than `tools/call`).
pub const INPUT_REQUIRED_PROMPT: &str = "test_input_required_result_prompt";

pub fn input_required_prompt() -> Prompt {
    Prompt::new(INPUT_REQUIRED_PROMPT, Some("A prompt that asks the client for context first"), None)
}

pub fn input_required_prompt_answer(responses: Option<&InputResponses>) -> GetPromptResponse {
    let context = responses
        .and_then(|r| r.get("user_context"))
        .filter(|a| a.get("action").is_some_and(|v| v == "accept"))
        .and_then(|a| a.pointer("/content/context"))
        .and_then(|c| c.as_str());
    match context {
        Some(context) => {
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, format!("Use this context: {context}"))])
                .into()
        }
        None => {
            let mut requests = InputRequests::new();
            let ask = elicitation("What context should the prompt use?", "context", "string");
            requests.insert("user_context".to_owned(), ask);
            InputRequiredResult::new(Some(requests), None).into()
        }
    }
}

/// The fixture resources, listed before the notes (the suite reads the first one).
pub fn resources() -> Vec<Resource> {
    vec![
        Resource::new("test://static-text", "Static Text Resource")
            .with_description("A static text resource for testing")
            .with_mime_type("text/plain"),
        Resource::new("test://static-binary", "Static Binary Resource")
            .with_description("A static binary resource (image)")
            .with_mime_type("image/png"),
        Resource::new("test://watched-resource", "Watched Resource")
            .with_description("A resource for subscription tests")
            .with_mime_type("text/plain"),
    ]
}

pub fn resource_template() -> ResourceTemplate {
    ResourceTemplate::new(TEMPLATE, "Dynamic Resource")
        .with_description("A resource template for testing")
        .with_mime_type("application/json")
}

/// Reads a fixture resource; `None` when the URI is not one.
pub fn read(uri: &str) -> Option<ResourceContents> {
    match uri {
        "test://static-text" => Some(
            ResourceContents::text("This is the content of the static text resource.", uri)
                .with_mime_type("text/plain"),
        ),
        "test://static-binary" => Some(ResourceContents::blob(PNG, uri).with_mime_type("image/png")),
        "test://watched-resource" => {
            Some(ResourceContents::text("Watched resource content", uri).with_mime_type("text/plain"))
        }
        _ => {
            let id = uri.strip_prefix("test://template/")?.strip_suffix("/data")?;
            let body = json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")}).to_string();
            Some(ResourceContents::text(body, uri).with_mime_type("application/json"))
        }
    }
}

/// Completion values for the fixture prompt's arguments.
pub fn complete(prompt: &str, argument: &str, typed: &str) -> Option<Vec<String>> {
    (prompt == "test_prompt_with_arguments" && argument == "arg1").then(|| {
        ["test-value-1", "test-value-2", "testValue1"]
            .iter()
            .filter(|v| v.starts_with(typed))
            .map(|v| (*v).to_owned())
            .collect()
    })
}

/// Seals the request state of the 2026-07-28 input-required fixtures (SEP-2322), so a tampered state is
/// refused. The key is per process: fixture state is only meant to return to the same instance.
fn state_codec() -> &'static RequestStateCodec {
    static CODEC: std::sync::OnceLock<RequestStateCodec> = std::sync::OnceLock::new();
    CODEC.get_or_init(|| RequestStateCodec::new_unchecked(rand::random::<[u8; 32]>().to_vec()))
}

fn elicitation(message: &str, field: &str, kind: &str) -> InputRequest {
    let schema = json!({"type": "object", "properties": {field: {"type": kind}}, "required": [field]});
    InputRequest::Elicitation(ElicitRequest::new(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: message.into(),
        requested_schema: serde_json::from_value(schema).expect("a valid elicitation schema"),
    }))
}

fn sampling(question: &str, max_tokens: u32) -> InputRequest {
    InputRequest::CreateMessage(CreateMessageRequest::new(CreateMessageRequestParams::new(
        vec![SamplingMessage::user_text(question)],
        max_tokens,
    )))
}

fn input_required(
    requests: Vec<(&str, InputRequest)>,
    state: Option<serde_json::Value>,
) -> Result<CallToolResponse, McpError> {
    let sealed = state
        .map(|s| state_codec().seal_json(&s))
        .transpose()
        .map_err(|e| McpError::internal_error(e.to_string(), None))?;
    let requests: InputRequests = requests.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Ok(InputRequiredResult::new(Some(requests), sealed).into())
}

/// The state a client echoed, verified; a state that fails verification is a protocol error.
fn opened_state(state: Option<&str>) -> Result<Option<serde_json::Value>, McpError> {
    state
        .map(|s| state_codec().open_json(s))
        .transpose()
        .map_err(|_| McpError::invalid_params("requestState failed verification", None))
}

/// The accepted elicitation content of `key`, if the client answered it.
fn accepted<'a>(responses: &'a Option<InputResponses>, key: &str, field: &str) -> Option<&'a serde_json::Value> {
    let answer = responses.as_ref()?.get(key)?;
    (answer.get("action")? == "accept").then_some(())?;
    answer.get("content")?.get(field)
}

fn answered(responses: &Option<InputResponses>, key: &str) -> bool {
    responses.as_ref().and_then(|r| r.get(key)).is_some_and(serde_json::Value::is_object)
}

/// The suite's tool whose JSON Schema 2020-12 input schema must reach clients with every keyword
/// (SEP-1613, SEP-2106).
pub const JSON_SCHEMA_TOOL: &str = "json_schema_2020_12_tool";
/// A tool with an `x-mcp-header` parameter: a 2026-07-28 request must mirror it in `Mcp-Param-Region`,
/// which rmcp checks against the body (SEP-2243) before the call runs.
pub const CUSTOM_HEADER_TOOL: &str = "test_custom_header";

/// The two fixtures whose input schemas are written out rather than derived from a Rust type.
fn schema_router() -> ToolRouter<Fixtures> {
    let contact = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
            }
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"}
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": false
    });
    let region = json!({
        "type": "object",
        "properties": {
            "region": {"type": "string", "description": "Mirrored in Mcp-Param-Region", "x-mcp-header": "Region"},
            "query": {"type": "string", "description": "Not mirrored"}
        },
        "required": ["region"]
    });
    let object = |v: serde_json::Value| match v {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("the schemas above are objects"),
    };
    let read_only = ToolAnnotations::new().read_only(true);
    let schema_tool =
        Tool::new(JSON_SCHEMA_TOOL, "Takes a contact; its schema uses JSON Schema 2020-12 keywords.", object(contact))
            .annotate(read_only.clone());
    let header_tool =
        Tool::new(CUSTOM_HEADER_TOOL, "Echoes the region it was given, which travels in a header too.", object(region))
            .annotate(read_only);
    ToolRouter::new()
        .with_route(ToolRoute::new_dyn(schema_tool, |_| {
            Box::pin(async { Ok(text("The contact was accepted.").into()) })
        }))
        .with_route(ToolRoute::new_dyn(header_tool, |context| {
            let region =
                context.arguments.as_ref().and_then(|a| a.get("region")).and_then(|r| r.as_str()).map(str::to_owned);
            Box::pin(async move { Ok(text(&format!("region: {}", region.unwrap_or_default())).into()) })
        }))
}

#[tool_router(router = conformance_mrtr_router, vis = "pub(crate)")]
impl Fixtures {
    /// Asks for the user's name through an input-required result, then greets.
    #[tool(name = "test_input_required_result_elicitation", annotations(read_only_hint = true))]
    async fn test_input_required_result_elicitation(
        &self,
        ToolInputResponses(responses): ToolInputResponses,
    ) -> Result<CallToolResponse, McpError> {
        greet_the_named(&responses)
    }

    /// Asks the client's model a question through an input-required result.
    #[tool(name = "test_input_required_result_sampling", annotations(read_only_hint = true))]
    async fn test_input_required_result_sampling(
        &self,
        ToolInputResponses(responses): ToolInputResponses,
    ) -> Result<CallToolResponse, McpError> {
        if answered(&responses, "capital_question") {
            return Ok(text("The model answered the question.").into());
        }
        input_required(vec![("capital_question", sampling("What is the capital of France?", 100))], None)
    }

    /// Asks for the client's roots through an input-required result.
    #[tool(name = "test_input_required_result_list_roots", annotations(read_only_hint = true))]
    async fn test_input_required_result_list_roots(
        &self,
        ToolInputResponses(responses): ToolInputResponses,
    ) -> Result<CallToolResponse, McpError> {
        if answered(&responses, "client_roots") {
            return Ok(text("The client shared its roots.").into());
        }
        input_required(vec![("client_roots", InputRequest::ListRoots(ListRootsRequest::default()))], None)
    }

    /// Carries sealed request state across the round trip.
    #[tool(name = "test_input_required_result_request_state", annotations(read_only_hint = true))]
    async fn test_input_required_result_request_state(
        &self,
        RequestState(state): RequestState,
        ToolInputResponses(responses): ToolInputResponses,
    ) -> Result<CallToolResponse, McpError> {
        match opened_state(state.as_deref())? {
            Some(s) if s["step"] == "confirm" && accepted(&responses, "confirm", "ok").is_some() => {
                Ok(text("state-ok").into())
            }
            _ => input_required(
                vec![("confirm", elicitation("Please confirm", "ok", "boolean"))],
                Some(json!({"step": "confirm"})),
            ),
        }
    }

    /// Asks for three inputs of three kinds at once.
    #[tool(name = "test_input_required_result_multiple_inputs", annotations(read_only_hint = true))]
    async fn test_input_required_result_multiple_inputs(
        &self,
        RequestState(state): RequestState,
        ToolInputResponses(responses): ToolInputResponses,
    ) -> Result<CallToolResponse, McpError> {
        let all = ["user_name", "greeting", "client_roots"].iter().all(|k| answered(&responses, k));
        if opened_state(state.as_deref())?.is_some() && all {
            return Ok(text("All inputs received.").into());
        }
        input_required(
            vec![
                ("user_name", elicitation("What is your name?", "name", "string")),
                ("greeting", sampling("Generate a greeting", 50)),
                ("client_roots", InputRequest::ListRoots(ListRootsRequest::default())),
            ],
            Some(json!({"step": "multiple"})),
        )
    }

    /// Two rounds of questions before the answer.
    #[tool(name = "test_input_required_result_multi_round", annotations(read_only_hint = true))]
    async fn test_input_required_result_multi_round(
        &self,
        RequestState(state): RequestState,
        ToolInputResponses(responses): ToolInputResponses,
    ) -> Result<CallToolResponse, McpError> {
        let state = opened_state(state.as_deref())?;
        match state.as_ref().map(|s| s["round"].as_i64()) {
            Some(Some(1)) if accepted(&responses, "step1", "name").is_some() => input_required(
                vec![("step2", elicitation("Step 2: What is your favorite color?", "color", "string"))],
                Some(json!({"round": 2, "name": accepted(&responses, "step1", "name")})),
            ),
            Some(Some(2)) if accepted(&responses, "step2", "color").is_some() => {
                let name = state.as_ref().and_then(|s| s["name"].as_str()).unwrap_or_default().to_owned();
                let color =
                    accepted(&responses, "step2", "color").and_then(|c| c.as_str()).unwrap_or_default().to_owned();
                Ok(text(&format!("{name} likes {color}.")).into())
            }
            _ => input_required(
                vec![("step1", elicitation("Step 1: What is your name?", "name", "string"))],
                Some(json!({"round": 1})),
            ),
        }
    }

    /// Refuses a request state that was changed by the client.
    #[tool(name = "test_input_required_result_tampered_state", annotations(read_only_hint = true))]
    async fn test_input_required_result_tampered_state(
        &self,
        RequestState(state): RequestState,
        ToolInputResponses(responses): ToolInputResponses,
    ) -> Result<CallToolResponse, McpError> {
        match opened_state(state.as_deref())? {
            Some(_) if accepted(&responses, "confirm", "ok").is_some() => Ok(text("state verified").into()),
            _ => input_required(
                vec![("confirm", elicitation("Please confirm", "ok", "boolean"))],
                Some(json!({"step": "tamper-check"})),
            ),
        }
    }

    /// Asks only for what the client declared it can answer.
    #[tool(name = "test_input_required_result_capabilities", annotations(read_only_hint = true))]
    async fn test_input_required_result_capabilities(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let caps = ctx.meta.client_capabilities().unwrap_or_default();
        let mut requests = vec![];
        if caps.elicitation.is_some() {
            requests.push(("user_name", elicitation("What is your name?", "name", "string")));
        }
        if caps.sampling.is_some() {
            requests.push(("greeting", sampling("Generate a greeting", 50)));
        }
        if caps.roots.is_some() {
            requests.push(("client_roots", InputRequest::ListRoots(ListRootsRequest::default())));
        }
        if requests.is_empty() {
            return Ok(text("The client declared no capability to ask with.").into());
        }
        input_required(requests, None)
    }

    /// Announces a change of the tool list to listening clients.
    #[tool(name = "test_trigger_tool_change", annotations(read_only_hint = true))]
    async fn test_trigger_tool_change(&self) -> CallToolResult {
        self.inner.ctx.list_changes.publish(ListChanged::Tools);
        text("tool list change announced")
    }

    /// Announces a change of the prompt list to listening clients.
    #[tool(name = "test_trigger_prompt_change", annotations(read_only_hint = true))]
    async fn test_trigger_prompt_change(&self) -> CallToolResult {
        self.inner.ctx.list_changes.publish(ListChanged::Prompts);
        text("prompt list change announced")
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Greeting {
    /// Who to greet.
    pub name: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Compute {
    /// How long the computation takes, in seconds (at most 600).
    pub seconds: f64,
    /// A label to name the result by.
    pub label: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FileToDelete {
    /// The file to (pretend to) delete.
    pub filename: String,
}

/// How a fixture runs for a client that declared the tasks extension (SEP-2663).
pub fn task_support(tool: &str) -> crate::mcp::tasks::TaskSupport {
    use crate::mcp::tasks::TaskSupport;
    match tool {
        "slow_compute" | "protocol_error_job" | "confirm_delete" | "multi_input" => TaskSupport::Optional,
        "failing_job" => TaskSupport::Required,
        "test_tool_with_task" => TaskSupport::RequiredAfterInput,
        _ => TaskSupport::Never,
    }
}

/// The tasks extension's fixtures (SEP-2663): the gateway runs them as tasks for clients that declared the
/// extension (see [`task_support`]); they are ordinary tools otherwise.
#[tool_router(router = conformance_tasks_router, vis = "pub(crate)")]
impl Fixtures {
    /// Greets someone, at once (never a task).
    #[tool(name = "greet", annotations(read_only_hint = true))]
    async fn greet(&self, Parameters(Greeting { name }): Parameters<Greeting>) -> CallToolResult {
        text(&format!("Hello, {name}!"))
    }

    /// Computes for `seconds` (a task for clients that declared the extension; cancellable).
    #[tool(name = "slow_compute", annotations(read_only_hint = true))]
    async fn slow_compute(&self, Parameters(Compute { seconds, label }): Parameters<Compute>) -> CallToolResult {
        let seconds = if seconds.is_finite() { seconds.clamp(0.0, 600.0) } else { 0.0 };
        tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
        text(&format!("Computed {} in {seconds} s.", label.as_deref().unwrap_or("the answer")))
    }

    /// A job that runs as a task only, and ends in a tool error (`isError`).
    #[tool(name = "failing_job", annotations(read_only_hint = true))]
    async fn failing_job(&self) -> CallToolResult {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        CallToolResult::error(vec![ContentBlock::text("The job failed: the input was not valid.")])
    }

    /// A job that ends in a protocol error (a task that fails).
    #[tool(name = "protocol_error_job", annotations(read_only_hint = true))]
    async fn protocol_error_job(&self) -> Result<CallToolResult, McpError> {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        Err(McpError::internal_error("the job broke down", None))
    }

    /// Asks for confirmation before (pretending to) delete a file.
    #[tool(name = "confirm_delete", annotations(read_only_hint = true))]
    async fn confirm_delete(
        &self,
        Parameters(FileToDelete { filename }): Parameters<FileToDelete>,
        ToolInputResponses(responses): ToolInputResponses,
    ) -> Result<CallToolResponse, McpError> {
        match accepted(&responses, "confirm", "confirm").and_then(serde_json::Value::as_bool) {
            Some(true) => Ok(text(&format!("Deleted {filename}.")).into()),
            Some(false) => Ok(text(&format!("Kept {filename}.")).into()),
            None => input_required(
                vec![("confirm", elicitation(&format!("Delete {filename}?"), "confirm", "boolean"))],
                None,
            ),
        }
    }

    /// Asks two things at once.
    #[tool(name = "multi_input", annotations(read_only_hint = true))]
    async fn multi_input(
        &self,
        ToolInputResponses(responses): ToolInputResponses,
    ) -> Result<CallToolResponse, McpError> {
        if answered(&responses, "name") && answered(&responses, "confirm") {
            return Ok(text("Both answers arrived.").into());
        }
        input_required(
            vec![
                ("name", elicitation("What is your name?", "name", "string")),
                ("confirm", elicitation("Go ahead?", "confirm", "boolean")),
            ],
            None,
        )
    }

    /// Asks for a name at once, then runs as a task that greets it.
    #[tool(name = "test_tool_with_task", annotations(read_only_hint = true))]
    async fn test_tool_with_task(
        &self,
        ToolInputResponses(responses): ToolInputResponses,
    ) -> Result<CallToolResponse, McpError> {
        greet_the_named(&responses)
    }
}

/// "Hello, NAME!" once the client said its name (`user_name`), else the question.
fn greet_the_named(responses: &Option<InputResponses>) -> Result<CallToolResponse, McpError> {
    match accepted(responses, "user_name", "name").and_then(|n| n.as_str()) {
        Some(name) => Ok(text(&format!("Hello, {name}!")).into()),
        None => input_required(vec![("user_name", elicitation("What is your name?", "name", "string"))], None),
    }
}
