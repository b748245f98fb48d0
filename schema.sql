-- audit-export database schema: the single source of truth.
--
-- The complete current schema: applied whole to a new database. The
-- user_version pragma at the end records the schema version; an existing
-- database at an older version is brought here by the numbered steps in
-- src/db/migrate.rs (src/db/migrations/), after a backup. Every change to
-- this file also adds such a step; tests/migrations.rs checks that
-- upgrading a database of every earlier version yields exactly this schema.
--
-- Conventions: times are INTEGER milliseconds since the Unix epoch (UTC);
-- JSON columns hold compact JSON text, validated on the way in.

-- One audit event. `id` is the rowid: the tie-breaker of the keyset cursor
-- (occurred_at, id) used by every scan, so it must never be reused
-- (AUTOINCREMENT guarantees that even after deletes).
CREATE TABLE IF NOT EXISTS audit_logs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT    NOT NULL CHECK (length(organization_id) > 0),
    occurred_at     INTEGER NOT NULL,
    stream          TEXT    NOT NULL CHECK (length(stream) > 0),
    action          TEXT    NOT NULL CHECK (length(action) > 0),
    actor_type      TEXT,
    actor_id        TEXT,
    actor_name      TEXT,
    actor_email     TEXT,
    target_type     TEXT,
    target_id       TEXT,
    target_name     TEXT,
    ip_address      TEXT,
    user_agent      TEXT,
    request_id      TEXT,
    changed_data    TEXT CHECK (changed_data IS NULL OR json_valid(changed_data)),
    details         TEXT CHECK (details IS NULL OR json_valid(details))
) STRICT;

-- The export scan: one organization, a time range, in (occurred_at, id)
-- order. Every export and the view API walk this index.
--
-- Deliberately no per-actor/per-action indexes: a keyset page must come
-- out of the index already in (occurred_at, id) order. An index on actor
-- or action would tempt the planner into sorting every remaining match for
-- each page (quadratic on large exports); the query pins this index with
-- INDEXED BY, so a filtered export costs at most one pass over the range.
CREATE INDEX IF NOT EXISTS audit_logs_org_time
    ON audit_logs (organization_id, occurred_at, id);

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
    record_count      INTEGER,          -- records exported, set when the export step finishes; NULL once failed/expired
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
    -- A scheduled export's extra copy, kept outside the download window
    -- (the schedule's `archive` template, filled in at the fire).
    archive_key       TEXT,
    -- How the file is written beyond format and the csv_* columns (JSON:
    -- CSV profile and fields, time zone, redaction); NULL: the defaults.
    options           TEXT CHECK (options IS NULL OR json_valid(options)),
    -- The first row written to the spool (the manifest names the first and
    -- last event exported; the last is the checkpoint above).
    first_occurred_at INTEGER,
    first_id          INTEGER,
    -- Final states, and only they, carry a completion time.
    CHECK ((state IN ('completed', 'failed', 'expired')) = (completed_at IS NOT NULL)),
    -- A checkpoint names a row, or nothing at all.
    CHECK ((last_id IS NULL) = (last_occurred_at IS NULL))
) STRICT;

-- At most one in-progress job per requester, filter set and format: a
-- second request is a DuplicateExport, enforced here, not by check-then-insert.
-- filter_hash is the export's identity: the filters' hash, mixed with the
-- export options when those are not the defaults (jobs::store::create::identity).
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

-- People who may use the API. Role decides what they may do; the
-- organization scopes everything they see. Users added by an administrator
-- count as e-mail-verified unless added with --unverified.
CREATE TABLE IF NOT EXISTS users (
    id              INTEGER PRIMARY KEY,
    organization_id TEXT    NOT NULL CHECK (length(organization_id) > 0),
    email           TEXT    NOT NULL CHECK (email LIKE '%_@_%'),
    name            TEXT    NOT NULL,
    role            TEXT    NOT NULL CHECK (role IN ('admin', 'compliance', 'viewer')),
    email_verified  INTEGER NOT NULL DEFAULT 1 CHECK (email_verified IN (0, 1)),
    created_at      INTEGER NOT NULL,
    UNIQUE (organization_id, email)
) STRICT;

-- API tokens: only the SHA-256 of a token is stored, so a database leak
-- does not leak working credentials.
CREATE TABLE IF NOT EXISTS api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_sha256 TEXT    NOT NULL UNIQUE,
    prefix       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS api_tokens_user ON api_tokens (user_id);

-- In-app notices about a user's exports. Written in the same transaction
-- as the job's final state change, so a notice exists exactly when the
-- job reached its end.
CREATE TABLE IF NOT EXISTS notifications (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL CHECK (kind IN ('export_completed', 'export_failed', 'export_expired', 'export_no_results')),
    job_id     TEXT    NOT NULL,
    payload    TEXT    NOT NULL CHECK (json_valid(payload)),
    created_at INTEGER NOT NULL,
    read_at    INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS notifications_user ON notifications (user_id, read_at, id);

-- The transactional e-mail outbox: rows are written with the job's final
-- transition; the delivery loop renders (subject, bodies) and sends them,
-- retrying with backoff (without limit, at most hourly). sent_at marks
-- delivery. A row is claimed for one send with a fresh claim_token and a
-- next_attempt_at beyond the send's hard time limit; the result is written
-- only under that token, so two processes never send the same row at once.
CREATE TABLE IF NOT EXISTS email_outbox (
    id              INTEGER PRIMARY KEY,
    recipient       TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    job_id          TEXT    NOT NULL,
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    subject         TEXT,
    body_text       TEXT,
    body_html       TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT,
    claim_token     TEXT,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS email_outbox_due ON email_outbox (next_attempt_at) WHERE sent_at IS NULL;

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

-- Signed export manifests (src/manifest/), one chain per organization:
-- kept after the files are cleaned up. A manifest is inserted with its
-- job's final transition, only as the next of its organization's chain.
CREATE TABLE IF NOT EXISTS manifests (
    organization_id TEXT    NOT NULL,
    sequence        INTEGER NOT NULL CHECK (sequence >= 1),
    job_id          TEXT    NOT NULL UNIQUE,
    sha256          TEXT    NOT NULL,
    key_id          TEXT    NOT NULL,
    document        TEXT    NOT NULL CHECK (json_valid(document)),
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (organization_id, sequence)
) STRICT;

-- File ingests (`audit-export ingest`), by content: how far each got.
-- Every batch of events commits with its progress, so a re-run of an
-- interrupted file resumes after last_line, and a completed file is not
-- ingested twice, whether or not its events carry ids.
CREATE TABLE IF NOT EXISTS ingest_files (
    sha256       TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    last_line    INTEGER NOT NULL DEFAULT 0,
    inserted     INTEGER NOT NULL DEFAULT 0,
    unchanged    INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    started_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    completed_at INTEGER
) STRICT;

-- HTTP ingests sent with an Idempotency-Key: the first answer, replayed to
-- a retry with the same body (stored with the events it inserted, in one
-- transaction); a different body under the same key is a conflict. Kept
-- for a day.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    user_id        INTEGER NOT NULL,
    key            TEXT    NOT NULL,
    request_sha256 TEXT    NOT NULL,
    status         INTEGER NOT NULL,
    response       TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
) STRICT;
CREATE INDEX IF NOT EXISTS idempotency_keys_age ON idempotency_keys (created_at);

PRAGMA user_version = 9;
