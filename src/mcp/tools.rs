//! Running a tool for a caller: the arguments parsed by the HTTP API's own
//! body types, then the same service calls as the HTTP routes — same
//! scope, limits, recipient rule, audit events and error codes. Errors are
//! the HTTP API's [`ApiError`]s, handed back as tool errors so an agent can
//! read `code`, `message` and `field` and try again. Never speaks MCP
//! itself (that is `mcp::server`) and never holds a connection across
//! calls.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{json, Value};

use super::schema::MAX_SEARCH_LIMIT;
use crate::api::body::{json_value, mode_for, EstimateRequest, ExportBody, Mode};
use crate::api::error::ApiError;
use crate::audit::trail::Client;
use crate::filters::FilterInput;
use crate::jobs::store::CreateOutcome;
use crate::service::Service;
use crate::users::{Requester, User};

/// How long `create_export` waits for a small export's file before
/// answering with the job instead.
const SYNC_WAIT: Duration = Duration::from_secs(60);

/// Who is calling, and from where (for the audit trail).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user whose token authenticated the call; tools act with their
    /// organization and role.
    pub user: User,
    /// Where the call came from, recorded in audit events.
    pub client: Client,
}

/// Why a call did not run.
#[derive(Debug)]
pub enum CallError {
    /// No tool of that name (a protocol error, not a tool error).
    UnknownTool(String),
    /// The tool ran and refused: a tool error for the agent.
    Api(ApiError),
}

impl From<ApiError> for CallError {
    fn from(e: ApiError) -> Self {
        CallError::Api(e)
    }
}

impl From<crate::service::ServiceError> for CallError {
    fn from(e: crate::service::ServiceError) -> Self {
        CallError::Api(e.into())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    #[serde(default)]
    filters: FilterInput,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdArgs {
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    limit: Option<u32>,
}

/// Runs tool `name` with `args` (a JSON object) for `caller`.
pub async fn call(
    svc: Arc<Service>,
    caller: Caller,
    name: &str,
    args: Value,
) -> Result<Value, CallError> {
    match name {
        "search_audit_logs" => {
            let a: SearchArgs = json_value(args)?;
            blocking(svc, move |svc, conn| search(svc, conn, &caller, a)).await
        }
        "estimate_export" => {
            let a: EstimateRequest = json_value(args)?;
            blocking(svc, move |svc, conn| estimate(svc, conn, &caller, a)).await
        }
        "create_export" => create(svc, caller, json_value(args)?).await,
        "get_export" => {
            let a: IdArgs = json_value(args)?;
            blocking(svc, move |svc, conn| {
                let job = svc.visible_job(conn, &who(&caller), &a.id)?;
                Ok(svc.job_view(&job))
            })
            .await
        }
        "list_exports" => {
            let a: ListArgs = json_value(args)?;
            let limit = match a.limit {
                None => 50,
                Some(n @ 1..=500) => n,
                Some(_) => return Err(bad("invalid_limit", "limit", "limit must be 1..500")),
            };
            blocking(svc, move |svc, conn| {
                let jobs = svc.list_jobs(conn, &who(&caller), None, limit)?;
                let views: Vec<Value> = jobs.iter().map(|j| svc.job_view(j)).collect();
                Ok(json!({ "exports": views }))
            })
            .await
        }
        "cancel_export" | "restart_export" => {
            let a: IdArgs = json_value(args)?;
            let cancel = name == "cancel_export";
            blocking(svc, move |svc, conn| {
                exporter(&caller)?;
                let who = who(&caller);
                let out = if cancel {
                    svc.cancel(conn, &who, &a.id)?
                } else {
                    svc.restart(conn, &who, &a.id)?
                };
                Ok(svc.job_view(out.job()))
            })
            .await
        }
        other => Err(CallError::UnknownTool(other.to_string())),
    }
}

fn who(c: &Caller) -> Requester {
    Requester::User(c.user.clone())
}

fn bad(code: &'static str, field: &str, message: &str) -> CallError {
    CallError::Api(ApiError::bad_request(code, message).with(json!({ "field": field })))
}

/// The caller must be allowed to export (the HTTP API's 403, word for word).
fn exporter(c: &Caller) -> Result<(), CallError> {
    if c.user.role.can_export() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "role {} may view audit logs but not export them",
            c.user.role
        ))
        .into())
    }
}

