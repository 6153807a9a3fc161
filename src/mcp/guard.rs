//! The bearer guard in front of `/mcp` (RFC 6750, RFC 9728 §5.1, MCP authorization). It runs on every
//! request (session-bound ones and the GET stream too) and, before rmcp sees anything:
//! - verifies the access token and that its grant is still live (401 otherwise);
//! - checks the scopes the JSON-RPC messages need (403 `insufficient_scope` otherwise);
//! - binds legacy sessions to the token's subject and client: another subject or client, or an ended or
//!   idle session, gets 404; and caps how many one person holds.
//!
//! The verified claims and the caller's username travel on in the request extensions, where tools read them.
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use poem::http::header::CONTENT_TYPE;
use poem::http::{Method, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use serde::Deserialize;
use serde_json::Value;

use super::ToolScopes;
use super::error::{Challenge, SERVER_ERROR, as_jsonrpc_error, is_json, jsonrpc_error, session_not_found, unavailable};
use super::trust::Trust;
use crate::clock::UnixTime;
use crate::domain::scope::{MCP_READ, ScopeCatalog};
use crate::domain::tokens::{AccessTokens, bearer_token};
use crate::store::Store;

const SESSION_HEADER: &str = "mcp-session-id";
/// `last_seen` of a session is written at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(30);

/// The guard: what it checks tokens and sessions with.
pub struct Guard {
    pub tokens: AccessTokens,
    pub trust: Trust,
    pub store: Store,
    pub tool_scopes: ToolScopes,
    /// Every scope offered, named by the 401 challenge.
    pub scopes: ScopeCatalog,
    /// The RFC 9728 metadata URL every challenge points to.
    pub resource_metadata_url: String,
    /// A legacy session unused this long has ended.
    pub session_ttl: Duration,
    /// Most live legacy sessions one person may hold.
    pub max_sessions_per_user: u64,
}

pub async fn require_bearer<E: Endpoint>(endpoint: E, mut req: Request, guard: Arc<Guard>) -> poem::Result<Response> {
    // Built only for a refusal: the happy path needs no metadata URL.
    let challenge =
        || Challenge { metadata_url: guard.resource_metadata_url.clone(), offered: guard.scopes.all().to_string() };
    let Some(token) = bearer_token(&req) else {
        return Ok(challenge().unauthorized(None));
    };
    let claims = match guard.tokens.verify(token).await {
        Ok(claims) => claims,
        Err(e) => return Ok(challenge().unauthorized(Some(&e.to_string()))),
    };
    let caller = match guard.trust.live_grant_holder(&claims.grant_id).await {
        Ok(Some(holder)) => holder,
        Ok(None) => return Ok(challenge().unauthorized(Some("the token has been revoked"))),
        Err(e) => return Err(unavailable(e)),
    };
    let mut needed: Vec<String> = vec![MCP_READ.to_owned()];
    let mut body = None;
    let mut opens_session = false;
    if req.method() == Method::POST {
        let bytes = req.take_body().into_bytes().await?;
        let read = read_messages(&bytes);
        for name in &read.called {
            guard.tool_scopes.add_needs(name, &mut needed);
        }
        opens_session = read.initialize;
        req.set_body(bytes.clone());
        body = Some(bytes);
    }
    if let Some(missing) = needed.iter().find(|s| !claims.has_scope(s)) {
        let missing = missing.as_str();
        tracing::info!(client_id = %claims.client_id, missing, "MCP request refused for scope");
        return Ok(challenge().insufficient_scope(&claims, &needed));
    }

    let session_id = req.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    match &session_id {
        None if opens_session => {
            if let Some(refused) = guard.too_many_sessions(&claims.sub, &claims.client_id).await? {
                return Ok(refused);
            }
        }
        None => {}
        Some(id) => match guard.trust.live_mcp_session(id, guard.session_ttl).await {
            Ok(Some(s))
                if s.subject.as_deref() == Some(claims.sub.as_str())
                    && s.client_id.as_deref() == Some(claims.client_id.as_str()) =>
            {
                // Only a write when it is due: on SQLite even an UPDATE that changes nothing takes the write lock.
                if s.last_seen < UnixTime::now() - TOUCH_EVERY {
                    guard.trust.touch_mcp_session(id, TOUCH_EVERY).await.map_err(unavailable)?;
                }
            }
            Ok(_) => return Ok(session_not_found()),
            Err(e) => return Err(unavailable(e)),
        },
    }

    let ending = req.method() == Method::DELETE;
    let (subject, client_id) = (claims.sub.clone(), claims.client_id.clone());
    let json_body = is_json(req.headers().get(CONTENT_TYPE));
    req.extensions_mut().insert(claims);
    req.extensions_mut().insert(caller);
    let mut resp = endpoint.call(req).await?.into_response();
    if resp.status().is_client_error() && !is_json(resp.headers().get(CONTENT_TYPE)) {
        resp = as_jsonrpc_error(resp, json_body, body.as_deref()).await;
    }
    match session_id {
        None => {
            let created = resp.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok());
            if let Some(created) = created {
                guard.store.bind_mcp_session(created, &subject, &client_id).await.map_err(unavailable)?;
            }
        }
        Some(id) if ending && resp.status().is_success() => {
            guard.store.delete_mcp_session(&id).await.map_err(unavailable)?
        }
        Some(_) => {}
    }
    Ok(resp)
}

