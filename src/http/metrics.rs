//! `GET /metrics`: Prometheus text — jobs by state, rows exported, job
//! durations, HTTP requests by status, downloads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::error::ApiError;
use super::routes::{boxed, Ctx, Reply};
use super::util::header;

/// Counters kept by this process.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<u16, u64>>,
    sync_rows: AtomicU64,
    downloads: AtomicU64,
    /// Failed authentications: no token, and unknown or malformed ones.
    auth_missing: AtomicU64,
    auth_refused: AtomicU64,
}

impl Metrics {
    /// Counts one answered request by HTTP status.
    pub fn request(&self, status: u16) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry(status)
            .or_default() += 1;
    }
    /// Adds `n` rows exported by a synchronous export.
    pub fn add_sync_rows(&self, n: u64) {
        self.sync_rows.fetch_add(n, Ordering::Relaxed);
    }
    /// Counts one file download.
    pub fn download(&self) {
        self.downloads.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts one failed authentication: `missing` when no token was sent, else refused.
    pub fn auth_failure(&self, missing: bool) {
        let c = if missing {
            &self.auth_missing
        } else {
            &self.auth_refused
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// With `[http] metrics_token` set, the caller must present it.
fn check_token(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    let Some(want) = ctx.state.cfg().http.metrics_token.as_deref() else {
        return Ok(());
    };
    let got = ctx.header("Authorization").unwrap_or_default();
    let got = got.strip_prefix("Bearer ").unwrap_or("").trim();
    // Compared as SHA-256 digests: how long the comparison takes tells
    // nothing usable about the token itself.
    let same = crate::util::sha256_hex(got.as_bytes()) == crate::util::sha256_hex(want.as_bytes());
    if same {
        Ok(())
    } else {
        ctx.state.metrics.auth_failure(got.is_empty());
        Err(ApiError::new(
            401,
            "unauthorized",
            "metrics need Authorization: Bearer <[http] metrics_token>",
        ))
    }
}

/// `GET /metrics`: Prometheus text; needs `Authorization: Bearer` with
/// `[http] metrics_token` when that is set.
pub fn render(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    check_token(ctx)?;
    let mut out = String::new();
    out.push_str("# HELP audit_export_jobs Export jobs in the database by state.\n# TYPE audit_export_jobs gauge\n");
    let m = crate::jobs::store::maintenance::metrics(ctx.conn)?;
    for s in crate::jobs::JobState::ALL {
        let _ = writeln!(
            out,
            "audit_export_jobs{{state=\"{s}\"}} {}",
            m.by_state.get(s.as_str()).copied().unwrap_or(0)
        );
    }
    let (rows, dur_sum, dur_n) = (m.completed_records, m.completed_seconds, m.completed);
    out.push_str("# HELP audit_export_rows_exported Rows exported: sync by this process, async by completed jobs still retained.\n# TYPE audit_export_rows_exported counter\n");
    let _ = writeln!(
        out,
        "audit_export_rows_exported{{mode=\"sync\"}} {}",
        ctx.state.metrics.sync_rows.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "audit_export_rows_exported{{mode=\"async\"}} {rows}");
    out.push_str("# HELP audit_export_job_duration_seconds Creation to completion of retained completed jobs.\n# TYPE audit_export_job_duration_seconds summary\n");
    let _ = writeln!(out, "audit_export_job_duration_seconds_sum {dur_sum}");
    let _ = writeln!(out, "audit_export_job_duration_seconds_count {dur_n}");
    out.push_str("# HELP audit_export_http_requests_total HTTP requests answered, by status.\n# TYPE audit_export_http_requests_total counter\n");
    for (status, n) in ctx
        .state
        .metrics
        .requests
        .lock()
        .expect("metrics lock")
        .iter()
    {
        let _ = writeln!(
            out,
            "audit_export_http_requests_total{{status=\"{status}\"}} {n}"
        );
    }
    out.push_str("# HELP audit_export_schedule_runs_total Fires of each scheduled export by outcome (enqueued, skipped, failed to enqueue), and its jobs that failed or expired.\n# TYPE audit_export_schedule_runs_total counter\n");
    for (name, [fired, skipped, failed], jobs_failed) in crate::schedules::store::counts(ctx.conn)?
    {
        let name = name.replace('\\', "\\\\").replace('"', "\\\"");
        for (outcome, n) in [
            ("fired", fired),
            ("skipped", skipped),
            ("failed", failed + jobs_failed),
        ] {
            let _ = writeln!(
                out,
                "audit_export_schedule_runs_total{{schedule=\"{name}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }
    let m = &ctx.state.metrics;
    out.push_str("# HELP audit_export_auth_failures_total Requests refused for want of a valid token.\n# TYPE audit_export_auth_failures_total counter\n");
    let _ = writeln!(
        out,
        "audit_export_auth_failures_total{{reason=\"missing\"}} {}",
        m.auth_missing.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "audit_export_auth_failures_total{{reason=\"invalid\"}} {}",
        m.auth_refused.load(Ordering::Relaxed)
    );
    let server = &ctx.state.server;
    let refused = server.refusals();
    out.push_str("# HELP audit_export_http_connections Connections open now.\n# TYPE audit_export_http_connections gauge\n");
    let _ = writeln!(
        out,
        "audit_export_http_connections {}",
        server.open_connections()
    );
    out.push_str("# HELP audit_export_http_refused_total Connections refused (too many open) and requests timed out.\n# TYPE audit_export_http_refused_total counter\n");
    let _ = writeln!(
        out,
        "audit_export_http_refused_total{{reason=\"too_many_connections\"}} {}",
        refused.connections.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "audit_export_http_refused_total{{reason=\"timeout\"}} {}",
        refused.timeouts.load(Ordering::Relaxed)
    );
    out.push_str("# HELP audit_export_downloads_total Signed-link downloads served.\n# TYPE audit_export_downloads_total counter\n");
    let _ = writeln!(
        out,
        "audit_export_downloads_total {}",
        ctx.state.metrics.downloads.load(Ordering::Relaxed)
    );
    Ok(boxed(tiny_http::Response::from_string(out).with_header(
        header("Content-Type", "text/plain; version=0.0.4"),
    )))
}
