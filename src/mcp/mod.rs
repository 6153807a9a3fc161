//! The MCP endpoint: the bearer guard, and (until the MCP server lands) a placeholder behind it.
pub mod guard;

use poem::http::StatusCode;
use poem::{Body, Request, Response, handler};
use serde_json::{Value, json};

/// Answers every authenticated JSON-RPC request with "not implemented" (-32601), keeping its `id`.
#[handler]
pub async fn placeholder(req: &Request, body: Body) -> Response {
    if req.method() != poem::http::Method::POST {
        return Response::builder().status(StatusCode::METHOD_NOT_ALLOWED).header("Allow", "POST").finish();
    }
    let reply = match body.into_json::<Value>().await {
        Ok(message) => {
            let id = message.get("id").cloned().unwrap_or(Value::Null);
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "not implemented: the MCP server is not built yet"}})
        }
        Err(_) => {
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error: the body is not JSON"}})
        }
    };
    Response::builder().content_type("application/json").body(reply.to_string())
}
