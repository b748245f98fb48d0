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

