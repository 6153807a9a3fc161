//! The bearer guard in front of `/mcp` (RFC 6750, RFC 9728 §5.1, MCP authorization). It runs on every
//! request (session-bound ones and the GET stream too) and, before rmcp sees anything:
//! - verifies the access token and that its grant is still live (401 otherwise);
//! - checks the scopes the JSON-RPC messages need (403 `insufficient_scope` otherwise);
//! - binds legacy sessions to the token's subject and client: another subject or client, or an ended or
//!   idle session, gets 404.
//!
//! The verified claims and the caller's username travel on in the request extensions, where tools read them.
use poem::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use poem::http::{HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

use super::tools::scopes_for_tool;
use crate::oauth::jwt::AccessClaims;
use crate::oauth::scope::{MCP_READ, Scope};
use crate::state::State;

const SESSION_HEADER: &str = "mcp-session-id";
/// `last_seen` of a session is written at most this often.
const TOUCH_EVERY_SECS: i64 = 30;

pub async fn require_bearer<E: Endpoint>(endpoint: E, mut req: Request, state: State) -> poem::Result<Response> {
    // Built only for a refusal: the happy path needs no metadata URL.
    let challenge = || Challenge { metadata_url: state.config.resource_metadata_url() };
    let Some(token) = bearer_token(&req) else {
        return Ok(challenge().unauthorized(None));
    };
    let claims = match state.tokens.verify(token).await {
        Ok(claims) => claims,
        Err(e) => return Ok(challenge().unauthorized(Some(&e.to_string()))),
    };
    let username = match state.store.live_grant_username(&claims.grant_id).await {
        Ok(Some(username)) => username,
        Ok(None) => return Ok(challenge().unauthorized(Some("the token has been revoked"))),
        Err(e) => return Err(unavailable(e)),
    };
    let mut needed: Vec<&'static str> = vec![MCP_READ];
    let mut body = None;
    let mut opens_session = false;
    if req.method() == Method::POST {
        let bytes = req.take_body().into_bytes().await?;
        let read = read_messages(&bytes);
        needed.extend(read.called.iter().flat_map(|name| scopes_for_tool(name).iter().copied()));
        opens_session = read.initialize;
        req.set_body(bytes.clone());
        body = Some(bytes);
    }
    if let Some(missing) = needed.iter().find(|s| !claims.has_scope(s)) {
        tracing::info!(client_id = %claims.client_id, missing, "MCP request refused for scope");
        return Ok(challenge().insufficient_scope(&claims, &needed));
    }

    let session_id = req.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if session_id.is_none() && opens_session {
        // One person may hold `MCP_MAX_SESSIONS_PER_USER` live sessions; ended ones (DELETE) and idle ones
        // do not count.
        let ttl = state.config.mcp_session_ttl.as_secs() as i64;
        let limit = state.config.mcp_max_sessions_per_user;
        let live = state.store.count_live_mcp_sessions(&claims.sub, ttl).await.map_err(unavailable)?;
        if live >= limit {
            tracing::info!(client_id = %claims.client_id, live, "MCP session refused: too many open sessions");
            let message = format!(
                "you already have {limit} open MCP sessions; end one (DELETE /mcp with its Mcp-Session-Id) or wait \
                 until one has been idle for {ttl} seconds"
            );
            return Ok(jsonrpc_error(StatusCode::TOO_MANY_REQUESTS, SERVER_ERROR, &message));
        }
    }
    if let Some(id) = &session_id {
        let ttl = state.config.mcp_session_ttl.as_secs() as i64;
        match state.store.live_mcp_session(id, ttl).await {
            Ok(Some(s))
                if s.subject.as_deref() == Some(claims.sub.as_str())
                    && s.client_id.as_deref() == Some(claims.client_id.as_str()) =>
            {
                // Only a write when it is due: on SQLite even an UPDATE that changes nothing takes the write lock.
                if s.last_seen < crate::crypto::now() - TOUCH_EVERY_SECS {
                    state.store.touch_mcp_session(id, TOUCH_EVERY_SECS).await.map_err(unavailable)?;
                }
            }
            Ok(_) => return Ok(session_not_found()),
            Err(e) => return Err(unavailable(e)),
        }
    }

    let ending = req.method() == Method::DELETE;
    let (subject, client_id) = (claims.sub.clone(), claims.client_id.clone());
    let json_body = is_json(req.headers().get(CONTENT_TYPE));
    req.extensions_mut().insert(claims);
    req.extensions_mut().insert(Caller { username });
    let mut resp = endpoint.call(req).await?.into_response();
    if resp.status().is_client_error() && !is_json(resp.headers().get(CONTENT_TYPE)) {
        resp = as_jsonrpc_error(resp, json_body, body.as_deref()).await;
    }
    match session_id {
        None => {
            let created = resp.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok());
            if let Some(created) = created {
                state.store.bind_mcp_session(created, &subject, &client_id).await.map_err(unavailable)?;
            }
        }
        Some(id) if ending && resp.status().is_success() => {
            state.store.delete_mcp_session(&id).await.map_err(unavailable)?
        }
        Some(_) => {}
    }
    Ok(resp)
}

/// Who the verified token speaks for, read by the guard with the grant check; tools find it in the request
/// extensions next to the token's claims.
#[derive(Clone, Debug)]
pub struct Caller {
    pub username: String,
}

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

#[cfg(test)]
fn scopes_for_messages(body: &[u8]) -> Vec<&'static str> {
    read_messages(body).called.iter().flat_map(|name| scopes_for_tool(name).iter().copied()).collect()
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

