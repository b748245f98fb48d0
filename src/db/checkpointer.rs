//! WAL checkpoints on a thread of their own while one connection writes a
//! long run of transactions (an ingest).
//!
//! By default SQLite checkpoints inside the commit that takes the WAL past
//! 1,000 pages: the writing thread stops to copy those pages into the
//! database file. Profiling `ingest` put ~0.5 s per million events there,
//! on the one thread that limits its speed. While a [`Checkpointer`] lives,
//! the writer's automatic checkpoints are off and a second connection runs
//! passive checkpoints (which never block the writer nor wait for readers)
//! after the writer's commits, on the other core.
//!
//! The WAL only starts over from its beginning when a writer opens a
//! transaction with every frame already copied, and a side thread rarely
//! finishes between one of the writer's commits and its next BEGIN: left
//! alone, the WAL grew by the whole input (235 MB after 5 s of a 1M-event
//! ingest, measured). So every `restart_every` commits the writer itself,
//! after its commit, waits for the side thread's checkpoint in progress
//! and runs one more: it finds nearly every frame copied already and
//! copies the rest; the side thread then stays idle until the writer's
//! next commit, so that it holds no lock the restart needs when that
//! transaction starts the WAL over. The trigger counts the writer's own
//! commits: a WAL size seen by the side thread lagged on a loaded machine,
//! and the WAL grew to several times its bound.
//!
//! It must never leave the writer with other checkpoints than its own:
//! [`Checkpointer::finish`] gives the writer its setting back, and the
//! owner calls it on every path that returns (a panic unwinding past the
//! owner leaves the writer without automatic checkpoints until its
//! connection closes).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;

/// See the module docs.
pub struct Checkpointer {
    /// The writer's `wal_autocheckpoint`, restored by `finish`.
    restore: i64,
    restart_every: u32,
    /// Commits since the last restart.
    commits: Cell<u32>,
    shared: Arc<Shared>,
    nudge: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What the writer and the side thread share.
#[derive(Default)]
struct Shared {
    /// Held while either runs a checkpoint: one at a time (a second one
    /// would only find SQLite's checkpoint lock taken).
    turn: Mutex<()>,
    /// The writer's next transaction restarts the WAL: the side thread
    /// leaves it alone until then.
    paused: AtomicBool,
}

/// One passive checkpoint; a failed one is retried at the next turn.
fn checkpoint(conn: &Connection) {
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

impl Checkpointer {
    /// Takes over `writer`'s checkpoints, or `None` (nothing changed) when
    /// its database has no file or a second connection cannot be opened:
    /// the writer then checkpoints as usual.
    pub fn start(writer: &Connection, restart_every: u32) -> Option<Checkpointer> {
        let path = writer.path().filter(|p| !p.is_empty())?.to_owned();
        let side = super::connect_existing(std::path::Path::new(&path)).ok()?;
        let restore: i64 = writer
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .ok()?;
        let shared = Arc::new(Shared::default());
        let (nudge, nudged) = sync_channel::<()>(1);
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || {
                while nudged.recv().is_ok() {
                    // A failed passive checkpoint is retried at the next
                    // nudge; the writer gets its own back at `finish`.
                    let _turn = theirs.turn.lock();
                    if theirs.paused.load(Ordering::Acquire) {
                        continue;
                    }
                    checkpoint(&side);
                }
            })
            .ok()?;
        // Returns the new value as a row.
        let off = writer.query_row("PRAGMA wal_autocheckpoint = 0", [], |_| Ok(()));
        let mut me = Checkpointer {
            restore,
            restart_every: restart_every.max(1),
            commits: Cell::new(0),
            shared,
            nudge: Some(nudge),
            thread: Some(thread),
        };
        if off.is_err() {
            me.stop();
            return None;
        }
        Some(me)
    }

    /// `writer` committed: checkpoint what it wrote (coalesced with a
    /// checkpoint already asked for), and every `restart_every` commits
    /// finish a checkpoint here so that the writer's next transaction
    /// starts the WAL over (see the module docs).
    pub fn committed(&self, writer: &Connection) {
        // This commit came after the restart (if any): resume.
        self.shared.paused.store(false, Ordering::Release);
        if let Some(n) = &self.nudge {
            match n.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
        self.commits.set(self.commits.get() + 1);
        if self.commits.get() >= self.restart_every {
            self.commits.set(0);
            let _turn = self.shared.turn.lock();
            self.shared.paused.store(true, Ordering::Release);
            checkpoint(writer);
        }
    }

    fn stop(&mut self) {
        self.nudge = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops the side thread (after its last checkpoint) and gives
    /// `writer` back its own checkpoints.
    pub fn finish(mut self, writer: &Connection) {
        self.stop();
        let sql = format!("PRAGMA wal_autocheckpoint = {}", self.restore);
        if let Err(error) = writer.query_row(&sql, [], |_| Ok(())) {
            tracing::warn!(%error, "could not restore the connection's WAL autocheckpoint");
        }
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
            let cp = Checkpointer::start(&w, 50).unwrap();
            assert_eq!(autocheckpoint(&w), 0);
            for i in 0..2_000 {
                let tx = w.unchecked_transaction().unwrap();
                tx.execute("INSERT INTO t VALUES (?)", [format!("{i:0>3000}")])
                    .unwrap();
                tx.commit().unwrap();
                cp.committed(&w);
                largest_wal = largest_wal.max(std::fs::metadata(&wal).unwrap().len());
            }
            cp.finish(&w);
        }
        assert_eq!(autocheckpoint(&w), before);
        // 2,000 commits of at least a page each: over 8 MB of WAL if it
        // never started over; it does every 50 commits (~0.5 MB).
        assert!(
            largest_wal < 1_500_000,
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
        assert!(Checkpointer::start(&mem, 50).is_none());
    }
}
