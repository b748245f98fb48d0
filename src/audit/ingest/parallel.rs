//! Parsing an input's events on every core while the caller consumes them
//! in input order.
//!
//! One reader thread splits the input into units (a JSONL line, an array
//! element, a CSV record) and packs them into chunks; worker threads parse whole chunks;
//! the caller receives the chunks back in the order they were read. Each
//! chunk's result travels on its own one-shot channel, queued in read order
//! on a bounded channel, so memory holds a fixed number of chunks however
//! large the input. It must never reorder events nor lose an error: a
//! unit's line number and outcome are exactly what the serial reader gives.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use super::packed::{Packed, Slot};
use super::{FieldError, IngestError};

/// The largest unit parsed (1 GiB).
const MAX_UNIT_BYTES: usize = 1 << 30;
/// Units per chunk, and a byte bound for inputs of large events.
const CHUNK_UNITS: usize = 1024;
const CHUNK_BYTES: usize = 1 << 20;

/// Units read but not yet parsed: their bytes back to back.
#[derive(Default)]
pub(super) struct Chunk {
    bytes: Vec<u8>,
    /// `(line, end offset in bytes)`, or a unit the splitter already
    /// rejected.
    units: Vec<(u64, Result<usize, FieldError>)>,
}

type Parsed = Vec<(u64, Result<Packed, FieldError>)>;

/// Hands units to the parsers; what the splitter calls.
pub(super) struct Sink<'a> {
    chunk: Chunk,
    work: &'a SyncSender<(Chunk, SyncSender<Parsed>)>,
    order: &'a SyncSender<Receiver<Parsed>>,
}

/// The consumer has gone (it stopped on an error of its own, which is the
/// one reported: the splitter's error made of this is never seen).
pub(super) struct Gone;

impl From<Gone> for IngestError {
    fn from(_: Gone) -> Self {
        IngestError::Read {
            path: String::new(),
            source: std::io::Error::other("ingest stopped"),
        }
    }
}

impl Sink<'_> {
    pub(super) fn push(&mut self, line: u64, unit: Result<&[u8], FieldError>) -> Result<(), Gone> {
        let unit = unit.map(|b| {
            self.chunk.bytes.extend_from_slice(b);
            self.chunk.bytes.len()
        });
        self.chunk.units.push((line, unit));
        if self.chunk.units.len() >= CHUNK_UNITS || self.chunk.bytes.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Gone> {
        if self.chunk.units.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.chunk);
        let (tx, rx) = sync_channel(1);
        self.order.send(rx).map_err(|_| Gone)?;
        self.work.send((chunk, tx)).map_err(|_| Gone)
    }
}

/// Parses a chunk's units; their text goes to one string shared by them
/// all (see `packed`), freed with the last of them.
fn parse_chunk(chunk: Chunk, parse: ParseFn) -> Parsed {
    // A capacity hint: decoded text is rarely longer than its input.
    let mut text = String::with_capacity(chunk.bytes.len());
    let mut start = 0;
    let slots: Vec<_> = chunk
        .units
        .into_iter()
        .map(|(line, unit)| {
            let parsed = unit.and_then(|end| {
                let bytes = &chunk.bytes[start..end];
                start = end;
                // Keeps every offset in `packed` far inside u32 (a chunk
                // holds ~1 MiB plus at most one such unit); SQLite refuses
                // a value over 1e9 bytes anyway.
                if bytes.len() > MAX_UNIT_BYTES {
                    return Err(FieldError::new(
                        "",
                        format!(
                            "the event is {} bytes; at most {MAX_UNIT_BYTES} are accepted",
                            bytes.len()
                        ),
                    ));
                }
                parse(bytes, &mut text)
            });
            (line, parsed)
        })
        .collect();
    let text = Arc::new(text);
    slots
        .into_iter()
        .map(|(line, slot)| (line, slot.map(|s| Packed::new(s, Arc::clone(&text)))))
        .collect()
}

/// Parses one unit, appending its text to the chunk's.
pub(super) type ParseFn = fn(&[u8], &mut String) -> Result<Slot, FieldError>;

/// Runs `split` (on a reader thread) to cut the input into units for
/// `parse` (on `threads` workers), and calls `f(line, parsed)` on this
/// thread for every unit in input order. The first error — the splitter's
/// (reading) or `f`'s — ends the run and is returned.
pub(super) fn run(
    threads: usize,
    split: impl FnOnce(&mut Sink<'_>) -> Result<(), IngestError> + Send,
    parse: ParseFn,
    mut f: impl FnMut(u64, Result<Packed, FieldError>) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let threads = threads.max(1);
    // Enough chunks in flight to keep every worker busy while the caller
    // consumes one, and no more.
    let (order_tx, order_rx) = sync_channel::<Receiver<Parsed>>(2 * threads + 2);
    let (work_tx, work_rx) = sync_channel::<(Chunk, SyncSender<Parsed>)>(threads);
    let work_rx = Arc::new(Mutex::new(work_rx));
    std::thread::scope(|s| {
        for _ in 0..threads {
            let work_rx = Arc::clone(&work_rx);
            s.spawn(move || loop {
                // The lock is held only to take the next chunk.
                let next = work_rx.lock().map(|rx| rx.recv());
                let Ok(Ok((chunk, done))) = next else { return };
                // The consumer may have gone: nothing left to do then.
                let _ = done.send(parse_chunk(chunk, parse));
            });
        }
        let reader = s.spawn(move || {
            let mut sink = Sink {
                chunk: Chunk::default(),
                work: &work_tx,
                order: &order_tx,
            };
            let out = split(&mut sink);
            if out.is_ok() {
                // A gone consumer has its own error to report.
                let _ = sink.flush();
            }
            out
        });
        let consumed = (|| {
            for rx in order_rx.iter() {
                // A worker never drops its sender before answering.
                let Ok(parsed) = rx.recv() else { break };
                for (line, ev) in parsed {
                    f(line, ev)?;
                }
            }
            Ok(())
        })();
        // Stop the reader (its sends fail) before waiting for it.
        drop(order_rx);
        let read = reader.join().expect("the ingest reader does not panic");
        consumed.and(read)
    })
}
