//! Export endpoints: estimate, create (sync stream or async job), list,
//! show, cancel, restart. Every job lookup is scoped to the caller's
//! organization (another organization's job is a 404), and non-admins see
//! only their own jobs.

use std::io::Write;

use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::routes::{json, Ctx, Reply};
use super::util::{attachment, json_body};
use super::AppState;
use crate::filters::{FilterInput, Filters};
use crate::format::{CsvOptions, Encoder, Format};
use crate::jobs::store::{self, CreateOutcome, NewJob, Request};
use crate::jobs::{now_ms, remove_spool, Job};
use crate::time::format_rfc3339_ms;
use crate::users::{Role, User};

/// Validates request-body filters with the organization taken from the
/// token (naming another organization is a 403).
fn scoped(mut input: FilterInput, user: &User, state: &AppState) -> Result<Filters, ApiError> {
    if let Some(org) = &input.organization {
        if org.trim() != user.organization_id {
            return Err(ApiError::forbidden(
                "filters.organization must be your own organization (or left out)",
            ));
        }
    }
    input.organization = Some(user.organization_id.clone());
    Ok(input.validate(&state.cfg.limits())?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EstimateRequest {
    filters: FilterInput,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvRequest {
    bom: Option<bool>,
    formula_guard: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportRequest {
    format: String,
    filters: FilterInput,
    csv: Option<CsvRequest>,
    email_to: Option<OneOrMany>,
    mode: Option<String>,
    restart: Option<bool>,
}

fn mode_for(count: u64, threshold: u64) -> &'static str {
    if count < threshold {
        "sync"
    } else {
        "async"
    }
}

pub fn estimate(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.exporter()?;
    let body = ctx.body(ctx.state.cfg.http.max_body_bytes)?;
    let r: EstimateRequest = json_body(&body)?;
    let filters = scoped(r.filters, &user, ctx.state)?;
    let count = crate::audit::query::count(ctx.conn, &filters)?;
    Ok(json(
        200,
        &json!({"record_count": count, "mode": mode_for(count, ctx.state.cfg.http.sync_threshold)}),
    ))
}

/// Checks `email_to` (see [`crate::notify::recipients`]): 422
/// `unverified_recipient` for an address nobody vouches for.
fn recipients(
    ctx: &Ctx<'_>,
    user: &User,
    email_to: Option<OneOrMany>,
) -> Result<Vec<String>, ApiError> {
    use crate::notify::recipients::{check, default_for, RecipientError};
    let list = match email_to {
        None => return Ok(default_for(user)),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    };
    check(
        ctx.conn,
        &ctx.state.cfg.notify,
        &user.organization_id,
        &list,
    )
    .map_err(|e| match e {
        RecipientError::Db(e) => e.into(),
        RecipientError::Unverified(_) => ApiError::new(422, "unverified_recipient", e.to_string()),
        RecipientError::Invalid(_) | RecipientError::TooMany => {
            ApiError::bad_request("invalid_email_to", e.to_string())
        }
    })
}

fn actor(user: &User) -> crate::audit::record::Actor {
    crate::audit::record::Actor {
        kind: "user".into(),
        id: Some(user.requester()),
        name: Some(user.name.clone()),
        email: Some(user.email.clone()),
    }
}

pub fn create(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.exporter()?;
    let state = ctx.state;
    let body = ctx.body(state.cfg.http.max_body_bytes)?;
    let r: ExportRequest = json_body(&body)?;
    let format: Format = r
        .format
        .parse()
        .map_err(|e: crate::format::UnknownFormat| {
            ApiError::bad_request("invalid_format", e.to_string())
        })?;
    let mode = r.mode.as_deref().unwrap_or("auto");
    if !matches!(mode, "auto" | "sync" | "async") {
        return Err(ApiError::bad_request(
            "invalid_mode",
            format!("mode {mode:?}: expected auto, sync or async"),
        ));
    }
    if r.csv.is_some() && format != Format::Csv {
        return Err(ApiError::bad_request(
            "invalid_csv_options",
            "csv options apply to format csv only",
        ));
    }
    let csv = CsvOptions {
        bom: r.csv.as_ref().and_then(|c| c.bom).unwrap_or(true),
        formula_guard: r.csv.as_ref().and_then(|c| c.formula_guard).unwrap_or(true),
    };
    let filters = scoped(r.filters, &user, state)?;
    let recipients = recipients(ctx, &user, r.email_to)?;
    let count = crate::audit::query::count(ctx.conn, &filters)?;
    let details = |job_id: Option<&str>| {
        json!({
            "filters": serde_json::from_str::<Value>(&filters.canonical_json()).unwrap_or(Value::Null),
            "format": format.as_str(),
            "record_count": count,
            "job_id": job_id,
        })
    };
    let sync = match mode {
        "sync" => true,
        "async" => false,
        _ => count < state.cfg.http.sync_threshold,
    };
    // Nothing matches: answered at once, unless the caller asked for a
    // background job, which then ends `completed` without a file and
    // notifies "no results" (in-app and by e-mail) like any other job.
    if sync || (count == 0 && mode != "async") {
        // Answered in this response: no job, so the filter hash names the export.
        record(
            ctx,
            &user,
            "audit_log.exported",
            &filters.hash(),
            details(None),
        )?;
        if count == 0 {
            return Ok(json(
                200,
                &json!({"record_count": 0, "warning": "no_records"}),
            ));
        }
        return stream(ctx, &filters, Encoder::new(format, csv), count);
    }
    let new = NewJob {
        requester: user.requester(),
        filters: filters.clone(),
        format,
        csv,
        compress: state.cfg.jobs.compress,
        max_attempts: state.cfg.jobs.max_attempts,
        estimated_count: Some(count),
        schedule_id: None,
        fire_time: None,
        recipients,
        restart: r.restart.unwrap_or(false),
    };
    let out = store::create(
        ctx.conn,
        &new,
        state.cfg.jobs.max_in_progress_per_requester,
        now_ms(),
    )?;
    state.engine.wake.notify_one();
    let job = out.job().clone();
    record(
        ctx,
        &user,
        "audit_log.exported",
        &job.id,
        details(Some(&job.id)),
    )?;
    let mut body = job_json(state, &job);
    if matches!(out, CreateOutcome::Restarted(_)) {
        body["restarted"] = json!(true);
    }
    Ok(json(202, &body))
}

fn record(
    ctx: &mut Ctx<'_>,
    user: &User,
    action: &str,
    target: &str,
    details: Value,
) -> Result<(), ApiError> {
    let event = crate::audit::record::OwnEvent {
        org: &user.organization_id,
        action,
        actor: &actor(user),
        target_id: target,
        client: &ctx.client,
        details: &details,
    };
    crate::audit::record::record(ctx.conn, &event, now_ms())?;
    Ok(())
}

/// Streams a synchronous export on the raw socket as a chunked response.
/// The headers go out with the first row; if the export fails after that,
/// the connection is dropped without the terminating chunk, so no client
/// can take the cut body for a complete file. (tiny_http's own chunked
/// encoder always writes the terminator, even after an error, so it is not
/// used here.) A failure before the first byte is an ordinary JSON error.
fn stream(
    ctx: &mut Ctx<'_>,
    filters: &Filters,
    encoder: Encoder,
    count: u64,
) -> Result<Reply, ApiError> {
    let name = format!(
        "audit-logs_{}_{}_{}_{}.{}",
        crate::storage::safe_component(&filters.organization),
        crate::time::format_date(filters.from_ms),
        crate::time::format_date(filters.to_ms - 1),
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        encoder.format.extension()
    );
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Disposition: {}\r\nX-Record-Count: {count}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        encoder.format.content_type(),
        attachment(&name)
    );
    let batch = ctx.state.cfg.export.batch_size;
    let (conn, slot) = (&*ctx.conn, &mut ctx.req);
    let result = crate::export::run(
        conn,
        filters,
        &encoder,
        batch,
        || {
            let req = slot
                .take()
                .expect("the request is still ours before the first byte");
            let mut inner = req.into_writer();
            inner.write_all(head.as_bytes())?;
            Ok(Chunked {
                inner,
                buf: Vec::with_capacity(CHUNK),
            })
        },
        |_| {},
    );
    match result {
        Ok((stats, Some(out))) => {
            if let Err(e) = out.finish() {
                tracing::debug!(error = %e, "client went away during a sync export");
            }
            ctx.state.metrics.add_sync_rows(stats.records);
        }
        // The rows vanished between the count and the scan.
        Ok((_, None)) => {
            return Ok(json(
                200,
                &json!({"record_count": 0, "warning": "no_records"}),
            ))
        }
        Err(e) if ctx.req.is_some() => return Err(ApiError::internal(e)),
        Err(e) => {
            tracing::error!(error = %e, "sync export failed midway; the response was cut without its final chunk")
        }
    }
    // Already answered on the socket; this value is only counted.
    Ok(json(200, &json!({})))
}

const CHUNK: usize = 64 * 1024;

/// HTTP/1.1 chunked encoding over the raw socket, terminated only by an
/// explicit [`Chunked::finish`].
struct Chunked {
    inner: Box<dyn Write + Send>,
    buf: Vec<u8>,
}

impl Chunked {
    fn emit(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            write!(self.inner, "{:x}\r\n", self.buf.len())?;
            self.inner.write_all(&self.buf)?;
            self.inner.write_all(b"\r\n")?;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.emit()?;
        self.inner.write_all(b"0\r\n\r\n")?;
        self.inner.flush()
    }
}

impl Write for Chunked {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.emit()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.emit()?;
        self.inner.flush()
    }
}

/// A job as the API shows it.
pub fn job_json(state: &AppState, j: &Job) -> Value {
    let filters: Value = serde_json::from_str(&j.filters).unwrap_or(Value::Null);
    let mut v = json!({
        "id": j.id,
        "state": j.state.as_str(),
        "format": j.format.as_str(),
        "filters": filters,
        "progress": {"exported": j.exported_count, "estimated": j.estimated_count},
        "attempt": j.attempt,
        "max_attempts": j.max_attempts,
        "record_count": j.record_count,
        "created_at": format_rfc3339_ms(j.created_at),
        "updated_at": format_rfc3339_ms(j.updated_at),
        "completed_at": j.completed_at.map(format_rfc3339_ms),
        "cancel_requested": j.cancel_requested,
        "restart_requested": j.restart_requested,
        "error": j.error_code.as_ref().map(|c| json!({"code": c, "message": j.error_message})),
        "file": Value::Null,
        "download_url": Value::Null,
        "expires_at": Value::Null,
    });
    if let (Some(f), Some(done)) = (&j.file, j.completed_at) {
        let expires = done / 1000 + super::link_secs(&state.cfg) as i64;
        v["file"] =
            json!({"name": f.name, "size": f.size, "sha256": f.sha256, "compressed": f.compressed});
        v["download_url"] = json!(download_url(state, &j.id, &f.key, expires));
        v["expires_at"] = json!(format_rfc3339_ms(expires * 1000));
    }
    v
}

/// The signed link to a job's file.
pub fn download_url(state: &AppState, job_id: &str, file_key: &str, expires: i64) -> String {
    let sig = state.signer.sign(job_id, file_key, expires);
    format!(
        "{}/download/{job_id}?expires={expires}&sig={sig}",
        state.public_url.trim_end_matches('/')
    )
}

/// The caller's view of job `id`: 404 for another organization's job, and
/// for another user's job unless the caller is an admin.
fn visible_job(ctx: &Ctx<'_>, user: &User) -> Result<Job, ApiError> {
    let id = ctx.id.as_deref().unwrap_or_default();
    let job = store::get(ctx.conn, id)?;
    if job.organization_id != user.organization_id
        || (user.role != Role::Admin && job.requester != user.requester())
    {
        return Err(ApiError::not_found());
    }
    Ok(job)
}

pub fn list(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.user()?;
    let limit = super::util::limit(ctx.param("limit")?, 50, 500)?;
    let requester = (user.role != Role::Admin).then(|| user.requester());
    let jobs = store::list(
        ctx.conn,
        Some(&user.organization_id),
        requester.as_deref(),
        limit,
    )?;
    let data: Vec<Value> = jobs.iter().map(|j| job_json(ctx.state, j)).collect();
    Ok(json(200, &json!({"data": data})))
}

pub fn show(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.user()?;
    let job = visible_job(ctx, &user)?;
    Ok(json(200, &job_json(ctx.state, &job)))
}

pub fn cancel(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.exporter()?;
    let job = visible_job(ctx, &user)?;
    let job = match store::request_cancel(ctx.conn, &job.id, now_ms())? {
        Request::Applied(j) => {
            let _ = remove_spool(&ctx.state.data_dir, &j.id);
            j
        }
        Request::Flagged(j) => j,
    };
    Ok(json(200, &job_json(ctx.state, &job)))
}

pub fn restart(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.exporter()?;
    let job = visible_job(ctx, &user)?;
    // The spool stays: the next export step clears it itself.
    let job = match store::request_restart(ctx.conn, &job.id, now_ms())? {
        Request::Applied(j) | Request::Flagged(j) => j,
    };
    ctx.state.engine.wake.notify_one();
    Ok(json(202, &job_json(ctx.state, &job)))
}
