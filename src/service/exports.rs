//! Requesting an export: who may, which organization, to whom the outcome
//! is mailed, how many rows — then a background job (duplicate and
//! per-requester limit enforced atomically by the job store), and the
//! `audit_log.exported` event either way.

use rusqlite::Connection;
use serde_json::{json, Value};

use super::{Service, ServiceError};
use crate::audit::trail::Client;
use crate::filters::{FilterInput, Filters};
use crate::format::{Encoder, ExportOptions, Format};
use crate::jobs::store::{self, CreateOutcome, NewJob};
use crate::jobs::Compress;
use crate::notify::recipients::{check, default_for, RecipientError};
use crate::users::Requester;

/// An export as asked for.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// Who asks: a user (scoped to their organization and role) or the system.
    pub requester: Requester,
    /// For a user, `organization` may be left out (theirs is taken);
    /// naming another one is forbidden.
    pub filters: FilterInput,
    /// Output format.
    pub format: Format,
    /// CSV options, time zone, redaction (turning it off: admins only).
    pub options: ExportOptions,
    /// Default: `[jobs] compress`.
    pub compress: Option<Compress>,
    /// Who is mailed the outcome. `None`: the requesting user's own
    /// verified address (nobody for a system requester); `Some(vec![])`:
    /// nobody.
    pub email_to: Option<Vec<String>>,
    /// Restart an identical job in progress instead of failing.
    pub restart: bool,
}

impl ExportRequest {
    /// An export of `filters` as `format` with default options.
    pub fn new(requester: Requester, filters: FilterInput, format: Format) -> ExportRequest {
        ExportRequest {
            requester,
            filters,
            format,
            options: ExportOptions::default(),
            compress: None,
            email_to: None,
            restart: false,
        }
    }
}

/// A checked request: validated filters in the right organization, the
/// recipients, and how many rows match now.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Who asked.
    pub requester: Requester,
    /// Validated filters, in the requester's organization for a user.
    pub filters: Filters,
    /// Output format.
    pub format: Format,
    /// Checked options (CSV settings, time zone, redaction).
    pub options: ExportOptions,
    /// The compression policy, `[jobs] compress` filled in.
    pub compress: Compress,
    /// Checked, normalized addresses to mail the outcome to.
    pub recipients: Vec<String>,
    /// Events matching when the request was checked.
    pub count: u64,
    /// Restart an identical job in progress instead of failing.
    pub restart: bool,
}

impl Service {
    /// Checks a request: role, organization scope, filters, recipients;
    /// counts the matching rows.
    pub fn prepare_export(
        &self,
        conn: &Connection,
        req: ExportRequest,
    ) -> Result<Prepared, ServiceError> {
        let filters = self.scoped_filters(&req.requester, req.filters, true)?;
        req.options
            .check(req.format)
            .map_err(|e| ServiceError::invalid(e.code, e.field, e.message))?;
        if let Requester::User(u) = &req.requester {
            export_allowed(u, req.options.redact.0)?;
        }
        let recipients = self.recipients(
            conn,
            &req.requester,
            &filters.organization,
            req.email_to.as_deref(),
        )?;
        let count = crate::audit::query::count(conn, &filters)?;
        Ok(Prepared {
            requester: req.requester,
            filters,
            format: req.format,
            options: req.options,
            compress: req.compress.unwrap_or(self.cfg.jobs.compress),
            recipients,
            count,
            restart: req.restart,
        })
    }

    /// Validates `input` for `who`: a user must be allowed to export (when
    /// `exporting`) and stays in their organization.
    pub fn scoped_filters(
        &self,
        who: &Requester,
        mut input: FilterInput,
        exporting: bool,
    ) -> Result<Filters, ServiceError> {
        if let Requester::User(u) = who {
            if exporting && !u.role.can_export() {
                return Err(ServiceError::Forbidden(format!(
                    "role {} may view audit logs but not export them",
                    u.role
                )));
            }
            if let Some(org) = &input.organization {
                if org.trim() != u.organization_id {
                    return Err(ServiceError::Forbidden(
                        "filters.organization must be your own organization (or left out)".into(),
                    ));
                }
            }
            input.organization = Some(u.organization_id.clone());
        }
        Ok(input.validate(&self.cfg.limits())?)
    }

    /// The recipients of an export's outcome (see [`crate::notify::recipients`]).
    pub fn recipients(
        &self,
        conn: &Connection,
        who: &Requester,
        org: &str,
        email_to: Option<&[String]>,
    ) -> Result<Vec<String>, ServiceError> {
        let Some(list) = email_to else {
            return Ok(who.user().map(default_for).unwrap_or_default());
        };
        check(conn, &self.cfg.notify, org, list).map_err(|e| match e {
            RecipientError::Db(e) => ServiceError::Db(e),
            RecipientError::Unverified(_) => ServiceError::UnverifiedRecipient(e.to_string()),
            RecipientError::Invalid(_) | RecipientError::TooMany => {
                ServiceError::invalid("invalid_email_to", "email_to", e.to_string())
            }
        })
    }

