-- Databases created by the notifications release (schema v4 before the
-- claim_token fix) have an email_outbox without claim_token: the outbox
-- applied `IF NOT EXISTS` then, so the added column never reached them and
-- delivery failed on it. Run only when the column is missing; the table is
-- rebuilt (rather than ALTER TABLE ADD COLUMN, which appends at the end)
-- so an upgraded database has exactly the layout of a new one.
ALTER TABLE email_outbox RENAME TO email_outbox_v4;
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
INSERT INTO email_outbox (id, recipient, kind, job_id, payload, subject, body_text, body_html,
                          attempts, next_attempt_at, sent_at, last_error, created_at)
    SELECT id, recipient, kind, job_id, payload, subject, body_text, body_html,
           attempts, next_attempt_at, sent_at, last_error, created_at
    FROM email_outbox_v4;
DROP TABLE email_outbox_v4;
CREATE INDEX IF NOT EXISTS email_outbox_due ON email_outbox (next_attempt_at) WHERE sent_at IS NULL;
