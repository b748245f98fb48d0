//! The route table, authentication and dispatch.
//!
//! [`ROUTES`] is the single list of routes: the router only serves what is
//! in it, and a test checks that the OpenAPI document describes each one.

use std::time::Instant;

use rusqlite::Connection;

use super::error::ApiError;
use super::util::json_response;
use super::{audit_logs, download, exports, AppState};
use crate::users::{self, User};

/// (method, path template) of every route; `{id}` and `{name}` are path
/// parameters.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/api/v1/me"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/audit-logs"),
    ("GET", "/api/v1/audit-logs"),
    ("POST", "/api/v1/exports/estimate"),
    ("POST", "/api/v1/exports"),
    ("GET", "/api/v1/exports"),
    ("GET", "/api/v1/exports/{id}"),
    ("DELETE", "/api/v1/exports/{id}"),
    ("POST", "/api/v1/exports/{id}/restart"),
    ("GET", "/download/{id}"),
    ("GET", "/download/{id}/manifest"),
    ("GET", "/api/v1/manifests"),
    ("GET", "/api/v1/signing-key"),
    ("GET", "/api/v1/notifications"),
    ("POST", "/api/v1/notifications/{id}/read"),
    ("POST", "/api/v1/notifications/read-all"),
    ("GET", "/api/v1/schedules"),
    ("POST", "/api/v1/schedules/reload"),
    ("POST", "/api/v1/schedules/{name}/run"),
    ("POST", "/mcp"),
    ("GET", "/mcp"),
    ("DELETE", "/mcp"),
];

/// What a handler returns: a response of any body type, boxed.
pub type Reply = tiny_http::Response<Box<dyn std::io::Read + Send>>;

/// Boxes a response's body into a [`Reply`]; a known length is always sent as
/// `Content-Length`, never chunked.
pub fn boxed<R: std::io::Read + Send + 'static>(r: tiny_http::Response<R>) -> Reply {
    let status = r.status_code();
    let headers = r.headers().to_vec();
    let len = r.data_length();
    tiny_http::Response::new(
        status,
        headers,
        Box::new(r.into_reader()) as Box<dyn std::io::Read + Send>,
        len,
        None,
    )
    // A known length is always sent as Content-Length (tiny_http would
    // switch to chunked from 32 KiB): a body cut short is then visible.
    .with_chunked_threshold(usize::MAX)
}

/// A JSON response with `status`.
pub fn json(status: u16, v: &serde_json::Value) -> Reply {
    boxed(json_response(status, v))
}

/// A request, as handlers see it.
pub struct Ctx<'a> {
    /// What request threads share.
    pub state: &'a AppState,
    /// This request thread's database connection.
    pub conn: &'a mut Connection,
    /// The request; a handler that answers on the raw socket itself (the
    /// streamed sync export) takes it, and then nothing else responds.
    pub req: Option<tiny_http::Request>,
    /// The query string's `(name, value)` pairs, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The `{id}` or `{name}` segment of the path, if the route has one.
    pub id: Option<String>,
    /// Where the request came from, for the audit trail.
    pub client: crate::audit::trail::Client,
}

