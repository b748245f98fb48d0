//! Checking an export against its manifest, and a chain of manifests —
//! offline: no database, no network. The public keys come from the caller
//! (`--public-key`, the local instance's keys, or the database).
//!
//! A file is checked for: `signature` (the manifest's), `unknown_key` (no
//! public key with the manifest's key id), `manifest_mismatch` (the
//! manifest describes another export), `sha256`, `size`, `record_count`
//! (by parsing the data in its format) and `truncated` (a zip that cannot
//! be read to its end).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::document::{Signed, Unreadable};
use super::keys::PublicKey;

/// The name of the manifest inside a zip.
pub const IN_ZIP: &str = "manifest.json";
/// The suffix of the manifest stored beside a plain file (`<file>.manifest.json`).
pub const SUFFIX: &str = ".manifest.json";

/// What verifying a file found.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The failed checks, by name; empty when valid.
    pub failures: Vec<&'static str>,
    /// What was measured, for the one-line report.
    pub detail: String,
    /// The manifest checked against, once it could be read.
    pub manifest: Option<Signed>,
}

impl Verdict {
    /// No check failed.
    pub fn valid(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Why a file could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file (by path) could not be read.
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    /// No manifest was found: neither in the zip nor beside the file (says where it looked).
    #[error("no manifest: {0}")]
    NoManifest(String),
    /// The manifest is not a manifest document.
    #[error("{0}")]
    Unreadable(#[from] Unreadable),
}

/// Reads through, hashing and counting bytes.
struct Hashing<R> {
    inner: R,
    ctx: ring::digest::Context,
    size: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ctx.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// What reading the data found: its record count (None when it does not
/// parse in its format) and the ids of its first and last records (when
/// the format carries them), which tie the data to a manifest even when the
/// data has been altered.
#[derive(Debug, Default)]
struct Counted {
    records: Option<u64>,
    ends: Option<(i64, i64)>,
}

/// The `id` of one JSON event.
fn json_id(event: &[u8]) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: Option<i64>,
    }
    serde_json::from_slice::<Id>(event).ok()?.id
}

/// Counts the records of `data` in `format`, reading it all; an error
/// means the data could not be read to its end.
fn count_records(format: &str, data: &mut dyn Read) -> std::io::Result<Counted> {
    let mut r = BufReader::with_capacity(1 << 16, data);
    let mut first: Option<i64> = None;
    let mut out = Counted::default();
    match format {
        "csv" => {
            let mut rd = csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(true)
                .from_reader(&mut r);
            // The raw layout's `id`, or the readable profile's `audit_id`.
            let id_col = rd.byte_headers().ok().and_then(|h| {
                h.iter().position(|c| {
                    let c = c.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(c).trim_ascii();
                    c == b"id" || c == b"audit_id"
                })
            });
            let mut n = 0u64;
            let mut last = None;
            let mut rec = csv::ByteRecord::new();
            loop {
                match rd.read_byte_record(&mut rec) {
                    Ok(true) => {
                        n += 1;
                        let id = id_col
                            .and_then(|i| rec.get(i))
                            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok());
                        if n == 1 {
                            first = id;
                        }
                        last = id;
                    }
                    Ok(false) => break,
                    Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => {
                        return Err(std::io::Error::other(e.to_string()))
                    }
                    Err(_) => {
                        n = u64::MAX;
                        break;
                    }
                }
            }
            if n != u64::MAX {
                out.records = Some(n);
                out.ends = first.zip(last);
            }
        }
        "jsonl" => {
            let mut n = 0u64;
            let (mut line, mut last) = (Vec::new(), Vec::new());
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line)? == 0 {
                    break;
                }
                if !line.iter().all(u8::is_ascii_whitespace) {
                    n += 1;
                    if n == 1 {
                        first = json_id(&line);
                    }
                    std::mem::swap(&mut line, &mut last);
                }
            }
            out.records = Some(n);
            out.ends = first.zip(json_id(&last));
        }
        "json" => {
            let mut n = 0u64;
            let mut broken = false;
            let mut last = Vec::new();
            crate::audit::ingest::each_array_element(&mut r, &mut broken, |e| {
                n += 1;
                if n == 1 {
                    first = json_id(e);
                }
                last.clear();
                last.extend_from_slice(e);
            })?;
            if !broken {
                out.records = Some(n);
                out.ends = first.zip(json_id(&last));
            }
        }
        _ => {}
    };
    // Whatever the parser left unread still counts for the digest.
    std::io::copy(&mut r, &mut std::io::sink())?;
    Ok(out)
}

