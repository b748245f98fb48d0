//! Export endpoints: estimate, create (sync stream or async job), list,
//! show, cancel, restart. Every job lookup is scoped to the caller's
//! organization (another organization's job is a 404), and non-admins see
//! only their own jobs.

use serde_json::json;

use super::error::ApiError;
use super::routes::{boxed, json, Ctx, Reply};
use super::util::{attachment, header};
use crate::api::body::{json_body, mode_for, EstimateRequest, ExportBody, Mode};
use crate::filters::Filters;
use crate::format::Encoder;
use crate::jobs::store::CreateOutcome;
use crate::users::Requester;

/// `POST /api/v1/exports/estimate` (exporters): how many events match, the mode
/// `auto` would pick, and how long a download link lives.
pub fn estimate(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.exporter()?;
    let body = ctx.body(ctx.state.cfg().http.max_body_bytes)?;
    let r: EstimateRequest = json_body(&body)?;
    let filters = ctx
        .state
        .svc
        .scoped_filters(&Requester::User(user), r.filters, true)?;
    let count = crate::audit::query::count(ctx.conn, &filters)?;
    Ok(json(
        200,
        &json!({
            "record_count": count,
            "mode": mode_for(count, ctx.state.cfg().http.sync_threshold),
            "link_ttl_seconds": ctx.state.cfg().link_secs(),
        }),
    ))
}

/// `POST /api/v1/exports`: the file at once (`sync`, or `auto` below
/// `http.sync_threshold` rows), else a queued job answered `202`.
pub fn create(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let user = ctx.user()?;
    let state = ctx.state;
    let svc = &state.svc;
    let who = Requester::User(user.clone());
    // Every refusal of an export request is in the audit trail.
    if !user.role.can_export() {
        let e = crate::service::ServiceError::Forbidden(format!(
            "role {} may view audit logs but not export them",
            user.role
        ));
        return Err(svc.denied(ctx.conn, &who, e, &ctx.client).into());
    }
    let body = ctx.body(state.cfg().http.max_body_bytes)?;
    let (request, mode) = json_body::<ExportBody>(&body)?.into_request(user)?;
    let prepared = svc
        .prepare_export(ctx.conn, request)
        .map_err(|e| svc.denied(ctx.conn, &who, e, &ctx.client))?;
    let count = prepared.count;
    let sync = match mode {
        Mode::Sync => true,
        Mode::Async => false,
        Mode::Auto => count < state.cfg().http.sync_threshold,
    };
    // Nothing matches: answered at once, unless the caller asked for a
    // background job, which then ends `completed` without a file and
    // notifies "no results" (in-app and by e-mail) like any other job.
    if sync || (count == 0 && mode != Mode::Async) {
        // Answered in this response: no job, so the filter hash names the export.
        svc.audit_export(ctx.conn, &prepared, None, &ctx.client)?;
        if count == 0 {
            return Ok(json(
                200,
                &json!({"record_count": 0, "warning": "no_records"}),
            ));
        }
        let encoder = svc.encoder(ctx.conn, &prepared)?;
        return stream(ctx, &prepared.filters, encoder, count);
    }
    let out = svc
        .enqueue_export(ctx.conn, &prepared, &ctx.client)
        .map_err(|e| svc.denied(ctx.conn, &who, e, &ctx.client))?;
    let mut body = svc.job_view(out.job());
    if matches!(out, CreateOutcome::Restarted(_)) {
        body["restarted"] = json!(true);
    }
    Ok(json(202, &body))
}

