//! `audit-export schedules list | run NAME`: the scheduled exports of
//! `workflows/*.toml` (or `--workflows DIR`), as the operator.

use clap::{Args, Subcommand};

use super::{Cli, CliError};
use crate::config::Config;
use crate::schedules::calendar::local_rfc3339;
use crate::users::Requester;

#[derive(Debug, Args)]
pub struct SchedulesArgs {
    #[command(subcommand)]
    command: SchedulesCommand,
}

#[derive(Debug, Subcommand)]
enum SchedulesCommand {
    /// Each schedule (enabled or not), its next three fires in its time
    /// zone, its last run; then every invalid file with its reason.
    List,
    /// Run a schedule now: its range computed as if it fired at this
    /// instant (previous_week is the last complete week); the job is
    /// marked manual. Prints the job id.
    Run {
        /// The schedule's name.
        name: String,
    },
}

pub fn run(cli: &Cli, cfg: &Config, a: &SchedulesArgs) -> Result<(), CliError> {
    let engine = super::existing_engine(cli, cfg)?;
    let sch = engine.schedules();
    let report = sch.reload();
    match &a.command {
        SchedulesCommand::List => {
            let conn = engine.service().connect()?;
            let list = sch.list();
            if list.is_empty() {
                eprintln!("no schedules in {}", sch.dir().display());
            }
            for d in &list {
                let st = sch.status(&conn, d, 3)?;
                println!(
                    "{}  {}  {}  {} ({})  {} → {}  {}",
                    d.name,
                    if d.enabled { "enabled " } else { "disabled" },
                    d.organization,
                    d.cron.as_str(),
                    d.tz.name(),
                    d.range.as_str(),
                    d.format,
                    d.path.display()
                );
                let next: Vec<String> = st
                    .next_fires
                    .iter()
                    .map(|f| local_rfc3339(d.tz, *f))
                    .collect();
                println!(
                    "  next   {}",
                    if next.is_empty() {
                        "never".into()
                    } else {
                        next.join(", ")
                    }
                );
                match &st.last_run {
                    None => println!("  last   never ran"),
                    Some((r, state)) => println!(
                        "  last   {} {}{}{}",
                        r.fire_time
                            .map(|f| local_rfc3339(d.tz, f))
                            .unwrap_or_else(|| format!(
                                "manual at {}",
                                crate::time::format_rfc3339_ms(r.at)
                            )),
                        r.status,
                        r.job_id
                            .as_ref()
                            .map(|j| format!(
                                ", job {j} {}",
                                state.as_deref().unwrap_or("(deleted)")
                            ))
                            .unwrap_or_default(),
                        r.reason
                            .as_ref()
                            .map(|x| format!(": {x}"))
                            .unwrap_or_default()
                    ),
                }
            }
            for i in &report.kept {
                println!("invalid  {i} (its last good version stays in effect)");
            }
            for i in &report.invalid {
                println!("invalid  {i}");
            }
            Ok(())
        }
        SchedulesCommand::Run { name } => {
            if sch.get(name).is_none() {
                let why = report
                    .invalid
                    .iter()
                    .find(|i| i.name.as_deref() == Some(name))
                    .map(|i| format!(": its file is invalid ({i})"))
                    .unwrap_or_default();
                return Err(CliError::bad_input(format!(
                    "NAME: no schedule {name:?} in {}{why}",
                    sch.dir().display()
                )));
            }
            let job = sch.run_now(name, &Requester::System("cli".into()))?;
            println!("{}", job.id);
            eprintln!(
                "queued a manual run of {name}: job {} ({} records estimated); a running serve or worker processes it",
                job.id,
                job.estimated_count.unwrap_or_default()
            );
            Ok(())
        }
    }
}
