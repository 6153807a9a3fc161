//! A small MCP client over real HTTP: JSON or SSE answers, legacy sessions and 2026-07-28 requests.
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use super::{TestApp, header};

pub const LEGACY: &str = "2025-06-18";
pub const STATELESS: &str = "2026-07-28";

/// The JSON-RPC message answering `id` in a JSON or `text/event-stream` body.
pub async fn answer(response: Response, id: u64) -> Value {
    let status = response.status();
    let is_sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let text = response.text().await.expect("MCP response body");
    assert!(status.is_success(), "HTTP {status}: {text}");
    if !is_sse {
        return serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    }
    sse_messages(&text)
        .into_iter()
        .find(|m| m.get("id") == Some(&json!(id)))
        .unwrap_or_else(|| panic!("no answer to request {id} in: {text}"))
}

/// Every JSON message in the `data:` lines of an SSE body.
/// The text of a tool result's first content block ("" when there is none).
pub fn text_of(result: &Value) -> String {
    result["content"][0]["text"].as_str().unwrap_or_default().to_owned()
}

/// Waits until `tools/list` shows `name` (an upstream connected and was listed; a program from npm may take
/// a while to start) and returns the tool.
pub async fn until_tool(client: &mut McpClient<'_>, name: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let tools = client.result("tools/list", json!({})).await;
        if let Some(tool) = tools["tools"].as_array().unwrap().iter().find(|t| t["name"] == name) {
            return tool.clone();
        }
        assert!(std::time::Instant::now() < deadline, "{name} never listed: {tools}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub fn sse_messages(text: &str) -> Vec<Value> {
    text.lines().filter_map(|l| l.strip_prefix("data:")).filter_map(|d| serde_json::from_str(d.trim()).ok()).collect()
}

pub struct McpClient<'a> {
    pub app: &'a TestApp,
    pub token: String,
    pub session: Option<String>,
    pub version: &'static str,
    next_id: u64,
}

impl<'a> McpClient<'a> {
    /// A legacy client: `initialize`, keep the `Mcp-Session-Id`, send `notifications/initialized`.
    pub async fn connect(app: &'a TestApp, token: &str) -> McpClient<'a> {
        McpClient::connect_with(app, token, json!({})).await
    }

    /// [`McpClient::connect`] declaring `capabilities` (elicitation, sampling, roots).
    pub async fn connect_with(app: &'a TestApp, token: &str, capabilities: Value) -> McpClient<'a> {
        let mut client = McpClient { app, token: token.to_owned(), session: None, version: LEGACY, next_id: 1 };
        let mut init = initialize(LEGACY, 0);
        init["params"]["capabilities"] = capabilities;
        let response = client.post(&init).send().await.unwrap();
        let session = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let init = answer(response, 0).await;
        assert_eq!(init["result"]["protocolVersion"], LEGACY, "{init}");
        client.session = Some(session.expect("initialize opens a session"));
        let status = client.notify("notifications/initialized", json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        client
    }

    /// A 2026-07-28 client: no handshake, no session; every request carries the protocol metadata.
    pub fn stateless(app: &'a TestApp, token: &str) -> McpClient<'a> {
        McpClient { app, token: token.to_owned(), session: None, version: STATELESS, next_id: 1 }
    }

    pub fn post(&self, body: &Value) -> RequestBuilder {
        let mut request = self
            .app
            .client
            .post(self.app.url("/mcp"))
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(body);
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session).header("mcp-protocol-version", self.version);
        }
        if self.version == STATELESS {
            let method = body["method"].as_str().unwrap_or_default().to_owned();
            request = request.header("mcp-protocol-version", STATELESS).header("mcp-method", method);
            if let Some(name) = body["params"]["name"].as_str().or(body["params"]["uri"].as_str()) {
                request = request.header("mcp-name", name);
            }
        }
        request
    }

    pub fn message(&mut self, method: &str, mut params: Value) -> (u64, Value) {
        let id = self.next_id;
        self.next_id += 1;
        if self.version == STATELESS {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": STATELESS,
                "io.modelcontextprotocol/clientInfo": {"name": "gateway-tests", "version": "0.0.0"},
                "io.modelcontextprotocol/clientCapabilities": {},
            });
        }
        (id, json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
    }

    /// Sends a request and returns the whole JSON-RPC answer (`result` or `error`).
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let (id, body) = self.message(method, params);
        let response = self.post(&body).send().await.unwrap();
        answer(response, id).await
    }

    /// Sends a request and returns the raw HTTP response.
    pub async fn raw(&mut self, method: &str, params: Value) -> Response {
        let (_, body) = self.message(method, params);
        self.post(&body).send().await.unwrap()
    }

    /// Repeats a request until it answers `expected`, for a few seconds at most.
    pub async fn until_status(&mut self, expected: StatusCode, method: &str) {
        let (_, body) = self.message(method, json!({}));
        let (this, body) = (&*self, &body);
        super::eventually_status(expected, move || async move { this.post(body).send().await.unwrap() }).await
    }

    pub async fn result(&mut self, method: &str, params: Value) -> Value {
        let answer = self.request(method, params).await;
        assert!(answer.get("error").is_none(), "{method} failed: {answer}");
        answer["result"].clone()
    }

