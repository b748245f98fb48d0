//! `audit-export worker`: the engine without HTTP (scheduler, crons, mail
//! delivery) until SIGINT or SIGTERM; then running jobs checkpoint and
//! release their leases before the process exits.

use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{Cli, CliError};
use crate::config::Config;
use crate::engine::RunOptions;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Exit once no job is in progress (batch use: run what is queued, then
    /// stop) instead of waiting for SIGINT/SIGTERM.
    #[arg(long)]
    drain: bool,
}

pub fn run(cli: &Cli, cfg: &Config, a: &WorkerArgs) -> Result<(), CliError> {
    let engine = super::engine(cli, cfg)?;
    let rt = super::runtime()?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        let running = engine.start(RunOptions::default(), shutdown.clone())?;
        let owner = engine.service().runner.owner.clone();
        tracing::info!(%owner, "worker started");
        eprintln!("worker {owner} started on {}", cli.data_dir.display());
        let drained = if a.drain {
            tokio::select! {
                _ = wait_for_signal(&engine) => false,
                _ = drained(&engine) => true,
            }
        } else {
            wait_for_signal(&engine).await;
            false
        };
        eprintln!("worker stopping: finishing the current page and releasing leases");
        shutdown.cancel();
        running.wait().await;
        if drained {
            // The last jobs' notifications were just queued: send them now
            // rather than at the next worker start (a failure stays queued
            // with its retry time, as always).
            engine.deliver_now().await;
        }
        eprintln!("worker stopped");
        Ok(())
    })
}

/// Resolves once no job is in progress any more.
async fn drained(engine: &crate::Engine) {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if matches!(engine.in_progress(), Ok(0)) {
            return;
        }
    }
}

/// Resolves on SIGINT or SIGTERM; on SIGHUP reloads the schedules.
pub async fn wait_for_signal(engine: &crate::Engine) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term.recv() => return,
            _ = hup.recv() => {
                let r = engine.schedules().reload();
                eprintln!(
                    "SIGHUP: {} schedule(s) loaded, {} invalid file(s), {} kept at their last good version",
                    r.loaded.len(),
                    r.invalid.len(),
                    r.kept.len()
                );
            }
        }
    }
}
