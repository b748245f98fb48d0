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

