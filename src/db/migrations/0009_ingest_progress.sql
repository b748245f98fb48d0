-- File ingests remember how far they got; HTTP ingests remember their
-- Idempotency-Key answers.
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
