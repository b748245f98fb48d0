//! Where finished exports live: an opendal operator (local disk by default,
//! S3 by configuration), plus the deterministic zip used before storing.
//!
//! Files are streamed in chunks with their SHA-256 computed on the way, so
//! memory stays flat whatever the file size. This module knows nothing of
//! job state.

mod zip;

use std::path::Path;
use std::sync::Arc;

use opendal::Operator;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

pub use self::zip::zip_file;

/// Upload chunk size (also the S3 multipart part size floor is 5 MiB).
const CHUNK: usize = 8 << 20;

/// `[storage]` settings.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `fs` (default) or `s3`.
    pub kind: StorageKind,
    /// fs: the root folder (default `<data-dir>/exports`); s3: a key prefix.
    pub root: Option<String>,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    #[default]
    Fs,
    S3,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage configuration: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Backend(#[from] opendal::Error),
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage fault (injected): {0}")]
    Injected(String),
}

impl StorageError {
    /// Whether trying again may succeed (everything but a bad configuration).
    pub fn retryable(&self) -> bool {
        !matches!(self, StorageError::Config(_))
    }
}

/// Decides whether a write fails, for fault-injection tests only.
pub type FaultHook = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The export store.
#[derive(Clone)]
pub struct Storage {
    op: Operator,
    fault: Option<FaultHook>,
    /// The root folder, for local disk.
    local_root: Option<std::path::PathBuf>,
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
    pub size: u64,
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
                std::fs::create_dir_all(&root)?;
                let root = std::path::absolute(&root)?;
                let b = opendal::services::Fs::default().root(&root.to_string_lossy());
                return Ok(Storage {
                    op: Operator::new(b)?,
                    fault: None,
                    local_root: Some(root),
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
                Operator::new(b)?
            }
        };
        Ok(Storage {
            op,
            fault: None,
            local_root: None,
        })
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

    /// Streams the first `limit` bytes of the file at `path` to `key`,
    /// returning size and SHA-256. A failed write is aborted, so no partial
    /// object is left behind.
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
        let mut writer = self.op.writer_with(key).chunk(CHUNK).await?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut size = 0u64;
        let result: Result<(), StorageError> = async {
            loop {
                let mut buf = Vec::with_capacity(CHUNK);
                let n = (&mut file).take(CHUNK as u64).read_to_end(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                ctx.update(&buf);
                size += n as u64;
                writer.write(buf).await?;
            }
        }
        .await;
        if let Err(e) = result {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.close().await?;
        Ok(PutResult {
            size,
            sha256: crate::util::hex(ctx.finish().as_ref()),
        })
    }

    /// Copies an object to another key (a scheduled export's archive copy).
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), StorageError> {
        if let Some(msg) = self.fault.as_ref().and_then(|f| f(to)) {
            return Err(StorageError::Injected(msg));
        }
        self.op.copy(from, to).await?;
        Ok(())
    }

    /// Stores `bytes` at `key` (small objects: manifests).
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        if let Some(msg) = self.fault.as_ref().and_then(|f| f(key)) {
            return Err(StorageError::Injected(msg));
        }
        self.op.write(key, bytes).await?;
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

    /// The underlying operator (downloads stream from it).
    pub fn operator(&self) -> &Operator {
        &self.op
    }
}

/// The file name of an export (stored file and sync download alike):
/// organization, range and creation time, e.g.
/// `audit-logs_acme_2025-01-01_2025-12-31_20260105T100000Z.csv`.
pub fn export_file_name(
    f: &crate::filters::Filters,
    format: crate::format::Format,
    created_ms: i64,
) -> String {
    let created = chrono::DateTime::from_timestamp_millis(created_ms)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ");
    format!(
        "audit-logs_{}_{}_{}_{created}.{}",
        safe_component(&f.organization),
        crate::time::format_date(f.from_ms),
        crate::time::format_date(f.to_ms - 1),
        format.extension()
    )
}

/// A storage key or file-name component: keeps `[A-Za-z0-9._-]`, maps the
/// rest to `-`, so tenant-supplied names can never climb out of a folder.
pub fn safe_component(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('.');
    if trimmed.is_empty() {
        "_".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_cannot_escape() {
        assert_eq!(safe_component("../../etc"), "-..-etc");
        assert_eq!(safe_component("acme corp/ü"), "acme-corp--");
        assert_eq!(safe_component(".."), "_");
    }

    #[tokio::test]
    async fn put_file_streams_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let st = Storage::from_config(&StorageConfig::default(), dir.path()).unwrap();
        let src = dir.path().join("src.bin");
        let data: Vec<u8> = (0..(CHUNK * 2 + 123)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let put = st
            .put_file("org/job/file.csv", &src, u64::MAX)
            .await
            .unwrap();
        assert_eq!(put.size, data.len() as u64);
        let digest = ring::digest::digest(&ring::digest::SHA256, &data);
        assert_eq!(put.sha256, crate::util::hex(digest.as_ref()));
        assert_eq!(st.read("org/job/file.csv").await.unwrap(), data);
        st.delete("org/job/file.csv").await.unwrap();
        assert!(!st.exists("org/job/file.csv").await.unwrap());
    }
}