/// Checks `file` against its manifest (inside the zip, `manifest` if
/// given, else `<file>.manifest.json`) with `keys`.
pub fn verify_file(
    file: &Path,
    manifest: Option<&Path>,
    keys: &[PublicKey],
) -> Result<Verdict, VerifyError> {
    let read_err = |e| VerifyError::Read(file.display().to_string(), e);
    let mut head = [0u8; 4];
    let n = File::open(file)
        .and_then(|mut f| f.read(&mut head))
        .map_err(read_err)?;
    let is_zip = n == 4 && head == *b"PK\x03\x04";
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if is_zip {
        verify_zip(file, &name, manifest, keys)
    } else {
        let mpath = manifest
            .map(Path::to_path_buf)
            .unwrap_or_else(|| file.with_file_name(format!("{name}{SUFFIX}")));
        let text = std::fs::read(&mpath).map_err(|_| {
            VerifyError::NoManifest(format!("{} (pass --manifest)", mpath.display()))
        })?;
        let signed = Signed::parse(&text)?;
        let f = File::open(file).map_err(read_err)?;
        let mut h = Hashing {
            inner: f,
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            size: 0,
        };
        let counted = count_records(&signed.manifest.format, &mut h).map_err(read_err)?;
        let sha = crate::util::hex(h.ctx.finish().as_ref());
        Ok(judge(
            signed, &name, None, &sha, h.size, counted, false, keys,
        ))
    }
}

fn verify_zip(
    file: &Path,
    name: &str,
    manifest: Option<&Path>,
    keys: &[PublicKey],
) -> Result<Verdict, VerifyError> {
    let truncated = |detail: String| Verdict {
        failures: vec!["truncated"],
        detail,
        manifest: None,
    };
    let f = File::open(file).map_err(|e| VerifyError::Read(file.display().to_string(), e))?;
    let mut zip = match zip::ZipArchive::new(f) {
        Ok(z) => z,
        Err(e) => return Ok(truncated(format!("the zip cannot be read: {e}"))),
    };
    let text = match manifest {
        Some(p) => std::fs::read(p).map_err(|e| VerifyError::Read(p.display().to_string(), e))?,
        None => {
            let mut entry = zip.by_name(IN_ZIP).map_err(|_| {
                VerifyError::NoManifest(format!("{IN_ZIP} is not in {name} (pass --manifest)"))
            })?;
            let mut v = Vec::new();
            if let Err(e) = entry.read_to_end(&mut v) {
                return Ok(truncated(format!("{IN_ZIP} cannot be read: {e}")));
            }
            v
        }
    };
    let signed = Signed::parse(&text)?;
    let wanted = signed.manifest.file.entry.clone().unwrap_or_default();
    let entry = match zip.by_name(&wanted) {
        Ok(e) => e,
        Err(_) => {
            let mut v = judge(
                signed,
                name,
                Some(""),
                "",
                0,
                Counted::default(),
                true,
                keys,
            );
            v.failures
                .retain(|f| *f != "sha256" && *f != "size" && *f != "record_count");
            if !v.failures.contains(&"manifest_mismatch") {
                v.failures.push("manifest_mismatch");
            }
            v.detail = format!("the zip has no entry {wanted:?}");
            return Ok(v);
        }
    };
    let mut h = Hashing {
        inner: entry,
        ctx: ring::digest::Context::new(&ring::digest::SHA256),
        size: 0,
    };
    let counted = match count_records(&signed.manifest.format, &mut h) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Ok(truncated(format!(
                "the data entry cannot be read to its end: {e}"
            )))
        }
        // A CRC or deflate error: bytes of the data were changed, which is
        // what the manifest's SHA-256 guards (size and count unmeasured).
        Err(e) => {
            let mut v = judge(
                signed,
                name,
                Some(&wanted),
                "",
                0,
                Counted::default(),
                false,
                keys,
            );
            v.failures
                .retain(|f| !matches!(*f, "size" | "record_count"));
            if !v.failures.contains(&"sha256") {
                v.failures.push("sha256");
            }
            v.detail = format!("the data entry is not the one signed ({e})");
            return Ok(v);
        }
    };
    let sha = crate::util::hex(h.ctx.finish().as_ref());
    Ok(judge(
        signed,
        name,
        Some(&wanted),
        &sha,
        h.size,
        counted,
        false,
        keys,
    ))
}

