//! Export endpoints: estimate, create (sync stream or async job), list,
//! show, cancel, restart. Every job lookup is scoped to the caller's
//! organization (another organization's job is a 404), and non-admins see
//! only their own jobs.

use std::io::{BufWriter, Read, Write};

use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::routes::{json, Ctx, Reply};
use super::util::{attachment, header, json_body, read_body};
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
    let body = read_body(&mut ctx.req, ctx.state.cfg.http.max_body_bytes)?;
    let r: EstimateRequest = json_body(&body)?;
    let filters = scoped(r.filters, &user, ctx.state)?;
    let count = crate::audit::query::count(ctx.conn, &filters)?;
    Ok(json(
        200,
        &json!({"record_count": count, "mode": mode_for(count, ctx.state.cfg.http.sync_threshold)}),
    ))
}

/// Checks `email_to`: verified users of the caller's organization, or
/// addresses in an allowed domain; 422 `unverified_recipient` otherwise.
fn recipients(
    ctx: &Ctx<'_>,
    user: &User,
    email_to: Option<OneOrMany>,
) -> Result<Vec<String>, ApiError> {
    let list = match email_to {
        None => {
            return Ok(if user.email_verified {
                vec![user.email.clone()]
            } else {
                vec![]
            })
        }
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    };
    if list.len() > 20 {
        return Err(ApiError::bad_request(
            "invalid_email_to",
            "at most 20 recipients",
        ));
    }
    let domains = &ctx.state.cfg.notify.allowed_recipient_domains;
    let mut out = Vec::new();
    for raw in list {
        let addr = raw.trim().to_ascii_lowercase();
        let domain = addr
            .rsplit_once('@')
            .filter(|(l, d)| !l.is_empty() && d.contains('.'));
        let Some((_, domain)) = domain else {
            return Err(ApiError::bad_request(
                "invalid_email_to",
                format!("{raw:?} is not an e-mail address"),
            ));
        };
        let verified_user = crate::users::find_by_email(ctx.conn, &user.organization_id, &addr)?
            .is_some_and(|u| u.email_verified);
        let allowed_domain = domains.iter().any(|d| {
            d.trim()
                .trim_start_matches('@')
                .eq_ignore_ascii_case(domain)
        });
        if !(verified_user || allowed_domain) {
            return Err(ApiError::new(
                422,
                "unverified_recipient",
                format!("{addr} is neither a verified user of your organization nor in an allowed recipient domain"),
            ));
        }
        out.push(addr);
    }
    out.sort();
    out.dedup();
    Ok(out)
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
    let body = read_body(&mut ctx.req, state.cfg.http.max_body_bytes)?;
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
    if count == 0 {
        record(
            ctx,
            &user,
            "audit_log.exported",
            &filters.hash(),
            details(None),
        )?;
        return Ok(json(
            200,
            &json!({"record_count": 0, "warning": "no_records"}),
        ));
    }
    if sync {
        record(
            ctx,
            &user,
            "audit_log.exported",
            &filters.hash(),
            details(None),
        )?;
        return stream(state, &filters, Encoder::new(format, csv), count);
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
        ip: ctx.ip.as_deref(),
        details: &details,
    };
    crate::audit::record::record(ctx.conn, &event, now_ms())?;
    Ok(())
}

/// Streams a synchronous export. The export runs on its own thread into a
/// pipe; if it fails midway the body reader returns an error, so the
/// connection is cut instead of ending like a complete file.
fn stream(
    state: &AppState,
    filters: &Filters,
    encoder: Encoder,
    count: u64,
) -> Result<Reply, ApiError> {
    let (reader, writer) = std::io::pipe().map_err(ApiError::internal)?;
    let db = crate::db::db_path(&state.data_dir);
    let (f, batch) = (filters.clone(), state.cfg.export.batch_size);
    let handle = std::thread::spawn(move || -> Result<u64, String> {
        let conn = crate::db::connect(&db).map_err(|e| e.to_string())?;
        let (stats, out) = crate::export::run(
            &conn,
            &f,
            &encoder,
            batch,
            || Ok(BufWriter::with_capacity(1 << 16, writer)),
            |_| {},
        )
        .map_err(|e| e.to_string())?;
        if let Some(mut w) = out {
            w.flush().map_err(|e| e.to_string())?;
        }
        Ok(stats.records)
    });
    state.metrics.add_sync_rows(count);
    let name = format!(
        "audit-logs_{}_{}_{}_{}.{}",
        crate::storage::safe_component(&filters.organization),
        crate::time::format_date(filters.from_ms),
        crate::time::format_date(filters.to_ms - 1),
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        encoder.format.extension()
    );
    let body = Guarded {
        inner: reader,
        handle: Some(handle),
    };
    let headers = vec![
        header("Content-Type", encoder.format.content_type()),
        header("Content-Disposition", &attachment(&name)),
        header("X-Record-Count", &count.to_string()),
    ];
    Ok(tiny_http::Response::new(
        tiny_http::StatusCode(200),
        headers,
        Box::new(body) as Box<dyn Read + Send>,
        None,
        None,
    ))
}

/// A pipe reader that turns the producer's failure into a read error.
struct Guarded {
    inner: std::io::PipeReader,
    handle: Option<std::thread::JoinHandle<Result<u64, String>>>,
}

impl Read for Guarded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if let Some(h) = self.handle.take() {
                match h.join() {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "sync export failed midway; cutting the response");
                        return Err(std::io::Error::other(e));
                    }
                    Err(_) => return Err(std::io::Error::other("export thread panicked")),
                }
            }
        }
        Ok(n)
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
        let expires = done / 1000 + state.cfg.http.link_ttl_secs as i64;
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
    let limit = super::util::limit(ctx.param("limit"), 50, 500)?;
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
