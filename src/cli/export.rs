//! `audit-export export`: run one filtered export to a file or stdout.
//!
//! A file is written under a temporary name in the target folder, fsynced
//! and renamed into place only when complete, so PATH never holds a partial
//! export. With no matching event nothing is created and the exit code is 3.
//! A device or named pipe at PATH is written directly (never replaced), and
//! a symbolic link is followed (the link stays).

use std::io::{self, BufWriter};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::jobs::store::CreateOutcome;
use crate::service::ExportRequest;
use crate::users::{self, Requester, User};

use super::output::{check_output_path, TempOutput};
use super::progress::Progress;
use super::{human_bytes, thousands, Cli, CliError, EXIT_NO_MATCH};
use crate::config::Config;
use crate::filters::{FilterError, FilterInput};
use crate::format::{CsvOptions, ExportOptions, Fields, Format, Redact};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Organization whose events to export.
    #[arg(long)]
    org: Option<String>,
    /// Start (inclusive): YYYY-MM-DD or RFC 3339, UTC.
    #[arg(long)]
    from: Option<String>,
    /// End (inclusive): YYYY-MM-DD (the whole day) or RFC 3339.
    #[arg(long)]
    to: Option<String>,
    /// Output format.
    #[arg(long, value_enum, ignore_case = true)]
    format: Format,
    /// Action, exact or prefix pattern like `user.*` (repeatable).
    #[arg(long = "action")]
    actions: Vec<String>,
    /// Actor id or e-mail (repeatable).
    #[arg(long = "actor")]
    actors: Vec<String>,
    /// Target type.
    #[arg(long)]
    target_type: Option<String>,
    /// Target id (needs --target-type).
    #[arg(long)]
    target_id: Option<String>,
    /// Stream, e.g. audit, scim, workflow (repeatable).
    #[arg(long = "stream")]
    streams: Vec<String>,
    /// Free text over id, action, actor, target, request id and details.
    #[arg(long)]
    q: Option<String>,
    /// Output file, or `-` for standard output (required unless --async).
    #[arg(long, required_unless_present = "async")]
    output: Option<PathBuf>,
    /// CSV: no UTF-8 byte order mark.
    #[arg(long)]
    no_bom: bool,
    /// CSV: do not prefix formula-like cells with `'`.
    #[arg(long)]
    no_formula_guard: bool,
    /// CSV: `raw` (the stored columns) or `readable` (for people: event
    /// labels, actors, flattened details).
    #[arg(long, value_enum, default_value = "raw")]
    csv_profile: crate::format::CsvProfile,
    /// CSV raw profile: these columns only, in this order
    /// (e.g. id,occurred_at,action).
    #[arg(long, value_delimiter = ',')]
    fields: Vec<String>,
    /// Render timestamps in this IANA time zone with its offset
    /// (default UTC, with Z).
    #[arg(long)]
    timezone: Option<String>,
    /// Do not redact sensitive values (passwords, tokens, …); recorded in
    /// the export's audit event.
    #[arg(long)]
    no_redact: bool,
    /// Enqueue a durable background job instead (prints its id); a worker
    /// (`audit-export worker`) runs it. --output is not used.
    #[arg(long)]
    r#async: bool,
    /// Who asks (duplicate detection and limits are per requester): a user
    /// (`user:ID` or their e-mail) gets the job in their list and its
    /// notifications, and their role applies (direct exports too); any
    /// other text is a label.
    #[arg(long, env = "AUDIT_EXPORT_REQUESTER", default_value = "cli")]
    requester: String,
    /// With --async: e-mail the outcome to ADDR (a verified user of the
    /// organization, or an address in an allowed recipient domain); may be
    /// repeated. Default: the requesting user's own verified address.
    #[arg(long = "email-to", value_name = "ADDR")]
    email_to: Vec<String>,
    /// With --async: restart an identical job in progress instead of failing.
    #[arg(long)]
    restart: bool,
    /// With --async: compression of the stored file (default from config).
    #[arg(long, value_enum)]
    compress: Option<crate::jobs::Compress>,
}

