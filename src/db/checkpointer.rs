//! WAL checkpoints on a thread of their own while one connection writes a
//! long run of transactions (an ingest).
//!
//! By default SQLite checkpoints inside the commit that takes the WAL past
//! 1,000 pages: the writing thread stops to copy those pages into the
//! database file. Profiling `ingest` put ~0.5 s per million events there,
//! on the one thread that limits its speed. While a [`Checkpointer`] lives,
//! the writer's automatic checkpoints are off and a second connection runs
//! passive checkpoints (which never block the writer nor wait for readers)
//! after the writer's commits, on the other core. It must never leave the
//! writer without checkpoints: [`Checkpointer::finish`] gives the writer
//! its setting back, and the owner calls it on every path.

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
    /// Takes over `writer`'s checkpoints, or `None` (nothing changed) when
    /// its database has no file or a second connection cannot be opened:
    /// the writer then checkpoints as usual.
    pub fn start(writer: &Connection) -> Option<Checkpointer> {
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
        let off = writer.query_row("PRAGMA wal_autocheckpoint = 0", [], |_| Ok(()));
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
    fn checkpoints_on_the_side_and_gives_the_setting_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = super::super::connect(&path).unwrap();
        w.execute_batch("CREATE TABLE t (x TEXT)").unwrap();
        let before = autocheckpoint(&w);
        assert!(before > 0);
        {
            let cp = Checkpointer::start(&w).unwrap();
            assert_eq!(autocheckpoint(&w), 0);
            for i in 0..200 {
                let tx = w.unchecked_transaction().unwrap();
                tx.execute("INSERT INTO t VALUES (?)", [format!("{i:0>4000}")])
                    .unwrap();
                tx.commit().unwrap();
                cp.committed();
            }
            cp.finish(&w);
        }
        // Back to the writer's own checkpoints, and the side thread did
        // copy the pages into the database file (with the writer's
        // checkpoints off and no side thread they would all still be in
        // the WAL): a checkpoint always runs after the last commit.
        assert_eq!(autocheckpoint(&w), before);
        let db_len = std::fs::metadata(&path).unwrap().len();
        assert!(db_len > 200 * 4000, "database file {db_len} bytes");
        let n: i64 = w
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 200);
        // Without a file there is nothing to take over.
        let mem = Connection::open_in_memory().unwrap();
        assert!(Checkpointer::start(&mem).is_none());
    }
}
