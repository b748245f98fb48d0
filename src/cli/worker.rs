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
pub struct WorkerArgs {}

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

pub fn run(cli: &Cli, cfg: &Config, _a: &WorkerArgs) -> Result<(), CliError> {
    let engine = Arc::new(engine(cli, cfg)?);
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
        let cron_task = tokio::spawn(crate::jobs::crons::run(engine.clone(), rx));
        wait_for_signal().await;
        eprintln!("worker stopping: finishing the current page and releasing leases");
        let _ = tx.send(true);
        let _ = loop_task.await;
        let _ = cron_task.await;
        eprintln!("worker stopped");
    });
    Ok(())
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
