//! A job's spool made durable off the export loop: a thread of its own runs
//! `fdatasync` for a checkpoint while the loop goes on writing, and hands
//! the checkpoint back once its bytes are on disk; only then is it recorded.
//!
//! Why: each checkpoint's `fdatasync` (16 MiB of data and, the file having
//! grown, a journal commit) blocked the loop that feeds the encoders and the
//! compressor, and the cores idled meanwhile: a 1M-row zipped job took 2.64 s
//! with checkpoints and 2.34 s without (`scripts/bench-jobs.sh`).
//!
//! It must never hand back a checkpoint whose bytes are not durable: the
//! sync starts after the loop has written them (`fdatasync` covers every
//! byte written before the call), and the checkpoint comes back only from a
//! sync that succeeded. Later bytes written meanwhile may be synced too,
//! which is harmless: a resumed run cuts the spool at the recorded length.

use std::fs::File;
use std::io;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use crate::jobs::store::Checkpoint;

/// One sync at a time, in the background.
pub(super) struct Syncer {
    requests: Option<SyncSender<Checkpoint>>,
    done: Option<Receiver<io::Result<Checkpoint>>>,
    thread: Option<JoinHandle<()>>,
    in_flight: bool,
}

impl Syncer {
    /// A syncer for `file` (through a second handle on it).
    pub(super) fn new(file: &File) -> io::Result<Syncer> {
        let file = file.try_clone()?;
        Syncer::with(move || file.sync_data())
    }

    /// A syncer running `sync` for each request.
    fn with(mut sync: impl FnMut() -> io::Result<()> + Send + 'static) -> io::Result<Syncer> {
        let (requests, incoming) = sync_channel::<Checkpoint>(1);
        let (finished, done) = sync_channel::<io::Result<Checkpoint>>(1);
        let thread = std::thread::Builder::new()
            .name("spool-sync".into())
            .spawn(move || {
                for cp in incoming {
                    let r = sync().map(|()| cp);
                    if finished.send(r).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Syncer {
            requests: Some(requests),
            done: Some(done),
            thread: Some(thread),
            in_flight: false,
        })
    }

    /// Whether a sync is under way (a new one waits for it to finish).
    pub(super) fn busy(&self) -> bool {
        self.in_flight
    }

    /// Starts making the spool's first `cp.spool_bytes` durable; the caller
    /// has written them. One at a time: an error while [`Syncer::busy`].
    pub(super) fn request(&mut self, cp: Checkpoint) -> io::Result<()> {
        if self.in_flight {
            return Err(io::Error::other("a spool sync is already under way"));
        }
        let sent = self.requests.as_ref().is_some_and(|tx| tx.send(cp).is_ok());
        if !sent {
            return Err(io::Error::other("the spool sync thread stopped"));
        }
        self.in_flight = true;
        Ok(())
    }

    /// The checkpoint of a sync that has finished since the last call, if
    /// any; never waits. A failed sync is an error.
    pub(super) fn poll(&mut self) -> io::Result<Option<Checkpoint>> {
        if !self.in_flight {
            return Ok(None);
        }
        let Some(done) = &self.done else {
            return Err(io::Error::other("the spool sync thread stopped"));
        };
        match done.try_recv() {
            Ok(r) => {
                self.in_flight = false;
                r.map(Some)
            }
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => {
                self.in_flight = false;
                Err(io::Error::other("the spool sync thread stopped"))
            }
        }
    }

    /// Waits for the sync under way, if any; its checkpoint.
    pub(super) fn wait(&mut self) -> io::Result<Option<Checkpoint>> {
        if !self.in_flight {
            return Ok(None);
        }
        self.in_flight = false;
        match self.done.as_ref().map(|d| d.recv()) {
            Some(Ok(r)) => r.map(Some),
            _ => Err(io::Error::other("the spool sync thread stopped")),
        }
    }
}

impl Drop for Syncer {
    /// Waits for a sync under way (its result is dropped with the run that
    /// asked for it) and stops the thread.
    fn drop(&mut self) {
        // Both channels closed: the thread can neither wait for a request
        // nor block handing back a result.
        self.requests = None;
        self.done = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn cp(bytes: u64) -> Checkpoint {
        Checkpoint {
            cursor: None,
            first: None,
            exported_count: bytes,
            spool_bytes: bytes,
        }
    }

    /// A checkpoint comes back only after its sync has run to its end, one
    /// sync per request, while the caller goes on (never waits in `poll`).
    #[test]
    fn a_checkpoint_comes_back_only_once_its_sync_is_done() {
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let syncs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = syncs.clone();
        let mut s = Syncer::with(move || {
            started_tx.send(()).unwrap();
            // The disk is slow: this sync ends when the test says so.
            released.recv().unwrap();
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        assert_eq!(s.poll().unwrap(), None, "nothing asked");
        s.request(cp(4096)).unwrap();
        started.recv().unwrap();
        assert!(s.busy());
        assert_eq!(s.poll().unwrap(), None, "the sync is not done");
        assert!(s.request(cp(8192)).is_err(), "one at a time");
        release.send(()).unwrap();
        let got = loop {
            if let Some(c) = s.poll().unwrap() {
                break c;
            }
            std::thread::yield_now();
        };
        assert_eq!(got, cp(4096));
        assert_eq!(syncs.load(std::sync::atomic::Ordering::SeqCst), 1);
        s.request(cp(8192)).unwrap();
        started.recv().unwrap();
        release.send(()).unwrap();
        assert_eq!(s.wait().unwrap(), Some(cp(8192)));
        assert_eq!(syncs.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(s.wait().unwrap(), None, "nothing under way");
    }

    /// On a real file: what was written before the request is what the
    /// checkpoint covers, and writes may go on meanwhile.
    #[test]
    fn a_real_spool_is_synced_while_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("spool")).unwrap();
        let mut s = Syncer::new(&f).unwrap();
        f.write_all(&[1u8; 4096]).unwrap();
        s.request(cp(4096)).unwrap();
        f.write_all(&[2u8; 4096]).unwrap();
        assert_eq!(s.wait().unwrap(), Some(cp(4096)));
    }

    #[test]
    fn a_failed_sync_is_an_error_not_a_checkpoint() {
        // Fault injection: the disk refuses the sync.
        let mut s =
            Syncer::with(|| Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))).unwrap();
        s.request(cp(1)).unwrap();
        assert_eq!(s.wait().unwrap_err().kind(), io::ErrorKind::StorageFull);
        s.request(cp(2)).unwrap();
        let e = loop {
            match s.poll() {
                Ok(None) => std::thread::yield_now(),
                Ok(Some(c)) => panic!("a failed sync handed back {c:?}"),
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
    }
}
