//! `audit-export ingest FILE`: load events from JSONL, a JSON array or
//! raw-layout CSV.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};

use super::{thousands, Cli, CliError};
use crate::audit::ingest::{ingest_file, IngestError, IngestOptions, InputFormat};
use crate::config::Config;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FileFormat {
    /// JSON Lines, or one JSON array (told apart by the first character).
    Jsonl,
    /// The same reader as `jsonl`.
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The file to ingest (.jsonl, a .json array, or .csv in the raw column layout).
    file: PathBuf,
    /// File format (default: from the extension; .csv is CSV, else JSON).
    #[arg(long, value_enum)]
    format: Option<FileFormat>,
    /// Ingest the valid lines and count the invalid ones instead of
    /// rejecting the whole file.
    #[arg(long)]
    skip_invalid: bool,
}

pub fn run(cli: &Cli, _cfg: &Config, a: &IngestArgs) -> Result<(), CliError> {
    if !a.file.is_file() {
        return Err(CliError::bad_input(format!(
            "FILE: {} is not a readable file",
            a.file.display()
        )));
    }
    let format = match a.format {
        Some(FileFormat::Jsonl | FileFormat::Json) => InputFormat::Jsonl,
        Some(FileFormat::Csv) => InputFormat::Csv,
        None => InputFormat::from_path(&a.file),
    };
    let mut conn = crate::db::open_data_dir(&cli.data_dir)?;
    let started = Instant::now();
    let opts = IngestOptions {
        format,
        skip_invalid: a.skip_invalid,
    };
    let now = chrono::Utc::now().timestamp_millis();
    match ingest_file(&mut conn, &a.file, opts, now) {
        Ok(report) if report.already.is_some() => {
            let done = report.already.expect("checked");
            eprintln!(
                "{}: already ingested completely on {} ({} events, from {}; same content, sha256 {}); nothing to do",
                a.file.display(),
                crate::time::format_rfc3339_ms(done.at),
                thousands(done.inserted),
                done.name,
                &report.sha256[..16]
            );
            Ok(())
        }
        Ok(report) => {
            if let Some(line) = report.resumed_after {
                eprintln!(
                    "{}: an earlier run stopped after line {}; resumed from there",
                    a.file.display(),
                    thousands(line)
                );
            }
            for e in &report.errors {
                eprintln!("skipped {e}");
            }
            let mut line = format!(
                "ingested {} events from {} in {:.2} s",
                thousands(report.inserted),
                a.file.display(),
                started.elapsed().as_secs_f64()
            );
            if report.unchanged > 0 {
                line.push_str(&format!(
                    "; {} already present, unchanged",
                    thousands(report.unchanged)
                ));
            }
            if a.skip_invalid {
                line.push_str(&format!(
                    "; skipped {} invalid line(s)",
                    thousands(report.skipped)
                ));
            }
            eprintln!("{line}");
            Ok(())
        }
        Err(IngestError::Invalid { invalid, errors }) => {
            for e in &errors {
                eprintln!("{}: {e}", a.file.display());
            }
            if invalid as usize > errors.len() {
                eprintln!("... and {} more", invalid as usize - errors.len());
            }
            Err(CliError::bad_input(format!(
                "{}: {} invalid line(s); nothing was ingested (fix them, or pass --skip-invalid)",
                a.file.display(),
                thousands(invalid)
            )))
        }
        Err(e @ (IngestError::CsvHeader(_) | IngestError::Read { .. })) => {
            Err(CliError::bad_input(format!("{}: {e}", a.file.display())))
        }
        Err(IngestError::Db(e)) => Err(e.into()),
    }
}
