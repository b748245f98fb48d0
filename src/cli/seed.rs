//! `audit-export seed`: fill the database with deterministic synthetic events.

use std::time::Instant;

use clap::Args;

use super::progress::Progress;
use super::{thousands, Cli, CliError};
use crate::audit::seed::{seed, SeedSpec};

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Number of events to generate.
    #[arg(long)]
    rows: u64,
    /// Number of organizations (named org_1 .. org_K).
    #[arg(long, default_value_t = 1)]
    orgs: u32,
    /// Random seed: the same seed gives the same events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// First day of the span (YYYY-MM-DD, UTC).
    #[arg(long, default_value = "2025-01-01")]
    start: String,
    /// Length of the span in days.
    #[arg(long, default_value_t = 365)]
    days: u32,
}

pub fn run(cli: &Cli, a: &SeedArgs) -> Result<(), CliError> {
    let start_ms = crate::time::parse_date_ms(&a.start).ok_or_else(|| {
        CliError::bad_input(format!("--start: {:?} is not a YYYY-MM-DD date", a.start))
    })?;
    if a.orgs == 0 {
        return Err(CliError::bad_input("--orgs: must be at least 1"));
    }
    if a.days == 0 {
        return Err(CliError::bad_input("--days: must be at least 1"));
    }
    let mut conn = crate::db::open_data_dir(&cli.data_dir)?;
    let started = Instant::now();
    let mut bar = Progress::new("rows", Some(a.rows));
    let spec = SeedSpec {
        rows: a.rows,
        orgs: a.orgs,
        seed: a.seed,
        start_ms,
        days: a.days,
    };
    let n = seed(&mut conn, &spec, |done| bar.update(done))?;
    bar.finish();
    eprintln!(
        "seeded {} events over {} organization(s) into {} in {:.2} s",
        thousands(n),
        a.orgs,
        crate::db::db_path(&cli.data_dir).display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
