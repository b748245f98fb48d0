//! The HTTP service: tiny_http on a bounded pool of threads, each with its
//! own SQLite connection, in the same process as the job engine.
//!
//! - [`routes`]: the route table (also the OpenAPI check), auth and roles.
//! - [`audit_logs`]: ingest and the keyset-paginated view.
//! - [`exports`]: estimate, sync/async exports, job status, cancel, restart.
//! - [`download`]: signed 24 h links (`crate::links`).
//! - [`notifications`]: the in-app notices of the caller.
//! - [`metrics`], [`openapi`], [`error`] (the one error mapping), [`util`].
//!
//! Handlers never build SQL: they call `audit`, `jobs::store`, `users`.

pub mod audit_logs;
pub mod download;
pub mod error;
pub mod exports;
pub mod metrics;
pub mod notifications;
pub mod openapi;
pub mod routes;
pub mod util;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::Config;
use crate::jobs::scheduler::Engine;

/// `[http]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: String,
    /// Base of links handed out (e-mails, `download_url`); default
    /// `http://<listen>`.
    pub public_url: Option<String>,
    /// Request threads (the bound on concurrent requests).
    pub workers: usize,
    /// Largest accepted request body.
    pub max_body_bytes: u64,
    /// Below this many matching rows, `mode: auto` streams the file at once.
    pub sync_threshold: u64,
    /// How long a download link stays valid after the job completes.
    pub link_ttl_secs: u64,
    /// Link-signing secret; default: generated into `<data-dir>/link-secret`.
    pub secret: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            workers: 8,
            max_body_bytes: 10 << 20,
            sync_threshold: 10_000,
            link_ttl_secs: 24 * 3600,
            secret: None,
        }
    }
}

/// Everything request threads share.
pub struct AppState {
    pub data_dir: PathBuf,
    pub cfg: Config,
    pub engine: Arc<Engine>,
    pub rt: tokio::runtime::Handle,
    pub signer: crate::links::Signer,
    pub metrics: metrics::Metrics,
    pub public_url: String,
}

/// How long a download link lives after its job completed: the link TTL,
/// but never past the download window (the file is deleted then).
pub fn link_secs(cfg: &Config) -> u64 {
    cfg.http.link_ttl_secs.min(cfg.jobs.download_ttl_secs)
}

impl AppState {
    /// The storage operator (downloads stream from it).
    pub fn storage_op(&self) -> &opendal::Operator {
        self.engine.storage.operator()
    }
}

/// A running server: its bound address and request threads.
pub struct Server {
    pub addr: std::net::SocketAddr,
    /// The base of links this server hands out.
    pub public_url: String,
    server: Arc<tiny_http::Server>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Binds `listen` and starts `workers` request threads.
    pub fn start(listen: &str, mut state: AppState) -> Result<Server, String> {
        let server = tiny_http::Server::http(listen)
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| "not an IP listener".to_string())?;
        if state.public_url.is_empty() {
            state.public_url = format!("http://{addr}");
        }
        let server = Arc::new(server);
        let public_url = state.public_url.clone();
        let state = Arc::new(state);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..state.cfg.http.workers.max(1))
            .map(|i| {
                let (server, state, stop) = (server.clone(), state.clone(), stop.clone());
                std::thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn(move || worker(server, state, stop))
                    .expect("spawn request thread")
            })
            .collect();
        Ok(Server {
            addr,
            public_url,
            server,
            threads,
            stop,
        })
    }

    /// Stops accepting, lets in-flight requests finish, joins the threads.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        for _ in &self.threads {
            self.server.unblock();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn worker(server: Arc<tiny_http::Server>, state: Arc<AppState>, stop: Arc<AtomicBool>) {
    let mut conn = None;
    while !stop.load(Ordering::SeqCst) {
        let req = match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(_) => break,
        };
        if conn.is_none() {
            conn = crate::db::connect(&crate::db::db_path(&state.data_dir))
                .map_err(|e| tracing::error!(error = %e, "request thread cannot open the database"))
                .ok();
        }
        match conn.as_mut() {
            Some(c) => routes::handle(&state, c, req),
            None => {
                let err = error::ApiError::new(503, "unavailable", "the database cannot be opened");
                let _ = req.respond(util::json_response(503, &err.body()));
            }
        }
    }
}