/// Records `audit_log.exported` for a direct export with redaction off.
fn record_unredacted(
    conn: &mut rusqlite::Connection,
    a: &ExportArgs,
    requester: &Requester,
    filters: &crate::filters::Filters,
    options: &crate::format::ExportOptions,
    records: u64,
    to_stdout: bool,
) -> Result<(), CliError> {
    let mut details = crate::service::export_details(filters, a.format, options, records, None);
    details["destination"] = if to_stdout { "stdout" } else { "file" }.into();
    let event = crate::audit::trail::OwnEvent {
        org: &filters.organization,
        action: "audit_log.exported",
        actor: &crate::service::actor(requester),
        target_id: &filters.hash(),
        client: &crate::audit::trail::Client::default(),
        details: &details,
    };
    crate::audit::trail::record(conn, &event, crate::time::Clock::system().now_ms())?;
    Ok(())
}

pub(crate) fn filter_error(e: FilterError) -> CliError {
    CliError::bad_input(format!(
        "{}: {} [{}]",
        super::flag(e.code.field()),
        e.message,
        e.code.as_str()
    ))
}

pub fn run(cli: &Cli, cfg: &Config, a: &ExportArgs) -> Result<(), CliError> {
    let input = FilterInput {
        organization: a.org.clone(),
        from: a.from.clone(),
        to: a.to.clone(),
        actors: a.actors.clone(),
        actions: a.actions.clone(),
        target_type: a.target_type.clone(),
        target_id: a.target_id.clone(),
        streams: a.streams.clone(),
        q: a.q.clone(),
    };
    let options = options(a)?;
    if a.r#async {
        return enqueue(cli, cfg, a, input, options);
    }
    let filters = input.validate(&cfg.limits()).map_err(filter_error)?;
    if !a.email_to.is_empty() {
        return Err(CliError::bad_input(
            "--email-to: only with --async (a direct export writes --output)",
        ));
    }
    let output = a
        .output
        .clone()
        .expect("clap requires --output without --async");
    let to_stdout = output.as_os_str() == "-";
    if !to_stdout {
        check_output_path(&output)?;
    }
    let mut conn = crate::db::open_existing(&cli.data_dir)?;
    // A user named by --requester exports under the API's rules; any other
    // requester is a label for the operator, who holds the database.
    let user = requesting_user(&conn, &a.requester, &filters.organization)?;
    if let Some(u) = &user {
        crate::service::export_allowed(u, !a.no_redact)?;
    }
    let requester = match user {
        Some(u) => Requester::User(u),
        None => Requester::System(a.requester.clone()),
    };
    let audited_options = options.clone();
    let encoder = crate::stream::encoder(
        &conn,
        &filters,
        a.format,
        options,
        std::sync::Arc::new(cfg.redactor()),
    )?;
    let started = Instant::now();
    // Counting costs a pass over the index; only pay it for a visible bar.
    let estimate = if Progress::wanted() {
        Some(crate::audit::query::count(&conn, &filters)?)
    } else {
        None
    };
    let mut bar = Progress::new("rows", estimate);
    let (batch, threads) = (cfg.export.batch_size, cfg.export.threads());
    let progress = |n| bar.update(n);
    let (stats, shown) = if to_stdout {
        let stdout = io::stdout();
        let (stats, out) = crate::stream::run(
            &conn,
            &filters,
            encoder,
            batch,
            threads,
            || Ok(BufWriter::with_capacity(1 << 16, stdout.lock())),
            progress,
        )
        .map_err(export_error)?;
        drop(out);
        (stats, "standard output".to_string())
    } else {
        let mut temp = TempOutput::new(&output);
        let (stats, out) = crate::stream::run(
            &conn,
            &filters,
            encoder,
            batch,
            threads,
            || temp.create(),
            progress,
        )
        .map_err(export_error)?;
        if let Some(out) = out {
            temp.commit(out).map_err(|e| {
                CliError::failure(format!("--output: cannot finish {}: {e}", output.display()))
            })?;
        }
        (stats, output.display().to_string())
    };
    bar.finish();
    if stats.records == 0 {
        return Err(CliError {
            code: EXIT_NO_MATCH,
            message: format!(
                "no events match the filters ({}); no file written",
                filters.summary()
            ),
        });
    }
    // A direct export is the operator reading the database file (no user,
    // no role), like `sqlite3` would, so it is not itself an audit event —
    // except when it turns redaction off, which must leave a trace; the
    // operator's label (or the user --requester names) is the actor.
    if !audited_options.redact.0 {
        record_unredacted(
            &mut conn,
            a,
            &requester,
            &filters,
            &audited_options,
            stats.records,
            to_stdout,
        )?;
    }
    eprintln!(
        "exported {} records ({}, {} bytes) to {} in {:.2} s",
        thousands(stats.records),
        human_bytes(stats.bytes),
        stats.bytes,
        shown,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The export options of the flags, checked.
fn options(a: &ExportArgs) -> Result<ExportOptions, CliError> {
    let fields = if a.fields.is_empty() {
        None
    } else {
        Some(Fields::parse(&a.fields).map_err(option_error)?)
    };
    let options = ExportOptions {
        csv: CsvOptions {
            bom: !a.no_bom,
            formula_guard: !a.no_formula_guard,
            profile: a.csv_profile,
            fields,
        },
        timezone: a.timezone.clone(),
        redact: Redact(!a.no_redact),
    };
    options.check(a.format).map_err(option_error)?;
    Ok(options)
}

/// An option error, naming its flag and code.
fn option_error(e: crate::format::OptionError) -> CliError {
    let flag = match e.field {
        "timezone" => "--timezone",
        "csv.fields" => "--fields",
        "csv.profile" => "--csv-profile",
        _ => "--format",
    };
    CliError::bad_input(format!("{flag}: {} [{}]", e.message, e.code))
}

fn enqueue(
    cli: &Cli,
    cfg: &Config,
    a: &ExportArgs,
    input: FilterInput,
    options: ExportOptions,
) -> Result<(), CliError> {
    // Filters first: a bad flag is named before the data dir is looked at.
    let filters = input.validate(&cfg.limits()).map_err(filter_error)?;
    let engine = super::existing_engine(cli, cfg)?;
    let svc = engine.service();
    let mut conn = svc.connect()?;
    let requester = match requesting_user(&conn, &a.requester, &filters.organization)? {
        Some(u) => Requester::User(u),
        None => Requester::System(a.requester.clone()),
    };
    let req = ExportRequest {
        options,
        compress: a.compress,
        email_to: (!a.email_to.is_empty()).then(|| a.email_to.clone()),
        restart: a.restart,
        ..ExportRequest::new(requester, input, a.format)
    };
    let out = svc.request_export(&mut conn, req, &Default::default())?;
    let j = out.job();
    println!("{}", j.id);
    match out {
        CreateOutcome::Created(_) => eprintln!(
            "queued export job {} ({} records estimated); run `audit-export worker` to process it, `audit-export jobs show {}` to follow it",
            j.id,
            j.estimated_count.map(thousands).unwrap_or_else(|| "?".into()),
            j.id
        ),
        CreateOutcome::Restarted(_) => eprintln!(
            "an identical export was in progress; job {} will restart from scratch",
            j.id
        ),
    }
    Ok(())
}

/// The user `--requester` names (`user:ID`, or the e-mail of a user of the
/// organization), if it names one; a user of another organization is an
/// error.
fn requesting_user(
    conn: &rusqlite::Connection,
    requester: &str,
    org: &str,
) -> Result<Option<User>, CliError> {
    let user = if let Some(id) = requester.strip_prefix("user:") {
        // `user:<id>`, spelled out here so a bad id is named.
        let id: i64 = id.parse().map_err(|_| {
            CliError::bad_input(format!("--requester: {requester:?} is not user:ID"))
        })?;
        let u = users::get_user(conn, id)?
            .ok_or_else(|| CliError::bad_input(format!("--requester: there is no user {id}")))?;
        Some(u)
    } else if requester.contains('@') {
        users::find_by_email(conn, org, requester)?
    } else {
        None
    };
    match user {
        Some(u) if u.organization_id != org => Err(CliError::bad_input(format!(
            "--requester: user {} belongs to organization {}, not {org}",
            u.id, u.organization_id
        ))),
        other => Ok(other),
    }
}

fn export_error(e: crate::stream::ExportError) -> CliError {
    CliError::failure(format!("export failed: {e}"))
}
