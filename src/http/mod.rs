//! The HTTP service: tiny_http on a bounded pool of threads, each with its
//! own SQLite connection, in the same process as the job engine.
//!
//! - [`routes`]: the route table (also the OpenAPI check), auth and roles.
//! - [`audit_logs`]: ingest and the keyset-paginated view.
//! - [`exports`]: estimate, sync/async exports, job status, cancel, restart.
//! - [`download`]: signed 24 h links (`crate::links`), file and manifest.
//! - [`manifests`]: the organization's manifest chain, the public keys.
//! - [`notifications`]: the in-app notices of the caller.
//! - [`schedules`]: the scheduled exports: list, reload, run now.
//! - [`console`]: the web console's files and the security headers every
//!   answer carries.
//! - [`metrics`], [`openapi`], [`error`] (the one error mapping), [`util`].
//!
//! Handlers never build SQL: they call `service`, `audit`, `users`.

pub mod audit_logs;
pub mod console;
pub mod download;
pub mod error;
pub mod exports;
pub mod manifests;
pub mod mcp;
pub mod metrics;
pub mod notifications;
pub mod openapi;
pub mod routes;
pub mod schedules;
pub mod util;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::service::Service;

/// Everything request threads share.
pub struct AppState {
    pub svc: Arc<Service>,
    pub schedules: Arc<crate::schedules::Schedules>,
    pub rt: tokio::runtime::Handle,
    pub metrics: metrics::Metrics,
    /// `POST /mcp`.
    pub mcp: crate::mcp::http::McpEndpoint,
}

impl AppState {
    /// The settings.
    pub fn cfg(&self) -> &crate::config::Config {
        &self.svc.cfg
    }

    /// The storage operator (downloads stream from it).
    pub fn storage_op(&self) -> &opendal::Operator {
        self.svc.runner.storage.operator()
    }
}

/// A running server: its bound address and request threads.
pub struct Server {
    pub addr: std::net::SocketAddr,
    /// The base of links this server hands out.
    pub public_url: String,
    threads: Vec<std::thread::JoinHandle<()>>,
    stopper: Stopper,
}

/// Stops a server's request threads: closes the listener, then queues one
/// wake-up per thread behind the requests already received. Synchronous,
/// so it also works while the runtime itself is being torn down.
#[derive(Clone)]
pub struct Stopper {
    server: Arc<tiny_http::Server>,
    workers: usize,
}

impl Stopper {
    pub fn stop(&self) {
        self.server.close();
        for _ in 0..self.workers {
            self.server.unblock();
        }
    }
}

impl Server {
    /// Binds `listen` and starts the request threads; once `shutdown` is
    /// cancelled the listener closes at once and the threads exit after
    /// answering the requests already received.
    pub fn start(
        listen: &str,
        svc: Arc<Service>,
        schedules: Arc<crate::schedules::Schedules>,
        rt: tokio::runtime::Handle,
        shutdown: CancellationToken,
    ) -> Result<Server, String> {
        let server = tiny_http::Server::http(listen).map_err(|e| e.to_string())?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| "not an IP listener".to_string())?;
        let public_url = svc
            .cfg
            .http
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let server = Arc::new(server);
        let workers = svc.cfg.http.workers.max(1);
        let mcp = crate::mcp::http::McpEndpoint::new(
            svc.clone(),
            svc.cfg.http.max_body_bytes as usize,
            shutdown.clone(),
        );
        let state = Arc::new(AppState {
            svc,
            schedules,
            rt: rt.clone(),
            metrics: metrics::Metrics::default(),
            mcp,
        });
        let threads = (0..workers)
            .map(|i| {
                let (server, state) = (server.clone(), state.clone());
                std::thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn(move || worker(server, state))
                    .expect("spawn request thread")
            })
            .collect();
        // One watcher turns the cancellation into a stop.
        let stopper = Stopper { server, workers };
        let watcher = stopper.clone();
        rt.spawn(async move {
            shutdown.cancelled().await;
            watcher.stop();
        });
        Ok(Server {
            addr,
            public_url,
            threads,
            stopper,
        })
    }

    /// What stops this server without the runtime's help.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Waits for the request threads to finish (after shutdown).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn worker(server: Arc<tiny_http::Server>, state: Arc<AppState>) {
    let mut conn = None;
    // `recv` fails once the server is unblocked for shutdown.
    while let Ok(req) = server.recv() {
        if conn.is_none() {
            conn = state
                .svc
                .connect()
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
