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

