//! Deterministic zip around an already deflated stream (see [`super::deflate`]):
//! the same data gives the same bytes, every time (fixed entry timestamp and
//! permissions, a compressed stream that depends only on the data), so a
//! resumed job stores exactly the file an uninterrupted one would.
//!
//! The archive is written by hand because the data is compressed before the
//! zip exists (while the export runs); the `zip` crate would compress it
//! again. Zip64 records are written only when a size or offset needs them.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use chrono::{Datelike, Timelike};

use super::deflate::{Deflated, Deflater};

const LOCAL: u32 = 0x0403_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;
const END64: u32 = 0x0606_4b50;
const LOCATOR64: u32 = 0x0706_4b50;
/// Regular file, rw-r--r--, in the upper half of the external attributes.
const UNIX_MODE: u32 = 0o100_644 << 16;
/// "Made by" Unix (3), spec 4.5 (zip64) or 2.0.
const fn version(zip64: bool) -> u16 {
    if zip64 {
        45
    } else {
        20
    }
}

/// One entry's description.
struct Entry {
    name: String,
    method: u16,
    crc32: u32,
    size: u64,
    compressed: u64,
    offset: u64,
}

/// DOS time and date of `mtime_ms` (UTC; clamped into 1980–2107).
fn dos_stamp(mtime_ms: i64) -> (u16, u16) {
    let t = chrono::DateTime::from_timestamp_millis(mtime_ms).unwrap_or_default();
    let year = t.year().clamp(1980, 2107) as u16;
    let time = ((t.hour() as u16) << 11) | ((t.minute() as u16) << 5) | (t.second() as u16 / 2);
    let date = ((year - 1980) << 9) | ((t.month() as u16) << 5) | t.day() as u16;
    (time, date)
}

struct Writer<W: Write> {
    out: W,
    at: u64,
    stamp: (u16, u16),
    zip64: bool,
}

impl<W: Write> Writer<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.at += bytes.len() as u64;
        Ok(())
    }

    fn u16(&mut self, v: u16) -> io::Result<()> {
        self.put(&v.to_le_bytes())
    }

    fn u32(&mut self, v: u32) -> io::Result<()> {
        self.put(&v.to_le_bytes())
    }

    fn u64(&mut self, v: u64) -> io::Result<()> {
        self.put(&v.to_le_bytes())
    }

    /// UTF-8 flag for a non-ASCII name.
    fn flags(name: &str) -> u16 {
        if name.is_ascii() {
            0
        } else {
            1 << 11
        }
    }

    /// The fields both headers share, from "version needed" to "extra
    /// field length" (APPNOTE 4.3.7 / 4.3.12).
    fn entry_fields(&mut self, e: &Entry, extra_len: u16) -> io::Result<()> {
        let z = self.zip64;
        self.u16(version(z))?;
        self.u16(Self::flags(&e.name))?;
        self.u16(e.method)?;
        self.u16(self.stamp.0)?;
        self.u16(self.stamp.1)?;
        self.u32(e.crc32)?;
        self.u32(if z { u32::MAX } else { e.compressed as u32 })?;
        self.u32(if z { u32::MAX } else { e.size as u32 })?;
        self.u16(e.name.len() as u16)?;
        self.u16(if z { extra_len } else { 0 })
    }

    fn local_header(&mut self, e: &Entry) -> io::Result<()> {
        self.u32(LOCAL)?;
        self.entry_fields(e, 20)?;
        self.put(e.name.as_bytes())?;
        if self.zip64 {
            // Zip64 extra: original, then compressed size.
            self.u16(0x0001)?;
            self.u16(16)?;
            self.u64(e.size)?;
            self.u64(e.compressed)?;
        }
        Ok(())
    }

    fn central_header(&mut self, e: &Entry) -> io::Result<()> {
        let z = self.zip64;
        self.u32(CENTRAL)?;
        self.u16((3 << 8) | version(z))?;
        self.entry_fields(e, 28)?;
        self.u16(0)?; // comment
        self.u16(0)?; // disk
        self.u16(0)?; // internal attributes
        self.u32(UNIX_MODE)?;
        self.u32(if z { u32::MAX } else { e.offset as u32 })?;
        self.put(e.name.as_bytes())?;
        if z {
            // Every field set to 0xFFFFFFFF above, in this order.
            self.u16(0x0001)?;
            self.u16(24)?;
            self.u64(e.size)?;
            self.u64(e.compressed)?;
            self.u64(e.offset)?;
        }
        Ok(())
    }

    fn end(&mut self, entries: u16, cd_start: u64) -> io::Result<()> {
        let cd_size = self.at - cd_start;
        if self.zip64 {
            let end64 = self.at;
            self.u32(END64)?;
            self.u64(44)?;
            self.u16((3 << 8) | 45)?;
            self.u16(45)?;
            self.u32(0)?;
            self.u32(0)?;
            self.u64(entries.into())?;
            self.u64(entries.into())?;
            self.u64(cd_size)?;
            self.u64(cd_start)?;
            self.u32(LOCATOR64)?;
            self.u32(0)?;
            self.u64(end64)?;
            self.u32(1)?;
        }
        self.u32(END)?;
        self.u16(0)?;
        self.u16(0)?;
        self.u16(entries)?;
        self.u16(entries)?;
        self.u32(if self.zip64 { u32::MAX } else { cd_size as u32 })?;
        self.u32(if self.zip64 {
            u32::MAX
        } else {
            cd_start as u32
        })?;
        self.u16(0)
    }
}

