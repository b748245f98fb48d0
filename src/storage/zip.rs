//! Deterministic zip: the same input and entry gives the same bytes, every
//! time (fixed entry timestamp and permissions, fixed compression level), so
//! a resumed job stores exactly the file an uninterrupted one would.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::path::Path;

use chrono::{Datelike, Timelike};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// Zips the first `len` bytes of `src` as a single entry `entry_name` into
/// `dst`, stamped with `mtime_ms` (UTC; clamped into 1980–2107).
pub fn zip_file(
    src: &Path,
    len: u64,
    dst: &Path,
    entry_name: &str,
    mtime_ms: i64,
) -> io::Result<()> {
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
    let mut input = BufReader::with_capacity(1 << 20, File::open(src)?).take(len);
    io::copy(&mut input, &mut zip)?;
    let out = zip.finish().map_err(io::Error::other)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
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
        zip_file(&src, u64::MAX, &a, "a.csv", 1_767_225_600_000).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        zip_file(&src, u64::MAX, &b, "a.csv", 1_767_225_600_000).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let mut archive = zip::ZipArchive::new(File::open(&a).unwrap()).unwrap();
        let mut entry = archive.by_name("a.csv").unwrap();
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        assert_eq!(text, std::fs::read_to_string(&src).unwrap());
    }
}
