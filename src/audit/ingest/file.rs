//! Ingesting one file: its identity, the validation pass, the insert pass
//! and the progress kept per file (see the parent module's docs). It must
//! never insert anything from a file with an invalid line unless the
//! caller allows skipping.

use std::path::Path;
use std::thread::ScopedJoinHandle;

use rusqlite::{params, Connection, OptionalExtension};

use super::dedup::{Checked, Checker};
use super::packed::Packed;
use super::{
    for_each_event, AlreadyIngested, IngestError, IngestOptions, IngestReport, LineError,
    INSERT_BATCH, MAX_REPORTED_ERRORS,
};
use crate::audit::insert::insert_rows;
use crate::db::checkpointer::Checkpointer;

/// How far earlier runs of a file got.
struct Progress {
    last_line: u64,
    completed_at: Option<i64>,
    inserted: u64,
    name: String,
}

fn progress(conn: &Connection, sha256: &str) -> rusqlite::Result<Option<Progress>> {
    conn.query_row(
        "SELECT last_line, completed_at, inserted, name FROM ingest_files WHERE sha256 = ?",
        [sha256],
        |r| {
            Ok(Progress {
                last_line: r.get(0)?,
                completed_at: r.get(1)?,
                inserted: r.get(2)?,
                name: r.get(3)?,
            })
        },
    )
    .optional()
}

/// One batch and the progress it brings, committed together.
struct Step<'a> {
    sha256: &'a str,
    name: &'a str,
    size: u64,
    last_line: u64,
    unchanged: u64,
    skipped: u64,
    now: i64,
    done: bool,
}

/// Moves AUTOINCREMENT past every explicit id of the file, so that an
/// id-less event inserted before a later explicit one can never be given
/// that id (the explicit event would then be lost to `ON CONFLICT`).
fn reserve_ids(tx: &Connection, up_to: i64) -> rusqlite::Result<()> {
    if up_to == 0 {
        return Ok(());
    }
    let raised = tx.execute(
        "UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'audit_logs'",
        [up_to],
    )?;
    if raised == 0 {
        tx.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('audit_logs', ?1)",
            [up_to],
        )?;
    }
    Ok(())
}

fn commit_batch(conn: &mut Connection, batch: &[Packed], s: &Step<'_>) -> rusqlite::Result<u64> {
    let tx = crate::db::immediate(conn)?;
    insert_rows(&tx, batch.iter().map(|ev| (ev.id(), ev.as_record())))?;
    let n = batch.len() as u64;
    tx.execute(
        "INSERT INTO ingest_files (sha256, name, size, last_line, inserted, unchanged, skipped, \
         started_at, updated_at, completed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9) \
         ON CONFLICT (sha256) DO UPDATE SET name = ?2, last_line = ?4, inserted = inserted + ?5, \
         unchanged = unchanged + ?6, skipped = skipped + ?7, updated_at = ?8, completed_at = ?9",
        params![
            s.sha256,
            s.name,
            s.size,
            s.last_line,
            n,
            s.unchanged,
            s.skipped,
            s.now,
            s.done.then_some(s.now)
        ],
    )?;
    tx.commit()?;
    Ok(n)
}

/// While inserting, the WAL starts over after this many batches (~35 MB
/// of WAL; see `Checkpointer`).
const WAL_RESTART_BATCHES: u32 = 12;

/// A batch commits early when its events keep this many parsed chunks'
/// texts alive (each up to ~1 MiB): a file whose events are mostly
/// skipped or already present would otherwise hold a whole chunk for each
/// of a batch's few new events, gigabytes for a batch of 5,000.
const MAX_TEXTS_HELD: usize = 16;

/// What the hashing thread answers: the file's SHA-256 and size.
type Hashed = std::io::Result<(String, u64)>;

/// A file's identity and how far earlier runs of it got.
struct Known {
    sha256: String,
    size: u64,
    earlier: Option<Progress>,
}