    /// Every entry of a paginated list (`tools/list`, `resources/list`, …), page after page: the `field` of
    /// each entry under `key`.
    pub async fn list_all(&mut self, method: &str, key: &str, field: &str) -> Vec<String> {
        let mut all = Vec::new();
        let mut params = json!({});
        loop {
            let page = self.result(method, params).await;
            all.extend(page[key].as_array().unwrap().iter().map(|e| e[field].as_str().unwrap().to_owned()));
            match page["nextCursor"].as_str() {
                Some(cursor) => params = json!({"cursor": cursor}),
                None => return all,
            }
        }
    }

    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        self.result("tools/call", json!({"name": name, "arguments": arguments})).await
    }

    pub async fn notify(&self, method: &str, params: Value) -> StatusCode {
        self.post(&json!({"jsonrpc": "2.0", "method": method, "params": params})).send().await.unwrap().status()
    }

    pub async fn delete_session(&self) -> StatusCode {
        let session = self.session.as_deref().expect("a session");
        self.app
            .client
            .delete(self.app.url("/mcp"))
            .bearer_auth(&self.token)
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", self.version)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Opens the GET SSE stream of the session.
    pub async fn open_stream(&self) -> Response {
        let session = self.session.as_deref().expect("a session");
        let response = self
            .app
            .client
            .get(self.app.url("/mcp"))
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", self.version)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response
    }
}

impl McpClient<'_> {
    /// Sends a request and reads its SSE answer, answering each request the server makes meanwhile with
    /// `reply(request)` (a JSON-RPC result, or `{"error": …}`); returns every message received, the
    /// answer last.
    pub async fn request_answering(
        &mut self,
        method: &str,
        params: Value,
        reply: impl Fn(&Value) -> Value,
    ) -> Vec<Value> {
        let (id, body) = self.message(method, params);
        let mut response = self.post(&body).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let mut buffer = String::new();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let chunk =
                tokio::time::timeout_at(deadline, response.chunk()).await.expect("an answer within 30 s").unwrap();
            let Some(chunk) = chunk else { panic!("the stream ended without an answer: {seen:?}") };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                for message in sse_messages(&event) {
                    seen.push(message.clone());
                    if message.get("method").is_some() && message.get("id").is_some() {
                        let answer = reply(&message);
                        let mut reply_body = json!({"jsonrpc": "2.0", "id": message["id"]});
                        match answer.get("error") {
                            Some(error) => reply_body["error"] = error.clone(),
                            None => reply_body["result"] = answer,
                        }
                        let status = self.post(&reply_body).send().await.unwrap().status();
                        assert_eq!(status, StatusCode::ACCEPTED, "the answer to {message} was refused");
                    }
                    if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
                        return seen;
                    }
                }
            }
        }
    }

    /// Opens a 2026-07-28 `subscriptions/listen` stream for updates of `uris` and waits for its
    /// acknowledgement.
    pub async fn listen(&self, uris: &[&str]) -> Response {
        let listen = json!({
            "jsonrpc": "2.0", "id": 99, "method": "subscriptions/listen",
            "params": {
                "notifications": {"resourceSubscriptions": uris},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": STATELESS,
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        });
        let mut stream = self.post(&listen).send().await.unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        next_message(&mut stream, |m| m["method"] == "notifications/subscriptions/acknowledged").await;
        stream
    }
}

/// Whether the SSE stream ends (the server closes it) within `seconds`, reading past whatever it still sends.
pub async fn ends_within(stream: &mut Response, seconds: u64) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Err(_) => return false,
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None) | Err(_)) => return true,
        }
    }
}

/// The messages the SSE stream delivers within `millis`, without waiting longer.
pub async fn messages_within(stream: &mut Response, millis: u64) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(millis);
    let mut buffer = String::new();
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, stream.chunk()).await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
    sse_messages(&buffer)
}

/// Reads the SSE stream until a message satisfies `wanted`, for at most five seconds.
pub async fn next_message(stream: &mut Response, wanted: impl Fn(&Value) -> bool) -> Value {
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("message within 5 s")
            .unwrap()
            .expect("stream open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(found) = sse_messages(&buffer).into_iter().find(|m| wanted(m)) {
            return found;
        }
    }
}

pub fn initialize(version: &str, id: u64) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "gateway-tests", "version": "0.0.0"}},
    })
}

/// The token opens an MCP session; the session is ended again, so probing many tokens of one person stays
/// within the per-person session cap.
pub async fn assert_mcp_accepts(app: &TestApp, access_token: &str) {
    let response = app.call_mcp(access_token).await;
    let session = header(&response, "mcp-session-id");
    let body = answer(response, 7).await;
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert_eq!(body["id"], 7, "{body}");
    if let Some(session) = session {
        let ended = app
            .client
            .delete(app.url("/mcp"))
            .bearer_auth(access_token)
            .header("mcp-session-id", session)
            .send()
            .await
            .expect("request reaches the gateway");
        assert!(ended.status().is_success(), "ending the probe's session: {}", ended.status());
    }
}

pub fn initialize_request(id: u64) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "gateway-tests", "version": "0.0.0"},
        },
    })
}
