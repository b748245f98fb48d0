//! The uploading step: (optionally) wrap the compressed stream the export
//! wrote as it ran in a deterministic zip, then stream the file to storage
//! at `<org>/<job-id>/<file-name>`, hashing on the way, with its signed
//! manifest (inside the zip as `manifest.json`, else beside the file as
//! `<file-name>.manifest.json`).
//!
//! Re-running the step after a crash rebuilds the same zip from the same
//! spool (compressing it again if its stream is missing: the stream depends
//! only on the data) and overwrites the same key, so the stored bytes do not depend on
//! how often it was interrupted. A missing spool sends the job back to
//! exporting. An upload failure aborts the write and
//! returns; the spool stays for the retry (the scheduler removes it when the
//! job reaches a final state), so nothing can block or leak.

use std::path::Path;
use std::sync::Arc;

use super::{deflate_file, deflate_info, job_filters, spool_file, StepError};
use crate::jobs::store::StoredFile;
use crate::jobs::{Compress, Job, Runner};
use crate::manifest::document::{EventRef, FileRef, Manifest, Options, Previous};
use crate::manifest::verify::{IN_ZIP, SUFFIX};
use crate::manifest::Signed;
use crate::storage::{export_file_name, safe_component, write_zip, Deflated};

/// The stored file name of a job (see [`export_file_name`]).
pub fn file_name(job: &Job, compressed: bool) -> Result<String, StepError> {
    let f = job_filters(job)?;
    let zone = job
        .options
        .timezone
        .as_deref()
        .and_then(crate::time::Zone::parse)
        .unwrap_or_default();
    let base = export_file_name(&f, job.format, &zone, job.created_at);
    Ok(if compressed {
        format!("{base}.zip")
    } else {
        base
    })
}

/// Whether the policy compresses a spool of `bytes`.
pub fn should_compress(policy: Compress, bytes: u64, threshold: u64) -> bool {
    match policy {
        Compress::Always => true,
        Compress::Never => false,
        Compress::Auto => bytes > threshold,
    }
}

/// What the step stored: the file, and its signed manifest.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The stored file (key, name, size, digest).
    pub file: StoredFile,
    /// The signed manifest describing it.
    pub manifest: Signed,
}

/// Builds the manifest of `job`'s data with digest `sha256`/`size`, as the
/// next link of its organization's chain (`latest`: the chain's end now;
/// the final transition checks it still is). Every field comes from the
/// job, so a resumed upload signs the same bytes.
fn build_manifest(
    job: &Job,
    runner: &Runner,
    latest: Option<(u64, String)>,
    file: FileRef,
    compressed: bool,
) -> Result<Signed, StepError> {
    let filters = job_filters(job)?;
    let o = &job.options;
    let event = |c: Option<crate::audit::query::Cursor>| {
        c.map(|c| EventRef {
            id: c.id,
            occurred_at: crate::time::format_rfc3339_ms(c.occurred_at),
        })
    };
    // One snapshot of the keys: the id named and the key that signs agree.
    let keys = runner.keys();
    let manifest = Manifest {
        version: crate::manifest::document::VERSION,
        engine: format!("audit-export {}", env!("CARGO_PKG_VERSION")),
        organization: job.organization_id.clone(),
        job_id: job.id.clone(),
        requester: job.requester.clone(),
        format: job.format.as_str().into(),
        options: Options {
            bom: o.csv.bom,
            formula_guard: o.csv.formula_guard,
            profile: o.csv.profile.as_str().into(),
            fields: o
                .csv
                .fields
                .map(|f| f.names().into_iter().map(String::from).collect()),
            timezone: o.timezone.clone(),
            redacted: o.redact.0,
            compressed,
        },
        filters: job.filters_value(),
        filter_hash: filters.hash(),
        // The request time: a resumed job must sign the same bytes.
        generated_at: crate::time::format_rfc3339_ms(job.created_at),
        record_count: job.exported_count,
        first: event(job.first),
        last: event(job.checkpoint),
        file,
        sequence: latest.as_ref().map_or(1, |(s, _)| s + 1),
        previous: latest.map(|(sequence, sha256)| Previous { sequence, sha256 }),
        key_id: keys.active_id().to_string(),
    };
    Ok(manifest.sign(&keys))
}

