//! The command line: clap definitions, output for people (progress bars,
//! summaries), and the one mapping from engine errors to exit codes.
//!
//! Exit codes: 0 done; 1 anything else (I/O, database); 2 bad input (the
//! message names the flag or the input line); 3 nothing matched (a warning,
//! no file written). This module holds no business logic.

mod admin;
#[cfg(target_os = "linux")]
mod direct;
mod export;
mod ingest;
mod jobs;
mod mcp;
mod output;
mod progress;
mod schedules;
mod seed;
mod serve;
mod users;
mod verify;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// A CLI failure: an exit code and a one-line reason.
#[derive(Debug)]
pub struct CliError {
    /// Process exit code: 1 failure, [`EXIT_BAD_INPUT`], [`EXIT_NO_MATCH`].
    pub code: u8,
    /// The reason, printed to stderr after `error: ` (or `warning: `).
    pub message: String,
}

/// Exit code for bad input.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code when no event matched.
pub const EXIT_NO_MATCH: u8 = 3;

impl CliError {
    /// Bad input (exit 2): the message names the flag or the input line.
    pub fn bad_input(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_BAD_INPUT,
            message: message.into(),
        }
    }
    /// Any other failure (exit 1): I/O, database, network.
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<crate::db::DbError> for CliError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Missing(_) => CliError::bad_input(format!("--data-dir: {e}")),
            crate::db::DbError::Sqlite(e) => e.into(),
            other => CliError::failure(other.to_string()),
        }
    }
}

impl From<crate::engine::EngineError> for CliError {
    fn from(e: crate::engine::EngineError) -> Self {
        use crate::engine::EngineError as E;
        match e {
            E::Db(e) => (*e).into(),
            E::Service(e) => (*e).into(),
            E::Config(_) | E::Storage(_) | E::Listen { .. } => CliError::bad_input(e.to_string()),
            E::Secret(_) => CliError::failure(e.to_string()),
        }
    }
}

impl From<crate::service::ServiceError> for CliError {
    fn from(e: crate::service::ServiceError) -> Self {
        use crate::service::ServiceError as S;
        match e {
            S::Filter(e) => export::filter_error(e),
            S::Job(e) => e.into(),
            S::Invalid { field, message, .. } => {
                CliError::bad_input(format!("{}: {message}", flag(field)))
            }
            S::UnverifiedRecipient(m) => CliError::bad_input(format!("--email-to: {m}")),
            S::Forbidden(m) => CliError::bad_input(format!("--requester: {m}")),
            S::NotFound => CliError::bad_input("no such export job"),
            e @ S::IdempotencyConflict(_) => CliError::bad_input(e.to_string()),
            S::Db(e) => e.into(),
            S::Open(e) => (*e).into(),
        }
    }
}

/// The CLI flag a request field comes from.
pub(crate) fn flag(field: &str) -> &'static str {
    match field {
        "organization" => "--org",
        "from" => "--from",
        "to" => "--to",
        "actors" => "--actor",
        "actions" => "--action",
        "streams" => "--stream",
        "target_type" => "--target-type",
        "target_id" => "--target-id",
        "q" => "--q",
        "email_to" => "--email-to",
        "requester" | "user" => "--requester",
        _ => "filters",
    }
}

impl From<crate::config::ConfigError> for CliError {
    fn from(e: crate::config::ConfigError) -> Self {
        CliError::bad_input(e.to_string())
    }
}

/// The data directory of this run, to name it in a disk-full error.
static DATA_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The one line for a full disk: which folder, and that nothing was lost.
fn disk_full() -> CliError {
    let dir = DATA_DIR.get().map_or_else(
        || "the data directory".to_string(),
        |d| d.display().to_string(),
    );
    CliError::failure(format!(
        "the disk holding {dir} is full; nothing was lost or half-written — free some space and run the command again"
    ))
}

impl From<rusqlite::Error> for CliError {
    fn from(e: rusqlite::Error) -> Self {
        if crate::db::is_disk_full(&e) {
            return disk_full();
        }
        CliError::failure(format!("database error: {e}"))
    }
}

/// The `audit-export` command line: global options and one subcommand.
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
    /// Folder of scheduled exports (default: `[schedules] dir`, else
    /// ./workflows).
    #[arg(
        long,
        global = true,
        env = "AUDIT_EXPORT_SCHEDULES_DIR",
        value_name = "DIR"
    )]
    pub workflows: Option<PathBuf>,
    /// Log lines as text for people, or JSON for log shippers (logs go to
    /// stderr; the filter is RUST_LOG or AUDIT_EXPORT_LOG, default warn).
    #[arg(
        long,
        global = true,
        env = "AUDIT_EXPORT_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    // Variant docs as `#[doc = concat!(..)]`: clap ignores them there, while
    // a `///` would become the value's help and change every `--help`.
    #[doc = concat!("Human-readable text lines.")]
    Text,
    #[doc = concat!("One JSON object per line, for log shippers.")]
    Json,
}