impl Ctx<'_> {
    fn request(&self) -> &tiny_http::Request {
        self.req
            .as_ref()
            .expect("the request is only taken to answer it")
    }

    /// A request header's value (trimmed), if sent.
    pub fn header(&self, name: &'static str) -> Option<String> {
        self.request()
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().trim().to_string())
    }

    /// The body, up to `limit` bytes (413 beyond).
    pub fn body(&mut self, limit: u64) -> Result<Vec<u8>, ApiError> {
        let req = self
            .req
            .as_mut()
            .expect("the request is only taken to answer it");
        super::util::read_body(req, limit)
    }

    /// The caller, from `Authorization: Bearer <token>`; 401 otherwise.
    pub fn user(&self) -> Result<User, ApiError> {
        let result = self.authenticate();
        if let Err(e) = &result {
            self.state
                .metrics
                .auth_failure(e.message.starts_with("an Authorization"));
        }
        result
    }

    fn authenticate(&self) -> Result<User, ApiError> {
        let header = self
            .request()
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .map(|h| h.value.as_str().trim().to_string());
        let Some(value) = header else {
            return Err(ApiError::new(
                401,
                "unauthorized",
                "an Authorization: Bearer <token> header is required",
            ));
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    401,
                    "unauthorized",
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
        users::authenticate(self.conn, token)?
            .ok_or_else(|| ApiError::new(401, "unauthorized", "unknown or revoked token"))
    }

    /// The caller, who must be allowed to export.
    pub fn exporter(&self) -> Result<User, ApiError> {
        let u = self.user()?;
        if !u.role.can_export() {
            return Err(ApiError::forbidden(format!(
                "role {} may view audit logs but not export them",
                u.role
            )));
        }
        Ok(u)
    }

    /// A single-valued query parameter; given twice it is a 400, not a
    /// silent choice between the two.
    pub fn param(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut found = self.query.iter().filter(|(k, _)| k == name);
        let first = found.next().map(|(_, v)| v.as_str());
        if found.next().is_some() {
            return Err(duplicate_parameter(name));
        }
        Ok(first)
    }
}

/// The `400 duplicate_parameter` error for a query parameter given twice.
pub fn duplicate_parameter(name: &str) -> ApiError {
    ApiError::bad_request(
        "duplicate_parameter",
        format!("query parameter {name:?} is given more than once"),
    )
}

/// Matches `path` against a template; returns the `{id}` segment if any.
fn matches(template: &str, path: &str) -> Option<Option<String>> {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    if t.len() != p.len() {
        return None;
    }
    let mut id = None;
    for (ts, ps) in t.iter().zip(&p) {
        if ts.starts_with('{') && ts.ends_with('}') {
            if ps.is_empty() {
                return None;
            }
            id = Some(ps.to_string());
        } else if ts != ps {
            return None;
        }
    }
    Some(id)
}

/// Longest User-Agent or X-Request-Id kept in an audit event (characters).
const MAX_CLIENT_HEADER: usize = 512;

/// Answers one request (never panics on input; every error is JSON).
pub fn handle(state: &AppState, conn: &mut Connection, req: tiny_http::Request) {
    let started = Instant::now();
    let method = req.method().as_str().to_ascii_uppercase();
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let path = path.to_string();
    let header_value = |name: &'static str| {
        req.headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| {
                h.value
                    .as_str()
                    .chars()
                    .take(MAX_CLIENT_HEADER)
                    .collect::<String>()
            })
            .filter(|v| !v.trim().is_empty())
    };
    let client = crate::audit::trail::Client {
        ip: req.remote_addr().map(|a| a.ip().to_string()),
        user_agent: header_value("User-Agent"),
        request_id: header_value("X-Request-Id"),
    };
    let mut route = None;
    let mut path_known = false;
    for (m, t) in ROUTES {
        if let Some(id) = matches(t, &path) {
            path_known = true;
            if *m == method {
                route = Some((*t, id));
                break;
            }
        }
    }
    let parsed_query = super::util::parse_query(query);
    // HEAD of a console page (what link checkers and uptime probes send):
    // the same answer without its body, which tiny_http leaves out.
    let console = ((method == "GET" || method == "HEAD") && route.is_none())
        .then(|| super::console::asset(&path))
        .flatten();
    let (mut reply, req) = match (route, parsed_query) {
        (None, _) if console.is_some() => (console.expect("checked"), Some(req)),
        (None, _) => {
            let err = if path_known {
                ApiError::new(
                    405,
                    "method_not_allowed",
                    format!("{method} is not allowed on {path}"),
                )
            } else {
                ApiError::new(404, "not_found", format!("no route {path}"))
            };
            (json(err.status, &err.body()), Some(req))
        }
        (Some(_), Err(e)) => (json(e.status, &e.body()), Some(req)),
        (Some((template, id)), Ok(query)) => {
            let mut ctx = Ctx {
                state,
                conn,
                req: Some(req),
                query,
                id,
                client,
            };
            let result = dispatch(&method, template, &mut ctx);
            let reply = result.unwrap_or_else(|e| json(e.status, &e.body()));
            (reply, ctx.req)
        }
    };
    for (name, value) in super::console::SECURITY_HEADERS {
        reply.add_header(super::util::header(name, value));
    }
    let status = reply.status_code().0;
    state.metrics.request(status);
    tracing::debug!(%method, %path, status, ms = started.elapsed().as_millis() as u64, "request");
    // `None`: the handler answered on the socket itself.
    if let Some(req) = req {
        state.senders.send(req, reply);
    }
}

