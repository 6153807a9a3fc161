//! The bearer guard in front of `/mcp` (RFC 6750, RFC 9728 §5.1, MCP authorization). It runs on every
//! request (session-bound ones and the GET stream too) and, before rmcp sees anything:
//! - verifies the access token and that its grant is still live (401 otherwise);
//! - checks the scopes the JSON-RPC messages need (403 `insufficient_scope` otherwise);
//! - binds legacy sessions to the token's subject and client: another subject or client, or an ended or
//!   idle session, gets 404.
//!
//! The verified claims and the caller's username travel on in the request extensions, where tools read them.
use poem::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use poem::http::{Method, StatusCode};
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
    if req.method() == Method::POST {
        let body = req.take_body().into_bytes().await?;
        needed.extend(scopes_for_messages(&body));
        req.set_body(body);
    }
    if let Some(missing) = needed.iter().find(|s| !claims.has_scope(s)) {
        tracing::info!(client_id = %claims.client_id, missing, "MCP request refused for scope");
        return Ok(challenge().insufficient_scope(&claims, &needed));
    }

    let session_id = req.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
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
    req.extensions_mut().insert(claims);
    req.extensions_mut().insert(Caller { username });
    let resp = endpoint.call(req).await?.into_response();
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

/// The extra scopes a POST body needs: `mcp:write` for a `tools/call` of a tool that changes data, in a
/// single message or anywhere in a batch. A body that is not JSON needs nothing more; rmcp answers it.
fn scopes_for_messages(body: &[u8]) -> Vec<&'static str> {
    let called = match called_tools(body) {
        Some(names) => names,
        None => called_tools_of_any_json(body),
    };
    called.iter().flat_map(|name| scopes_for_tool(name).iter().copied()).collect()
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

/// The tools a well-formed message (or batch) calls, read without building a JSON tree; `None` for any
/// other shape, which [`called_tools_of_any_json`] then reads.
fn called_tools(body: &[u8]) -> Option<Vec<Cow<'_, str>>> {
    let messages = if body.trim_ascii_start().starts_with(b"[") {
        serde_json::from_slice::<Vec<Message>>(body).ok()?
    } else {
        vec![serde_json::from_slice::<Message>(body).ok()?]
    };
    Some(
        messages
            .into_iter()
            .filter(|m| m.method.as_deref() == Some("tools/call"))
            .filter_map(|m| m.params?.name)
            .collect(),
    )
}

/// [`called_tools`] for any JSON: a `method` or `name` that is not a string counts as no call.
fn called_tools_of_any_json(body: &[u8]) -> Vec<Cow<'static, str>> {
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return vec![];
    };
    let messages = match &parsed {
        Value::Array(batch) => batch.iter().collect(),
        single => vec![single],
    };
    messages
        .into_iter()
        .filter(|m| m.get("method").and_then(Value::as_str) == Some("tools/call"))
        .filter_map(|m| m.pointer("/params/name").and_then(Value::as_str))
        .map(|name| Cow::Owned(name.to_owned()))
        .collect()
}

fn unavailable(e: impl std::fmt::Display) -> poem::Error {
    tracing::error!(error = %e, "MCP guard could not reach the database");
    poem::Error::from_status(StatusCode::SERVICE_UNAVAILABLE)
}

/// 404 for a session that ended, went idle, or belongs to someone else: the client starts a new one.
fn session_not_found() -> Response {
    let body =
        serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32001, "message": "Session not found"}});
    Response::builder().status(StatusCode::NOT_FOUND).content_type("application/json").body(body.to_string())
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
    use super::scopes_for_messages;

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
}
