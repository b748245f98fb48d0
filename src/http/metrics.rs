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
}

impl Metrics {
    pub fn request(&self, status: u16) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry(status)
            .or_default() += 1;
    }
    pub fn add_sync_rows(&self, n: u64) {
        self.sync_rows.fetch_add(n, Ordering::Relaxed);
    }
    pub fn download(&self) {
        self.downloads.fetch_add(1, Ordering::Relaxed);
    }
}

pub fn render(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    let mut out = String::new();
    out.push_str("# HELP audit_export_jobs Export jobs in the database by state.\n# TYPE audit_export_jobs gauge\n");
    let mut st = ctx
        .conn
        .prepare_cached("SELECT state, count(*) FROM export_jobs GROUP BY state")?;
    let counts: BTreeMap<String, i64> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for s in crate::jobs::JobState::ALL {
        let _ = writeln!(
            out,
            "audit_export_jobs{{state=\"{s}\"}} {}",
            counts.get(s.as_str()).copied().unwrap_or(0)
        );
    }
    let (rows, dur_sum, dur_n): (i64, f64, i64) = ctx.conn.query_row(
        "SELECT coalesce(sum(record_count), 0), coalesce(sum(completed_at - created_at), 0) / 1000.0, count(*) \
         FROM export_jobs WHERE state = 'completed'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
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