/// JSON-RPC 2.0 §5.1 error codes, and the MCP transport's code for an unknown session.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const SERVER_ERROR: i64 = -32000;
const SESSION_NOT_FOUND: i64 = -32001;

/// rmcp answers a request it cannot take (malformed JSON, a missing or unknown session, a wrong content type
/// or `Accept`, a bad protocol version header) with plain text, which a client cannot parse. The same status
/// with a JSON-RPC error body instead (`id` null: the request's id could not be trusted or read), the text
/// kept as the message. Only this error path looks at the body again, to tell a parse error (-32700) from
/// JSON that is not a JSON-RPC message (-32600); rmcp answers both with 415, which is HTTP 400 here.
async fn as_jsonrpc_error(response: Response, request_was_json: bool, body: Option<&[u8]>) -> Response {
    let status = response.status();
    let text = response.into_body().into_string().await.unwrap_or_default();
    let (status, code, message) = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE if request_was_json => {
            match body.map(serde_json::from_slice::<serde::de::IgnoredAny>) {
                Some(Ok(_)) => {
                    (StatusCode::BAD_REQUEST, INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message")
                }
                _ => (StatusCode::BAD_REQUEST, PARSE_ERROR, "Parse error: the body is not valid JSON"),
            }
        }
        StatusCode::NOT_FOUND => (status, SESSION_NOT_FOUND, "Session not found"),
        _ => (status, INVALID_REQUEST, text.trim()),
    };
    jsonrpc_error(status, code, message)
}

fn jsonrpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    Response::builder().status(status).content_type("application/json").body(body.to_string())
}

/// Whether a `Content-Type` is JSON (`application/json`, parameters allowed).
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn unavailable(e: impl std::fmt::Display) -> poem::Error {
    tracing::error!(error = %e, "MCP guard could not reach the database");
    poem::Error::from_status(StatusCode::SERVICE_UNAVAILABLE)
}

/// 404 for a session that ended, went idle, or belongs to someone else: the client starts a new one.
fn session_not_found() -> Response {
    jsonrpc_error(StatusCode::NOT_FOUND, SESSION_NOT_FOUND, "Session not found")
}

/// `Authorization: Bearer <token>` (scheme case-insensitive). Tokens in the query string are not accepted.
fn bearer_token(req: &Request) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

struct Challenge {
    metadata_url: String,
}

impl Challenge {
    /// 401: no token, or one that does not verify (RFC 6750 §3.1 `invalid_token`).
    fn unauthorized(&self, problem: Option<&str>) -> Response {
        let all = Scope::all().to_string();
        let mut value = format!(r#"Bearer resource_metadata="{}", scope="{all}""#, self.metadata_url);
        if let Some(problem) = problem {
            value.push_str(&format!(r#", error="invalid_token", error_description="{}""#, quote_safe(problem)));
        }
        let body = serde_json::json!({
            "error": if problem.is_some() { "invalid_token" } else { "unauthorized" },
            "error_description": problem.unwrap_or("a bearer token is required"),
        });
        challenge_response(StatusCode::UNAUTHORIZED, value, body)
    }

    /// 403: the token is valid but lacks a scope (RFC 6750 §3.1 `insufficient_scope`). `scope` lists the
    /// token's scopes plus every scope the request needs, so a client that re-authorizes with it
    /// (step-up authorization) keeps what it had.
    fn insufficient_scope(&self, claims: &AccessClaims, needed: &[&str]) -> Response {
        let mut scopes: Vec<&str> = claims.scope.split(' ').filter(|s| !s.is_empty()).collect();
        scopes.extend_from_slice(needed);
        scopes.sort_unstable();
        scopes.dedup();
        let missing: Vec<&str> = needed.iter().copied().filter(|s| !claims.has_scope(s)).collect();
        let description = format!("this request needs {}", missing.join(" "));
        let value = format!(
            r#"Bearer error="insufficient_scope", scope="{}", resource_metadata="{}", error_description="{description}""#,
            scopes.join(" "),
            self.metadata_url
        );
        let body = serde_json::json!({"error": "insufficient_scope", "error_description": description});
        challenge_response(StatusCode::FORBIDDEN, value, body)
    }
}

fn challenge_response(status: StatusCode, www_authenticate: String, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header(WWW_AUTHENTICATE, www_authenticate)
        .content_type("application/json")
        .body(body.to_string())
}

/// Keeps a description inside its quoted-string (RFC 7235 §2.2): no quotes, backslashes or control characters.
fn quote_safe(text: &str) -> String {
    text.chars().filter(|c| !c.is_control() && *c != '"' && *c != '\\').collect()
}

#[cfg(test)]
mod tests {
    use super::{read_messages, scopes_for_messages};

    #[test]
    fn write_tools_need_mcp_write_even_inside_a_batch() {
        let single =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"notes_create","arguments":{}}}"#;
        assert!(scopes_for_messages(single).contains(&"mcp:write"));
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"notes_delete"}}]"#;
        assert!(scopes_for_messages(batch).contains(&"mcp:write"));
        let read = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"notes_list"}}"#;
        assert!(!scopes_for_messages(read).contains(&"mcp:write"));
        assert!(scopes_for_messages(b"not json").is_empty());
    }

    #[test]
    fn odd_shapes_are_read_like_any_json() {
        // A batch holding a message whose method is not a string still finds the write call beside it.
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":5},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"notes_create"}}]"#;
        assert!(scopes_for_messages(batch).contains(&"mcp:write"));
        let escaped = br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"notes\u005fcreate"}}"#;
        assert!(scopes_for_messages(escaped).contains(&"mcp:write"));
        let duplicate =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","name":"notes_delete"}}"#;
        assert!(scopes_for_messages(duplicate).contains(&"mcp:write"));
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
