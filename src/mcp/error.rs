//! The MCP face's error vocabulary: the guard's challenges (401, 403), the JSON-RPC errors of the transport,
//! and the one way this face logs an internal failure and hides it from the caller.
use poem::Response;
use poem::http::header::WWW_AUTHENTICATE;
use poem::http::{HeaderValue, StatusCode};
use rmcp::ErrorData as McpError;

use crate::domain::tokens::AccessClaims;

/// Logs a failure the caller must not see the cause of (storage, the session store) and says what failed
/// in general terms; every helper below goes through it.
pub fn log_hidden(what: &str, cause: &dyn std::fmt::Display) {
    tracing::error!(error = %cause, "{what}");
}

/// A JSON-RPC internal error for a request that failed on our side.
pub fn internal(cause: impl std::fmt::Display) -> McpError {
    log_hidden("MCP request failed", &cause);
    McpError::internal_error("the server could not complete the request", None)
}

/// 503 when the guard cannot reach the database.
pub fn unavailable(cause: impl std::fmt::Display) -> poem::Error {
    log_hidden("MCP guard could not reach the database", &cause);
    poem::Error::from_status(StatusCode::SERVICE_UNAVAILABLE)
}

/// JSON-RPC 2.0 §5.1 error codes, and the MCP transport's code for an unknown session.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const SERVER_ERROR: i64 = -32000;
pub const SESSION_NOT_FOUND: i64 = -32001;

/// rmcp answers a request it cannot take (malformed JSON, a missing or unknown session, a wrong content type
/// or `Accept`, a bad protocol version header) with plain text, which a client cannot parse. The same status
/// with a JSON-RPC error body instead (`id` null: the request's id could not be trusted or read), the text
/// kept as the message. Only this error path looks at the body again, to tell a parse error (-32700) from
/// JSON that is not a JSON-RPC message (-32600); rmcp answers both with 415, which is HTTP 400 here.
pub async fn as_jsonrpc_error(response: Response, request_was_json: bool, body: Option<&[u8]>) -> Response {
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

pub fn jsonrpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    Response::builder().status(status).content_type("application/json").body(body.to_string())
}

/// Whether a `Content-Type` is JSON (`application/json`, parameters allowed).
pub fn is_json(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// 404 for a session that ended, went idle, or belongs to someone else: the client starts a new one.
pub fn session_not_found() -> Response {
    jsonrpc_error(StatusCode::NOT_FOUND, SESSION_NOT_FOUND, "Session not found")
}

/// The challenges of the bearer guard (RFC 6750 §3, RFC 9728 §5.1): each points at the resource metadata.
pub struct Challenge {
    pub metadata_url: String,
    /// Every scope the server offers (space-separated).
    pub offered: String,
}

impl Challenge {
    /// 401: no token, or one that does not verify (RFC 6750 §3.1 `invalid_token`).
    pub fn unauthorized(&self, problem: Option<&str>) -> Response {
        let mut value = format!(r#"Bearer resource_metadata="{}", scope="{}""#, self.metadata_url, self.offered);
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
    pub fn insufficient_scope(&self, claims: &AccessClaims, needed: &[String]) -> Response {
        let mut scopes: Vec<&str> = claims.scopes();
        scopes.extend(needed.iter().map(String::as_str));
        scopes.sort_unstable();
        scopes.dedup();
        let missing: Vec<&str> = needed.iter().map(String::as_str).filter(|s| !claims.has_scope(s)).collect();
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
