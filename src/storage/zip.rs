//! Deterministic zip: the same input and entry gives the same bytes, every
//! time (fixed entry timestamp and permissions, fixed compression level), so
//! a resumed job stores exactly the file an uninterrupted one would.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::path::Path;

use chrono::{Datelike, Timelike};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// The SHA-256 (hex) and size of the data zipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub sha256: String,
    pub size: u64,
}

/// Reads through, hashing.
struct Hashing<R> {
    inner: R,
    ctx: ring::digest::Context,
    size: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ctx.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Zips the first `len` bytes of `src` as entry `entry_name` into `dst`,
/// stamped with `mtime_ms` (UTC; clamped into 1980–2107); then, if `last`
/// gives one from the data's digest, a second entry (name, bytes) — the
/// manifest, which vouches for the data entry. Returns the data's digest.
pub fn zip_file(
    src: &Path,
    len: u64,
    dst: &Path,
    entry_name: &str,
    mtime_ms: i64,
    last: impl FnOnce(&Digest) -> Option<(String, Vec<u8>)>,
) -> io::Result<Digest> {
    let t = chrono::DateTime::from_timestamp_millis(mtime_ms).unwrap_or_default();
    let stamp = DateTime::from_date_and_time(
        t.year().clamp(1980, 2107) as u16,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    )
    .unwrap_or_default();
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(stamp)
        .unix_permissions(0o644)
        .large_file(std::fs::metadata(src)?.len().min(len) >= u32::MAX as u64);
    let out = BufWriter::with_capacity(1 << 20, File::create(dst)?);
    let mut zip = ZipWriter::new(out);
    zip.start_file(entry_name, options)
        .map_err(io::Error::other)?;
    let mut input = Hashing {
        inner: BufReader::with_capacity(1 << 20, File::open(src)?).take(len),
        ctx: ring::digest::Context::new(&ring::digest::SHA256),
        size: 0,
    };
    io::copy(&mut input, &mut zip)?;
    let digest = Digest {
        sha256: crate::util::hex(input.ctx.finish().as_ref()),
        size: input.size,
    };
    if let Some((name, bytes)) = last(&digest) {
        zip.start_file(name, options.large_file(false))
            .map_err(io::Error::other)?;
        io::Write::write_all(&mut zip, &bytes)?;
    }
    let out = zip.finish().map_err(io::Error::other)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_input_same_bytes_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.csv");
        std::fs::write(&src, "id,x\r\n1,hello\r\n".repeat(1000)).unwrap();
        let (a, b) = (dir.path().join("a.zip"), dir.path().join("b.zip"));
        let extra = |d: &Digest| Some(("m.json".to_string(), d.sha256.clone().into_bytes()));
        let da = zip_file(&src, u64::MAX, &a, "a.csv", 1_767_225_600_000, extra).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        zip_file(&src, u64::MAX, &b, "a.csv", 1_767_225_600_000, extra).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let mut archive = zip::ZipArchive::new(File::open(&a).unwrap()).unwrap();
        let mut text = String::new();
        archive
            .by_name("a.csv")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, std::fs::read_to_string(&src).unwrap());
        assert_eq!(da.size, text.len() as u64);
        assert_eq!(da.sha256, crate::util::sha256_hex(text.as_bytes()));
        let mut m = String::new();
        archive
            .by_name("m.json")
            .unwrap()
            .read_to_string(&mut m)
            .unwrap();
        assert_eq!(m, da.sha256);
    }
}
