//! The API's wire format, shared by the HTTP server and the MCP tools: the
//! request bodies and how they become service requests ([`body`]), and the
//! one error shape with its status and stable code ([`error`]), mapped once
//! from every layer's errors. Speaks neither HTTP nor MCP itself.

pub mod body;
pub mod error;