/// The spool's compressed stream, as the export wrote it while it ran;
/// made again from the spool when it is missing or does not describe
/// exactly the recorded `bytes` (the same bytes either way: the stream
/// depends only on the data).
fn compressed_stream(spool: &Path, bytes: u64, threads: usize) -> std::io::Result<Deflated> {
    let stream = deflate_file(spool);
    let described = std::fs::read(deflate_info(spool))
        .ok()
        .and_then(|b| serde_json::from_slice::<Deflated>(&b).ok());
    if let Some(info) = described {
        let len = std::fs::metadata(&stream).map(|m| m.len());
        if info.raw_len == bytes && len.is_ok_and(|l| l == info.len) {
            return Ok(info);
        }
    }
    let _ = std::fs::remove_file(deflate_info(spool));
    // Made under a name of its own, then moved into place with its
    // description: an upload of a worker that lost its lease may still be
    // running, and two writers must never share a file.
    let work = unique(&stream);
    let info = crate::storage::deflate_file(spool, bytes, &work, threads)?;
    std::fs::rename(&work, &stream)?;
    let json = serde_json::to_vec(&info).expect("plain fields serialize");
    std::fs::write(deflate_info(spool), json)?;
    Ok(info)
}

/// `path` with a random suffix: a work file no other task writes.
fn unique(path: &Path) -> std::path::PathBuf {
    let mut r = [0u8; 6];
    crate::util::random_bytes(&mut r);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{name}.{}.tmp", crate::util::hex(&r)))
}

/// Runs the step and returns what was stored.
pub async fn run(job: &Job, runner: &Arc<Runner>) -> Result<Uploaded, StepError> {
    let (cfg, storage) = (&runner.cfg, &runner.storage);
    let spool = spool_file(&runner.data_dir, job);
    // Exactly the recorded length is stored, whatever else is on disk.
    let bytes = job.spool_bytes;
    match tokio::fs::metadata(&spool).await {
        Ok(m) if m.len() >= bytes => {}
        _ => return Err(StepError::SpoolLost),
    }
    let compressed = should_compress(job.compress, bytes, cfg.compress_threshold_bytes);
    let name = file_name(job, compressed)?;
    let key = format!(
        "{}/{}/{}",
        safe_component(&job.organization_id),
        job.id,
        name
    );
    let org = job.organization_id.clone();
    let latest = runner
        .on_db(move |c| Ok(crate::manifest::store::latest(c, &org)?))
        .await?;
    let (put, manifest) = if compressed {
        // A work file of this task's own (see `unique`), removed once stored.
        let zipped = unique(&spool.with_file_name(&name));
        let entry = file_name(job, false)?;
        let (src, dst, mtime, threads) = (
            spool.clone(),
            zipped.clone(),
            job.created_at,
            runner.threads,
        );
        let (j, r, zip_name) = (job.clone(), runner.clone(), name.clone());
        let signed = tokio::task::spawn_blocking(move || -> Result<Signed, StepError> {
            let info = compressed_stream(&src, bytes, threads)?;
            let file = FileRef {
                name: zip_name,
                entry: Some(entry.clone()),
                sha256: info.sha256.clone(),
                size: info.raw_len,
            };
            let signed = build_manifest(&j, &r, latest, file, true)?;
            let doc = signed.document().into_bytes();
            write_zip(
                &dst,
                &entry,
                mtime,
                &deflate_file(&src),
                &info,
                Some((IN_ZIP, &doc)),
            )?;
            Ok(signed)
        })
        .await
        .map_err(|e| StepError::retryable("zip_failed", e))??;
        let put = storage.put_file_moved(&key, &zipped).await;
        let _ = tokio::fs::remove_file(&zipped).await;
        (put?, signed)
    } else {
        let put = storage.put_file(&key, &spool, bytes).await?;
        let file = FileRef {
            name: name.clone(),
            entry: None,
            sha256: put.sha256.clone(),
            size: put.size,
        };
        let signed = build_manifest(job, runner, latest, file, false)?;
        storage
            .put_bytes(&format!("{key}{SUFFIX}"), signed.document().into_bytes())
            .await?;
        (put, signed)
    };
    if let Some(archive) = &job.archive_key {
        // The archive copy is the stored file itself (zipped when it is),
        // with its manifest beside it when it is not zipped.
        let archive = if compressed && !archive.ends_with(".zip") {
            format!("{archive}.zip")
        } else {
            archive.clone()
        };
        storage.copy(&key, &archive).await?;
        if !compressed {
            storage
                .put_bytes(
                    &format!("{archive}{SUFFIX}"),
                    manifest.document().into_bytes(),
                )
                .await?;
        }
    }
    Ok(Uploaded {
        file: StoredFile {
            key,
            name,
            size: put.size,
            sha256: put.sha256,
            compressed,
        },
        manifest,
    })
}
