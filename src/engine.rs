//! The library entry point: [`Engine`] opens a data directory with a
//! [`Config`] (creating or migrating the database, a backup first), then
//! runs the job scheduler, the maintenance crons, the e-mail delivery and,
//! if asked, the HTTP server until a [`CancellationToken`] is cancelled.
//! It also offers what a host application needs without HTTP: record
//! events, request an export (the API's rules and errors), get, cancel and
//! restart jobs. `audit-export serve` and `worker` are thin callers of it.
//!
//! ```no_run
//! # async fn host() -> Result<(), Box<dyn std::error::Error>> {
//! use audit_export::{Config, Engine};
//! use tokio_util::sync::CancellationToken;
//!
//! let engine = Engine::open("./data", Config::default())?;
//! let shutdown = CancellationToken::new();
//! let running = engine.start(Default::default(), shutdown.clone())?;
//! // … engine.ingest(…), engine.request_export(…), engine.job(…) …
//! shutdown.cancel();
//! running.wait().await;
//! # Ok(()) }
//! ```
//!
//! This module never parses command lines and holds no business rules:
//! those are in [`crate::service`] and below.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::audit::trail::Client;
use crate::audit::NewEvent;
use crate::config::Config;
use crate::db::backup::DataDirLock;
use crate::db::{DbError, Migrated};
use crate::jobs::store::Request;
use crate::jobs::{Job, Runner};
use crate::links::{Links, Signer};
use crate::notify::deliver::{Delivery, DeliveryCounts};
use crate::schedules::Schedules;
use crate::service::{ExportRequest, Service, ServiceError};
use crate::storage::Storage;
use crate::time::Clock;
use crate::users::Requester;

/// Why the engine could not open or start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The data directory or its database could not be opened or migrated.
    #[error(transparent)]
    Db(Box<DbError>),
    /// A setting the engine cannot work with (names the key).
    #[error("{0}")]
    Config(String),
    /// The configured storage could not be set up.
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    /// The download-link secret (`<data-dir>/link-secret`) could not be read or created.
    #[error("link secret: {0}")]
    Secret(std::io::Error),
    /// The HTTP server could not bind its address.
    #[error("cannot listen on {listen}: {message}")]
    Listen {
        /// The address asked for (`host:port`).
        listen: String,
        /// Why binding failed.
        message: String,
    },
    /// A service operation failed (see [`ServiceError`]).
    #[error(transparent)]
    Service(Box<ServiceError>),
}

impl From<DbError> for EngineError {
    fn from(e: DbError) -> Self {
        EngineError::Db(Box::new(e))
    }
}

impl From<ServiceError> for EngineError {
    fn from(e: ServiceError) -> Self {
        EngineError::Service(Box::new(e))
    }
}

/// Opens an engine with more than the defaults.
pub struct EngineBuilder {
    data_dir: PathBuf,
    cfg: Config,
    clock: Clock,
    storage: Option<Storage>,
}

