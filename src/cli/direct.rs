//! An export's output file written around the page cache (`O_DIRECT`, on
//! Linux): the rows go from our own reused, aligned buffers to the disk, on
//! a thread of their own, while the encoders go on.
//!
//! Why: a buffered `write` of a 300–500 MB export copies every byte into
//! page-cache pages the kernel must first find. On this kind of VM, fresh
//! pages are handed back to the host when free (virtio balloon page
//! reporting), so each one faults on the host when used again: the same
//! 524 MB JSONL export spent 0.4–1.8 s of system time in the copy
//! (`copy_folio_from_iter_atomic`) from run to run. `dd` of 512 MiB: 1.40 s
//! system buffered on fresh pages, 0.07 s with `oflag=direct`. Writing
//! directly also leaves the page cache to the database.
//!
//! It never decides where the file goes or when it is complete (that is
//! `output::TempOutput`, which syncs and renames it); it only writes bytes
//! in order. Where the file system refuses direct I/O, it writes through
//! the page cache instead, with the same result. One descriptor does it
//! all: for the unaligned tail the flag is cleared on it (`fcntl`), so the
//! bytes always go to the file that was created, whatever its mode.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use rustix::fs::OFlags;

/// Bytes per direct write; a multiple of every block size in use (4 KiB).
const CHUNK: usize = 1 << 20;
/// Alignment of a direct write's memory, file offset and length.
const ALIGN: usize = 4096;
/// Buffers in flight: one filling, the rest queued or being written
/// (3 MiB of memory in all).
const BUFFERS: usize = 3;

/// A [`CHUNK`]-sized buffer whose start is [`ALIGN`]-aligned, as direct
/// I/O requires of the memory it writes from.
struct Aligned {
    mem: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// `None` if no aligned start is found (`align_offset` is allowed to
    /// say so, though it does not for bytes here): the file is then
    /// written through the page cache rather than wrongly.
    fn new() -> Option<Aligned> {
        let mem = vec![0u8; CHUNK + ALIGN];
        // Safe code finds the aligned start inside a slightly larger block.
        let start = mem.as_ptr().align_offset(ALIGN);
        (start < ALIGN).then_some(Aligned { mem, start, len: 0 })
    }

    fn filled(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }

