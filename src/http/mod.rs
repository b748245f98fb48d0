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
//!
//! No client can hold a request thread: the (vendored) tiny_http reads each
//! request head within `head_timeout_secs` and its body within
//! `body_timeout_secs` per read on the connection's own thread, before a
//! request thread sees it; answers larger than a socket buffer are written
//! by a sender thread of their own ([`Senders`]), so a slow reader holds
//! only its connection slot (`max_connections`, `503` beyond).

pub mod audit_logs;
pub mod console;
pub mod download;
pub use crate::api::error;
pub mod exports;
pub mod manifests;
pub mod mcp;
pub mod metrics;
pub mod notifications;
pub mod openapi;
pub mod routes;
pub mod schedules;
pub mod util;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::service::Service;

/// Everything request threads share.
pub struct AppState {
    /// The operations every route calls.
    pub svc: Arc<Service>,
    /// The scheduled exports, for the schedule routes.
    pub schedules: Arc<crate::schedules::Schedules>,
    /// The runtime request threads hand async work to (storage reads for downloads).
    pub rt: tokio::runtime::Handle,
    /// This process's counters, rendered by `GET /metrics`.
    pub metrics: metrics::Metrics,
    /// `POST /mcp`.
    pub mcp: crate::mcp::http::McpEndpoint,
    /// Answers being written by sender threads.
    pub senders: Senders,
    /// The listener (connection counts and refusals, for metrics).
    pub server: Arc<tiny_http::Server>,
}

/// Answers written off the request threads, counted so shutdown can wait
/// for them (up to the grace period).
#[derive(Clone, Default)]
pub struct Senders {
    in_flight: Arc<(Mutex<usize>, Condvar)>,
}

/// Answers up to this size are written by the request thread itself: a
/// socket's send buffer takes them without waiting for the client.
const INLINE_ANSWER: usize = 16 * 1024;

impl Senders {
    /// Sends `reply` on `req`: at once if small, else on a thread of its own.
    pub fn send(&self, req: tiny_http::Request, reply: routes::Reply) {
        if reply.data_length().is_some_and(|n| n <= INLINE_ANSWER) {
            respond(req, reply);
            return;
        }
        let me = self.clone();
        *me.in_flight.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let slot = Arc::new(Mutex::new(Some((req, reply))));
        let inner = slot.clone();
        let spawned = std::thread::Builder::new()
            .name("http-send".into())
            .spawn(move || {
                if let Some((req, reply)) = inner.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    respond(req, reply);
                }
                me.done();
            });
        if spawned.is_err() {
            // No thread to be had: answer here rather than not at all.
            if let Some((req, reply)) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                respond(req, reply);
            }
            self.done();
        }
    }

    fn done(&self) {
        let (count, cv) = &*self.in_flight;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        cv.notify_all();
    }

    /// Waits until no answer is being sent, or `grace` has passed; returns
    /// how many were still being sent.
    pub fn wait(&self, grace: Duration) -> usize {
        let (count, cv) = &*self.in_flight;
        let deadline = Instant::now() + grace;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            n = cv
                .wait_timeout(n, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *n
    }
}

fn respond(req: tiny_http::Request, reply: routes::Reply) {
    if let Err(e) = req.respond(reply) {
        tracing::debug!(error = %e, "client went away while we answered");
    }
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
    /// The address the listener is bound to (the actual port when `:0` was asked for).
    pub addr: std::net::SocketAddr,
    /// The base of links this server hands out.
    pub public_url: String,
    threads: Vec<std::thread::JoinHandle<()>>,
    stopper: Stopper,
    senders: Senders,
    grace: Duration,
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
    /// Closes the listener and wakes every request thread so it exits after the
    /// requests already received.
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
        let h = &svc.cfg.http;
        let limits = tiny_http::Limits {
            head_timeout: Duration::from_secs(h.head_timeout_secs.max(1)),
            body_idle_timeout: Duration::from_secs(h.body_timeout_secs.max(1)),
            write_idle_timeout: Duration::from_secs(h.write_timeout_secs.max(1)),
            max_connections: h.max_connections.max(1),
            max_body_bytes: h.max_body_bytes as usize,
            ..Default::default()
        };
        let grace = Duration::from_secs(h.shutdown_grace_secs);
        let server =
            tiny_http::Server::http_with_limits(listen, limits).map_err(|e| e.to_string())?;
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
        let senders = Senders::default();
        let state = Arc::new(AppState {
            svc,
            schedules,
            rt: rt.clone(),
            metrics: metrics::Metrics::default(),
            mcp,
            senders: senders.clone(),
            server: server.clone(),
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
            senders,
            grace,
        })
    }

    /// What stops this server without the runtime's help.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Waits for the request threads to finish (after shutdown), then for
    /// answers still being sent, up to the grace period; connections left
    /// after that are abandoned (the process may exit under them).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
        let left = self.senders.wait(self.grace);
        if left > 0 {
            tracing::warn!(
                answers = left,
                grace_secs = self.grace.as_secs(),
                "shutdown grace over; abandoning answers still being sent"
            );
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
                respond(req, routes::json(503, &err.body()));
            }
        }
    }
}
