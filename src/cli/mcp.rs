//! `audit-export mcp`: an MCP server on stdin/stdout for one user, the one
//! whose API token is in `AUDIT_EXPORT_TOKEN` (never an argument: those
//! show in `ps` and shell history). Runs the job services too, so an
//! export it queues completes even with no `serve` running (`--no-worker`
//! when one does). stdout carries the protocol only; messages go to
//! stderr.

use clap::Args;
use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

use super::{Cli, CliError};
use crate::audit::trail::Client;
use crate::config::Config;
use crate::engine::RunOptions;
use crate::mcp::{Caller, McpServer};

#[derive(Debug, Args)]
pub struct McpArgs {
    /// Do not run background jobs in this process (a `serve` or `worker`
    /// on the same data dir runs them).
    #[arg(long)]
    no_worker: bool,
}

pub fn run(cli: &Cli, cfg: &Config, a: &McpArgs) -> Result<(), CliError> {
    let token = std::env::var("AUDIT_EXPORT_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            CliError::bad_input(
                "AUDIT_EXPORT_TOKEN: set it to the API token of the user the agent acts for",
            )
        })?;
    let engine = super::existing_engine(cli, cfg)?;
    let conn = engine.service().connect()?;
    let user = crate::users::authenticate(&conn, &token)
        .map_err(|e| CliError::failure(e.to_string()))?
        .ok_or_else(|| CliError::bad_input("AUDIT_EXPORT_TOKEN: unknown or revoked token"))?;
    drop(conn);
    let caller = Caller {
        user,
        client: Client {
            ip: None,
            user_agent: Some("audit-export mcp (stdio)".into()),
            request_id: None,
        },
    };
    let rt = super::runtime()?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        let running = if a.no_worker {
            None
        } else {
            Some(engine.start(RunOptions::default(), shutdown.clone())?)
        };
        tracing::info!(user = caller.user.id, org = %caller.user.organization_id, "mcp server on stdio");
        let server = McpServer::for_caller(engine.service().clone(), caller)
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| CliError::failure(format!("mcp: {e}")))?;
        // Ends when the client closes stdin, or on a signal.
        tokio::select! {
            r = server.waiting() => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "mcp session ended with an error");
                }
            }
            _ = super::worker::wait_for_signal(&engine) => {}
        }
        shutdown.cancel();
        if let Some(r) = running {
            r.wait().await;
        }
        Ok(())
    })
}
