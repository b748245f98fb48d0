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
//! the page cache instead, with the same result.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

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
    fn new() -> Aligned {
        let mem = vec![0u8; CHUNK + ALIGN];
        // Safe code finds the aligned start inside a slightly larger block.
        let start = mem.as_ptr().align_offset(ALIGN);
        Aligned { mem, start, len: 0 }
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

/// The output file, written by a thread with direct I/O in chunks of
/// [`CHUNK`] bytes; the last, unaligned bytes through the page cache.
pub(super) struct DirectFile {
    current: Option<Aligned>,
    to_writer: Option<SyncSender<Piece>>,
    free: Receiver<Aligned>,
    writer: Option<JoinHandle<io::Result<File>>>,
}

impl DirectFile {
    /// Creates (truncates) `path` for direct writing. `Ok(None)` when the
    /// file system does not do direct I/O (the caller writes buffered).
    pub(super) fn create(path: &Path) -> io::Result<Option<DirectFile>> {
        let file = match OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
            Err(e) => return Err(e),
        };
        let (to_writer, pieces) = sync_channel::<Piece>(BUFFERS - 1);
        let (give_back, free) = sync_channel::<Aligned>(BUFFERS);
        for _ in 0..BUFFERS - 1 {
            give_back
                .send(Aligned::new())
                .expect("the receiver is here");
        }
        let path = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("export-write".into())
            .spawn(move || write_pieces(file, path, pieces, give_back))?;
        Ok(Some(DirectFile {
            current: Some(Aligned::new()),
            to_writer: Some(to_writer),
            free,
            writer: Some(writer),
        }))
    }

    /// The writing thread's error, once it has stopped.
    fn writer_error(&mut self) -> io::Error {
        self.to_writer = None;
        match self.writer.take().map(|h| h.join()) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => io::Error::other("the output writing thread panicked"),
            _ => io::Error::other("the output writing thread stopped"),
        }
    }

    /// Hands the full buffer to the writer and takes an empty one.
    fn ship(&mut self) -> io::Result<()> {
        let full = self.current.take().expect("a buffer is always held");
        let sent = self
            .to_writer
            .as_ref()
            .is_some_and(|tx| tx.send(Piece::Chunk(full)).is_ok());
        if !sent {
            return Err(self.writer_error());
        }
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
        let tail = self.current.take().expect("a buffer is always held");
        let sent = self
            .to_writer
            .take()
            .is_some_and(|tx| tx.send(Piece::Tail(tail)).is_ok());
        let result = match self.writer.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the output writing thread panicked")),
            None => Err(io::Error::other("the output writing thread stopped")),
        };
        match (sent, result) {
            (true, r) => r,
            (false, Err(e)) => Err(e),
            (false, Ok(_)) => Err(io::Error::other("the output writing thread stopped")),
        }
    }
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < data.len() {
            let buf = self.current.as_mut().expect("a buffer is always held");
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
        Ok(())
    }
}

/// The writing thread: chunks in order with direct I/O, then the tail
/// through a second, buffered handle on the same file.
fn write_pieces(
    mut file: File,
    path: PathBuf,
    pieces: Receiver<Piece>,
    give_back: SyncSender<Aligned>,
) -> io::Result<File> {
    let mut direct = true;
    let mut written: u64 = 0;
    for piece in pieces {
        let (buf, last) = match piece {
            Piece::Chunk(b) => (b, false),
            Piece::Tail(b) => (b, true),
        };
        if last || !direct {
            if direct {
                file = buffered_at(&path, written)?;
                direct = false;
            }
            file.write_all(buf.filled())?;
        } else {
            match file.write_all(buf.filled()) {
                Ok(()) => {}
                // A file system that opened the file for direct I/O but
                // refuses the write itself (nothing was written): go on
                // through the page cache.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    file = buffered_at(&path, written)?;
                    direct = false;
                    file.write_all(buf.filled())?;
                }
                Err(e) => return Err(e),
            }
        }
        written += buf.len as u64;
        if last {
            return Ok(file);
        }
        // The filler may be gone (an error upstream): nothing to give back to.
        let _ = give_back.send(buf);
    }
    Err(io::Error::other("the export stopped before its end"))
}

/// `path` opened again without direct I/O, positioned at `at`.
fn buffered_at(path: &Path, at: u64) -> io::Result<File> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.seek(SeekFrom::Start(at))?;
    Ok(f)
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

    #[test]
    fn a_write_error_is_returned_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut out = DirectFile::create(&path).unwrap().expect("direct I/O");
        // The file's directory goes: the tail's second handle cannot open.
        out.write_all(b"short tail").unwrap();
        drop(dir);
        assert!(out.finish().is_err());
    }

    /// A direct write the file system refuses (here: a length that is not
    /// whole blocks) is written through the page cache instead, at the
    /// same place, and so is everything after it.
    #[test]
    fn a_refused_direct_write_goes_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .unwrap();
        let (tx, pieces) = sync_channel(4);
        let (give_back, _free) = sync_channel(4);
        let mut expected = Vec::new();
        for (len, byte) in [(CHUNK, b'a'), (100, b'b'), (CHUNK, b'c')] {
            let mut b = Aligned::new();
            b.fill(&vec![byte; len]);
            expected.extend(std::iter::repeat_n(byte, len));
            tx.send(Piece::Chunk(b)).unwrap();
        }
        let mut tail = Aligned::new();
        tail.fill(b"tail");
        expected.extend_from_slice(b"tail");
        tx.send(Piece::Tail(tail)).unwrap();
        let f = write_pieces(file, path.clone(), pieces, give_back).unwrap();
        f.sync_all().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }
}
