//! Where finished exports live: an opendal operator (local disk by default,
//! S3 by configuration), plus the deterministic compression (a block
//! deflater fed while the export runs) and zip used before storing.
//!
//! Files are streamed in chunks with their SHA-256 computed on the way, so
//! memory stays flat whatever the file size. A file appears at its key only
//! once complete: on local disk it is written under `<root>/.partial/` and
//! renamed into place on close; on S3 a multipart upload completes on close
//! or is aborted. Transient backend errors (a network blip, an S3 outage)
//! are retried inside the operation for up to `[storage] retry_secs` before
//! the caller sees them; configuration errors (no such bucket, bad
//! credentials) are never retried and name the setting to fix. This module
//! knows nothing of job state.

mod deflate;
mod local;
mod names;
mod retry;
mod zip;

use std::path::Path;
use std::sync::Arc;

use opendal::Operator;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

pub use self::deflate::{Deflated, Deflater};
pub use self::names::{export_file_name, safe_component};
use self::retry::retry_layer;
pub use self::zip::{deflate_file, write_zip};

/// Upload chunk size to S3 (its multipart part size floor is 5 MiB).
const CHUNK: usize = 8 << 20;
/// Write size of a local file.
const LOCAL_CHUNK: usize = 1 << 20;

/// `[storage]` settings.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `fs` (default) or `s3`.
    pub kind: StorageKind,
    /// fs: the root folder (default `<data-dir>/exports`); s3: a key prefix.
    pub root: Option<String>,
    /// s3: the bucket (required).
    pub bucket: Option<String>,
    /// s3: endpoint URL of an S3-compatible service; `None`: AWS.
    pub endpoint: Option<String>,
    /// s3: the region (default `us-east-1`).
    pub region: Option<String>,
    /// s3: access key id (AWS's own environment variables and instance
    /// metadata are never consulted).
    pub access_key_id: Option<String>,
    /// s3: secret access key (masked by `config show`).
    pub secret_access_key: Option<String>,
    /// How long transient errors are retried inside one operation before
    /// it fails (default 120; 0: no retries).
    pub retry_secs: Option<u64>,
}

/// Folder of unfinished local writes, under the storage root.
pub const PARTIAL_DIR: &str = ".partial";

/// Which backend stores export files (`[storage] kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// A local folder (default: `<data-dir>/exports`).
    #[default]
    Fs,
    /// An S3 bucket (AWS or compatible).
    S3,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A `[storage]` setting is missing or wrong (names it); never retried.
    #[error("storage configuration: {0}")]
    Config(String),
    /// The backend refused a write for a reason no retry fixes; the message
    /// names the setting to fix.
    #[error("{0}")]
    Misconfigured(String),
    /// The backend failed, after its retries for transient errors.
    #[error("storage: {0}")]
    Backend(#[from] opendal::Error),
    /// Reading the local file to store, or writing a local one, failed.
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A failure made by a fault-injection hook (tests only).
    #[error("storage fault (injected): {0}")]
    Injected(String),
}

impl StorageError {
    /// Whether trying again may succeed: not a bad configuration (missing
    /// bucket, refused credentials); a full local disk may be freed, so it
    /// is retried like an outage.
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            StorageError::Config(_) | StorageError::Misconfigured(_)
        )
    }
}

/// Decides whether a write fails, for fault-injection tests only: called
/// with the key before a write starts.
pub type FaultHook = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;
/// Like [`FaultHook`], called after each chunk is written with the bytes
/// written so far (the last call comes before the file is completed).
pub type MidWriteFault = Arc<dyn Fn(&str, u64) -> Option<String> + Send + Sync>;

/// The export store.
#[derive(Clone)]
pub struct Storage {
    op: Operator,
    fault: Option<FaultHook>,
    fault_mid: Option<MidWriteFault>,
    /// The root folder, for local disk.
    local_root: Option<std::path::PathBuf>,
    /// Kind, bucket and endpoint, to explain refusals (no secrets).
    about: (StorageKind, Option<String>, Option<String>),
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("op", &self.op.info().scheme())
            .finish()
    }
}

/// Size and SHA-256 (hex) of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 (hex) of the bytes stored.
    pub sha256: String,
}