impl Guard {
    /// One person may hold `MCP_MAX_SESSIONS_PER_USER` live sessions; ended ones (DELETE) and idle ones do
    /// not count. `Some` with the refusal when this `initialize` would be one too many.
    async fn too_many_sessions(&self, subject: &str, client_id: &str) -> poem::Result<Option<Response>> {
        let live = self.store.count_live_mcp_sessions(subject, self.session_ttl).await.map_err(unavailable)?;
        if live < self.max_sessions_per_user {
            return Ok(None);
        }
        tracing::info!(%client_id, live, "MCP session refused: too many open sessions");
        let message = format!(
            "you already have {} open MCP sessions; end one (DELETE /mcp with its Mcp-Session-Id) or wait until one \
             has been idle for {} seconds",
            self.max_sessions_per_user,
            self.session_ttl.as_secs()
        );
        Ok(Some(jsonrpc_error(StatusCode::TOO_MANY_REQUESTS, SERVER_ERROR, &message)))
    }
}

/// Who the verified token speaks for (a person, or a client acting for itself), read by the guard with the
/// grant check; tools find it in the request extensions next to the token's claims.
pub use crate::store::GrantHolder as Caller;

/// What the guard reads of a POST body: the tools it calls and whether it opens a session.
#[derive(Debug, Default)]
struct Read<'a> {
    called: Vec<Cow<'a, str>>,
    initialize: bool,
}

/// Reads a POST body once, for the scope decision (`mcp:write` for a `tools/call` of a tool that changes
/// data, in a single message or anywhere in a batch) and the session cap. A body that is not JSON needs
/// nothing more; rmcp answers it.
fn read_messages(body: &[u8]) -> Read<'_> {
    match read_typed(body) {
        Some(read) => read,
        None => read_any_json(body),
    }
}

/// What the scope decision reads of a JSON-RPC message; everything else is skipped without being built.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<CallParams<'a>>,
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

/// What a well-formed message (or batch) calls, read without building a JSON tree; `None` for any other
/// shape, which [`read_any_json`] then reads.
fn read_typed(body: &[u8]) -> Option<Read<'_>> {
    let messages = if body.trim_ascii_start().starts_with(b"[") {
        serde_json::from_slice::<Vec<Message>>(body).ok()?
    } else {
        vec![serde_json::from_slice::<Message>(body).ok()?]
    };
    let mut read = Read::default();
    for message in messages {
        match message.method.as_deref() {
            Some("tools/call") => read.called.extend(message.params.and_then(|p| p.name)),
            Some("initialize") => read.initialize = true,
            _ => {}
        }
    }
    Some(read)
}

/// [`read_typed`] for any JSON: a `method` or `name` that is not a string counts as no call.
fn read_any_json(body: &[u8]) -> Read<'static> {
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return Read::default();
    };
    let messages = match &parsed {
        Value::Array(batch) => batch.iter().collect(),
        single => vec![single],
    };
    let mut read = Read::default();
    for message in messages {
        match message.get("method").and_then(Value::as_str) {
            Some("tools/call") => {
                let name = message.pointer("/params/name").and_then(Value::as_str);
                read.called.extend(name.map(|n| Cow::Owned(n.to_owned())));
            }
            Some("initialize") => read.initialize = true,
            _ => {}
        }
    }
    read
}

#[cfg(test)]
mod tests {
    use super::read_messages;
    use crate::mcp::ToolScopes;
    use crate::mcp::server::McpServer;

    fn scopes_for_messages(body: &[u8]) -> Vec<String> {
        let scopes = ToolScopes::of(&[&McpServer::tools()]);
        let mut needed = vec![];
        for name in read_messages(body).called {
            scopes.add_needs(&name, &mut needed);
        }
        needed
    }

    #[test]
    fn write_tools_need_mcp_write_even_inside_a_batch() {
        let single =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"notes_create","arguments":{}}}"#;
        assert!(scopes_for_messages(single).iter().any(|s| s == "mcp:write"));
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"notes_delete"}}]"#;
        assert!(scopes_for_messages(batch).iter().any(|s| s == "mcp:write"));
        let read = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"notes_list"}}"#;
        assert!(!scopes_for_messages(read).iter().any(|s| s == "mcp:write"));
        assert!(scopes_for_messages(b"not json").is_empty());
    }

    #[test]
    fn odd_shapes_are_read_like_any_json() {
        // A batch holding a message whose method is not a string still finds the write call beside it.
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":5},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"notes_create"}}]"#;
        assert!(scopes_for_messages(batch).iter().any(|s| s == "mcp:write"));
        let escaped = br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"notes\u005fcreate"}}"#;
        assert!(scopes_for_messages(escaped).iter().any(|s| s == "mcp:write"));
        let duplicate =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","name":"notes_delete"}}"#;
        assert!(scopes_for_messages(duplicate).iter().any(|s| s == "mcp:write"));
    }

    #[test]
    fn an_initialize_is_seen_in_any_shape() {
        let single = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
        assert!(read_messages(single).initialize);
        let odd = br#"[{"jsonrpc":"2.0","id":1,"method":7},{"jsonrpc":"2.0","id":2,"method":"initialize"}]"#;
        assert!(read_messages(odd).initialize);
        assert!(!read_messages(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).initialize);
    }
}
