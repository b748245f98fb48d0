//! `/mcp` on `serve`: rmcp's streamable-HTTP service (stateless, JSON
//! answers) behind the API's own request threads. The HTTP layer has
//! already authenticated the bearer token; the caller rides in the
//! request's extensions to the tool calls. This module only converts
//! between tiny_http and `http` types; it never decides anything.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::{Caller, McpServer};
use crate::service::Service;

/// The `/mcp` endpoint.
#[derive(Clone)]
pub struct McpEndpoint {
    service: StreamableHttpService<McpServer, NeverSessionManager>,
}

/// An answer to send back.
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// Response headers, `(name, value)`, in order.
    pub headers: Vec<(String, String)>,
    /// The whole response body.
    pub body: Vec<u8>,
}

impl McpEndpoint {
    /// A stateless endpoint over `svc`: no sessions, JSON answers, bodies up
    /// to `max_body_bytes`, cross-origin calls refused; stops on `shutdown`.
    pub fn new(
        svc: Arc<Service>,
        max_body_bytes: usize,
        shutdown: CancellationToken,
    ) -> McpEndpoint {
        let config = StreamableHttpServerConfig::default()
            // No sessions: any request thread (or instance) can answer any
            // call, and nothing lives in memory between calls.
            .with_legacy_session_mode(false)
            .with_json_response(true)
            // Every request carries its bearer token, which a page in a
            // browser cannot forge: the Host check against DNS rebinding
            // is not needed, and would refuse deployments behind a proxy.
            .disable_allowed_hosts()
            // No browser page may call it across origins.
            .enforce_origin_validation()
            .with_max_request_body_bytes(max_body_bytes)
            .with_cancellation_token(shutdown);
        let service = StreamableHttpService::new(
            move || Ok(McpServer::per_request(svc.clone())),
            Arc::new(NeverSessionManager::default()),
            config,
        );
        McpEndpoint { service }
    }

    /// Answers one request (blocking the calling request thread on `rt`).
    pub fn answer(
        &self,
        rt: &tokio::runtime::Handle,
        method: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        caller: Caller,
    ) -> Answer {
        let mut req = http::Request::builder().method(method).uri("/mcp");
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut req = match req.body(Full::new(Bytes::from(body))) {
            Ok(r) => r,
            Err(e) => return Answer {
                status: 400,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body:
                    serde_json::json!({"error": {"code": "bad_request", "message": e.to_string()}})
                        .to_string()
                        .into_bytes(),
            },
        };
        req.extensions_mut().insert(caller);
        let service = self.service.clone();
        rt.block_on(async move {
            let resp = service.handle(req).await;
            let (parts, body) = resp.into_parts();
            // Stateless JSON answers are complete bodies; an event stream
            // (the rare fallback) ends with its final message.
            let body = match body.collect().await {
                Ok(b) => b.to_bytes().to_vec(),
                Err(never) => match never {},
            };
            Answer {
                status: parts.status.as_u16(),
                headers: parts
                    .headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
                    .collect(),
                body,
            }
        })
    }
}
