//! Where a CLI export's file goes: the `--output` checks, a temporary file
//! renamed into place only when complete (never a partial file under the
//! asked name), and the file synced to disk while it is written. It never
//! formats rows.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

#[cfg(target_os = "linux")]
use super::direct::DirectFile;
use crate::cli::CliError;

pub(super) fn check_output_path(p: &Path) -> Result<(), CliError> {
    let p = &resolve_link(p);
    if p.is_dir() {
        return Err(CliError::bad_input(format!(
            "--output: {} is a directory; name a file",
            p.display()
        )));
    }
    let parent = parent_dir(p);
    if !parent.is_dir() {
        return Err(CliError::bad_input(format!(
            "--output: folder {} does not exist",
            parent.display()
        )));
    }
    Ok(())
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Where the export goes. A regular file (or a new path) is written under a
/// temporary name and renamed into place on commit, removed on drop if never
/// committed. A device, FIFO or socket (`/dev/null`, a named pipe) cannot be
/// replaced by a rename without destroying it, so it is written directly. A
/// symbolic link is followed: the file it points to is replaced, the link
/// stays.
pub(super) struct TempOutput {
    target: PathBuf,
    temp: PathBuf,
    direct: bool,
    created: bool,
}

impl TempOutput {
    pub(super) fn new(output: &Path) -> TempOutput {
        let target = resolve_link(output);
        let direct = std::fs::metadata(&target).is_ok_and(|m| !m.is_file());
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "export".into());
        let temp = parent_dir(&target).join(format!(".{name}.{}.partial", std::process::id()));
        TempOutput {
            target,
            temp,
            direct,
            created: false,
        }
    }

    pub(super) fn create(&mut self) -> io::Result<BufWriter<FileOut>> {
        let f = if self.direct {
            let f = std::fs::OpenOptions::new().write(true).open(&self.target)?;
            FileOut::Synced(Synced::plain(f))
        } else {
            self.created = true;
            match direct_file(&self.temp)? {
                Some(d) => FileOut::Direct(d),
                None => FileOut::Synced(Synced::new(File::create(&self.temp)?)),
            }
        };
        Ok(BufWriter::with_capacity(1 << 16, f))
    }

    pub(super) fn commit(mut self, out: BufWriter<FileOut>) -> io::Result<()> {
        let f = out.into_inner().map_err(|e| e.into_error())?.finish()?;
        if self.direct {
            return Ok(());
        }
        f.sync_all()?;
        drop(f);
        std::fs::rename(&self.temp, &self.target)?;
        self.created = false;
        Ok(())
    }
}

/// A regular file written with direct I/O where the platform and file
/// system allow it (see `super::direct`).
#[cfg(target_os = "linux")]
fn direct_file(path: &Path) -> io::Result<Option<DirectFile>> {
    DirectFile::create(path)
}

#[cfg(not(target_os = "linux"))]
fn direct_file(_: &Path) -> io::Result<Option<Synced>> {
    Ok(None)
}

/// The output file: written around the page cache, or through it and
/// synced as it grows.
pub(super) enum FileOut {
    #[cfg(target_os = "linux")]
    Direct(DirectFile),
    #[cfg(not(target_os = "linux"))]
    Direct(Synced),
    Synced(Synced),
}

impl FileOut {
    /// Every byte written (not yet synced).
    fn finish(self) -> io::Result<File> {
        match self {
            FileOut::Direct(d) => d.finish(),
            FileOut::Synced(s) => s.finish(),
        }
    }
}

impl io::Write for FileOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            FileOut::Direct(d) => d.write(buf),
            FileOut::Synced(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            FileOut::Direct(d) => d.flush(),
            FileOut::Synced(s) => s.flush(),
        }
    }
}

/// The output file, synced to disk as it grows: every [`SYNC_EVERY`] bytes
/// a helper thread runs `fdatasync` on it while the export goes on, so the
/// final `fsync` before the rename finds little left to write. (It took
/// ~0.3 s at the end of a 524 MB export on this machine's disk; the
/// writes were all in the page cache, waiting.) Durability still comes
/// from that final `fsync`; these only start the disk earlier.
pub(super) struct Synced {
    file: File,
    unsynced: u64,
    nudge: Option<std::sync::mpsc::SyncSender<()>>,
    helper: Option<std::thread::JoinHandle<io::Result<()>>>,
}

/// Bytes written between two background syncs of the output.
const SYNC_EVERY: u64 = 32 << 20;

impl Synced {
    /// Syncs in the background (no helper when the file cannot be cloned:
    /// the final `fsync` does it all, as before).
    fn new(file: File) -> Synced {
        let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
        let helper = file.try_clone().ok().and_then(|clone| {
            std::thread::Builder::new()
                .name("export-sync".into())
                .spawn(move || {
                    while nudged.recv().is_ok() {
                        clone.sync_data()?;
                    }
                    Ok(())
                })
                .ok()
        });
        Synced {
            file,
            unsynced: 0,
            nudge: helper.as_ref().map(|_| nudge),
            helper,
        }
    }

    /// No background syncs (a device or FIFO written in place).
    fn plain(file: File) -> Synced {
        Synced {
            file,
            unsynced: 0,
            nudge: None,
            helper: None,
        }
    }

    /// Waits for the helper; its failure to sync is this file's error.
    fn finish(mut self) -> io::Result<File> {
        self.nudge = None;
        if let Some(h) = self.helper.take() {
            h.join()
                .unwrap_or_else(|_| Err(io::Error::other("the sync thread panicked")))?;
        }
        Ok(self.file)
    }
}

impl io::Write for Synced {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = io::Write::write(&mut self.file, buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= SYNC_EVERY {
            self.unsynced = 0;
            if let Some(nudge) = &self.nudge {
                // Full: a sync is already due, it covers these bytes too.
                let _ = nudge.try_send(());
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::Write::flush(&mut self.file)
    }
}

/// The path a chain of symbolic links ends at (the path itself if it is not
/// a link; a dangling link's destination, which the export then creates).
fn resolve_link(p: &Path) -> PathBuf {
    let mut p = p.to_path_buf();
    // A bound, as `ls` and the kernel have one, against link loops.
    for _ in 0..40 {
        match std::fs::read_link(&p) {
            Ok(dest) => p = parent_dir(&p).join(dest),
            Err(_) => break,
        }
    }
    p
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
