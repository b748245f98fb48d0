//! `audit-export jobs list | show ID | cancel ID | restart ID`, as the
//! operator (every organization).

use clap::{Args, Subcommand};

use super::{human_bytes, thousands, Cli, CliError};
use crate::config::Config;
use crate::jobs::store::Request;
use crate::jobs::{Job, JobError};
use crate::time::format_rfc3339_ms;
use crate::users::Requester;

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    command: JobsCommand,
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only this organization's jobs.
        #[arg(long)]
        org: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one job: state, progress, file, error.
    Show { id: String },
    /// Cancel a job in progress.
    Cancel { id: String },
    /// Restart a job in progress from scratch.
    Restart { id: String },
}

impl From<JobError> for CliError {
    fn from(e: JobError) -> Self {
        match e {
            // Both concern the request as a whole: name the flag that
            // changes the outcome.
            JobError::DuplicateExport { .. } => {
                CliError::bad_input(format!("{e}; pass --restart to restart it"))
            }
            JobError::TooManyExports { .. } => CliError::bad_input(format!(
                "--requester: {e}, or cancel one (audit-export jobs cancel ID)"
            )),
            JobError::NotFound(_) | JobError::NotInProgress(_) => {
                CliError::bad_input(e.to_string())
            }
            // A full disk is named the same way whichever layer met it.
            JobError::Db(e) => e.into(),
            other => CliError::failure(other.to_string()),
        }
    }
}

pub fn run(cli: &Cli, cfg: &Config, a: &JobsArgs) -> Result<(), CliError> {
    let engine = super::existing_engine(cli, cfg)?;
    let svc = engine.service();
    let mut conn = svc.connect()?;
    let operator = Requester::System("cli".into());
    match &a.command {
        JobsCommand::List { org, limit } => {
            let jobs = svc.list_jobs(&conn, &operator, org.as_deref(), *limit)?;
            if jobs.is_empty() {
                eprintln!("no jobs");
            }
            for j in jobs {
                println!(
                    "{}  {:<9}  {:<5}  {:>12}  {}  {}",
                    j.id,
                    j.state.as_str(),
                    j.format.as_str(),
                    progress(&j),
                    j.organization_id,
                    format_rfc3339_ms(j.created_at)
                );
            }
        }
        JobsCommand::Show { id } => {
            print!("{}", describe(&svc.visible_job(&conn, &operator, id)?))
        }
        JobsCommand::Cancel { id } => match svc.cancel(&mut conn, &operator, id)? {
            Request::Applied(out) => println!("{}: cancelled", out.job.id),
            Request::Flagged(j) => println!(
                "{}: cancel requested; the worker stops it at its next batch",
                j.id
            ),
        },
        JobsCommand::Restart { id } => match svc.restart(&mut conn, &operator, id)? {
            Request::Applied(out) => println!("{}: restarted from scratch", out.job.id),
            Request::Flagged(j) => println!(
                "{}: restart requested; the worker restarts it at its next batch",
                j.id
            ),
        },
    }
    Ok(())
}

fn progress(j: &Job) -> String {
    match j.estimated_count {
        Some(e) => format!("{}/{}", thousands(j.exported_count), thousands(e)),
        None => thousands(j.exported_count),
    }
}

/// A multi-line description of a job for people.
pub fn describe(j: &Job) -> String {
    let mut s = format!(
        "job        {}\nstate      {}\norg        {}\nrequester  {}\nformat     {}\nfilters    {}\nprogress   {} exported\nattempt    {} of {}\ncreated    {}\n",
        j.id,
        j.state,
        j.organization_id,
        j.requester,
        j.format,
        j.filters,
        progress(j),
        j.attempt,
        j.max_attempts,
        format_rfc3339_ms(j.created_at)
    );
    if let Some(t) = j.completed_at {
        s.push_str(&format!("finished   {}\n", format_rfc3339_ms(t)));
    }
    if let Some(n) = j.record_count {
        s.push_str(&format!("records    {}\n", thousands(n)));
    }
    if let Some(f) = &j.file {
        s.push_str(&format!(
            "file       {} ({}, sha256 {})\nstored at  {}\n",
            f.name,
            human_bytes(f.size),
            f.sha256,
            f.key
        ));
    }
    if let (Some(code), Some(msg)) = (&j.error_code, &j.error_message) {
        s.push_str(&format!("error      {code}: {msg}\n"));
    }
    if j.cancel_requested {
        s.push_str("note       cancel requested\n");
    }
    if j.restart_requested {
        s.push_str("note       restart requested\n");
    }
    s
}