    /// Queues a prepared export as a background job, wakes the scheduler
    /// and records the export in the audit trail.
    pub fn enqueue_export(
        &self,
        conn: &mut Connection,
        p: &Prepared,
        client: &Client,
    ) -> Result<CreateOutcome, ServiceError> {
        let new = NewJob {
            requester: p.requester.key(),
            filters: p.filters.clone(),
            format: p.format,
            options: p.options.clone(),
            compress: p.compress,
            max_attempts: self.cfg.jobs.max_attempts,
            estimated_count: Some(p.count),
            schedule_id: None,
            fire_time: None,
            recipients: p.recipients.clone(),
            restart: p.restart,
            archive_key: None,
        };
        let out = store::create(
            conn,
            &new,
            self.cfg.jobs.max_in_progress_per_requester,
            self.now_ms(),
        )?;
        self.runner.wake.notify_one();
        let job = out.job();
        self.audit_export(conn, p, Some(&job.id), client)?;
        Ok(out)
    }

    /// Records `audit_log.exported` for an export: its job, or (answered
    /// at once) the filter hash as target.
    pub fn audit_export(
        &self,
        conn: &mut Connection,
        p: &Prepared,
        job_id: Option<&str>,
        client: &Client,
    ) -> Result<(), ServiceError> {
        let details = export_details(&p.filters, p.format, &p.options, p.count, job_id);
        let target = job_id.map_or_else(|| p.filters.hash(), str::to_string);
        self.audit(
            conn,
            &p.requester,
            client,
            super::Audited {
                org: &p.filters.organization,
                action: "audit_log.exported",
                target_id: &target,
                details: &details,
            },
        )
    }

    /// Records `audit_log.export_denied` when `err` refuses an export
    /// request of a user — a role or organization not allowed, an
    /// unverified recipient, too many exports, a duplicate — and hands
    /// `err` back. Recording is best effort: it never hides the refusal.
    pub fn denied(
        &self,
        conn: &mut Connection,
        who: &Requester,
        err: ServiceError,
        client: &Client,
    ) -> ServiceError {
        use crate::jobs::JobError as J;
        let Requester::User(u) = who else {
            return err;
        };
        let (reason, target) = match &err {
            ServiceError::Forbidden(_) => ("forbidden", None),
            ServiceError::UnverifiedRecipient(_) => ("unverified_recipient", None),
            ServiceError::Job(J::TooManyExports { .. }) => ("too_many_exports", None),
            ServiceError::Job(J::DuplicateExport { id, .. }) => {
                ("duplicate_export", Some(id.clone()))
            }
            _ => return err,
        };
        let details = json!({"reason": reason, "message": err.to_string()});
        let recorded = self.audit(
            conn,
            who,
            client,
            super::Audited {
                org: &u.organization_id,
                action: "audit_log.export_denied",
                target_id: target.as_deref().unwrap_or("-"),
                details: &details,
            },
        );
        if let Err(e) = recorded {
            tracing::warn!(error = %e, reason, "could not record a denied export");
        }
        err
    }

    /// The encoder of a prepared export (the redaction rules, and the
    /// organization's users for the readable profile).
    pub fn encoder(&self, conn: &Connection, p: &Prepared) -> Result<Encoder, ServiceError> {
        Ok(crate::stream::encoder(
            conn,
            &p.filters,
            p.format,
            p.options.clone(),
            self.runner.redactor.clone(),
        )?)
    }

    /// Prepares and queues an export as a background job (the library's
    /// and the CLI's `--async` call).
    pub fn request_export(
        &self,
        conn: &mut Connection,
        req: ExportRequest,
        client: &Client,
    ) -> Result<CreateOutcome, ServiceError> {
        let p = self.prepare_export(conn, req)?;
        self.enqueue_export(conn, &p, client)
    }
}

/// What a user may export, on every surface: their role must allow
/// exporting, and only admins turn redaction off.
pub fn export_allowed(u: &crate::users::User, redact: bool) -> Result<(), ServiceError> {
    if !u.role.can_export() {
        return Err(ServiceError::Forbidden(format!(
            "role {} may view audit logs but not export them",
            u.role
        )));
    }
    if !redact && u.role != crate::users::Role::Admin {
        return Err(ServiceError::Forbidden(
            "only admins may turn redaction off".into(),
        ));
    }
    Ok(())
}

/// The details an `audit_log.exported` event records: what was exported
/// and how (redaction on or off included), from every surface alike.
pub fn export_details(
    filters: &crate::filters::Filters,
    format: Format,
    o: &crate::format::ExportOptions,
    record_count: u64,
    job_id: Option<&str>,
) -> Value {
    let filters = serde_json::from_str::<Value>(&filters.canonical_json()).unwrap_or(Value::Null);
    export_details_of(filters, format, o, Some(record_count), job_id)
}

/// [`export_details`] from filters already as JSON, with the count when
/// known (a scheduled job's estimate may not be).
pub fn export_details_of(
    filters: Value,
    format: Format,
    o: &crate::format::ExportOptions,
    record_count: Option<u64>,
    job_id: Option<&str>,
) -> Value {
    json!({
        "filters": filters,
        "format": format.as_str(),
        "record_count": record_count,
        "job_id": job_id,
        "redacted": o.redact.0,
        "csv_profile": (format == Format::Csv).then(|| o.csv.profile.as_str()),
        "fields": o.csv.fields.map(|f| f.names()),
        "timezone": o.timezone,
    })
}