impl EngineBuilder {
    /// The clock every loop and rule reads (default: the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Storage other than the configured one (e.g. fault injection).
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Opens the data directory: creates or migrates the database (a
    /// backup first), loads the link secret, builds storage.
    pub fn open(self) -> Result<Engine, EngineError> {
        let cfg = self.cfg;
        cfg.jobs.validate().map_err(EngineError::Config)?;
        let data_dir = self.data_dir;
        std::fs::create_dir_all(&data_dir).map_err(|source| DbError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let lock = DataDirLock::shared(&data_dir)?;
        let mut conn = crate::db::connect(&crate::db::db_path(&data_dir))?;
        let migrated = crate::db::migrate::migrate(&mut conn, &data_dir, self.clock.now_ms())?;
        let storage = match self.storage {
            Some(s) => s,
            None => Storage::from_config(&cfg.storage, &data_dir)?,
        };
        let signer = Signer::load_or_create(&data_dir, cfg.http.secret.as_deref())
            .map_err(EngineError::Secret)?;
        let public_url = cfg
            .http
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", cfg.http.listen));
        let links = Arc::new(Links::new(signer, public_url, cfg.link_secs()));
        let mut runner = Runner::new(
            data_dir.clone(),
            cfg.jobs.clone(),
            cfg.export.batch_size,
            storage,
            self.clock.clone(),
        )
        .map_err(|e| EngineError::Config(e.to_string()))?
        .with_redactor(cfg.redactor())
        .with_threads(cfg.export.threads())
        .with_shutdown_grace(Duration::from_secs(cfg.http.shutdown_grace_secs));
        if cfg.signing.key_file.is_some() {
            runner = runner
                .with_signing(cfg.signing.clone())
                .map_err(|e| EngineError::Config(e.to_string()))?;
        }
        let runner = Arc::new(runner);
        let delivery = Delivery::new(
            &data_dir,
            cfg.notify.clone(),
            &cfg.smtp,
            links.clone(),
            self.clock.clone(),
            runner.finished.clone(),
        )
        .map_err(|e| EngineError::Config(e.to_string()))?;
        let schedules_dir = cfg.schedules.dir();
        let svc = Arc::new(Service {
            data_dir,
            cfg,
            clock: self.clock,
            runner,
            links,
        });
        let schedules = Arc::new(Schedules::new(schedules_dir, svc.clone()));
        Ok(Engine {
            svc,
            schedules,
            delivery: Arc::new(delivery),
            conn: Mutex::new(conn),
            migrated,
            _lock: lock,
        })
    }
}

/// What [`Engine::start`] runs besides the job services.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Serve the HTTP API on this address (`127.0.0.1:0`: a free port).
    pub http_listen: Option<String>,
}

/// The running services of an engine. Dropping it without [`Running::wait`]
/// (a host that returns early, a test that panics) cancels the shutdown
/// token and stops the HTTP threads, so nothing is left serving and a
/// runtime being dropped does not wait forever on them.
pub struct Running {
    http_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    shutdown: CancellationToken,
    http_stop: Option<crate::http::Stopper>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.tasks.is_empty() {
            self.shutdown.cancel();
            if let Some(s) = &self.http_stop {
                s.stop();
            }
        }
    }
}

impl Running {
    /// Where the HTTP server listens, if it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Resolves once every service has stopped (after the token was
    /// cancelled): requests in flight answered, running jobs checkpointed
    /// and their leases released.
    pub async fn wait(mut self) {
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }
}

/// An open data directory and the engine's services.
pub struct Engine {
    svc: Arc<Service>,
    schedules: Arc<Schedules>,
    delivery: Arc<Delivery>,
    /// The host's calls share one connection (they are short).
    conn: Mutex<rusqlite::Connection>,
    migrated: Migrated,
    _lock: DataDirLock,
}

impl Engine {
    /// Opens `data_dir` with `cfg` and the system clock.
    pub fn open(data_dir: impl AsRef<Path>, cfg: Config) -> Result<Engine, EngineError> {
        Engine::builder(data_dir, cfg).open()
    }

    /// Opens with a builder (clock, storage).
    pub fn builder(data_dir: impl AsRef<Path>, cfg: Config) -> EngineBuilder {
        EngineBuilder {
            data_dir: data_dir.as_ref().to_path_buf(),
            cfg,
            clock: Clock::system(),
            storage: None,
        }
    }

