//! Users and API tokens: who may call the API, in which organization, with
//! which role. Tokens are random, shown once, and stored only as SHA-256.
//!
//! This module decides nothing about what a role may do (that is `http`);
//! it only stores and looks up.

use rusqlite::{params, Connection, OptionalExtension};

crate::util::text_enum! {
    /// What a user may do: admin and compliance export and view; viewer views.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
    pub enum Role ("role") {
        // Variant docs as `#[doc = concat!(..)]`: clap ignores them there, while
        // a `///` would become the value's help and change the `--help` output.
        #[doc = concat!(
            "Everything in the organization: ingest, exports (also unredacted), ",
            "every job, schedules."
        )]
        Admin = "admin",
        #[doc = concat!("Views and exports (redacted only); sees only the jobs they requested.")]
        Compliance = "compliance",
        #[doc = concat!("Views audit logs; may not export them.")]
        Viewer = "viewer",
    }
}

impl Role {
    /// May request exports (and see their own jobs).
    pub fn can_export(self) -> bool {
        matches!(self, Role::Admin | Role::Compliance)
    }
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id; jobs record the user as `user:<id>`.
    pub id: i64,
    /// The one organization the user sees and acts in.
    pub organization_id: String,
    /// E-mail address, trimmed and lower-cased; unique in the organization.
    pub email: String,
    /// Display name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// Whether the address is verified: only a verified address gets export
    /// e-mails by default, or may be named as a recipient outside the
    /// allowed recipient domains.
    pub email_verified: bool,
}

impl User {
    /// The requester name jobs record for this user.
    pub fn requester(&self) -> String {
        format!("user:{}", self.id)
    }
}

/// Who asks for an export, a job change or an ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// A user: scoped to their organization, bound by their role.
    User(User),
    /// The operator or the application itself: the CLI (`cli` or another
    /// label), a schedule (`schedule:<name>`), a host embedding the
    /// engine. Trusted with every organization.
    System(String),
}

impl Requester {
    /// The name jobs record (`export_jobs.requester`): `user:<id>` or the
    /// label.
    pub fn key(&self) -> String {
        match self {
            Requester::User(u) => u.requester(),
            Requester::System(label) => label.clone(),
        }
    }

    /// The user, if a user asks.
    pub fn user(&self) -> Option<&User> {
        match self {
            Requester::User(u) => Some(u),
            Requester::System(_) => None,
        }
    }
}

/// The user id in a stored requester name (`user:<id>`), if it names one.
pub fn user_id_of(requester: &str) -> Option<i64> {
    requester
        .strip_prefix("user:")
        .and_then(|s| s.parse::<i64>().ok())
}

/// Why a user or token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The organization already has a user with this e-mail address.
    #[error("a user {email} already exists in organization {org}")]
    Exists {
        /// The organization.
        org: String,
        /// The address, normalized.
        email: String,
    },
    /// Bad input (empty organization, not an e-mail address); names the flag.
    #[error("{0}")]
    Invalid(String),
    /// No such user or token.
    #[error("no such user or token")]
    NotFound,
    /// SQLite refused a read or a write.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get("role")?;
    Ok(User {
        id: r.get("id")?,
        organization_id: r.get("organization_id")?,
        email: r.get("email")?,
        name: r.get("name")?,
        role: role.parse().map_err(|e: crate::util::UnknownName| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })?,
        email_verified: r.get("email_verified")?,
    })
}

/// SHA-256 hex of a token: the only form stored.
pub fn token_hash(token: &str) -> String {
    crate::util::sha256_hex(token.as_bytes())
}

/// A fresh token: `ae_` + 32 random bytes in hex.
fn new_token() -> String {
    let mut b = [0u8; 32];
    crate::util::random_bytes(&mut b);
    format!("ae_{}", crate::util::hex(&b))
}

/// Adds a user and returns it with a new token (shown once).
pub fn add_user(
    conn: &Connection,
    org: &str,
    email: &str,
    name: &str,
    role: Role,
    verified: bool,
    now: i64,
) -> Result<(User, String), UserError> {
    let (org, email, name) = (org.trim(), email.trim().to_ascii_lowercase(), name.trim());
    if org.is_empty() {
        return Err(UserError::Invalid("--org: must not be empty".into()));
    }
    let at = email.find('@');
    if !matches!(at, Some(i) if i > 0 && i + 1 < email.len())
        || email.chars().any(char::is_whitespace)
    {
        return Err(UserError::Invalid(format!(
            "--email: {email:?} is not an e-mail address"
        )));
    }
    let inserted = conn.execute(
        "INSERT INTO users (organization_id, email, name, role, email_verified, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        params![org, email, name, role.as_str(), verified, now],
    );
    match inserted {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Err(UserError::Exists {
                org: org.into(),
                email,
            })
        }
        r => r?,
    };
    let id = conn.last_insert_rowid();
    let token = issue_token(conn, id, now)?;
    let user = get_user(conn, id)?.ok_or(UserError::NotFound)?;
    Ok((user, token))
}

