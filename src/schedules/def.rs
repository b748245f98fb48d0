//! One `workflows/*.toml` file: a recurring export's definition, checked
//! field by field. A broken file is an [`Invalid`] naming its path, the
//! field and the reason, with the API's error codes (a bad filter is its
//! filter code; a recipient nobody vouches for is `unverified_recipient`).

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Deserialize;

use super::calendar::{zone, CronLine, RelativeRange};
use crate::filters::{FilterInput, Limits};
use crate::format::{CsvOptions, CsvProfile, ExportOptions, Fields, Format, Redact};
use crate::jobs::Compress;

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDef {
    name: String,
    schedule: String,
    #[serde(default = "utc")]
    timezone: String,
    organization: String,
    range: String,
    #[serde(default = "csv_format")]
    format: String,
    #[serde(default)]
    csv: RawCsv,
    compress: Option<RawCompress>,
    #[serde(default)]
    filters: RawFilters,
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "latest")]
    catch_up: String,
    archive: Option<String>,
    #[serde(default = "yes")]
    redact: bool,
}

/// `compress = "auto" | "always" | "never"`, or `true` / `false`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawCompress {
    Flag(bool),
    Policy(String),
}

fn utc() -> String {
    "UTC".into()
}
fn csv_format() -> String {
    "csv".into()
}
fn yes() -> bool {
    true
}
fn latest() -> String {
    "latest".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCsv {
    bom: Option<bool>,
    formula_guard: Option<bool>,
    profile: Option<String>,
    fields: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilters {
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    actors: Vec<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    #[serde(default)]
    streams: Vec<String>,
    q: Option<String>,
}

/// What to do with fires missed while the engine was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Run the most recent missed fire once.
    Latest,
    /// Skip them all.
    None,
}

/// A valid schedule.
#[derive(Debug, Clone)]
pub struct ScheduleDef {
    /// Unique name (`name`); jobs are requested as `schedule:<name>`.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// When it fires (`schedule`), in the schedule's zone.
    pub cron: CronLine,
    /// IANA zone of fire times and periods (`timezone`, default UTC).
    pub tz: Tz,
    /// The organization exported.
    pub organization: String,
    /// The period each fire exports, relative to the fire time.
    pub range: RelativeRange,
    /// Output format (default CSV).
    pub format: Format,
    /// CSV options, redaction; timestamps in the schedule's zone.
    pub options: ExportOptions,
    /// Compression policy; `None`: `[jobs] compress`.
    pub compress: Option<Compress>,
    /// Filters without organization and dates (the fire adds them).
    pub filters: FilterInput,
    /// E-mail addresses told of each export's outcome.
    pub recipients: Vec<String>,
    /// A disabled schedule never fires (default: enabled).
    pub enabled: bool,
    /// What happens to fires missed while the engine was down (default: latest).
    pub catch_up: CatchUp,
    /// Storage key template of a copy of each export (placeholders:
    /// [`ARCHIVE_PLACEHOLDERS`]); `None`: no copy.
    pub archive: Option<String>,
}

/// A file that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The file.
    pub path: PathBuf,
    /// The schedule's name, when the file got that far.
    pub name: Option<String>,
    /// Its organization, when the file got that far (who may see it).
    pub organization: Option<String>,
    /// The key at fault, e.g. `schedule` or `filters.actions`.
    pub field: String,
    /// Stable code, the API's where there is one (e.g. `invalid_archive`).
    pub code: String,
    /// One-line explanation for people.
    pub reason: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: {} [{}]",
            self.path.display(),
            self.field,
            self.reason,
            self.code
        )
    }
}

/// The placeholders an archive key template may use.
pub const ARCHIVE_PLACEHOLDERS: &str =
    "{organization}, {name}, {job_id}, {ext}, {period_start:FMT}, {period_end:FMT}, {fire_time:FMT}";