/// Answers a synchronous export: written first to an unlinked file of the
/// data dir's `tmp/` (flat memory; at most `sync_threshold` rows), then
/// sent with its Content-Length by a sender thread, so a slow reader never
/// holds a request thread or the database. A failure before sending is an
/// ordinary JSON error (a full disk: `507`); a client that stops reading
/// sees the connection cut short of Content-Length, never a complete file.
fn stream(
    ctx: &mut Ctx<'_>,
    filters: &Filters,
    encoder: Encoder,
    count: u64,
) -> Result<Reply, ApiError> {
    use std::io::{Seek, Write};
    let name = crate::storage::export_file_name(
        filters,
        encoder.format,
        encoder.zone(),
        ctx.state.svc.now_ms(),
    );
    let content_type = encoder.format.content_type();
    let file = super::util::anonymous_file(&ctx.state.svc.data_dir)?;
    let batch = ctx.state.cfg().export.batch_size;
    let result = crate::stream::run(
        ctx.conn,
        filters,
        encoder,
        batch,
        ctx.state.cfg().export.threads(),
        || {
            Ok(std::io::BufWriter::with_capacity(
                256 * 1024,
                file.try_clone()?,
            ))
        },
        |_| {},
    );
    let stats = match result {
        Ok((stats, Some(mut out))) => {
            out.flush().map_err(super::util::io_error)?;
            stats
        }
        // The rows vanished between the count and the scan.
        Ok((_, None)) => {
            return Ok(json(
                200,
                &json!({"record_count": 0, "warning": "no_records"}),
            ))
        }
        Err(crate::stream::ExportError::Io(e)) => return Err(super::util::io_error(e)),
        Err(crate::stream::ExportError::Db(e)) => return Err(e.into()),
    };
    ctx.state.metrics.add_sync_rows(stats.records);
    let mut file = file;
    file.rewind().map_err(super::util::io_error)?;
    let len = file.metadata().map_err(super::util::io_error)?.len() as usize;
    let _ = count;
    Ok(boxed(tiny_http::Response::new(
        tiny_http::StatusCode(200),
        vec![
            header("Content-Type", content_type),
            header("Content-Disposition", &attachment(&name)),
            header("X-Record-Count", &stats.records.to_string()),
        ],
        file,
        Some(len),
        None,
    )))
}

fn caller(ctx: &Ctx<'_>, exporting: bool) -> Result<Requester, ApiError> {
    Ok(Requester::User(if exporting {
        ctx.exporter()?
    } else {
        ctx.user()?
    }))
}

fn path_id(ctx: &Ctx<'_>) -> String {
    ctx.id.clone().unwrap_or_default()
}

/// `GET /api/v1/exports`: the caller's visible jobs, newest first (`limit`,
/// default 50, at most 500); non-admins see only their own.
pub fn list(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let who = caller(ctx, false)?;
    let limit = super::util::limit(ctx.param("limit")?, 50, 500)?;
    let svc = &ctx.state.svc;
    let jobs = svc.list_jobs(ctx.conn, &who, None, limit)?;
    let data: Vec<serde_json::Value> = jobs.iter().map(|j| svc.job_view(j)).collect();
    Ok(json(200, &json!({"data": data})))
}

/// `GET /api/v1/exports/{id}`: one visible job (another organization's is a `404`).
pub fn show(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let who = caller(ctx, false)?;
    let svc = &ctx.state.svc;
    let job = svc.visible_job(ctx.conn, &who, &path_id(ctx))?;
    Ok(json(200, &svc.job_view(&job)))
}

/// `DELETE /api/v1/exports/{id}` (exporters): cancels the job, at once or at its
/// worker's next batch.
pub fn cancel(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let who = caller(ctx, true)?;
    let svc = &ctx.state.svc;
    let r = svc.cancel(ctx.conn, &who, &path_id(ctx))?;
    Ok(json(200, &svc.job_view(r.job())))
}

/// `POST /api/v1/exports/{id}/restart` (exporters): restarts the job from
/// scratch; `202` with the job.
pub fn restart(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let who = caller(ctx, true)?;
    let svc = &ctx.state.svc;
    let r = svc.restart(ctx.conn, &who, &path_id(ctx))?;
    Ok(json(202, &svc.job_view(r.job())))
}