/// Runs `f` with a fresh connection on a blocking thread (SQLite work
/// must not stall the runtime).
async fn blocking<T: Send + 'static>(
    svc: Arc<Service>,
    f: impl FnOnce(&Service, &mut Connection) -> Result<T, CallError> + Send + 'static,
) -> Result<T, CallError> {
    tokio::task::spawn_blocking(move || {
        let mut conn = svc.connect()?;
        f(&svc, &mut conn)
    })
    .await
    .map_err(|e| CallError::Api(ApiError::internal(e)))?
}

fn search(
    svc: &Service,
    conn: &mut Connection,
    c: &Caller,
    a: SearchArgs,
) -> Result<Value, CallError> {
    let limit = match a.limit {
        None => 50,
        Some(n) if (1..=MAX_SEARCH_LIMIT).contains(&n) => n,
        Some(_) => {
            return Err(bad(
                "invalid_limit",
                "limit",
                &format!("limit must be 1..{MAX_SEARCH_LIMIT}"),
            ))
        }
    };
    let page = svc.search(conn, &who(c), a.filters, limit, a.cursor.as_deref())?;
    let events: Value = serde_json::from_slice(&page.json).map_err(ApiError::internal)?;
    Ok(json!({"events": events, "count": page.count, "next_cursor": page.next_cursor}))
}

fn estimate(
    svc: &Service,
    conn: &mut Connection,
    c: &Caller,
    a: EstimateRequest,
) -> Result<Value, CallError> {
    let filters = svc.scoped_filters(&who(c), a.filters, true)?;
    let count = crate::audit::query::count(conn, &filters).map_err(ApiError::from)?;
    Ok(json!({
        "record_count": count,
        "mode": mode_for(count, svc.cfg.http.sync_threshold),
        "link_ttl_seconds": svc.cfg.link_secs(),
    }))
}

/// A small export (below the sync threshold, or `mode: sync`) is stored
/// like any job and its link returned once the file is there; the agent
/// gets a link, never the bytes. A large one returns the job at once.
async fn create(svc: Arc<Service>, caller: Caller, body: ExportBody) -> Result<Value, CallError> {
    let (request, mode) = body.into_request(caller.user.clone())?;
    let who = who(&caller);
    let mailed_by_default = request.email_to.is_none();
    let prepared = blocking(svc.clone(), move |svc, conn| {
        let who = Requester::User(caller.user.clone());
        if !caller.user.role.can_export() {
            let e = crate::service::ServiceError::Forbidden(format!(
                "role {} may view audit logs but not export them",
                caller.user.role
            ));
            return Err(svc.denied(conn, &who, e, &caller.client).into());
        }
        let mut p = svc
            .prepare_export(conn, request)
            .map_err(|e| svc.denied(conn, &who, e, &caller.client))?;
        let wait = match mode {
            Mode::Sync => true,
            Mode::Async => false,
            Mode::Auto => p.count < svc.cfg.http.sync_threshold,
        };
        if p.count == 0 && mode != Mode::Async {
            svc.audit_export(conn, &p, None, &caller.client)?;
            return Ok(Err(json!({"record_count": 0, "warning": "no_records"})));
        }
        // The link comes back in this answer: no e-mail unless asked for.
        if wait && mailed_by_default {
            p.recipients.clear();
        }
        let out = svc
            .enqueue_export(conn, &p, &caller.client)
            .map_err(|e| svc.denied(conn, &who, e, &caller.client))?;
        Ok(Ok((out, wait, p.count)))
    })
    .await?;
    let (out, wait, count) = match prepared {
        Err(nothing) => return Ok(nothing),
        Ok(x) => x,
    };
    let restarted = matches!(out, CreateOutcome::Restarted(_));
    let mut job = out.job().clone();
    if wait {
        job = svc.wait_for_job(&who, &job.id, SYNC_WAIT).await?;
    }
    let view = svc.job_view(&job);
    let done = job.state == crate::jobs::JobState::Completed;
    let mut answer = json!({
        "mode": if wait && done { "sync" } else { "async" },
        "record_count": count,
        "state": job.state.as_str(),
        "download_url": view["download_url"],
        "expires_at": view["expires_at"],
        "job": view,
    });
    if restarted {
        answer["restarted"] = json!(true);
    }
    Ok(answer)
}
