//! WAL checkpoints on a thread of their own while one connection writes a
//! long run of transactions (an ingest).
//!
//! By default SQLite checkpoints inside the commit that takes the WAL past
//! 1,000 pages: the writing thread stops to copy those pages into the
//! database file. Profiling `ingest` put ~0.5 s per million events there,
//! on the one thread that limits its speed. While a [`Checkpointer`] lives,
//! a second connection runs passive checkpoints (which never block the
//! writer nor wait for readers) after the writer's commits, on the other
//! core, and the writer's own automatic checkpoint only comes every
//! `restart_pages` pages of WAL.
//!
//! The writer's own checkpoint cannot go entirely: the WAL only starts
//! over from its beginning when a writer opens a transaction with every
//! frame already copied, and a side thread never finishes between one of
//! the writer's commits and its next BEGIN, so the WAL would grow by the
//! whole input (235 MB after 5 s of a 1M-event ingest, measured). The
//! writer's rare checkpoint finds nearly every frame copied already, copies
//! the rest and lets the next transaction restart the WAL.
//!
//! It must never leave the writer with other checkpoints than its own:
//! [`Checkpointer::finish`] gives the writer its setting back, and the
//! owner calls it on every path.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::thread::JoinHandle;

use rusqlite::Connection;

/// See the module docs.
pub struct Checkpointer {
    /// The writer's `wal_autocheckpoint`, restored on drop.
    restore: i64,
    nudge: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Takes over most of `writer`'s checkpoints (its own come every
    /// `restart_pages` pages of WAL), or `None` (nothing changed) when its
    /// database has no file or a second connection cannot be opened: the
    /// writer then checkpoints as usual.
    pub fn start(writer: &Connection, restart_pages: u32) -> Option<Checkpointer> {
        let path = writer.path().filter(|p| !p.is_empty())?.to_owned();
        let checkpointer = super::connect_existing(std::path::Path::new(&path)).ok()?;
        let restore: i64 = writer
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .ok()?;
        let (nudge, nudged) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || {
                while nudged.recv().is_ok() {
                    // A failed passive checkpoint is retried at the next
                    // nudge; the writer's own checkpoint comes back on drop.
                    let _ =
                        checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .ok()?;
        // Returns the new value as a row.
        let sql = format!("PRAGMA wal_autocheckpoint = {}", restart_pages.max(1));
        let off = writer.query_row(&sql, [], |_| Ok(()));
        let mut me = Checkpointer {
            restore,
            nudge: Some(nudge),
            thread: Some(thread),
        };
        if off.is_err() {
            me.stop();
            return None;
        }
        Some(me)
    }

    /// The writer committed: checkpoint what it wrote (coalesced with a
    /// checkpoint already asked for).
    pub fn committed(&self) {
        if let Some(n) = &self.nudge {
            match n.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }

    fn stop(&mut self) {
        self.nudge = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Checkpointer {
    /// Stops the side thread (after its last checkpoint) and gives
    /// `writer` back its own checkpoints.
    pub fn finish(mut self, writer: &Connection) {
        self.stop();
        let sql = format!("PRAGMA wal_autocheckpoint = {}", self.restore);
        let _ = writer.query_row(&sql, [], |_| Ok(()));
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn autocheckpoint(c: &Connection) -> i64 {
        c.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn checkpoints_on_the_side_keeps_the_wal_bounded_and_gives_the_setting_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = super::super::connect(&path).unwrap();
        w.execute_batch("CREATE TABLE t (x TEXT)").unwrap();
        let before = autocheckpoint(&w);
        assert!(before > 0);
        let wal = dir.path().join("t.db-wal");
        let mut largest_wal = 0;
        {
            let cp = Checkpointer::start(&w, 100).unwrap();
            assert_eq!(autocheckpoint(&w), 100);
            for i in 0..2_000 {
                let tx = w.unchecked_transaction().unwrap();
                tx.execute("INSERT INTO t VALUES (?)", [format!("{i:0>3000}")])
                    .unwrap();
                tx.commit().unwrap();
                cp.committed();
                largest_wal = largest_wal.max(std::fs::metadata(&wal).unwrap().len());
            }
            cp.finish(&w);
        }
        assert_eq!(autocheckpoint(&w), before);
        // 2,000 commits of at least a page each: over 8 MB of WAL if it
        // never started over; it does, after ~100 pages (the side thread
        // holding the checkpoint lock can delay a restart by a few commits).
        assert!(
            largest_wal < 5_000_000,
            "the WAL grew to {largest_wal} bytes"
        );
        // The side thread copied pages into the database file: a checkpoint
        // always runs after the last commit.
        let db_len = std::fs::metadata(&path).unwrap().len();
        assert!(db_len > 2_000 * 3_000, "database file {db_len} bytes");
        let n: i64 = w
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2_000);
        // Without a file there is nothing to take over.
        let mem = Connection::open_in_memory().unwrap();
        assert!(Checkpointer::start(&mem, 100).is_none());
    }
}
