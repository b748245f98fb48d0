//! MCP: audit-log search and exports as tools for AI agents, on the
//! official SDK (`rmcp`). Two transports share one handler: stdio
//! (`audit-export mcp`, the caller fixed by `AUDIT_EXPORT_TOKEN` at start)
//! and streamable HTTP at `/mcp` on `serve` (the caller is each request's
//! bearer token, authenticated by the HTTP layer before rmcp sees it).
//!
//! The handler only translates: arguments are parsed by the HTTP API's
//! body types and run by the same service calls (`tools`), so the rules,
//! the audit events and the error codes are the API's. A refusal is a
//! tool error (`isError`, `structuredContent: {"error": {code, message,
//! field?}}`), never a protocol error; only an unknown tool or resource is
//! one.

pub mod http;
pub mod resources;
pub mod schema;
pub mod tools;

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;
use tracing::Instrument;

use crate::service::Service;
pub use tools::Caller;

const INSTRUCTIONS: &str = "Audit logs of your organization. search_audit_logs reads events \
(filters: from/to dates, actors, actions like user.*, target, streams, free text q). \
estimate_export counts an export; create_export makes a CSV/JSON/JSONL file and returns a \
signed download link (small) or a background job to follow with get_export (large). \
Errors come back as {\"error\": {code, message, field}}: fix the named field and retry. \
The resource audit-export://filters explains the filter syntax.";

/// The MCP server of one caller (stdio) or of each request's caller (HTTP).
#[derive(Clone)]
pub struct McpServer {
    svc: Arc<Service>,
    /// stdio: the token's user, for every call. HTTP: `None`, the caller
    /// travels with each request.
    fixed: Option<Caller>,
}

impl McpServer {
    /// A server for one caller (stdio).
    pub fn for_caller(svc: Arc<Service>, caller: Caller) -> McpServer {
        McpServer {
            svc,
            fixed: Some(caller),
        }
    }

    /// A server whose caller comes with each HTTP request.
    pub fn per_request(svc: Arc<Service>) -> McpServer {
        McpServer { svc, fixed: None }
    }

    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
        if let Some(c) = &self.fixed {
            return Ok(c.clone());
        }
        ctx.extensions
            .get::<::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
            .cloned()
            // The HTTP layer authenticates before rmcp runs; reaching this
            // is a bug, and it must fail closed.
            .ok_or_else(|| ErrorData::internal_error("no authenticated caller", None))
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new(
            "audit-export",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(schema::tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self.caller(&context)?;
        let args = Value::Object(request.arguments.unwrap_or_default());
        let name = request.name.to_string();
        let span = tracing::info_span!("mcp_tool", tool = %name, org = %caller.user.organization_id, user = caller.user.id);
        let result = tools::call(self.svc.clone(), caller, &name, args)
            .instrument(span)
            .await;
        match result {
            Ok(v) => Ok(CallToolResult::structured(v).into()),
            Err(tools::CallError::Api(e)) => {
                tracing::info!(tool = %name, code = e.code, "tool refused");
                Ok(CallToolResult::structured_error(e.body()).into())
            }
            Err(tools::CallError::UnknownTool(t)) => Err(ErrorData::invalid_params(
                format!("no tool named {t:?}"),
                None,
            )),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(resources::list()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        match resources::read(&request.uri) {
            Some((text, mime)) => {
                let mut c = ResourceContents::text(text, request.uri.clone());
                if let ResourceContents::TextResourceContents { mime_type, .. } = &mut c {
                    *mime_type = Some(mime.into());
                }
                Ok(ReadResourceResult::new(vec![c]).into())
            }
            None => Err(ErrorData::resource_not_found(
                format!("no resource {:?}", request.uri),
                None,
            )),
        }
    }
}
