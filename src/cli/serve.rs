//! `audit-export serve`: the engine with its HTTP server, until
//! SIGINT/SIGTERM; then requests in flight finish, running jobs
//! checkpoint and release their leases.

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{Cli, CliError};
use crate::config::Config;
use crate::engine::RunOptions;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default from [http] listen: 127.0.0.1:8080;
    /// port 0 picks a free port, printed at start).
    #[arg(long)]
    listen: Option<String>,
}

pub fn run(cli: &Cli, cfg: &Config, a: &ServeArgs) -> Result<(), CliError> {
    let engine = super::engine(cli, cfg)?;
    let rt = super::runtime()?;
    let listen = a.listen.clone().unwrap_or_else(|| cfg.http.listen.clone());
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        let opts = RunOptions {
            http_listen: Some(listen.clone()),
        };
        let running = engine
            .start(opts, shutdown.clone())
            .map_err(|e| CliError::bad_input(format!("--listen: {e}")))?;
        let addr = running.http_addr().expect("the server was asked for");
        eprintln!("listening on http://{addr}");
        super::worker::wait_for_signal(&engine).await;
        eprintln!("stopping: finishing requests in flight, checkpointing jobs");
        shutdown.cancel();
        running.wait().await;
        eprintln!("stopped");
        Ok(())
    })
}