impl Storage {
    /// Builds the operator the configuration describes.
    pub fn from_config(cfg: &StorageConfig, data_dir: &Path) -> Result<Storage, StorageError> {
        let op = match cfg.kind {
            StorageKind::Fs => {
                let root = match &cfg.root {
                    Some(r) => std::path::PathBuf::from(r),
                    None => data_dir.join("exports"),
                };
                std::fs::create_dir_all(root.join(PARTIAL_DIR))?;
                let root = std::path::absolute(&root)?;
                // Unfinished files live beside the final ones (same file
                // system, so the closing rename is atomic).
                let b = opendal::services::Fs::default()
                    .root(&root.to_string_lossy())
                    .atomic_write_dir(&root.join(PARTIAL_DIR).to_string_lossy());
                let mut op = Operator::new(b)?;
                if let Some(l) = retry_layer(cfg.retry_secs.unwrap_or(120)) {
                    op = op.layer(l);
                }
                return Ok(Storage {
                    op,
                    fault: None,
                    fault_mid: None,
                    local_root: Some(root),
                    about: (cfg.kind, None, None),
                });
            }
            StorageKind::S3 => {
                let need = |v: &Option<String>, name: &str| {
                    v.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
                        StorageError::Config(format!("[storage] {name} is required for s3"))
                    })
                };
                let mut b = opendal::services::S3::default()
                    .bucket(&need(&cfg.bucket, "bucket")?)
                    .region(cfg.region.as_deref().unwrap_or("us-east-1"))
                    .disable_config_load()
                    .disable_ec2_metadata();
                if let Some(e) = &cfg.endpoint {
                    b = b.endpoint(e);
                }
                if let Some(r) = &cfg.root {
                    b = b.root(r);
                }
                if let Some(k) = &cfg.access_key_id {
                    b = b.access_key_id(k);
                }
                if let Some(s) = &cfg.secret_access_key {
                    b = b.secret_access_key(s);
                }
                let mut op = Operator::new(b)?;
                if let Some(l) = retry_layer(cfg.retry_secs.unwrap_or(120)) {
                    op = op.layer(l);
                }
                op
            }
        };
        Ok(Storage {
            op,
            fault: None,
            fault_mid: None,
            local_root: None,
            about: (cfg.kind, cfg.bucket.clone(), cfg.endpoint.clone()),
        })
    }

    /// A backend error of a write: a refusal no retry can fix becomes
    /// [`StorageError::Misconfigured`], naming the setting.
    fn write_error(&self, e: opendal::Error) -> StorageError {
        use opendal::ErrorKind as K;
        let (kind, bucket, endpoint) = &self.about;
        let bucket = bucket.as_deref().unwrap_or("");
        let text = e.to_string();
        let s3 = *kind == StorageKind::S3;
        let missing_bucket = s3 && (text.contains("NoSuchBucket") || e.kind() == K::NotFound);
        let refused = matches!(e.kind(), K::PermissionDenied)
            || [
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "AccessDenied",
            ]
            .iter()
            .any(|c| text.contains(c));
        let why = if missing_bucket {
            format!(
                "storage: bucket {bucket:?} does not exist at {} — create it, or fix [storage] bucket / endpoint ({e})",
                endpoint.as_deref().unwrap_or("the default endpoint")
            )
        } else if s3 && refused {
            format!(
                "storage: bucket {bucket:?} refused the credentials — check [storage] access_key_id and secret_access_key ({e})"
            )
        } else if refused {
            format!(
                "storage: the export folder is not writable — check [storage] root and its permissions ({e})"
            )
        } else if matches!(e.kind(), K::ConfigInvalid | K::Unsupported) {
            format!("storage: invalid [storage] settings ({e})")
        } else {
            return StorageError::Backend(e);
        };
        StorageError::Misconfigured(why)
    }

    /// Where `key` is on local disk (`fs` storage only).
    pub fn local_path(&self, key: &str) -> Option<std::path::PathBuf> {
        self.local_root.as_ref().map(|r| r.join(key))
    }

    /// The same storage, with writes passing through `hook` first.
    pub fn with_fault(mut self, hook: FaultHook) -> Storage {
        self.fault = Some(hook);
        self
    }

    /// The same storage, with file writes failing midway when `hook` says.
    pub fn with_mid_write_fault(mut self, hook: MidWriteFault) -> Storage {
        self.fault_mid = Some(hook);
        self
    }

    /// Streams the first `limit` bytes of the file at `path` to `key`,
    /// returning size and SHA-256. A failed write (any step, closing
    /// included) is aborted: nothing appears at `key`, and no unfinished
    /// copy is left behind.
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        limit: u64,
    ) -> Result<PutResult, StorageError> {
        if let Some(msg) = self.fault.as_ref().and_then(|f| f(key)) {
            return Err(StorageError::Injected(msg));
        }
        let mut file = tokio::fs::File::open(path).await?.take(limit);
        // S3 needs parts of 5 MiB and more; a local file is better written
        // in small pieces: each chunk is a fresh allocation, and large ones
        // pile up in the allocator (+40 MiB peak on a 230 MB upload).
        let chunk = match self.about.0 {
            StorageKind::S3 => CHUNK,
            StorageKind::Fs => LOCAL_CHUNK,
        };
        let mut writer = self
            .op
            .writer_with(key)
            .chunk(chunk)
            .await
            .map_err(|e| self.write_error(e))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut size = 0u64;
        let result: Result<(), StorageError> = async {
            loop {
                // Exactly one chunk, filled by plain reads: `read_to_end`
                // would probe for the end by doubling the buffer.
                let mut buf = vec![0u8; chunk];
                let mut n = 0;
                while n < chunk {
                    match file.read(&mut buf[n..]).await? {
                        0 => break,
                        got => n += got,
                    }
                }
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                ctx.update(&buf);
                size += n as u64;
                writer.write(buf).await.map_err(|e| self.write_error(e))?;
                if let Some(msg) = self.fault_mid.as_ref().and_then(|f| f(key, size)) {
                    return Err(StorageError::Injected(msg));
                }
            }
        }
        .await;
        if let Err(e) = result {
            let _ = writer.abort().await;
            return Err(e);
        }
        if let Err(e) = writer.close().await {
            let _ = writer.abort().await;
            return Err(self.write_error(e));
        }
        Ok(PutResult {
            size,
            sha256: crate::util::hex(ctx.finish().as_ref()),
        })
    }

    /// Stores the finished file at `path` under `key`, and takes it: on
    /// local storage on the same file system it is renamed into place (a
    /// zipped export is not written, synced and read a second time: ~47 MB
    /// for a 1M-row job); anywhere else it is streamed as by
    /// [`Storage::put_file`] and removed after. `path` must be synced, and
    /// written by nothing else.
    pub async fn put_file_moved(&self, key: &str, path: &Path) -> Result<PutResult, StorageError> {
        if let Some(msg) = self.fault.as_ref().and_then(|f| f(key)) {
            return Err(StorageError::Injected(msg));
        }
        // A mid-write fault needs a write to strike: the streaming path.
        if let (Some(root), None) = (&self.local_root, &self.fault_mid) {
            let (root, key, src) = (root.clone(), key.to_string(), path.to_path_buf());
            let moved = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
                let (sha256, size) = crate::util::file_sha256(&src)?;
                let moved = local::move_into(&root, &key, &src)?;
                Ok(moved.then_some(PutResult { size, sha256 }))
            })
            .await
            .map_err(|e| StorageError::Io(std::io::Error::other(e)))??;
            if let Some(put) = moved {
                return Ok(put);
            }
        }
        let put = self.put_file(key, path, u64::MAX).await;
        let _ = tokio::fs::remove_file(path).await;
        put
    }

    /// Copies an object to another key (a scheduled export's archive copy).
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), StorageError> {
        if let Some(msg) = self.fault.as_ref().and_then(|f| f(to)) {
            return Err(StorageError::Injected(msg));
        }
        if let Some(root) = &self.local_root {
            let (root, from, to) = (root.clone(), from.to_string(), to.to_string());
            tokio::task::spawn_blocking(move || local::atomic_copy(&root, &from, &to))
                .await
                .map_err(|e| StorageError::Io(std::io::Error::other(e)))??;
            return Ok(());
        }
        self.op
            .copy(from, to)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    /// Stores `bytes` at `key` (small objects: manifests).
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        if let Some(msg) = self.fault.as_ref().and_then(|f| f(key)) {
            return Err(StorageError::Injected(msg));
        }
        self.op
            .write(key, bytes)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(())
    }

    /// Deletes an export file and the manifest stored beside it.
    pub async fn delete_export(&self, key: &str) -> Result<(), StorageError> {
        self.op
            .delete(&format!("{key}{}", crate::manifest::verify::SUFFIX))
            .await?;
        self.delete(key).await
    }

    /// Reads a whole object (tests, small files).
    pub async fn read(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        Ok(self.op.read(key).await?.to_vec())
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        Ok(self.op.exists(key).await?)
    }

    /// Deletes an object; a missing object is fine. Its job folder
    /// (`<org>/<job-id>/`) goes too once empty, so local disk is not left
    /// with a folder per deleted job (on S3 folders do not exist).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.op.delete(key).await?;
        if let Some((folder, _)) = key.rsplit_once('/') {
            // Best effort: a folder still holding something stays.
            let _ = self.op.delete(&format!("{folder}/")).await;
        }
        Ok(())
    }

    /// Removes unfinished local writes older than `age` (a process killed
    /// while uploading leaves its partial file). Returns how many.
    pub fn remove_stale_partials(&self, age: std::time::Duration) -> usize {
        match &self.local_root {
            Some(root) => local::remove_stale_partials(root, age),
            None => 0,
        }
    }

    /// The underlying operator (downloads stream from it).
    pub fn operator(&self) -> &Operator {
        &self.op
    }
}

#[cfg(test)]
mod tests;
