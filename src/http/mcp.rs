//! `POST /mcp`: the MCP endpoint (streamable HTTP). Authenticates the
//! bearer token like every API route — a missing or bad token is the
//! API's 401, with `WWW-Authenticate: Bearer` — then hands the request to
//! `mcp::http`, which speaks the protocol.

use super::error::ApiError;
use super::routes::{boxed, Ctx, Reply};
use super::util::header;
use crate::mcp::Caller;

pub fn post(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = match ctx.user() {
        Ok(u) => u,
        Err(e) => {
            let mut reply = super::routes::json(e.status, &e.body());
            reply.add_header(header("WWW-Authenticate", "Bearer realm=\"audit-export\""));
            return Ok(reply);
        }
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