/// Compares what was measured with what the manifest says.
#[allow(clippy::too_many_arguments)]
fn judge(
    signed: Signed,
    file_name: &str,
    entry: Option<&str>,
    sha: &str,
    size: u64,
    counted: Counted,
    entry_missing: bool,
    keys: &[PublicKey],
) -> Verdict {
    let Counted {
        records: counted,
        ends,
    } = counted;
    let m = &signed.manifest;
    let mut failures = Vec::new();
    match keys.iter().find(|k| k.key_id == m.key_id) {
        None => failures.push("unknown_key"),
        Some(k) if !signed.verifies_with(k) => failures.push("signature"),
        Some(_) => {}
    }
    // Another export's manifest, or this export's data altered? In a zip,
    // the entry the manifest names says. A plain file is this export's when
    // it keeps the manifest's file name, or its first and last records are
    // the manifest's (a changed byte or a row removed inside), or one of
    // them is and about as many records remain (the first or last row
    // removed; another export that shares an end, such as a later "from"
    // up to now, differs by many rows).
    let manifest_ends = m
        .first
        .as_ref()
        .zip(m.last.as_ref())
        .map(|(f, l)| (f.id, l.id));
    let near = |n: u64| n.abs_diff(m.record_count) <= (m.record_count / 100).max(1);
    let same_export = match (entry, ends, manifest_ends) {
        (Some(_), ..) => !entry_missing,
        _ if m.file.name == file_name => true,
        (None, Some((first, last)), Some((m_first, m_last))) => {
            (first == m_first && last == m_last)
                || ((first == m_first || last == m_last) && counted.is_some_and(near))
        }
        (None, ..) => false,
    };
    if !same_export && m.file.sha256 != sha {
        // Another export's manifest: the digests mean nothing here.
        failures.push("manifest_mismatch");
    } else if !entry_missing {
        if m.file.sha256 != sha {
            failures.push("sha256");
        }
        if m.file.size != size {
            failures.push("size");
        }
        if counted != Some(m.record_count) {
            failures.push("record_count");
        }
    }
    let detail = format!(
        "{} records counted (manifest {}), {size} bytes (manifest {}), sha256 {}, key {}, sequence {} of {}",
        counted.map_or("?".into(), |c| c.to_string()),
        m.record_count,
        m.file.size,
        if sha.is_empty() { "-" } else { &sha[..sha.len().min(16)] },
        m.key_id,
        m.sequence,
        m.organization
    );
    Verdict {
        failures,
        detail,
        manifest: Some(signed),
    }
}

/// What verifying a chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainVerdict {
    /// How many manifests were checked.
    pub manifests: usize,
    /// The first gap or break, if any.
    pub problem: Option<String>,
}

/// Checks a chain of manifest documents (any order): one organization,
/// sequences 1, 2, 3… without a gap, each linking the SHA-256 of the one
/// before, every signature valid with `keys`.
pub fn verify_chain(docs: Vec<(String, Signed)>, keys: &[PublicKey]) -> ChainVerdict {
    let mut docs = docs;
    docs.sort_by_key(|(_, s)| s.manifest.sequence);
    let n = docs.len();
    let problem = (|| {
        let org = &docs.first()?.1.manifest.organization;
        let mut prev: Option<&Signed> = None;
        for (expected, (source, s)) in (1u64..).zip(docs.iter()) {
            let m = &s.manifest;
            if &m.organization != org {
                return Some(format!(
                    "{source}: organization {} in a chain of {org}",
                    m.organization
                ));
            }
            match keys.iter().find(|k| k.key_id == m.key_id) {
                None => {
                    return Some(format!(
                        "{source}: sequence {}: unknown_key {}",
                        m.sequence, m.key_id
                    ))
                }
                Some(k) if !s.verifies_with(k) => {
                    return Some(format!("{source}: sequence {}: signature", m.sequence))
                }
                _ => {}
            }
            if m.sequence != expected {
                return Some(if m.sequence < expected {
                    format!("{source}: sequence {} appears twice", m.sequence)
                } else if expected == m.sequence - 1 {
                    format!("gap: sequence {expected} is missing (before {source})")
                } else {
                    format!(
                        "gap: sequences {expected} to {} are missing (before {source})",
                        m.sequence - 1
                    )
                });
            }
            match (&m.previous, prev) {
                (None, None) => {}
                (Some(p), Some(before))
                    if p.sequence == m.sequence - 1 && p.sha256 == before.sha256() => {}
                (Some(_), Some(_)) => {
                    return Some(format!(
                        "break at sequence {}: its link does not match the SHA-256 of sequence {}",
                        m.sequence,
                        m.sequence - 1
                    ))
                }
                (None, Some(_)) => {
                    return Some(format!(
                        "break at sequence {}: it has no link to sequence {}",
                        m.sequence,
                        m.sequence - 1
                    ))
                }
                (Some(p), None) => {
                    return Some(format!(
                        "break at sequence {}: it links to sequence {} which is not here",
                        m.sequence, p.sequence
                    ))
                }
            }
            prev = Some(s);
        }
        None
    })();
    ChainVerdict {
        manifests: n,
        problem,
    }
}
