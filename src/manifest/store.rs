//! The manifests kept in the database, one chain per organization: the
//! chain outlives the files' clean-up. A manifest is inserted in the
//! transaction of its job's final transition, only if it links to the
//! organization's latest manifest (compare-and-set on the sequence), so
//! two jobs completing at the same moment still make a linear chain.

use rusqlite::{params, Connection, OptionalExtension};

use super::document::Signed;

/// The organization's latest manifest: (sequence, SHA-256 of its document).
pub fn latest(conn: &Connection, org: &str) -> rusqlite::Result<Option<(u64, String)>> {
    conn.prepare_cached(
        "SELECT sequence, sha256 FROM manifests WHERE organization_id = ? ORDER BY sequence DESC LIMIT 1",
    )?
    .query_row([org], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

/// Inserts `signed` for `job_id` if it extends the chain as it stands;
/// `false` if another manifest got there first (the caller rebuilds).
pub fn insert_if_next(
    tx: &Connection,
    signed: &Signed,
    job_id: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    let m = &signed.manifest;
    let expected = m.previous.as_ref().map(|p| (p.sequence, p.sha256.clone()));
    if latest(tx, &m.organization)? != expected {
        return Ok(false);
    }
    tx.prepare_cached(
        "INSERT INTO manifests (organization_id, sequence, job_id, sha256, key_id, document, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        m.organization,
        m.sequence,
        job_id,
        signed.sha256(),
        m.key_id,
        signed.document(),
        now
    ])?;
    Ok(true)
}

/// One stored manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Position in the organization's chain, from 1.
    pub sequence: u64,
    /// The export job it describes.
    pub job_id: String,
    /// SHA-256 (hex) of the document, what the next manifest links to.
    pub sha256: String,
    /// Id of the key that signed it.
    pub key_id: String,
    /// The signed document, canonical JSON.
    pub document: String,
    /// When it was stored (ms since the Unix epoch).
    pub created_at: i64,
}

fn stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        sequence: r.get(0)?,
        job_id: r.get(1)?,
        sha256: r.get(2)?,
        key_id: r.get(3)?,
        document: r.get(4)?,
        created_at: r.get(5)?,
    })
}

/// The organization's manifests after sequence `after`, oldest first.
pub fn list(conn: &Connection, org: &str, after: u64, limit: u32) -> rusqlite::Result<Vec<Stored>> {
    let mut st = conn.prepare_cached(
        "SELECT sequence, job_id, sha256, key_id, document, created_at FROM manifests \
         WHERE organization_id = ? AND sequence > ? ORDER BY sequence LIMIT ?",
    )?;
    let rows = st.query_map(params![org, after, limit], stored)?;
    rows.collect()
}

/// The manifest of a job, if it has one.
pub fn for_job(conn: &Connection, job_id: &str) -> rusqlite::Result<Option<Stored>> {
    conn.prepare_cached(
        "SELECT sequence, job_id, sha256, key_id, document, created_at FROM manifests WHERE job_id = ?",
    )?
    .query_row([job_id], stored)
    .optional()
}
