//! The command line: clap definitions, output for people (progress bars,
//! summaries), and the one mapping from engine errors to exit codes.
//!
//! Exit codes: 0 done; 1 anything else (I/O, database); 2 bad input (the
//! message names the flag or the input line); 3 nothing matched (a warning,
//! no file written). This module holds no business logic.

mod export;
mod ingest;
mod jobs;
mod progress;
mod seed;
mod serve;
mod users;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// A CLI failure: an exit code and a one-line reason.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

/// Exit code for bad input.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code when no event matched.
pub const EXIT_NO_MATCH: u8 = 3;

impl CliError {
    pub fn bad_input(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_BAD_INPUT,
            message: message.into(),
        }
    }
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<crate::db::DbError> for CliError {
    fn from(e: crate::db::DbError) -> Self {
        CliError::failure(e.to_string())
    }
}

impl From<crate::config::ConfigError> for CliError {
    fn from(e: crate::config::ConfigError) -> Self {
        CliError::bad_input(e.to_string())
    }
}

impl From<rusqlite::Error> for CliError {
    fn from(e: rusqlite::Error) -> Self {
        CliError::failure(format!("database error: {e}"))
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "audit-export",
    version,
    about = "Durable export engine for audit logs"
)]
pub struct Cli {
    /// Data directory (database, spool, local exports).
    #[arg(
        long,
        global = true,
        env = "AUDIT_EXPORT_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,
    /// Config file (default: ./audit-export.toml when present).
    #[arg(long, global = true, env = "AUDIT_EXPORT_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest audit events from a JSONL or raw-layout CSV file.
    Ingest(ingest::IngestArgs),
    /// Export events matching filters as CSV, JSON or JSONL.
    Export(Box<export::ExportArgs>),
    /// Generate deterministic synthetic events (benchmarks).
    Seed(seed::SeedArgs),
    /// Run the job engine (scheduler loop and crons) until SIGINT/SIGTERM.
    Worker(worker::WorkerArgs),
    /// List, show, cancel or restart export jobs.
    Jobs(jobs::JobsArgs),
    /// Serve the HTTP API with the job engine until SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
    /// Add or list users (API tokens are printed once).
    Users(users::UsersArgs),
    /// Issue or revoke API tokens.
    Tokens(users::TokensArgs),
}

/// Parses the command line, runs it, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = Config::load(cli.config.as_deref())
        .map_err(CliError::from)
        .and_then(|cfg| match &cli.command {
            Command::Ingest(a) => ingest::run(&cli, &cfg, a),
            Command::Export(a) => export::run(&cli, &cfg, a),
            Command::Seed(a) => seed::run(&cli, a),
            Command::Worker(a) => worker::run(&cli, &cfg, a),
            Command::Jobs(a) => jobs::run(&cli, &cfg, a),
            Command::Serve(a) => serve::run(&cli, &cfg, a),
            Command::Users(a) => users::users(&cli, a),
            Command::Tokens(a) => users::tokens(&cli, a),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let label = if e.code == EXIT_NO_MATCH {
                "warning"
            } else {
                "error"
            };
            eprintln!("{label}: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("AUDIT_EXPORT_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes for people: `1.2 MiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
