//! Firing schedules: each due fire enqueues exactly one export job, in the
//! same transaction as its `schedule_runs` row (unique per schedule and
//! fire time) and its audit event, so a restart or a second process on
//! the same database never fires it twice. Missed fires follow the
//! schedule's `catch_up`. This module decides when and what to export;
//! the job engine runs it.

use rusqlite::{Connection, Transaction};
use serde_json::{json, Value};

use super::def::{archive_key, with_period, ArchiveValues, CatchUp, ScheduleDef};
use super::store::{self, Run, RunStatus};
use crate::audit::trail::{Client, OwnEvent};
use crate::jobs::store::{create_in, NewJob};
use crate::jobs::{Job, JobError};
use crate::service::{Service, ServiceError};
use crate::users::Requester;

/// A fire later than this after its time counts as missed (the engine was
/// not running): `catch_up` decides what happens to it.
pub const GRACE_MS: i64 = 60_000;
/// Most fires considered in one pass (after long downtime the newest).
const MAX_DUE: usize = 1_000;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FireCounts {
    /// Fires that queued an export job.
    pub enqueued: usize,
    /// Fires skipped: missed while down, already recorded, or an identical
    /// export still in progress.
    pub skipped: usize,
    /// Fires that could not queue a job.
    pub failed: usize,
}

impl FireCounts {
    fn add(&mut self, status: RunStatus) {
        match status {
            RunStatus::Enqueued => self.enqueued += 1,
            RunStatus::Skipped => self.skipped += 1,
            RunStatus::Failed => self.failed += 1,
        }
    }
}

/// The requester of a schedule's jobs.
pub fn requester(name: &str) -> Requester {
    Requester::System(format!("schedule:{name}"))
}

/// Fires what is due for `def` at `now`, in one `BEGIN IMMEDIATE`
/// transaction. A schedule seen for the first time starts at `now` (no
/// backlog); a disabled one only moves its mark forward.
pub fn run_schedule(
    svc: &Service,
    conn: &mut Connection,
    def: &ScheduleDef,
    now: i64,
) -> Result<FireCounts, ServiceError> {
    let mut counts = FireCounts::default();
    let tx = crate::db::immediate(conn)?;
    let Some(last) = store::last_fire(&tx, &def.name)? else {
        store::set_last_fire(&tx, &def.name, now, now)?;
        tx.commit()?;
        return Ok(counts);
    };
    let due = def.cron.fires_between(def.tz, last, now, MAX_DUE);
    let Some(&newest) = due.last() else {
        return Ok(counts);
    };
    if def.enabled {
        let on_time = |f: i64| now - f <= GRACE_MS;
        let fire = match def.catch_up {
            CatchUp::Latest => Some(newest),
            CatchUp::None => due.iter().rev().copied().find(|f| on_time(*f)),
        };
        for &f in &due {
            if Some(f) == fire {
                let status = enqueue_fire(svc, &tx, def, Some(f), now, None)?.status();
                counts.add(status);
            } else {
                let reason = format!(
                    "missed while the engine was not running (catch_up = {})",
                    if def.catch_up == CatchUp::Latest {
                        "latest: only the most recent runs"
                    } else {
                        "none"
                    }
                );
                if skip(&tx, def, f, now, &reason)? {
                    counts.skipped += 1;
                }
            }
        }
    }
    store::set_last_fire(&tx, &def.name, newest, now)?;
    tx.commit()?;
    if counts != FireCounts::default() {
        tracing::info!(schedule = %def.name, ?counts, "schedule fired");
    }
    Ok(counts)
}

fn skip(
    tx: &Transaction<'_>,
    def: &ScheduleDef,
    fire: i64,
    now: i64,
    reason: &str,
) -> rusqlite::Result<bool> {
    store::insert_run(
        tx,
        &Run {
            schedule: def.name.clone(),
            fire_time: Some(fire),
            status: RunStatus::Skipped.as_str().into(),
            reason: Some(reason.into()),
            job_id: None,
            period: def.range.period(def.tz, fire),
            at: now,
        },
    )
}

/// What enqueueing one fire did.
pub enum Fired {
    /// A job was queued for the fire.
    Enqueued(Box<Job>),
    /// Another process, or an earlier pass, recorded this fire already.
    AlreadyFired,
    /// Not run, and why (e.g. an identical export still in progress).
    Skipped(String),
    /// No job could be queued, and why.
    Failed(String),
}

impl Fired {
    fn status(&self) -> RunStatus {
        match self {
            Fired::Enqueued(_) => RunStatus::Enqueued,
            Fired::AlreadyFired | Fired::Skipped(_) => RunStatus::Skipped,
            Fired::Failed(_) => RunStatus::Failed,
        }
    }
}