/// Issues another token for a user.
pub fn issue_token(conn: &Connection, user_id: i64, now: i64) -> Result<String, UserError> {
    let token = new_token();
    conn.execute(
        "INSERT INTO api_tokens (user_id, token_sha256, prefix, created_at) VALUES (?, ?, ?, ?)",
        params![user_id, token_hash(&token), &token[..10], now],
    )?;
    Ok(token)
}

/// The user with this id, if any.
pub fn get_user(conn: &Connection, id: i64) -> Result<Option<User>, UserError> {
    Ok(conn
        .prepare_cached("SELECT * FROM users WHERE id = ?")?
        .query_row([id], user_from_row)
        .optional()?)
}

/// The user of an organization with this e-mail (case-insensitive).
pub fn find_by_email(conn: &Connection, org: &str, email: &str) -> Result<Option<User>, UserError> {
    Ok(conn
        .prepare_cached("SELECT * FROM users WHERE organization_id = ? AND email = lower(?)")?
        .query_row(params![org, email.trim()], user_from_row)
        .optional()?)
}

/// The user a (not revoked) token belongs to.
pub fn authenticate(conn: &Connection, token: &str) -> Result<Option<User>, UserError> {
    Ok(conn
        .prepare_cached(
            "SELECT u.* FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_sha256 = ? AND t.revoked_at IS NULL",
        )?
        .query_row([token_hash(token)], user_from_row)
        .optional()?)
}

/// (id, name, e-mail) of one organization's users (actor names in
/// readable exports).
pub fn directory(conn: &Connection, org: &str) -> rusqlite::Result<Vec<(i64, String, String)>> {
    let mut st =
        conn.prepare_cached("SELECT id, name, email FROM users WHERE organization_id = ?")?;
    let rows = st.query_map([org], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// Users, optionally of one organization.
pub fn list_users(conn: &Connection, org: Option<&str>) -> Result<Vec<User>, UserError> {
    let mut st = conn.prepare("SELECT * FROM users WHERE ?1 IS NULL OR organization_id = ?1 ORDER BY organization_id, email")?;
    let rows = st.query_map([org], user_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Marks a user's e-mail address verified (or not); returns the updated user.
///
/// Verification itself (a mail round trip) happens outside this tool; this records its outcome.
pub fn set_email_verified(
    conn: &Connection,
    org: &str,
    email: &str,
    verified: bool,
) -> Result<User, UserError> {
    let user = find_by_email(conn, org, email)?.ok_or(UserError::NotFound)?;
    conn.execute(
        "UPDATE users SET email_verified = ? WHERE id = ?",
        params![verified, user.id],
    )?;
    get_user(conn, user.id)?.ok_or(UserError::NotFound)
}

/// Revokes one token (given in full); returns how many were revoked.
pub fn revoke_token(conn: &Connection, token: &str, now: i64) -> Result<usize, UserError> {
    Ok(conn.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE token_sha256 = ? AND revoked_at IS NULL",
        params![now, token_hash(token)],
    )?)
}

/// Revokes every token of a user.
pub fn revoke_user_tokens(
    conn: &Connection,
    org: &str,
    email: &str,
    now: i64,
) -> Result<usize, UserError> {
    let user = find_by_email(conn, org, email)?.ok_or(UserError::NotFound)?;
    Ok(conn.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        params![now, user.id],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_until_revoked_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open_data_dir(dir.path()).unwrap();
        let (u, token) = add_user(
            &conn,
            "acme",
            "Ada@Acme.example",
            "Ada",
            Role::Admin,
            true,
            1,
        )
        .unwrap();
        assert_eq!(u.email, "ada@acme.example");
        assert_eq!(authenticate(&conn, &token).unwrap().unwrap().id, u.id);
        assert!(authenticate(&conn, "ae_wrong").unwrap().is_none());
        let stored: String = conn
            .query_row("SELECT token_sha256 FROM api_tokens", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, token);
        assert!(matches!(
            add_user(
                &conn,
                "acme",
                "ada@acme.example",
                "Ada",
                Role::Viewer,
                true,
                2
            ),
            Err(UserError::Exists { .. })
        ));
        assert_eq!(revoke_token(&conn, &token, 3).unwrap(), 1);
        assert!(authenticate(&conn, &token).unwrap().is_none());
        assert!(matches!(
            add_user(&conn, "acme", "nope", "X", Role::Viewer, true, 4),
            Err(UserError::Invalid(_))
        ));
    }
}