/// Writes `dst`: entry `entry_name` holding the deflate stream in `deflated`
/// (described by `info`), stamped `mtime_ms`, then, if given, a stored
/// second entry (the manifest, which vouches for the data entry).
pub fn write_zip(
    dst: &Path,
    entry_name: &str,
    mtime_ms: i64,
    deflated: &Path,
    info: &Deflated,
    last: Option<(&str, &[u8])>,
) -> io::Result<()> {
    write_zip_with(dst, entry_name, mtime_ms, deflated, info, last, false)
}

fn write_zip_with(
    dst: &Path,
    entry_name: &str,
    mtime_ms: i64,
    deflated: &Path,
    info: &Deflated,
    last: Option<(&str, &[u8])>,
    force_zip64: bool,
) -> io::Result<()> {
    // Any size or offset past 32 bits needs zip64, and the data entry's
    // sizes bound every offset but the manifest's few bytes.
    let limit = u64::from(u32::MAX) - (1 << 20);
    let zip64 = force_zip64 || info.raw_len >= limit || info.len >= limit;
    let mut w = Writer {
        out: BufWriter::with_capacity(1 << 20, File::create(dst)?),
        at: 0,
        stamp: dos_stamp(mtime_ms),
        zip64,
    };
    let data = Entry {
        name: entry_name.to_string(),
        method: 8,
        crc32: info.crc32,
        size: info.raw_len,
        compressed: info.len,
        offset: 0,
    };
    w.local_header(&data)?;
    let mut stream = File::open(deflated)?.take(info.len);
    let copied = io::copy(&mut stream, &mut w.out)?;
    if copied != info.len {
        return Err(io::Error::other(format!(
            "the compressed data is {copied} bytes, expected {}",
            info.len
        )));
    }
    w.at += copied;
    let mut entries = vec![data];
    if let Some((name, bytes)) = last {
        let e = Entry {
            name: name.to_string(),
            method: 0,
            crc32: crc32fast::hash(bytes),
            size: bytes.len() as u64,
            compressed: bytes.len() as u64,
            offset: w.at,
        };
        w.local_header(&e)?;
        w.put(bytes)?;
        entries.push(e);
    }
    let cd_start = w.at;
    for e in &entries {
        w.central_header(e)?;
    }
    w.end(entries.len() as u16, cd_start)?;
    let file = w.out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// Deflates the first `len` bytes of `src` into `dst` (what the export
/// writes while it runs; used when that stream is missing).
pub fn deflate_file(src: &Path, len: u64, dst: &Path, threads: usize) -> io::Result<Deflated> {
    let mut d = Deflater::new(File::create(dst)?, threads);
    d.write_from(File::open(src)?.take(len))?;
    let info = d.finish()?;
    if info.raw_len != len {
        return Err(io::Error::other(format!(
            "the spool holds {} bytes, expected {len}",
            info.raw_len
        )));
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(dir: &Path, name: &str, text: &str, zip64: bool) -> (std::path::PathBuf, Deflated) {
        let src = dir.join("data.csv");
        std::fs::write(&src, text).unwrap();
        let stream = dir.join(format!("{name}.deflate"));
        let info = deflate_file(&src, text.len() as u64, &stream, 2).unwrap();
        let dst = dir.join(name);
        let manifest = info.sha256.clone().into_bytes();
        let last = Some(("manifest.json", manifest.as_slice()));
        write_zip_with(
            &dst,
            "a.csv",
            1_767_225_600_000,
            &stream,
            &info,
            last,
            zip64,
        )
        .unwrap();
        (dst, info)
    }

    fn read_entry(path: &Path, name: &str) -> String {
        let mut archive = zip::ZipArchive::new(File::open(path).unwrap()).unwrap();
        let mut text = String::new();
        archive
            .by_name(name)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn same_input_same_bytes_and_readable_by_zip_readers() {
        let dir = tempfile::tempdir().unwrap();
        let text = "id,x\r\n1,hello é\r\n".repeat(200_000);
        for zip64 in [false, true] {
            let (a, info) = build(dir.path(), &format!("a-{zip64}.zip"), &text, zip64);
            let (b, _) = build(dir.path(), &format!("b-{zip64}.zip"), &text, zip64);
            assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
            assert_eq!(read_entry(&a, "a.csv"), text);
            assert_eq!(read_entry(&a, "manifest.json"), info.sha256);
            let mut archive = zip::ZipArchive::new(File::open(&a).unwrap()).unwrap();
            let entry = archive.by_index(0).unwrap();
            assert_eq!(entry.unix_mode(), Some(0o100_644));
            let t = entry.last_modified().unwrap();
            assert_eq!((t.year(), t.month(), t.day()), (2026, 1, 1));
            // Another implementation agrees (CRC, sizes, zip64 records).
            let checked = std::process::Command::new("python3")
                .args(["-m", "zipfile", "-t"])
                .arg(&a)
                .output();
            match checked {
                Ok(out) => assert!(out.status.success(), "{out:?}"),
                Err(e) if std::env::var_os("CI").is_some() => panic!("python3: {e}"),
                Err(_) => {}
            }
        }
    }

    #[test]
    fn a_short_stream_is_an_error_not_a_truncated_zip() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut info) = build(dir.path(), "x.zip", "abc\n", false);
        info.len += 10;
        let stream = dir.path().join("x.zip.deflate");
        let dst = dir.path().join("y.zip");
        assert!(write_zip(&dst, "a.csv", 0, &stream, &info, None).is_err());
    }
}
