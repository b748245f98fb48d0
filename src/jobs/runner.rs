//! [`Runner`]: what the job services of one process share — settings,
//! storage, the clock, this process's lease owner name, the wake-ups — and
//! the one place where a transition's effects are carried out.

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::Notify;

use super::state::Cleanup;
use super::store::Outcome;
use super::{remove_spool, JobError, JobsConfig};
use crate::storage::Storage;
use crate::time::Clock;

/// Everything the scheduler, the steps and the maintenance services share.
pub struct Runner {
    /// The data directory (database, `spool/`, local exports).
    pub data_dir: PathBuf,
    /// `[jobs]` settings.
    pub cfg: JobsConfig,
    /// Rows per keyset page.
    pub batch: usize,
    /// Threads one export scans with (`[export] threads`).
    pub threads: usize,
    /// Where export files are stored.
    pub storage: Storage,
    /// The clock leases, backoffs and TTLs are measured on.
    pub clock: Clock,
    /// This process's lease owner name (`host:pid:random`).
    pub owner: String,
    /// Notified when a job becomes runnable (enqueue, restart, rescue): the
    /// scheduler claims at once instead of at its next poll.
    pub wake: Arc<Notify>,
    /// Notified when a job reached its end: the delivery loop sends the
    /// notices queued with it at once.
    pub finished: Arc<Notify>,
    /// The redaction rules exports apply.
    pub redactor: Arc<crate::format::Redactor>,
    /// The keys manifests are signed with (see [`Runner::keys`]).
    keys: std::sync::RwLock<Arc<crate::manifest::Keyring>>,
    /// `[signing]`: a configured key file is used as is; otherwise the data
    /// dir's active key is followed across `keys rotate`.
    signing: crate::manifest::keys::SigningConfig,
    /// On shutdown, how long an upload in progress may still take before it
    /// is abandoned and its lease released (`[http] shutdown_grace_secs`):
    /// the next owner stores the file again from the spool.
    pub shutdown_grace: std::time::Duration,
}

impl Runner {
    /// The runner of a data dir; its signing key is created at first use
    /// (see [`crate::manifest::keys`]).
    pub fn new(
        data_dir: PathBuf,
        cfg: JobsConfig,
        batch: usize,
        storage: Storage,
        clock: Clock,
    ) -> Result<Runner, crate::manifest::keys::KeyError> {
        let keys = crate::manifest::Keyring::load_or_create(&data_dir, &Default::default())?;
        let mut tag = [0u8; 3];
        crate::util::random_bytes(&mut tag);
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let host = host.trim();
        let owner = format!(
            "{}:{}:{}",
            if host.is_empty() { "worker" } else { host },
            std::process::id(),
            crate::util::hex(&tag)
        );
        Ok(Runner {
            data_dir,
            cfg,
            batch,
            threads: crate::stream::threads(0),
            storage,
            clock,
            owner,
            wake: Arc::new(Notify::new()),
            finished: Arc::new(Notify::new()),
            redactor: Arc::new(crate::format::Redactor::default()),
            keys: std::sync::RwLock::new(Arc::new(keys)),
            signing: Default::default(),
            shutdown_grace: std::time::Duration::from_secs(10),
        })
    }

    /// Uploads in progress at shutdown are abandoned after `grace`.
    pub fn with_shutdown_grace(mut self, grace: std::time::Duration) -> Runner {
        self.shutdown_grace = grace;
        self
    }

    /// Exports scanning with `threads` threads.
    pub fn with_threads(mut self, threads: usize) -> Runner {
        self.threads = threads.max(1);
        self
    }

    /// Signing as `[signing]` says (a configured key file, or the data
    /// dir's active key).
    pub fn with_signing(
        mut self,
        signing: crate::manifest::keys::SigningConfig,
    ) -> Result<Runner, crate::manifest::keys::KeyError> {
        let keys = crate::manifest::Keyring::load_or_create(&self.data_dir, &signing)?;
        self.keys = std::sync::RwLock::new(Arc::new(keys));
        self.signing = signing;
        Ok(self)
    }

    /// The keys to sign with now: after a `keys rotate` (by another
    /// process: the CLI), the data dir's new active key, without a restart.
    pub fn keys(&self) -> Arc<crate::manifest::Keyring> {
        let current = self.keys.read().expect("keys lock").clone();
        if self.signing.key_file.is_some() {
            return current;
        }
        let active = crate::manifest::keys::keys_dir(&self.data_dir).join("active");
        let wanted = std::fs::read_to_string(active).unwrap_or_default();
        let wanted = wanted.trim();
        if wanted.is_empty() || wanted == current.active_id() {
            return current;
        }
        match crate::manifest::Keyring::load_or_create(&self.data_dir, &self.signing) {
            Ok(k) if k.active_id() == wanted => {
                tracing::info!(
                    key_id = wanted,
                    "signing with the key made active by keys rotate"
                );
                let k = Arc::new(k);
                *self.keys.write().expect("keys lock") = k.clone();
                k
            }
            Ok(_) => current,
            Err(e) => {
                tracing::warn!(error = %e, key_id = wanted, "cannot load the active signing key; signing with the previous one");
                current
            }
        }
    }

    /// With these redaction rules (`[redaction] keys`).
    pub fn with_redactor(mut self, redactor: crate::format::Redactor) -> Runner {
        self.redactor = Arc::new(redactor);
        self
    }

    /// A connection to the database (schema already current).
    pub fn connect(&self) -> Result<Connection, JobError> {
        crate::db::connect(&crate::db::db_path(&self.data_dir)).map_err(JobError::from)
    }

    /// Runs `f` with a fresh connection on the blocking pool, so a busy
    /// database never stalls the runtime's threads.
    pub async fn on_db<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Connection) -> Result<T, JobError> + Send + 'static,
    ) -> Result<T, JobError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&mut me.connect()?))
            .await
            .map_err(|e| JobError::Corrupt(format!("database task failed: {e}")))?
    }

    /// The current time on the runner's clock, ms since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// How long a lease lasts without a checkpoint, in ms (`lease_secs`).
    pub fn lease_ms(&self) -> i64 {
        (self.cfg.lease_secs * 1000) as i64
    }

    /// Delay before attempt `attempt + 1`: exponential with jitter.
    pub fn backoff_ms(&self, attempt: u32) -> i64 {
        crate::util::backoff_ms(self.cfg.retry_base_ms, attempt, 3_600_000, true)
    }

    /// Carries out what a committed transition decided: remove work files,
    /// wake the scheduler, wake the delivery of the queued notices. Every
    /// path that moves a job (scheduler, API, CLI, clean-up) ends here.
    pub async fn apply_effects(&self, out: &Outcome) {
        if out.decision.effects.cleanup == Cleanup::SpoolAndFile {
            if let Some(f) = &out.orphan_file {
                if let Err(err) = self.storage.delete_export(&f.key).await {
                    tracing::warn!(job_id = %out.job.id, error = %err, "cannot remove the file of a cancelled upload");
                }
            }
        }
        self.apply_local_effects(out);
    }

    /// The effects that need no storage call (all a user request ever has:
    /// it carries no stored file), for callers outside the runtime.
    pub fn apply_local_effects(&self, out: &Outcome) {
        let e = out.decision.effects;
        if e.cleanup != Cleanup::None {
            if let Err(err) = remove_spool(&self.data_dir, &out.job.id) {
                tracing::warn!(job_id = %out.job.id, error = %err, "cannot remove the spool");
            }
        }
        if e.wake {
            self.wake.notify_one();
        }
        if e.notify {
            self.finished.notify_one();
        }
    }
}