/// Parses and checks one file's text (recipients are checked later,
/// against the database).
pub fn parse(path: &Path, text: &str, limits: &Limits) -> Result<ScheduleDef, Box<Invalid>> {
    let bad = |name: Option<&str>, org: Option<&str>, field: &str, code: &str, reason: String| {
        Box::new(Invalid {
            path: path.to_path_buf(),
            name: name.map(str::to_string),
            organization: org.map(str::to_string),
            field: field.to_string(),
            code: code.to_string(),
            reason,
        })
    };
    let raw: RawDef = toml::from_str(text).map_err(|e| {
        let msg = e.message().to_string();
        let (field, code) = if msg.contains("unknown field") {
            (field_in(&msg).unwrap_or_default(), "unknown_field")
        } else if msg.contains("missing field") {
            (field_in(&msg).unwrap_or_default(), "missing_field")
        } else {
            (String::new(), "invalid_toml")
        };
        bad(None, None, &field, code, msg)
    })?;
    let (name, org) = (
        raw.name.trim().to_string(),
        raw.organization.trim().to_string(),
    );
    let bad =
        |field: &str, code: &str, reason: String| bad(Some(&name), Some(&org), field, code, reason);
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(bad(
            "name",
            "invalid_name",
            format!("{name:?}: use letters, digits, '-', '_' and '.'"),
        ));
    }
    let cron =
        CronLine::parse(&raw.schedule).map_err(|e| bad("schedule", "invalid_schedule", e))?;
    let tz = zone(&raw.timezone).ok_or_else(|| {
        bad(
            "timezone",
            "invalid_timezone",
            format!(
                "{:?} is not an IANA time zone name (e.g. Europe/Paris)",
                raw.timezone
            ),
        )
    })?;
    let range = RelativeRange::parse(raw.range.trim()).ok_or_else(|| {
        bad(
            "range",
            "invalid_range",
            format!(
                "{:?}: expected one of {}",
                raw.range,
                RelativeRange::NAMES.join(", ")
            ),
        )
    })?;
    let format = Format::parse_lenient(&raw.format)
        .map_err(|e| bad("format", "invalid_format", e.to_string()))?;
    let c = &raw.csv;
    if format != Format::Csv
        && (c.bom.is_some()
            || c.formula_guard.is_some()
            || c.profile.is_some()
            || c.fields.is_some())
    {
        return Err(bad(
            "csv",
            "invalid_csv_options",
            "csv options apply to format csv only".into(),
        ));
    }
    let opt_err = |e: crate::format::OptionError| bad(e.field, e.code, e.message);
    let options = ExportOptions {
        csv: CsvOptions {
            bom: c.bom.unwrap_or(true),
            formula_guard: c.formula_guard.unwrap_or(true),
            profile: match &c.profile {
                None => CsvProfile::Raw,
                Some(p) => CsvProfile::parse(p).map_err(opt_err)?,
            },
            fields: match &c.fields {
                None => None,
                Some(f) => Some(Fields::parse(f).map_err(opt_err)?),
            },
        },
        timezone: Some(tz.name().to_string()),
        redact: Redact(raw.redact),
    };
    options.check(format).map_err(opt_err)?;
    let compress = match &raw.compress {
        None => None,
        Some(RawCompress::Flag(true)) => Some(Compress::Always),
        Some(RawCompress::Flag(false)) => Some(Compress::Never),
        Some(RawCompress::Policy(c)) => Some(
            c.parse::<Compress>()
                .map_err(|e| bad("compress", "invalid_compress", e.to_string()))?,
        ),
    };
    let catch_up = match raw.catch_up.as_str() {
        "latest" => CatchUp::Latest,
        "none" => CatchUp::None,
        other => {
            return Err(bad(
                "catch_up",
                "invalid_catch_up",
                format!("{other:?}: expected latest or none"),
            ))
        }
    };
    let filters = FilterInput {
        organization: None,
        from: None,
        to: None,
        actors: raw.filters.actors,
        actions: raw.filters.actions,
        target_type: raw.filters.target_type,
        target_id: raw.filters.target_id,
        streams: raw.filters.streams,
        q: raw.filters.q,
    };
    // The filters as they will run: any period of the range, this organization.
    let sample = with_period(&filters, &org, 0, 3_600_000);
    if let Err(e) = sample.validate(limits) {
        let field = match e.code.field() {
            "organization" => "organization".to_string(),
            f => format!("filters.{f}"),
        };
        return Err(bad(&field, e.code.as_str(), e.message));
    }
    if let Some(t) = &raw.archive {
        check_archive(t).map_err(|reason| bad("archive", "invalid_archive", reason))?;
    }
    Ok(ScheduleDef {
        name,
        path: path.to_path_buf(),
        cron,
        tz,
        organization: org,
        range,
        format,
        options,
        compress,
        filters,
        recipients: raw.recipients,
        enabled: raw.enabled,
        catch_up,
        archive: raw.archive,
    })
}