/// Enqueues one fire (`fire: None` for a manual run at `now`) inside `tx`:
/// the period, the filters, the recipients checked again, the job, the
/// run row and the audit event.
pub fn enqueue_fire(
    svc: &Service,
    tx: &Transaction<'_>,
    def: &ScheduleDef,
    fire: Option<i64>,
    now: i64,
    by: Option<&Requester>,
) -> Result<Fired, ServiceError> {
    let at = fire.unwrap_or(now);
    // Under the write lock: a fire recorded by anyone is not fired again
    // (checked before anything is created).
    if let Some(f) = fire {
        if store::fire_recorded(tx, &def.name, f)? {
            return Ok(Fired::AlreadyFired);
        }
    }
    let mut run = Run {
        schedule: def.name.clone(),
        fire_time: fire,
        status: String::new(),
        reason: None,
        job_id: None,
        period: def.range.period(def.tz, at),
        at: now,
    };
    let outcome = prepare_job(svc, tx, def, fire, run.period);
    let fired = match outcome {
        Ok(new) => match create_in(tx, &new, None, now) {
            Ok(out) => {
                let job = out.job().clone();
                if let Some(template) = &def.archive {
                    let (start, end) = run.period.unwrap_or((at, at));
                    let key = archive_key(
                        template,
                        &ArchiveValues {
                            organization: &def.organization,
                            name: &def.name,
                            job_id: &job.id,
                            ext: def.format.extension(),
                            tz: def.tz,
                            period_start: start,
                            period_end: end,
                            fire_time: at,
                        },
                    );
                    tx.execute(
                        "UPDATE export_jobs SET archive_key = ? WHERE id = ?",
                        rusqlite::params![key, job.id],
                    )?;
                }
                // What every export records (redaction, profile, fields,
                // zone included), and which fire of which schedule it is.
                let mut details = crate::service::export_details_of(
                    job.filters_value(),
                    job.format,
                    &job.options,
                    job.estimated_count,
                    Some(&job.id),
                );
                let fire_details = json!({
                    "schedule": def.name,
                    "fire_time": fire.map(crate::time::format_rfc3339_ms),
                    "manual": fire.is_none(),
                    "requested_by": by.map(|r| r.key()),
                    "period": run.period.map(|(a, b)| json!({
                        "start": crate::time::format_rfc3339_ms(a),
                        "end": crate::time::format_rfc3339_ms(b),
                    })),
                });
                if let (Some(all), Value::Object(more)) = (details.as_object_mut(), fire_details) {
                    all.extend(more);
                }
                crate::audit::trail::record_in(
                    tx,
                    &OwnEvent {
                        org: &def.organization,
                        action: "audit_log.exported",
                        actor: &crate::service::actor(&requester(&def.name)),
                        target_id: &job.id,
                        client: &Client::default(),
                        details: &details,
                    },
                    now,
                )?;
                Fired::Enqueued(Box::new(job))
            }
            Err(JobError::DuplicateExport { id, .. }) if fire.is_some() => Fired::Skipped(format!(
                "an identical export of this schedule is still in progress (job {id})"
            )),
            Err(e @ JobError::DuplicateExport { .. }) => return Err(e.into()),
            Err(JobError::Db(e)) => return Err(e.into()),
            Err(e) => Fired::Failed(e.to_string()),
        },
        Err(reason) => Fired::Failed(reason),
    };
    run.status = fired.status().as_str().into();
    match &fired {
        Fired::Enqueued(job) => run.job_id = Some(job.id.clone()),
        Fired::Skipped(r) | Fired::Failed(r) => run.reason = Some(r.clone()),
        Fired::AlreadyFired => {}
    }
    store::insert_run(tx, &run)?;
    if let Fired::Failed(reason) = &fired {
        tracing::warn!(schedule = %def.name, fire = ?fire, %reason, "scheduled export could not be enqueued");
    }
    Ok(fired)
}

/// The job a fire enqueues, or why it cannot.
fn prepare_job(
    svc: &Service,
    tx: &Connection,
    def: &ScheduleDef,
    fire: Option<i64>,
    period: Option<(i64, i64)>,
) -> Result<NewJob, String> {
    let (start, end) = period.ok_or("the range has no period at this fire time")?;
    let filters = with_period(&def.filters, &def.organization, start, end)
        .validate(&svc.cfg.limits())
        .map_err(|e| format!("filters: {} [{}]", e.message, e.code.as_str()))?;
    let recipients =
        crate::notify::recipients::check(tx, &svc.cfg.notify, &def.organization, &def.recipients)
            .map_err(|e| format!("recipients: {e}"))?;
    let estimated = crate::audit::query::count(tx, &filters).map_err(|e| e.to_string())?;
    Ok(NewJob {
        requester: requester(&def.name).key(),
        filters,
        format: def.format,
        options: def.options.clone(),
        compress: def.compress.unwrap_or(svc.cfg.jobs.compress),
        max_attempts: svc.cfg.jobs.max_attempts,
        estimated_count: Some(estimated),
        schedule_id: Some(def.name.clone()),
        fire_time: fire,
        recipients,
        restart: false,
        archive_key: None,
    })
}

/// `schedules run NAME`: enqueues now, the range computed as if it fired
/// at this instant, the job marked manual (no fire time).
pub fn run_now(
    svc: &Service,
    conn: &mut Connection,
    def: &ScheduleDef,
    by: &Requester,
) -> Result<Job, ServiceError> {
    let now = svc.now_ms();
    let tx = crate::db::immediate(conn)?;
    match enqueue_fire(svc, &tx, def, None, now, Some(by))? {
        Fired::Enqueued(job) => {
            tx.commit()?;
            svc.runner.wake.notify_one();
            Ok(*job)
        }
        Fired::Failed(reason) | Fired::Skipped(reason) => {
            tx.commit()?;
            Err(ServiceError::invalid("schedule_failed", "schedule", reason))
        }
        Fired::AlreadyFired => Err(ServiceError::invalid(
            "schedule_failed",
            "schedule",
            "this run was recorded twice",
        )),
    }
}
