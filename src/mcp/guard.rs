//! The bearer guard in front of `/mcp` (RFC 6750, RFC 9728 §5.1, MCP authorization): every request needs
//! a valid access token for this resource; the verified claims travel on in the request extensions.
use poem::http::StatusCode;
use poem::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::oauth::jwt::AccessClaims;
use crate::oauth::scope::{MCP_READ, Scope};
use crate::state::State;

/// Runs the guard, then the endpoint with the verified [`crate::oauth::jwt::AccessClaims`] in the
/// request extensions.
pub async fn require_bearer<E: Endpoint>(endpoint: E, mut req: Request, state: State) -> poem::Result<Response> {
    let challenge = Challenge { metadata_url: state.config.resource_metadata_url() };
    let Some(token) = bearer_token(&req) else {
        return Ok(challenge.unauthorized(None));
    };
    let claims = match state.tokens.verify(token).await {
        Ok(claims) => claims,
        Err(e) => return Ok(challenge.unauthorized(Some(&e.to_string()))),
    };
    match state.store.grant_is_active(&claims.grant_id).await {
        Ok(true) => {}
        Ok(false) => return Ok(challenge.unauthorized(Some("the token has been revoked"))),
        Err(e) => {
            tracing::error!(error = %e, "checking the grant failed");
            return Err(poem::Error::from_status(StatusCode::SERVICE_UNAVAILABLE));
        }
    }
    if !claims.has_scope(MCP_READ) {
        return Ok(challenge.insufficient_scope(&claims, MCP_READ));
    }
    req.extensions_mut().insert(claims);
    Ok(endpoint.call(req).await?.into_response())
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
        let body = serde_json::json!({"error": if problem.is_some() { "invalid_token" } else { "unauthorized" }, "error_description": problem.unwrap_or("a bearer token is required")});
        challenge_response(StatusCode::UNAUTHORIZED, value, body)
    }

    /// 403: the token is valid but lacks a scope (RFC 6750 §3.1 `insufficient_scope`). `scope` lists the
    /// token's scopes plus the missing one, so a client that re-authorizes with it (step-up authorization)
    /// keeps what it had.
    fn insufficient_scope(&self, claims: &AccessClaims, needed: &str) -> Response {
        let mut scopes: Vec<&str> = claims.scope.split(' ').filter(|s| !s.is_empty()).collect();
        scopes.push(needed);
        scopes.sort_unstable();
        scopes.dedup();
        let value = format!(
            r#"Bearer error="insufficient_scope", scope="{}", resource_metadata="{}", error_description="this request needs {needed}""#,
            scopes.join(" "),
            self.metadata_url
        );
        let body = serde_json::json!({"error": "insufficient_scope", "error_description": format!("this request needs {needed}")});
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