fn dispatch(method: &str, template: &str, ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    match (method, template) {
        ("GET", "/healthz") => {
            ctx.conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(json(200, &serde_json::json!({"status": "ok"})))
        }
        ("GET", "/metrics") => super::metrics::render(ctx),
        ("GET", "/api/v1/me") => {
            let u = ctx.user()?;
            Ok(json(
                200,
                &serde_json::json!({"id": u.id, "name": u.name, "email": u.email, "role": u.role.as_str(),
                    "organization_id": u.organization_id, "email_verified": u.email_verified,
                    "can_export": u.role.can_export()}),
            ))
        }
        ("GET", "/api/v1/openapi.json") => Ok(json(200, &super::openapi::document())),
        ("POST", "/api/v1/audit-logs") => audit_logs::ingest(ctx),
        ("GET", "/api/v1/audit-logs") => audit_logs::view(ctx),
        ("POST", "/api/v1/exports/estimate") => exports::estimate(ctx),
        ("POST", "/api/v1/exports") => exports::create(ctx),
        ("GET", "/api/v1/exports") => exports::list(ctx),
        ("GET", "/api/v1/exports/{id}") => exports::show(ctx),
        ("DELETE", "/api/v1/exports/{id}") => exports::cancel(ctx),
        ("POST", "/api/v1/exports/{id}/restart") => exports::restart(ctx),
        ("GET", "/download/{id}") => download::download(ctx),
        ("GET", "/download/{id}/manifest") => download::manifest(ctx),
        ("GET", "/api/v1/manifests") => super::manifests::list(ctx),
        ("GET", "/api/v1/signing-key") => super::manifests::signing_key(ctx),
        ("GET", "/api/v1/notifications") => super::notifications::list(ctx),
        ("POST", "/api/v1/notifications/{id}/read") => super::notifications::read(ctx),
        ("POST", "/api/v1/notifications/read-all") => super::notifications::read_all(ctx),
        ("GET", "/api/v1/schedules") => super::schedules::list(ctx),
        ("POST", "/api/v1/schedules/reload") => super::schedules::reload(ctx),
        ("POST", "/api/v1/schedules/{name}/run") => super::schedules::run(ctx),
        ("POST", "/mcp") => super::mcp::post(ctx),
        ("GET" | "DELETE", "/mcp") => super::mcp::other_method(ctx),
        _ => Err(ApiError::not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_segments_exactly() {
        assert_eq!(
            matches("/api/v1/exports/{id}", "/api/v1/exports/ABC"),
            Some(Some("ABC".into()))
        );
        assert_eq!(matches("/api/v1/exports/{id}", "/api/v1/exports/"), None);
        assert_eq!(matches("/api/v1/exports/{id}", "/api/v1/exports/a/b"), None);
        assert_eq!(matches("/healthz", "/healthz"), Some(None));
        assert_eq!(matches("/healthz", "/healthz/"), None);
    }

    #[test]
    fn every_route_is_in_the_openapi_document() {
        let doc = super::super::openapi::document();
        for (method, path) in ROUTES {
            let op = &doc["paths"][*path][method.to_ascii_lowercase()];
            assert!(
                op.is_object(),
                "{method} {path} is missing from openapi.json"
            );
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
        }
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(
            documented,
            ROUTES.len(),
            "openapi.json documents a route the server does not have"
        );
    }
}
