//! The SQL of scheduled exports: each schedule's progress
//! (`schedule_state`) and its fires (`schedule_runs`, unique per
//! schedule and fire time).

use rusqlite::{params, Connection, OptionalExtension};

/// How a fire ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// A job was queued.
    Enqueued,
    /// Not run: missed while down, or an identical export still in progress.
    Skipped,
    /// No job could be queued.
    Failed,
}

impl RunStatus {
    /// The status as stored in `schedule_runs.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Enqueued => "enqueued",
            RunStatus::Skipped => "skipped",
            RunStatus::Failed => "failed",
        }
    }
}

/// One fire of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The schedule's name.
    pub schedule: String,
    /// `None` for a manual run.
    pub fire_time: Option<i64>,
    /// `enqueued`, `skipped` or `failed` (see [`RunStatus`]).
    pub status: String,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// The job queued, if one was.
    pub job_id: Option<String>,
    /// The exported period `[start, end)` in ms, if it could be computed.
    pub period: Option<(i64, i64)>,
    /// When the fire was handled (ms since the Unix epoch).
    pub at: i64,
}

/// The last fire time considered for `name`, if the schedule was seen.
pub fn last_fire(conn: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT last_fire FROM schedule_state WHERE name = ?")?
        .query_row([name], |r| r.get(0))
        .optional()
}

/// Records that `name` has been considered up to `last_fire`.
pub fn set_last_fire(
    conn: &Connection,
    name: &str,
    last_fire: i64,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO schedule_state (name, last_fire, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET last_fire = max(last_fire, ?2), updated_at = ?3",
    )?
    .execute(params![name, last_fire, now])?;
    Ok(())
}

/// Records a fire; `false` if this (schedule, fire time) is already
/// recorded (another process, or an earlier run, got there first).
pub fn insert_run(conn: &Connection, run: &Run) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT INTO schedule_runs (schedule, fire_time, status, reason, job_id, period_start, period_end, at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            run.schedule,
            run.fire_time,
            run.status,
            run.reason,
            run.job_id,
            run.period.map(|p| p.0),
            run.period.map(|p| p.1),
            run.at
        ])?;
    Ok(n == 1)
}

/// Whether the fire of `name` at `fire_time` is recorded.
pub fn fire_recorded(conn: &Connection, name: &str, fire_time: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT count(*) FROM schedule_runs WHERE schedule = ? AND fire_time = ?")?
        .query_row(params![name, fire_time], |r| r.get::<_, i64>(0))
        .map(|n| n > 0)
}

/// The most recent fire of `name`, with its job's state if the job is
/// still kept.
pub fn last_run(conn: &Connection, name: &str) -> rusqlite::Result<Option<(Run, Option<String>)>> {
    conn.prepare_cached(
        "SELECT r.schedule, r.fire_time, r.status, r.reason, r.job_id, r.period_start, r.period_end, r.at, j.state \
         FROM schedule_runs r LEFT JOIN export_jobs j ON j.id = r.job_id \
         WHERE r.schedule = ? ORDER BY r.id DESC LIMIT 1",
    )?
    .query_row([name], |r| {
        let period = match (r.get::<_, Option<i64>>(5)?, r.get::<_, Option<i64>>(6)?) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        };
        Ok((
            Run {
                schedule: r.get(0)?,
                fire_time: r.get(1)?,
                status: r.get(2)?,
                reason: r.get(3)?,
                job_id: r.get(4)?,
                period,
                at: r.get(7)?,
            },
            r.get(8)?,
        ))
    })
    .optional()
}

/// Per schedule: (enqueued, skipped, failed) fires, plus its jobs that
/// ended failed or expired (while kept).
pub fn counts(conn: &Connection) -> rusqlite::Result<Vec<(String, [i64; 3], i64)>> {
    let mut st = conn.prepare_cached(
        "SELECT s.schedule, \
           sum(s.status = 'enqueued'), sum(s.status = 'skipped'), sum(s.status = 'failed'), \
           (SELECT count(*) FROM export_jobs j WHERE j.schedule_id = s.schedule AND j.state IN ('failed', 'expired')) \
         FROM schedule_runs s GROUP BY s.schedule ORDER BY s.schedule",
    )?;
    let rows = st.query_map([], |r| {
        Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?], r.get(4)?))
    })?;
    rows.collect()
}
