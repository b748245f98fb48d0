//! `audit-export worker`: the job engine (scheduler loop + crons), no HTTP,
//! until SIGINT or SIGTERM; then running jobs checkpoint and release their
//! leases before the process exits.

use std::sync::Arc;

use clap::Args;

use super::{Cli, CliError};
use crate::config::Config;
use crate::jobs::scheduler::Engine;
use crate::storage::Storage;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Exit once no job is in progress (batch use: run what is queued, then
    /// stop) instead of waiting for SIGINT/SIGTERM.
    #[arg(long)]
    drain: bool,
}

/// Builds the e-mail delivery service from the configuration.
/// `public_url` is the base of links (serve passes the address it bound;
/// a lone worker uses `[http] public_url`, else `http://<[http] listen>`).
pub fn delivery(
    cli: &Cli,
    cfg: &Config,
    public_url: Option<String>,
) -> Result<crate::notify::deliver::Delivery, CliError> {
    let signer = crate::links::Signer::load_or_create(&cli.data_dir, cfg.http.secret.as_deref())
        .map_err(|e| CliError::failure(format!("link secret: {e}")))?;
    let public_url = public_url
        .or_else(|| cfg.http.public_url.clone())
        .unwrap_or_else(|| format!("http://{}", cfg.http.listen));
    let links = crate::notify::deliver::LinkMaker {
        signer,
        public_url,
        link_secs: crate::http::link_secs(cfg),
    };
    crate::notify::deliver::Delivery::new(&cli.data_dir, cfg.notify.clone(), &cfg.smtp, links)
        .map_err(|e| CliError::bad_input(e.to_string()))
}

/// Builds the engine from the configuration.
pub fn engine(cli: &Cli, cfg: &Config) -> Result<Engine, CliError> {
    crate::db::open_data_dir(&cli.data_dir)?;
    let storage = Storage::from_config(&cfg.storage, &cli.data_dir)
        .map_err(|e| CliError::bad_input(e.to_string()))?;
    Ok(Engine::new(
        cli.data_dir.clone(),
        cfg.jobs.clone(),
        cfg.export.batch_size,
        storage,
    ))
}

pub fn run(cli: &Cli, cfg: &Config, a: &WorkerArgs) -> Result<(), CliError> {
    let engine = Arc::new(engine(cli, cfg)?);
    let mailer = Arc::new(delivery(cli, cfg, None)?);
    // Validate schedules before starting anything.
    for s in [&cfg.jobs.cleanup_schedule, &cfg.jobs.rescue_schedule] {
        crate::jobs::crons::Schedule::parse(s).map_err(CliError::bad_input)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tracing::info!(owner = %engine.owner, "worker started");
        eprintln!(
            "worker {} started on {}",
            engine.owner,
            cli.data_dir.display()
        );
        let loop_task = tokio::spawn(crate::jobs::scheduler::run(engine.clone(), rx.clone()));
        let cron_task = tokio::spawn(crate::jobs::crons::run(engine.clone(), rx.clone()));
        let mail_task = tokio::spawn(crate::notify::deliver::run(mailer.clone(), rx));
        if a.drain {
            let finished = tokio::select! {
                _ = wait_for_signal() => false,
                _ = drained(&engine) => true,
            };
            if finished {
                // The last jobs' notifications were just queued: send them
                // now rather than at the next worker start (a failure stays
                // queued with its retry time, as always).
                if let Err(e) = mailer.run_once(crate::jobs::now_ms()).await {
                    tracing::error!(error = %e, "delivery pass failed");
                }
            }
        } else {
            wait_for_signal().await;
        }
        eprintln!("worker stopping: finishing the current page and releasing leases");
        let _ = tx.send(true);
        let _ = loop_task.await;
        let _ = cron_task.await;
        let _ = mail_task.await;
        eprintln!("worker stopped");
    });
    Ok(())
}

/// Resolves once no job is in progress any more.
async fn drained(engine: &Engine) {
    let path = crate::db::db_path(&engine.data_dir);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let p = path.clone();
        let left = tokio::task::spawn_blocking(move || -> Result<i64, crate::db::DbError> {
            let conn = crate::db::connect(&p)?;
            Ok(conn.query_row(
                "SELECT count(*) FROM export_jobs WHERE state IN ('exporting', 'uploading')",
                [],
                |r| r.get(0),
            )?)
        })
        .await;
        if matches!(left, Ok(Ok(0))) {
            return;
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