/// Ingests a whole file (see the module docs for the two passes and the
/// progress kept per file); `now` stamps the progress rows.
pub fn ingest_file(
    conn: &mut Connection,
    path: &Path,
    opts: IngestOptions,
    now: i64,
) -> Result<IngestReport, IngestError> {
    let read_err = |source| IngestError::Read {
        path: path.display().to_string(),
        source,
    };
    // Pass 1: validate everything, write nothing. The file's identity is
    // hashed on another thread meanwhile (it was a sequential read of the
    // whole file before pass 1); once known, a file ingested completely
    // before stops the pass.
    let mut invalid = 0u64;
    let mut errors = Vec::new();
    let mut checker = Checker::default();
    let mut known: Option<Known> = None;
    let mut stopped = false;
    let pass1 = std::thread::scope(|s| {
        let mut hashing = Some(s.spawn(|| crate::util::file_sha256(path)));
        let learn = |conn: &Connection, hashing: &mut Option<ScopedJoinHandle<'_, Hashed>>| {
            let Some(h) = hashing.take() else {
                return Ok(None);
            };
            let (sha256, size) = h
                .join()
                .expect("hashing does not panic")
                .map_err(read_err)?;
            let earlier = progress(conn, &sha256)?;
            Ok::<_, IngestError>(Some(Known {
                sha256,
                size,
                earlier,
            }))
        };
        let out = for_each_event(path, opts.format, |line, parsed| {
            if hashing.as_ref().is_some_and(|h| h.is_finished()) {
                known = learn(conn, &mut hashing)?;
                if known.as_ref().is_some_and(Known::completed) {
                    stopped = true;
                    return Err(IngestError::Read {
                        path: String::new(),
                        source: std::io::Error::other("ingested before"),
                    });
                }
            }
            let verdict = match parsed {
                Ok(ev) => checker.check(conn, ev)?,
                Err(e) => Err(e),
            };
            if let Err(error) = verdict {
                invalid += 1;
                if errors.len() < MAX_REPORTED_ERRORS {
                    errors.push(LineError { line, error });
                }
            }
            Ok(())
        });
        if hashing.is_some() {
            known = learn(conn, &mut hashing)?;
        }
        Ok::<_, IngestError>(out)
    })?;
    let Some(Known {
        sha256,
        size,
        earlier,
    }) = known
    else {
        // Learning the identity failed inside pass 1, which returned why.
        pass1?;
        return Err(IngestError::Read {
            path: path.display().to_string(),
            source: std::io::Error::other("the file's identity could not be read"),
        });
    };
    let mut report = IngestReport {
        sha256: sha256.clone(),
        ..Default::default()
    };
    if let Some(p) = &earlier {
        if let Some(at) = p.completed_at {
            report.already = Some(AlreadyIngested {
                at,
                inserted: p.inserted,
                name: p.name.clone(),
            });
            return Ok(report);
        }
    }
    debug_assert!(!stopped, "stopped only for a completed file");
    pass1?;
    let resume_after = earlier.as_ref().map_or(0, |p| p.last_line);
    report.resumed_after = (resume_after > 0).then_some(resume_after);
    report.errors = errors;
    if invalid > 0 && !opts.skip_invalid {
        return Err(IngestError::Invalid {
            invalid,
            errors: report.errors,
        });
    }

    // Pass 2: insert the valid events after the resume point, in batches
    // that each commit with the line they reach. WAL checkpoints run on
    // another thread meanwhile (see `Checkpointer`).
    let name = path.display().to_string();
    let mut step = Step {
        sha256: &sha256,
        name: &name,
        size,
        last_line: resume_after,
        unchanged: 0,
        skipped: 0,
        now,
        done: false,
    };
    // Before any insert, so that no id-less event — ours, or another
    // writer's in the meantime — is given one of the file's explicit ids.
    if checker.max_explicit > 0 {
        let tx = crate::db::immediate(conn)?;
        reserve_ids(&tx, checker.max_explicit)?;
        tx.commit()?;
    }
    let mut checker = Checker::default();
    let mut batch: Vec<Packed> = Vec::with_capacity(INSERT_BATCH);
    // Chunk texts the batch keeps alive (see MAX_TEXTS_HELD).
    let mut texts_held = 0usize;
    let (mut inserted, mut unchanged, mut skipped) = (0u64, 0u64, 0u64);
    let side = Checkpointer::start(conn, WAL_RESTART_BATCHES);
    let pass2 = for_each_event(path, opts.format, |line, parsed| {
        if line <= resume_after {
            return Ok(());
        }
        step.last_line = line;
        match parsed {
            Err(_) => step.skipped += 1,
            Ok(ev) => match checker.check(conn, ev)? {
                Ok(Checked::New(ev)) => {
                    if !batch.last().is_some_and(|last| last.shares_text(&ev)) {
                        texts_held += 1;
                    }
                    batch.push(ev);
                }
                Ok(Checked::Unchanged) => step.unchanged += 1,
                Err(_) => step.skipped += 1,
            },
        }
        if batch.len() >= INSERT_BATCH || texts_held >= MAX_TEXTS_HELD {
            texts_held = 0;
            inserted += commit_batch(conn, &batch, &step)?;
            if let Some(side) = &side {
                side.committed(conn);
            }
            checker.committed();
            (unchanged, skipped) = (unchanged + step.unchanged, skipped + step.skipped);
            (step.unchanged, step.skipped) = (0, 0);
            batch.clear();
        }
        Ok(())
    });
    if let Some(side) = side {
        side.finish(conn);
    }
    pass2?;
    step.done = true;
    inserted += commit_batch(conn, &batch, &step)?;
    report.inserted = inserted;
    report.unchanged = unchanged + step.unchanged;
    report.skipped = skipped + step.skipped;
    Ok(report)
}

impl Known {
    fn completed(&self) -> bool {
        self.earlier
            .as_ref()
            .is_some_and(|p| p.completed_at.is_some())
    }
}