    /// Copies as much of `data` as fits; returns how much.
    fn fill(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(CHUNK - self.len);
        let at = self.start + self.len;
        self.mem[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }

    fn is_full(&self) -> bool {
        self.len == CHUNK
    }
}

/// What the writing thread is sent: a full chunk, or the tail (any length)
/// after which it stops.
enum Piece {
    Chunk(Aligned),
    Tail(Aligned),
}

/// What the writing thread leaves.
struct Written {
    file: File,
    /// The file system refused a direct write: the page cache was used.
    fell_back: bool,
}

fn is_einval(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

/// The output file, written by a thread with direct I/O in chunks of
/// [`CHUNK`] bytes; the last, unaligned bytes through the page cache.
pub(super) struct DirectFile {
    /// The buffer being filled; `None` once the writer has failed.
    current: Option<Aligned>,
    to_writer: Option<SyncSender<Piece>>,
    free: Receiver<Aligned>,
    writer: Option<JoinHandle<io::Result<Written>>>,
    /// The writer's error, kept: every later call returns it again.
    failed: Option<(io::ErrorKind, String)>,
}

impl DirectFile {
    /// Creates (truncates) `path` for direct writing. `Ok(None)` when the
    /// file system does not do direct I/O (the caller writes buffered).
    pub(super) fn create(path: &Path) -> io::Result<Option<DirectFile>> {
        let buffers: Option<Vec<Aligned>> = (0..BUFFERS).map(|_| Aligned::new()).collect();
        let Some(mut buffers) = buffers else {
            return Ok(None);
        };
        let file = match OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(OFlags::DIRECT.bits() as i32)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if is_einval(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let (to_writer, pieces) = sync_channel::<Piece>(BUFFERS - 1);
        let (give_back, free) = sync_channel::<Aligned>(BUFFERS);
        let current = buffers.pop();
        for b in buffers {
            give_back.send(b).expect("the receiver is here");
        }
        let writer = std::thread::Builder::new()
            .name("export-write".into())
            .spawn(move || write_pieces(file, pieces, give_back))?;
        Ok(Some(DirectFile {
            current,
            to_writer: Some(to_writer),
            free,
            writer: Some(writer),
            failed: None,
        }))
    }

    /// The writing thread's error (it has stopped), remembered for every
    /// later call.
    fn writer_error(&mut self) -> io::Error {
        if self.failed.is_none() {
            self.current = None;
            self.to_writer = None;
            let e = match self.writer.take().map(|h| h.join()) {
                Some(Ok(Err(e))) => e,
                Some(Err(_)) => io::Error::other("the output writing thread panicked"),
                _ => io::Error::other("the output writing thread stopped"),
            };
            self.failed = Some((e.kind(), e.to_string()));
        }
        let (kind, msg) = self.failed.as_ref().expect("set above");
        io::Error::new(*kind, msg.clone())
    }

    /// Hands the buffer being filled to the writer: a full chunk, or the
    /// tail.
    fn hand_over(&mut self, last: bool) -> io::Result<()> {
        let Some(buf) = self.current.take() else {
            return Err(self.writer_error());
        };
        let piece = if last {
            Piece::Tail(buf)
        } else {
            Piece::Chunk(buf)
        };
        let sent = self
            .to_writer
            .as_ref()
            .is_some_and(|tx| tx.send(piece).is_ok());
        if sent {
            Ok(())
        } else {
            Err(self.writer_error())
        }
    }

    /// Hands the full buffer to the writer and takes an empty one.
    fn ship(&mut self) -> io::Result<()> {
        self.hand_over(false)?;
        match self.free.recv() {
            Ok(mut b) => {
                b.len = 0;
                self.current = Some(b);
                Ok(())
            }
            Err(_) => Err(self.writer_error()),
        }
    }

    /// Writes what is left and waits for every write; returns the file,
    /// not yet synced (the caller syncs before it renames).
    pub(super) fn finish(mut self) -> io::Result<File> {
        self.hand_over(true)?;
        self.to_writer = None;
        let w = match self.writer.take().map(|h| h.join()) {
            Some(Ok(r)) => r?,
            Some(Err(_)) => return Err(io::Error::other("the output writing thread panicked")),
            None => return Err(io::Error::other("the output writing thread stopped")),
        };
        if w.fell_back {
            tracing::debug!("the file system refused direct I/O; written through the page cache");
        }
        Ok(w.file)
    }
}

impl Drop for DirectFile {
    /// Dropped unfinished (an error upstream): the writer is told to stop
    /// and waited for, so nothing writes to the file after its owner has
    /// removed it.
    fn drop(&mut self) {
        self.to_writer = None;
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < data.len() {
            let Some(buf) = self.current.as_mut() else {
                return Err(self.writer_error());
            };
            done += buf.fill(&data[done..]);
            if buf.is_full() {
                self.ship()?;
            }
        }
        Ok(done)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks are written as they fill; the tail only by `finish`
        // (a direct write must be whole blocks).
        match self.failed {
            Some(_) => Err(self.writer_error()),
            None => Ok(()),
        }
    }
}

/// The writing thread: chunks in order with direct I/O, then the tail
/// through the page cache (the flag cleared on the same descriptor).
fn write_pieces(
    mut file: File,
    pieces: Receiver<Piece>,
    give_back: SyncSender<Aligned>,
) -> io::Result<Written> {
    let mut direct = true;
    let mut fell_back = false;
    for piece in pieces {
        let (buf, last) = match piece {
            Piece::Chunk(b) => (b, false),
            Piece::Tail(b) => (b, true),
        };
        if last && direct {
            clear_direct(&file)?;
            direct = false;
        }
        match file.write_all(buf.filled()) {
            Ok(()) => {}
            // A file system that opened the file for direct I/O but refuses
            // the write itself (nothing written, the offset unmoved): the
            // rest goes through the page cache.
            Err(e) if direct && is_einval(&e) => {
                clear_direct(&file)?;
                direct = false;
                fell_back = true;
                file.write_all(buf.filled())?;
            }
            Err(e) => return Err(e),
        }
        if last {
            return Ok(Written { file, fell_back });
        }
        // The filler may be gone (an error upstream): nothing to give back to.
        let _ = give_back.send(buf);
    }
    Err(io::Error::other("the export stopped before its end"))
}

/// Turns direct I/O off on `file`: later writes go through the page cache.
fn clear_direct(file: &File) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    rustix::fs::fcntl_setfl(file, flags - OFlags::DIRECT)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length around the chunk and block boundaries, written in
    /// uneven pieces, reads back byte for byte.
    #[test]
    fn what_is_written_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK + 12_345,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("out-{len}"));
            std::fs::write(&path, b"old content, longer than nothing").unwrap();
            // The temp dir's file system (ext4, or tmpfs since Linux 6.6)
            // does direct I/O; one that did not would fail here, loudly.
            let mut out = DirectFile::create(&path).unwrap().expect("direct I/O");
            for piece in data.chunks(7_777) {
                out.write_all(piece).unwrap();
            }
            let f = out.finish().unwrap();
            f.sync_all().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), data, "length {len}");
        }
    }

    /// The bytes go to the file that was created, through its own
    /// descriptor: renamed while it is written (or made read-only), it
    /// still gets its tail, and nothing appears at the old name.
    #[test]
    fn the_tail_goes_to_the_created_file_not_to_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let moved = dir.path().join("moved");
        let mut out = DirectFile::create(&path).unwrap().expect("direct I/O");
        let data = vec![7u8; CHUNK + 10];
        out.write_all(&data).unwrap();
        std::fs::rename(&path, &moved).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&moved, std::fs::Permissions::from_mode(0o400)).unwrap();
        out.finish().unwrap().sync_all().unwrap();
        assert_eq!(std::fs::read(&moved).unwrap(), data);
        assert!(!path.exists());
    }

    /// The writer's error reaches every later call, as an error: never a
    /// panic, never a success.
    #[test]
    fn after_a_write_error_every_call_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut out = DirectFile::create(&path).unwrap().expect("direct I/O");
        // The writer fails as soon as it is handed a chunk.
        out.writer = Some(std::thread::spawn(|| {
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        }));
        out.to_writer = None;
        let e = out.write_all(&vec![1u8; CHUNK]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
        assert_eq!(
            out.write(b"more").unwrap_err().kind(),
            io::ErrorKind::StorageFull
        );
        assert_eq!(out.flush().unwrap_err().kind(), io::ErrorKind::StorageFull);
        assert_eq!(out.finish().unwrap_err().to_string(), "disk full");
    }

    /// A direct write the file system refuses (a length that is not whole
    /// blocks) is written through the page cache instead, at the same
    /// place, and so is everything after it. tmpfs takes such writes
    /// directly; elsewhere (ext4 here) the fallback must have run.
    #[test]
    fn a_refused_direct_write_goes_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(OFlags::DIRECT.bits() as i32)
            .open(&path)
            .unwrap();
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        let tmpfs = rustix::fs::fstatfs(&file).unwrap().f_type as i64 == TMPFS_MAGIC;
        let (tx, pieces) = sync_channel(4);
        let (give_back, _free) = sync_channel(4);
        let mut expected = Vec::new();
        for (len, byte) in [(CHUNK, b'a'), (100, b'b'), (CHUNK, b'c')] {
            let mut b = Aligned::new().unwrap();
            b.fill(&vec![byte; len]);
            expected.extend(std::iter::repeat_n(byte, len));
            tx.send(Piece::Chunk(b)).unwrap();
        }
        let mut tail = Aligned::new().unwrap();
        tail.fill(b"tail");
        expected.extend_from_slice(b"tail");
        tx.send(Piece::Tail(tail)).unwrap();
        let w = write_pieces(file, pieces, give_back).unwrap();
        w.file.sync_all().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        assert_eq!(w.fell_back, !tmpfs);
    }
}
