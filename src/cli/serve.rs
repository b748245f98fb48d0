//! `audit-export serve`: the HTTP API and the job engine in one process,
//! until SIGINT/SIGTERM; then requests in flight finish, running jobs
//! checkpoint and release their leases.

use std::sync::Arc;

use clap::Args;

use super::{Cli, CliError};
use crate::config::Config;
use crate::http::{metrics::Metrics, AppState, Server};
use crate::links::Signer;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default from [http] listen: 127.0.0.1:8080;
    /// port 0 picks a free port, printed at start).
    #[arg(long)]
    listen: Option<String>,
}

pub fn run(cli: &Cli, cfg: &Config, a: &ServeArgs) -> Result<(), CliError> {
    let engine = Arc::new(super::worker::engine(cli, cfg)?);
    for s in [&cfg.jobs.cleanup_schedule, &cfg.jobs.rescue_schedule] {
        crate::jobs::crons::Schedule::parse(s).map_err(CliError::bad_input)?;
    }
    let signer = Signer::load_or_create(&cli.data_dir, cfg.http.secret.as_deref())
        .map_err(|e| CliError::failure(format!("link secret: {e}")))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the runtime: {e}")))?;
    let listen = a.listen.clone().unwrap_or_else(|| cfg.http.listen.clone());
    let state = AppState {
        data_dir: cli.data_dir.clone(),
        cfg: cfg.clone(),
        engine: engine.clone(),
        rt: rt.handle().clone(),
        signer,
        metrics: Metrics::default(),
        public_url: cfg.http.public_url.clone().unwrap_or_default(),
    };
    let server =
        Server::start(&listen, state).map_err(|e| CliError::bad_input(format!("--listen: {e}")))?;
    // Mailed links must point where this server really listens.
    let mailer = Arc::new(super::worker::delivery(
        cli,
        cfg,
        Some(server.public_url.clone()),
    )?);
    eprintln!("listening on http://{}", server.addr);
    rt.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let loop_task = tokio::spawn(crate::jobs::scheduler::run(engine.clone(), rx.clone()));
        let cron_task = tokio::spawn(crate::jobs::crons::run(engine.clone(), rx.clone()));
        let mail_task = tokio::spawn(crate::notify::deliver::run(mailer, rx));
        super::worker::wait_for_signal().await;
        eprintln!("stopping: finishing requests in flight, checkpointing jobs");
        let _ = tx.send(true);
        let _ = tokio::task::spawn_blocking(move || server.shutdown()).await;
        let _ = loop_task.await;
        let _ = cron_task.await;
        let _ = mail_task.await;
    });
    eprintln!("stopped");
    Ok(())
}
