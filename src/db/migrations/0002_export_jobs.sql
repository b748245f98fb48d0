-- A durable export job: a persisted state machine (see src/jobs/state.rs).
--   exporting  — the scheduler's worker writes the spool; leaves it for
--                uploading (spool complete), completed (no rows), failed
--                (attempts exhausted / cancelled) or expired (clean-up cron).
--   uploading  — the worker zips and stores the spool; leaves it for
--                completed, failed or expired.
--   completed | failed | expired — final; the clean-up cron deletes them
--                after the download window / retention.
-- Every write of a running job is fenced by lease_token: a worker whose
-- lease was taken over matches no row and stops.
CREATE TABLE IF NOT EXISTS export_jobs (
    id                TEXT    PRIMARY KEY,
    organization_id   TEXT    NOT NULL,
    requester         TEXT    NOT NULL,
    filters           TEXT    NOT NULL CHECK (json_valid(filters)),
    filter_hash       TEXT    NOT NULL,
    format            TEXT    NOT NULL CHECK (format IN ('csv', 'json', 'jsonl')),
    csv_bom           INTEGER NOT NULL DEFAULT 1 CHECK (csv_bom IN (0, 1)),
    csv_formula_guard INTEGER NOT NULL DEFAULT 1 CHECK (csv_formula_guard IN (0, 1)),
    compress          TEXT    NOT NULL DEFAULT 'auto' CHECK (compress IN ('auto', 'always', 'never')),
    state             TEXT    NOT NULL CHECK (state IN ('exporting', 'uploading', 'completed', 'failed', 'expired')),
    attempt           INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    max_attempts      INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    next_attempt_at   INTEGER NOT NULL,
    lease_owner       TEXT,
    lease_token       TEXT,
    lease_expires_at  INTEGER,
    -- Checkpoint: what is durable in the spool file.
    last_occurred_at  INTEGER,
    last_id           INTEGER,
    exported_count    INTEGER NOT NULL DEFAULT 0,
    spool_bytes       INTEGER NOT NULL DEFAULT 0,
    estimated_count   INTEGER,
    restart_requested INTEGER NOT NULL DEFAULT 0 CHECK (restart_requested IN (0, 1)),
    cancel_requested  INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    error_code        TEXT,
    error_message     TEXT,
    record_count      INTEGER,
    file_key          TEXT,
    file_name         TEXT,
    file_size         INTEGER,
    file_sha256       TEXT,
    file_compressed   INTEGER CHECK (file_compressed IN (0, 1)),
    schedule_id       TEXT,
    fire_time         INTEGER,
    recipients        TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(recipients)),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    started_at        INTEGER,
    completed_at      INTEGER,
    -- Final states, and only they, carry a completion time.
    CHECK ((state IN ('completed', 'failed', 'expired')) = (completed_at IS NOT NULL)),
    -- A checkpoint names a row, or nothing at all.
    CHECK ((last_id IS NULL) = (last_occurred_at IS NULL))
) STRICT;

-- At most one in-progress job per requester, filter set and format: a
-- second request is a DuplicateExport, enforced here, not by check-then-insert.
CREATE UNIQUE INDEX IF NOT EXISTS export_jobs_one_in_progress
    ON export_jobs (requester, filter_hash, format)
    WHERE state IN ('exporting', 'uploading');

-- A scheduled export fires once per (schedule, fire time).
CREATE UNIQUE INDEX IF NOT EXISTS export_jobs_schedule_fire
    ON export_jobs (schedule_id, fire_time)
    WHERE schedule_id IS NOT NULL;

-- The scheduler's claim query: runnable jobs by due time.
CREATE INDEX IF NOT EXISTS export_jobs_runnable
    ON export_jobs (next_attempt_at)
    WHERE state IN ('exporting', 'uploading');

CREATE INDEX IF NOT EXISTS export_jobs_requester
    ON export_jobs (organization_id, requester, created_at);

-- Every state change of a job, written in the same transaction as the
-- change: the job's own history (who moved it, when, why).
CREATE TABLE IF NOT EXISTS export_job_transitions (
    id         INTEGER PRIMARY KEY,
    job_id     TEXT    NOT NULL,
    from_state TEXT,
    to_state   TEXT    NOT NULL,
    event      TEXT    NOT NULL,
    owner      TEXT,
    at         INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS export_job_transitions_job
    ON export_job_transitions (job_id, id);

