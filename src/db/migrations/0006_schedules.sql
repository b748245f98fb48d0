-- Scheduled exports (workflows/*.toml): how far each schedule has been
-- considered, so a restart knows which fires it missed.
CREATE TABLE IF NOT EXISTS schedule_state (
    name       TEXT    PRIMARY KEY,
    last_fire  INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- Every fire of a schedule: enqueued (with its job, in the same
-- transaction), skipped (missed while down, or an identical export still in
-- progress) or failed (could not enqueue). A manual run has no fire_time.
CREATE TABLE IF NOT EXISTS schedule_runs (
    id           INTEGER PRIMARY KEY,
    schedule     TEXT    NOT NULL,
    fire_time    INTEGER,
    status       TEXT    NOT NULL CHECK (status IN ('enqueued', 'skipped', 'failed')),
    reason       TEXT,
    job_id       TEXT,
    period_start INTEGER,
    period_end   INTEGER,
    at           INTEGER NOT NULL
) STRICT;
-- Exactly once per (schedule, fire time), across restarts and processes.
CREATE UNIQUE INDEX IF NOT EXISTS schedule_runs_fire
    ON schedule_runs (schedule, fire_time)
    WHERE fire_time IS NOT NULL;
CREATE INDEX IF NOT EXISTS schedule_runs_recent ON schedule_runs (schedule, id);

ALTER TABLE export_jobs ADD COLUMN archive_key TEXT;
