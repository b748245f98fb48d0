//! Operating the data directory: `backup PATH`, `restore BACKUP` and
//! `config show`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{human_bytes, Cli, CliError};
use crate::config::Config;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (a new file).
    path: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A copy written by `audit-export backup` or taken before an upgrade
    /// (`<data-dir>/backups/`).
    backup: PathBuf,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print every setting, its effective value and where it came from
    /// (default, file, variable); secrets are masked.
    Show,
}

pub fn backup(cli: &Cli, a: &BackupArgs) -> Result<(), CliError> {
    let copied = crate::db::backup::backup_to(&cli.data_dir, &a.path)?;
    eprintln!(
        "backed up {} (schema v{}, {}) to {}",
        crate::db::db_path(&cli.data_dir).display(),
        copied.version,
        human_bytes(copied.bytes),
        copied.path.display()
    );
    Ok(())
}

pub fn restore(cli: &Cli, a: &RestoreArgs) -> Result<(), CliError> {
    if !a.backup.is_file() {
        return Err(CliError::bad_input(format!(
            "BACKUP: {} is not a file",
            a.backup.display()
        )));
    }
    let now = crate::time::Clock::system().now_ms();
    let r = crate::db::backup::restore(&cli.data_dir, &a.backup, now)?;
    let mut line = format!(
        "restored {} (schema v{}) into {}",
        a.backup.display(),
        r.version,
        crate::db::db_path(&cli.data_dir).display()
    );
    if let Some(prev) = &r.previous {
        line.push_str(&format!(
            "; the database it replaced is kept at {}",
            prev.display()
        ));
    }
    eprintln!("{line}");
    Ok(())
}

pub fn config(cli: &Cli, a: &ConfigArgs) -> Result<(), CliError> {
    match a.command {
        ConfigCommand::Show => {
            let (file, path) = Config::file(cli.config.as_deref())?;
            print!("{}", crate::config::show(&file, &path, std::env::vars())?);
            Ok(())
        }
    }
}
