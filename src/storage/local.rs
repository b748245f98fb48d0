//! Local-disk specifics of the store: what opendal's fs service does not do
//! atomically (copies), moving a finished file into place without a copy,
//! and the clean-up of unfinished writes. Never used for S3; never writes a
//! final key except by a rename.

use std::path::Path;

use super::PARTIAL_DIR;

/// Copies the object `from` to `to` under `root` as the writes are: into
/// the unfinished-files folder, fsynced, then renamed into place. A plain
/// copy would write the target in place, and a crash would leave a partial
/// archive under its final name for whoever collects the archive folder.
pub(super) fn atomic_copy(root: &Path, from: &str, to: &str) -> std::io::Result<()> {
    let (src, dst) = (root.join(from), root.join(to));
    let mut tag = [0u8; 8];
    crate::util::random_bytes(&mut tag);
    let tmp = root
        .join(PARTIAL_DIR)
        .join(format!("copy-{}", crate::util::hex(&tag)));
    let copied = (|| {
        std::fs::copy(&src, &tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        if let Some(dir) = dst.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(&tmp, &dst)
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    copied
}

/// Moves the finished, synced file `src` to `key` under `root` by a
/// rename — no second copy of the bytes — and syncs the folder, so the new
/// name survives a crash. `Ok(false)`: not moved, `src` untouched — on
/// another file system (the spool and the export folder need not share
/// one), or refused (the caller's streaming write then reports why, in the
/// words it uses for every write).
pub(super) fn move_into(root: &Path, key: &str, src: &Path) -> std::io::Result<bool> {
    let dst = root.join(key);
    let dir = dst.parent().unwrap_or(root);
    if std::fs::create_dir_all(dir).is_err() || std::fs::rename(src, &dst).is_err() {
        return Ok(false);
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(true)
}

/// Removes unfinished writes under `root` older than `age` (a process
/// killed while uploading leaves its partial file); how many.
pub(super) fn remove_stale_partials(root: &Path, age: std::time::Duration) -> usize {
    let Ok(dir) = std::fs::read_dir(root.join(PARTIAL_DIR)) else {
        return 0;
    };
    let mut n = 0;
    for e in dir.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|a| a > age);
        if old && std::fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    n
}