    /// Starts the scheduler, the maintenance crons, the delivery loop and
    /// (if asked) the HTTP server, on the current tokio runtime; they run
    /// until `shutdown` is cancelled.
    pub fn start(
        &self,
        opts: RunOptions,
        shutdown: CancellationToken,
    ) -> Result<Running, EngineError> {
        // Ours to cancel when `Running` is dropped, without touching the
        // host's token.
        let shutdown = shutdown.child_token();
        let runner = self.svc.runner.clone();
        self.schedules.reload();
        let mut tasks = vec![
            tokio::spawn(self.schedules.clone().run(shutdown.clone())),
            tokio::spawn(crate::jobs::scheduler::run(
                runner.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(crate::jobs::run_maintenance(runner, shutdown.clone())),
            tokio::spawn(crate::notify::deliver::run(
                self.delivery.clone(),
                shutdown.clone(),
            )),
        ];
        let mut http_addr = None;
        let mut http_stop = None;
        if let Some(listen) = &opts.http_listen {
            let server = crate::http::Server::start(
                listen,
                self.svc.clone(),
                self.schedules.clone(),
                tokio::runtime::Handle::current(),
                shutdown.clone(),
            )
            .map_err(|message| EngineError::Listen {
                listen: listen.clone(),
                message,
            })?;
            http_addr = Some(server.addr);
            http_stop = Some(server.stopper());
            // Links point where the server really listens, unless a public
            // URL is configured.
            if self.svc.cfg.http.public_url.is_none() {
                self.svc.links.set_public_url(server.public_url.clone());
            }
            tasks.push(tokio::task::spawn_blocking(move || server.join()));
        }
        Ok(Running {
            http_addr,
            tasks,
            shutdown,
            http_stop,
        })
    }

    /// Runs the job services (no HTTP) until `shutdown` is cancelled.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), EngineError> {
        self.start(RunOptions::default(), shutdown)?.wait().await;
        Ok(())
    }

    /// The operations layer (what HTTP, MCP and the CLI call).
    pub fn service(&self) -> &Arc<Service> {
        &self.svc
    }

    /// The scheduled exports (`workflows/*.toml`): load, list, run now.
    pub fn schedules(&self) -> &Arc<Schedules> {
        &self.schedules
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Clock {
        &self.svc.clock
    }

    /// What opening did to the database schema.
    pub fn migrated(&self) -> &Migrated {
        &self.migrated
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        f(&mut self.conn.lock().expect("engine connection"))
    }

    /// Records events as the host application (any organization).
    /// Blocking: call it from `spawn_blocking` in async code.
    pub fn ingest(&self, events: &[NewEvent]) -> Result<Vec<i64>, ServiceError> {
        let who = Requester::System("host".into());
        self.with_conn(|c| self.svc.ingest(c, &who, events))
    }

    /// Requests a background export, under the API's rules: duplicate
    /// (`JobError::DuplicateExport`), per-requester limit
    /// (`TooManyExports`), recipients (`UnverifiedRecipient`). Blocking.
    pub fn request_export(&self, req: ExportRequest) -> Result<Job, ServiceError> {
        self.with_conn(|c| {
            let out = self.svc.request_export(c, req, &Client::default())?;
            Ok(out.job().clone())
        })
    }

    /// A job by id. Blocking.
    pub fn job(&self, id: &str) -> Result<Job, ServiceError> {
        let who = Requester::System("host".into());
        self.with_conn(|c| self.svc.visible_job(c, &who, id))
    }

    /// Cancels a job (at once, or at its worker's next batch). Blocking.
    pub fn cancel(&self, id: &str) -> Result<Job, ServiceError> {
        let who = Requester::System("host".into());
        self.with_conn(|c| Ok(self.svc.cancel(c, &who, id)?.job().clone()))
    }

    /// Restarts a job from scratch. Blocking.
    pub fn restart(&self, id: &str) -> Result<Job, ServiceError> {
        let who = Requester::System("host".into());
        self.with_conn(|c| {
            let r: Request = self.svc.restart(c, &who, id)?;
            Ok(r.job().clone())
        })
    }

    /// How many jobs are in progress. Blocking.
    pub fn in_progress(&self) -> Result<u64, ServiceError> {
        self.with_conn(|c| Ok(crate::jobs::store::in_progress_count(c)?))
    }

    /// Waits (polling every 50 ms of real time) until job `id` is no longer
    /// in progress, or `timeout` passes; returns the job as last read.
    pub async fn wait_for_job(&self, id: &str, timeout: Duration) -> Result<Job, ServiceError> {
        let who = Requester::System("host".into());
        self.svc.wait_for_job(&who, id, timeout).await
    }

    /// Where a completed job's file is on local disk (`fs` storage).
    pub fn local_path(&self, job: &Job) -> Option<PathBuf> {
        self.svc.local_path(job)
    }

    /// Sends the e-mails due now (the delivery loop does this on its own;
    /// for a last pass before exiting).
    pub async fn deliver_now(&self) -> DeliveryCounts {
        match self.delivery.run_once(self.svc.clock.now_ms()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "delivery pass failed");
                DeliveryCounts::default()
            }
        }
    }
}
