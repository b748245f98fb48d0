//! Compressing an export while it is written, on every core, into a raw
//! deflate stream that depends only on the data (pigz-style).
//!
//! The data is cut at fixed offsets into [`BLOCK`]-sized blocks; each block
//! is deflated on its own (a fresh compressor, no dictionary from the block
//! before) and ends with a sync flush, so the blocks concatenate into one
//! valid stream, closed by an empty final block. Because a block's bytes
//! depend only on its own input, blocks can be compressed in parallel, and
//! a resumed job that feeds the same data again (its spool prefix, then the
//! rest) produces the same stream, however the writes were split. The
//! CRC-32 of the whole is combined from the blocks' CRCs, and the data's
//! SHA-256 computed on the way (for the manifest). This module must never
//! make its output depend on timing, thread count or write sizes.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress};

/// Uncompressed bytes per independently deflated block. Large enough that
/// losing the previous block's dictionary costs well under 1% of ratio.
pub const BLOCK: usize = 1 << 20;
/// zlib-rs level: 5 compresses these exports smaller than `zip -6` does
/// (47.5 vs 47.8 MiB for the 1M-row CSV) and ~10% faster than its level 6
/// (`cargo run --release --example deflate_levels -- FILE`).
pub const LEVEL: u32 = 5;
/// An empty final block (BFINAL, fixed Huffman, end-of-block): what closes
/// the stream after the sync-flushed blocks.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// What a finished stream holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Deflated {
    /// Uncompressed size.
    pub raw_len: u64,
    /// Compressed size (the stream's length).
    pub len: u64,
    /// CRC-32 of the uncompressed data (as a zip entry records it).
    pub crc32: u32,
    /// SHA-256 (hex) of the uncompressed data.
    pub sha256: String,
}

/// One block's result, handed to the writer in block order.
struct Done {
    raw: Vec<u8>,
    deflated: Vec<u8>,
    crc: crc32fast::Hasher,
}

type Work = (Vec<u8>, SyncSender<Done>);

/// Deflates one block into `out` (cleared first).
fn deflate_block(c: &mut Compress, raw: &[u8], out: &mut Vec<u8>) {
    c.reset();
    out.clear();
    out.reserve(raw.len() / 2 + 1024);
    let mut consumed = 0;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity());
        }
        let before = c.total_in();
        c.compress_vec(&raw[consumed..], out, FlushCompress::Sync)
            .expect("deflating memory into memory cannot fail");
        consumed += (c.total_in() - before) as usize;
        // The flush is complete once it leaves output space unused.
        if consumed == raw.len() && out.len() < out.capacity() {
            return;
        }
    }
}

/// Streams data into a deflate file: [`Deflater::write`] as the data is
/// produced, [`Deflater::finish`] at the end. Dropping it unfinished waits
/// for its threads; the file then holds the stream of a prefix, which
/// nothing uses (only a finished stream gets a description beside it).
pub struct Deflater {
    pending: Vec<u8>,
    raw_len: u64,
    order: Option<SyncSender<Receiver<Done>>>,
    work: Option<SyncSender<Work>>,
    writer: Option<JoinHandle<io::Result<Deflated>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Deflater {
    /// Compresses into `out` with `threads` workers (at least one).
    pub fn new(out: File, threads: usize) -> Deflater {
        let threads = threads.max(1);
        let (order_tx, order_rx) = sync_channel::<Receiver<Done>>(2 * threads + 2);
        let (work_tx, work_rx) = sync_channel::<Work>(threads);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let workers = (0..threads)
            .map(|_| {
                let work_rx = Arc::clone(&work_rx);
                std::thread::spawn(move || {
                    let mut c = Compress::new(Compression::new(LEVEL), false);
                    loop {
                        let next = work_rx.lock().map(|rx| rx.recv());
                        let Ok(Ok((raw, done))) = next else { return };
                        let mut deflated = Vec::new();
                        deflate_block(&mut c, &raw, &mut deflated);
                        let mut crc = crc32fast::Hasher::new();
                        crc.update(&raw);
                        // The writer may have stopped on an error.
                        let _ = done.send(Done { raw, deflated, crc });
                    }
                })
            })
            .collect();
        let writer = std::thread::spawn(move || write_in_order(out, order_rx));
        Deflater {
            pending: Vec::with_capacity(BLOCK),
            raw_len: 0,
            order: Some(order_tx),
            work: Some(work_tx),
            writer: Some(writer),
            workers,
        }
    }

    /// Adds data (any split of the same bytes gives the same stream).
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let take = (BLOCK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.raw_len += take as u64;
            if self.pending.len() == BLOCK {
                self.dispatch()?;
            }
        }
        Ok(())
    }

