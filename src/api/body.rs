//! Request bodies of the API, shared by HTTP and MCP (one schema for both
//! surfaces): the export and estimate bodies, their turning into service
//! requests, and JSON parsing that names the failing field's path. Never
//! does I/O.

use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use crate::filters::FilterInput;
use crate::format::{CsvOptions, CsvProfile, ExportOptions, Fields, Format, Redact};
use crate::service::ExportRequest;
use crate::users::Requester;

/// The body of `POST /api/v1/exports/estimate`, also the arguments of MCP's
/// `estimate_export`: the filters to count.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimateRequest {
    /// The filters, checked and scoped to the caller's organization before counting.
    pub filters: FilterInput,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvRequest {
    bom: Option<bool>,
    formula_guard: Option<bool>,
    profile: Option<String>,
    fields: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The body of `POST /api/v1/exports`, also the arguments of MCP's
/// `create_export`: one schema for both surfaces.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportBody {
    format: String,
    filters: FilterInput,
    csv: Option<CsvRequest>,
    email_to: Option<OneOrMany>,
    mode: Option<String>,
    restart: Option<bool>,
    timezone: Option<String>,
    redact: Option<bool>,
}

/// How an export is answered: `auto` picks by size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stream the file at once below `http.sync_threshold` matching rows, else queue a job.
    Auto,
    /// Answer with the file in the response, whatever its size.
    Sync,
    /// Queue a background job and answer `202` with it, even for no matches.
    Async,
}

impl ExportBody {
    /// The service request this body asks for, and its mode.
    pub fn into_request(self, user: crate::users::User) -> Result<(ExportRequest, Mode), ApiError> {
        let r = self;
        let format = Format::parse_lenient(&r.format).map_err(|e| {
            ApiError::bad_request("invalid_format", e.to_string()).with(json!({"field": "format"}))
        })?;
        let mode = match r.mode.as_deref().unwrap_or("auto") {
            "auto" => Mode::Auto,
            "sync" => Mode::Sync,
            "async" => Mode::Async,
            other => {
                return Err(ApiError::bad_request(
                    "invalid_mode",
                    format!("mode {other:?}: expected auto, sync or async"),
                )
                .with(json!({"field": "mode"})))
            }
        };
        if r.csv.is_some() && format != Format::Csv {
            return Err(ApiError::bad_request(
                "invalid_csv_options",
                "csv options apply to format csv only",
            )
            .with(json!({"field": "csv"})));
        }
        let options = options(r.csv.as_ref(), r.timezone, r.redact)?;
        let request = ExportRequest {
            options,
            email_to: r.email_to.map(|e| match e {
                OneOrMany::One(s) => vec![s],
                OneOrMany::Many(v) => v,
            }),
            restart: r.restart.unwrap_or(false),
            ..ExportRequest::new(Requester::User(user), r.filters, format)
        };
        Ok((request, mode))
    }
}

/// The mode `auto` would pick for `count` matching rows: `"sync"` below
/// `threshold` (`http.sync_threshold`), else `"async"`.
pub fn mode_for(count: u64, threshold: u64) -> &'static str {
    if count < threshold {
        "sync"
    } else {
        "async"
    }
}

/// The export options of a request body (checked with the format later).
fn options(
    csv: Option<&CsvRequest>,
    timezone: Option<String>,
    redact: Option<bool>,
) -> Result<ExportOptions, ApiError> {
    let bad = |e: crate::format::OptionError| {
        ApiError::bad_request(e.code, e.message).with(json!({"field": e.field}))
    };
    let profile = match csv.and_then(|c| c.profile.as_deref()) {
        None => CsvProfile::Raw,
        Some(p) => CsvProfile::parse(p).map_err(bad)?,
    };
    let fields = match csv.and_then(|c| c.fields.as_ref()) {
        None => None,
        Some(names) => Some(Fields::parse(names).map_err(bad)?),
    };
    Ok(ExportOptions {
        csv: CsvOptions {
            bom: csv.and_then(|c| c.bom).unwrap_or(true),
            formula_guard: csv.and_then(|c| c.formula_guard).unwrap_or(true),
            profile,
            fields,
        },
        timezone,
        redact: Redact(redact.unwrap_or(true)),
    })
}

/// Parses a JSON body into `T`, naming the problem (unknown field, wrong
/// type, syntax) in a 400.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "a JSON body is required",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| field_error(e.path().to_string(), e.into_inner().to_string()))?;
    // Trailing bytes after the value are a syntax error too.
    de.end()
        .map_err(|e| field_error(".".into(), e.to_string()))?;
    Ok(value)
}

/// [`json_body`] for an already-parsed JSON value (an MCP tool's arguments).
pub fn json_value<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(v)
        .map_err(|e| field_error(e.path().to_string(), e.into_inner().to_string()))
}

/// The 400 of a body that does not fit its type: `unknown_field` or
/// `invalid_json`, with `field` the path of the culprit (`filters.actors[0]`;
/// absent for a syntax error or a missing top-level field).
fn field_error(path: String, message: String) -> ApiError {
    let code = if message.contains("unknown field") {
        "unknown_field"
    } else {
        "invalid_json"
    };
    // The path ends at an unknown field already; a missing field is named
    // in the message only.
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next());
    let field = match (path.as_str(), missing) {
        (".", Some(n)) => Some(n.to_string()),
        (".", None) => None,
        (p, Some(n)) => Some(format!("{p}.{n}")),
        (p, None) => Some(p.to_string()),
    };
    let message = match &field {
        Some(f) if !message.contains(f.as_str()) => format!("{f}: {message}"),
        _ => message,
    };
    let err = ApiError::bad_request(code, message);
    match field {
        Some(f) => err.with(serde_json::json!({ "field": f })),
        None => err,
    }
}
