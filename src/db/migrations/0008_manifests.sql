-- Signed export manifests, and the first exported row of a job.
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
ALTER TABLE export_jobs ADD COLUMN first_occurred_at INTEGER;
ALTER TABLE export_jobs ADD COLUMN first_id INTEGER;
