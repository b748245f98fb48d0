//! `POST /mcp`: the MCP endpoint (streamable HTTP). Authenticates the
//! bearer token like every API route — a missing or bad token is the
//! API's 401, with `WWW-Authenticate: Bearer` — then hands the request to
//! `mcp::http`, which speaks the protocol.

use super::error::ApiError;
use super::routes::{boxed, Ctx, Reply};
use super::util::header;
use crate::mcp::Caller;

/// `POST /mcp`: authenticates the bearer token (a `401` with
/// `WWW-Authenticate: Bearer` otherwise), then hands the request to the MCP endpoint.
pub fn post(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = match ctx.user() {
        Ok(u) => u,
        Err(e) => return Ok(unauthorized(e)),
    };
    let body = ctx.body(ctx.state.cfg().http.max_body_bytes)?;
    let headers: Vec<(String, String)> = ctx
        .req
        .as_ref()
        .expect("the request is only taken to answer it")
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_string(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let caller = Caller {
        user,
        client: ctx.client.clone(),
    };
    let state = ctx.state;
    let answer = state.mcp.answer(&state.rt, "POST", &headers, body, caller);
    let mut reply = tiny_http::Response::from_data(answer.body).with_status_code(answer.status);
    for (k, v) in &answer.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            reply.add_header(h);
        }
    }
    Ok(boxed(reply))
}

/// A 401 with the challenge MCP clients look for.
fn unauthorized(e: ApiError) -> Reply {
    let mut reply = super::routes::json(e.status, &e.body());
    reply.add_header(header("WWW-Authenticate", "Bearer realm=\"audit-export\""));
    reply
}

/// `GET` and `DELETE /mcp`: no server-initiated stream and no sessions to
/// end, so 405 (as the streamable HTTP transport allows) — after the token
/// is checked, so a caller without one learns only that it needs one.
pub fn other_method(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    if let Err(e) = ctx.user() {
        return Ok(unauthorized(e));
    }
    let err = ApiError::new(
        405,
        "method_not_allowed",
        "only POST is served on /mcp (no server-initiated stream, no sessions)".to_string(),
    );
    let mut reply = super::routes::json(err.status, &err.body());
    reply.add_header(header("Allow", "POST"));
    Ok(reply)
}