/// `filters` for one organization and period `[start, end)`.
pub fn with_period(filters: &FilterInput, org: &str, start: i64, end: i64) -> FilterInput {
    FilterInput {
        organization: Some(org.to_string()),
        from: Some(crate::time::format_rfc3339_ms(start)),
        // `to` is inclusive: the period's last millisecond.
        to: Some(crate::time::format_rfc3339_ms(end - 1)),
        ..filters.clone()
    }
}

/// The backquoted field name in a serde message (``unknown field `x` ``).
fn field_in(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let end = start + msg[start..].find('`')?;
    Some(msg[start..end].to_string())
}

/// Checks an archive key template: known placeholders only, a relative key
/// that cannot climb out of the storage root.
fn check_archive(t: &str) -> Result<(), String> {
    if t.trim().is_empty() || t.starts_with('/') || t.split('/').any(|p| p == ".." || p == ".") {
        return Err(format!(
            "{t:?}: a relative storage key without '.' or '..' parts"
        ));
    }
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("{t:?}: unclosed '{{'"))?;
        let inner = &rest[open + 1..open + close];
        let (key, fmt) = inner.split_once(':').unwrap_or((inner, ""));
        match key {
            "organization" | "name" | "job_id" | "ext" if fmt.is_empty() => {}
            "period_start" | "period_end" | "fire_time" => {
                let probe = chrono::DateTime::from_timestamp(0, 0)
                    .expect("epoch")
                    .format(if fmt.is_empty() { "%Y-%m-%d" } else { fmt });
                use std::fmt::Write;
                let mut s = String::new();
                write!(s, "{probe}").map_err(|_| format!("{t:?}: bad time format {fmt:?}"))?;
            }
            _ => {
                return Err(format!(
                    "{t:?}: unknown placeholder {{{inner}}}; use {ARCHIVE_PLACEHOLDERS}"
                ))
            }
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// Fills an archive key template.
pub struct ArchiveValues<'a> {
    /// `{organization}`.
    pub organization: &'a str,
    /// `{name}`: the schedule's name.
    pub name: &'a str,
    /// `{job_id}`: the export job's id.
    pub job_id: &'a str,
    /// `{ext}`: the format's file extension, e.g. `csv`.
    pub ext: &'a str,
    /// The zone the time placeholders are rendered in.
    pub tz: Tz,
    /// `{period_start:FMT}`: start of the exported period (ms, inclusive).
    pub period_start: i64,
    /// `{period_end:FMT}`: end of the exported period (ms, exclusive).
    pub period_end: i64,
    /// `{fire_time:FMT}`: the fire time (ms).
    pub fire_time: i64,
}

/// The archive key for `v` (placeholders replaced; every part made safe).
pub fn archive_key(template: &str, v: &ArchiveValues<'_>) -> String {
    use chrono::TimeZone;
    let time = |ms: i64, fmt: &str| {
        v.tz.timestamp_millis_opt(ms)
            .single()
            .map(|t| {
                t.format(if fmt.is_empty() { "%Y-%m-%d" } else { fmt })
                    .to_string()
            })
            .unwrap_or_default()
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        let inner = &rest[open + 1..close.min(rest.len())];
        let (key, fmt) = inner.split_once(':').unwrap_or((inner, ""));
        let value = match key {
            "organization" => v.organization.to_string(),
            "name" => v.name.to_string(),
            "job_id" => v.job_id.to_string(),
            "ext" => v.ext.to_string(),
            "period_start" => time(v.period_start, fmt),
            "period_end" => time(v.period_end, fmt),
            "fire_time" => time(v.fire_time, fmt),
            _ => String::new(),
        };
        // A value never adds folders or climbs out of one.
        out.push_str(&crate::storage::safe_component(&value));
        rest = &rest[(close + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