/// The subcommands of `audit-export`.
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
    /// Write a consistent copy of the database (also while serve runs).
    Backup(admin::BackupArgs),
    /// Replace the database by a backup (refused while it is in use).
    Restore(admin::RestoreArgs),
    /// Show the effective configuration and where each value came from.
    Config(admin::ConfigArgs),
    /// List scheduled exports (workflows/*.toml) or run one now.
    Schedules(schedules::SchedulesArgs),
    /// Check an export against its signed manifest, or a chain of manifests
    /// (offline: exit 0 valid, 1 not, naming what failed).
    Verify(verify::VerifyArgs),
    /// Show or rotate the manifest signing keys.
    Keys(verify::KeysArgs),
    /// Serve MCP tools (search, exports) on stdio for the user whose API
    /// token is in AUDIT_EXPORT_TOKEN.
    Mcp(mcp::McpArgs),
}

/// Parses the command line, runs it, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = DATA_DIR.set(cli.data_dir.clone());
    init_tracing(cli.log_format);
    match &cli.command {
        // Shows the configuration, so it must not need a valid one first.
        Command::Config(a) => return finish(admin::config(&cli, a)),
        // Offline: needs no configuration, database or network.
        Command::Verify(a) => return finish(verify::verify(&cli, a)),
        _ => {}
    }
    // Every command that opens the database holds the data dir's shared
    // lock while it runs, so `restore` (which takes it exclusively) never
    // replaces a database under an ingest, an export or a `users add`.
    let _in_use = match &cli.command {
        Command::Restore(_) => None,
        // These create the database when it is missing (and the folder:
        // not here, so a refused command leaves no folder behind).
        Command::Ingest(_) | Command::Seed(_) if cli.data_dir.is_dir() => {
            crate::db::backup::DataDirLock::shared(&cli.data_dir).ok()
        }
        _ if crate::db::db_path(&cli.data_dir).is_file() => {
            crate::db::backup::DataDirLock::shared(&cli.data_dir).ok()
        }
        _ => None,
    };
    let result = Config::load(cli.config.as_deref())
        .map_err(CliError::from)
        .map(|mut cfg| {
            if let Some(dir) = &cli.workflows {
                cfg.schedules.dir = Some(dir.display().to_string());
            }
            cfg
        })
        .and_then(|cfg| match &cli.command {
            Command::Ingest(a) => ingest::run(&cli, &cfg, a),
            Command::Export(a) => export::run(&cli, &cfg, a),
            Command::Seed(a) => seed::run(&cli, a),
            Command::Worker(a) => worker::run(&cli, &cfg, a),
            Command::Jobs(a) => jobs::run(&cli, &cfg, a),
            Command::Serve(a) => serve::run(&cli, &cfg, a),
            Command::Users(a) => users::users(&cli, a),
            Command::Tokens(a) => users::tokens(&cli, a),
            Command::Backup(a) => admin::backup(&cli, a),
            Command::Restore(a) => admin::restore(&cli, a),
            Command::Schedules(a) => schedules::run(&cli, &cfg, a),
            Command::Keys(a) => verify::keys(&cli, &cfg, a),
            Command::Mcp(a) => mcp::run(&cli, &cfg, a),
            Command::Config(_) | Command::Verify(_) => unreachable!("handled above"),
        });
    finish(result)
}

fn finish(result: Result<(), CliError>) -> ExitCode {
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

/// Logs to stderr, filtered by `AUDIT_EXPORT_LOG`, else `RUST_LOG`, else
/// `warn`; as text or JSON lines.
fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("AUDIT_EXPORT_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Opens the engine on the data dir (creating or migrating the database).
pub(crate) fn engine(cli: &Cli, cfg: &Config) -> Result<crate::Engine, CliError> {
    Ok(crate::Engine::open(&cli.data_dir, cfg.clone())?)
}

/// Opens the engine on an existing database only: a missing one is bad
/// input (exit 2), and nothing is created.
pub(crate) fn existing_engine(cli: &Cli, cfg: &Config) -> Result<crate::Engine, CliError> {
    let db = crate::db::db_path(&cli.data_dir);
    if !db.is_file() {
        return Err(crate::db::DbError::Missing(db).into());
    }
    engine(cli, cfg)
}

/// A runtime for the long-running commands.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the runtime: {e}")))
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

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    /// The command line's names are the engine's names.
    #[test]
    fn value_enums_use_the_engine_names() {
        fn names<T: ValueEnum>() -> Vec<String> {
            T::value_variants()
                .iter()
                .map(|v| v.to_possible_value().unwrap().get_name().to_string())
                .collect()
        }
        assert_eq!(
            names::<crate::format::Format>(),
            crate::format::Format::NAMES
        );
        assert_eq!(names::<crate::users::Role>(), crate::users::Role::NAMES);
        assert_eq!(
            names::<crate::jobs::Compress>(),
            crate::jobs::Compress::NAMES
        );
    }
}