    /// Adds everything `r` yields (a spool prefix, a whole spool).
    pub fn write_from(&mut self, mut r: impl io::Read) -> io::Result<u64> {
        let mut chunk = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let got = r.read(&mut chunk)?;
            if got == 0 {
                return Ok(n);
            }
            self.write(&chunk[..got])?;
            n += got as u64;
        }
    }

    fn dispatch(&mut self) -> io::Result<()> {
        let raw = std::mem::replace(&mut self.pending, Vec::with_capacity(BLOCK));
        let (tx, rx) = sync_channel(1);
        let sent = match (&self.order, &self.work) {
            (Some(order), Some(work)) => order.send(rx).is_ok() && work.send((raw, tx)).is_ok(),
            _ => false,
        };
        if sent {
            Ok(())
        } else {
            // The writer stopped: its error says why.
            Err(self
                .stop()
                .err()
                .unwrap_or_else(|| io::Error::other("deflate writer stopped")))
        }
    }

    /// Compresses what is left, closes the stream and syncs the file.
    pub fn finish(mut self) -> io::Result<Deflated> {
        if !self.pending.is_empty() {
            self.dispatch()?;
        }
        let d = self.stop()?;
        debug_assert_eq!(d.raw_len, self.raw_len);
        Ok(d)
    }

    /// Closes the queues and waits for every thread.
    fn stop(&mut self) -> io::Result<Deflated> {
        self.order.take();
        self.work.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        match self.writer.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("deflate writer panicked"))),
            None => Err(io::Error::other("deflater already stopped")),
        }
    }
}

impl Drop for Deflater {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.stop();
        }
    }
}

/// The writer thread: blocks in order into the file, CRC and SHA-256 on
/// the way.
fn write_in_order(out: File, order: Receiver<Receiver<Done>>) -> io::Result<Deflated> {
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut crc = crc32fast::Hasher::new();
    let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
    let (mut raw_len, mut len) = (0u64, 0u64);
    for rx in order.iter() {
        let Ok(done) = rx.recv() else {
            return Err(io::Error::other("a deflate worker stopped"));
        };
        out.write_all(&done.deflated)?;
        crc.combine(&done.crc);
        sha.update(&done.raw);
        raw_len += done.raw.len() as u64;
        len += done.deflated.len() as u64;
    }
    out.write_all(&FINAL_BLOCK)?;
    len += FINAL_BLOCK.len() as u64;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_data()?;
    Ok(Deflated {
        raw_len,
        len,
        crc32: crc.finalize(),
        sha256: crate::util::hex(sha.finish().as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(n: usize) -> Vec<u8> {
        let mut x: u64 = 1;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                // Text-like: compressible, with some noise.
                if i % 7 == 0 {
                    b'a' + (x >> 60) as u8
                } else {
                    b"id,occurred_at,action\n"[i % 22]
                }
            })
            .collect()
    }

    fn deflate(data: &[u8], threads: usize, split: usize) -> (Vec<u8>, Deflated) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        let mut d = Deflater::new(File::create(&path).unwrap(), threads);
        for part in data.chunks(split.max(1)) {
            d.write(part).unwrap();
        }
        let info = d.finish().unwrap();
        (std::fs::read(&path).unwrap(), info)
    }

    #[test]
    fn the_stream_depends_only_on_the_data_and_inflates_back() {
        for n in [0, 1, 1000, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12_345] {
            let data = sample(n);
            let (a, info) = deflate(&data, 1, usize::MAX);
            let (b, _) = deflate(&data, 3, 4093);
            let (c, _) = deflate(&data, 2, BLOCK / 3 + 17);
            assert!(
                a == b && b == c,
                "{n} bytes: output depends on threads or splits"
            );
            assert_eq!(info.raw_len, n as u64);
            assert_eq!(info.len, a.len() as u64);
            let mut back = Vec::new();
            flate2::read::DeflateDecoder::new(&a[..])
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "{n} bytes: does not inflate back");
            assert_eq!(info.crc32, crc32fast::hash(&data));
            assert_eq!(info.sha256, crate::util::sha256_hex(&data));
        }
    }

    #[test]
    fn a_writer_error_reaches_the_caller() {
        // A read-only file: the writer's first write fails.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro");
        std::fs::write(&path, b"").unwrap();
        let ro = File::open(&path).unwrap();
        let mut d = Deflater::new(ro, 2);
        let data = sample(4 * BLOCK);
        let wrote = d.write(&data);
        let finished = if wrote.is_ok() {
            d.finish().map(|_| ())
        } else {
            wrote
        };
        assert!(finished.is_err());
    }
}
