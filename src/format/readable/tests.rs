//! The readable profile: labels, enrichment fallbacks, flattening,
//! summaries, and cells that never hold raw JSON.

use super::*;
use crate::format::{CsvOptions, CsvProfile, Encoder, ExportOptions, Format, Redactor};
use std::sync::Arc;

fn base() -> Record<'static> {
    Record {
        id: 42,
        occurred_at: 1_784_116_800_000, // 2026-07-15T12:00:00Z
        organization_id: "acme",
        stream: "workflow",
        action: "workflow_definition_publish",
        actor_type: Some("user"),
        actor_id: Some("u_101"),
        actor_name: Some("Ada Lovelace"),
        actor_email: Some("ada@acme.example"),
        target_type: Some("workflow_definition"),
        target_id: Some("wfd_1"),
        target_name: Some("Invoice approval, EU"),
        ip_address: None,
        user_agent: None,
        request_id: Some("req_1"),
        changed_data: None,
        details: None,
    }
}

/// One readable CSV row (header skipped), parsed back into cells.
fn row(r: &Record<'_>, dir: Directory, timezone: Option<&str>) -> Vec<String> {
    let opts = ExportOptions {
        csv: CsvOptions {
            bom: false,
            profile: CsvProfile::Readable,
            ..CsvOptions::default()
        },
        timezone: timezone.map(String::from),
        ..ExportOptions::default()
    };
    let mut enc = Encoder::with(
        Format::Csv,
        opts,
        Arc::new(Redactor::default()),
        Arc::new(dir),
    );
    let mut out = Vec::new();
    enc.header(&mut out);
    enc.record(&mut out, r, 0);
    let mut rd = ::csv::Reader::from_reader(out.as_slice());
    let headers: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(headers.len(), COLUMNS.len());
    let rec = rd.records().next().unwrap().unwrap();
    rec.iter().map(String::from).collect()
}

fn col(cells: &[String], name: &str) -> String {
    cells[COLUMNS.iter().position(|c| *c == name).unwrap()].clone()
}

#[test]
fn known_and_unknown_operations_get_labels() {
    assert_eq!(label("workflow_definition_publish"), "Workflow published");
    assert_eq!(label("workflow_run_start"), "Run started");
    assert_eq!(label("workflow_run_cancel"), "Run canceled");
    assert_eq!(label("workflow_run_retry"), "Run retried");
    assert_eq!(label("workflow_definition_update"), "Workflow draft saved");
    assert_eq!(label("user.login"), "User signed in");
    assert_eq!(label("scim.user.provisioned"), "User provisioned by SCIM");
    assert_eq!(
        label("totally.unknown_operation"),
        "Totally unknown operation"
    );
    assert_eq!(label("Weird--CASE..thing"), "Weird case thing");
    assert_eq!(label("..."), "Event");
}

#[test]
fn workflow_fields_are_flattened_and_the_rest_summarised() {
    let mut r = base();
    r.details = Some(
        r#"{"workflow_name":"Invoice approval, EU","workflow_key":"invoice_approval_eu","workflow_version":4,"run_status":null,"reason":"policy \"x\"","step_path":"a/b","trigger":{"type":"schedule"},"warnings":["w1","w2"],"note":"line1\nline2","password":"hunter2","count":3}"#,
    );
    r.changed_data = Some(
        r#"{"title":{"from":"Old","to":"New"},"labels":{"from":[],"to":[]},"description":null,"steps":{"from":2,"to":3}}"#,
    );
    let c = row(&r, Directory::default(), None);
    assert_eq!(col(&c, "timestamp"), "2026-07-15T12:00:00.000Z");
    assert_eq!(col(&c, "event"), "Workflow published");
    assert_eq!(col(&c, "actor"), "Ada Lovelace <ada@acme.example>");
    assert_eq!(col(&c, "source"), "schedule");
    assert_eq!(col(&c, "target"), "Invoice approval, EU");
    assert_eq!(col(&c, "workflow_name"), "Invoice approval, EU");
    assert_eq!(col(&c, "workflow_key"), "invoice_approval_eu");
    assert_eq!(col(&c, "workflow_version"), "4");
    assert_eq!(col(&c, "run_status"), "");
    assert_eq!(col(&c, "reason"), "policy \"x\"");
    assert_eq!(col(&c, "step_path"), "a/b");
    assert_eq!(col(&c, "changed_fields"), "title, steps");
    let extra = col(&c, "additional_details");
    assert_eq!(
        extra,
        "title=Old → New; labels=0 items → 0 items; steps=2 → 3; trigger=object; warnings=2 items; note=line1\nline2; password=[REDACTED]; count=3"
    );
    assert!(
        !extra.contains('{') && !extra.contains("hunter2"),
        "{extra}"
    );
    assert_eq!(
        col(&c, "summary"),
        "Workflow published: Invoice approval, EU (version 4) by Ada Lovelace <ada@acme.example>; changed title, steps; reason: policy \"x\"."
    );
    assert_eq!(col(&c, "actor_id"), "u_101");
    assert_eq!(col(&c, "operation"), "workflow_definition_publish");
    assert_eq!(col(&c, "audit_id"), "42");
    assert_eq!(col(&c, "request_id"), "req_1");
}

#[test]
fn actors_are_enriched_with_fallbacks_and_never_fail() {
    let dir = Directory::new([(
        7,
        "Grace Hopper".to_string(),
        "grace@acme.example".to_string(),
    )]);
    let actor_of = |t: Option<&'static str>,
                    id: Option<&'static str>,
                    name: Option<&'static str>,
                    email: Option<&'static str>| {
        let mut r = base();
        r.actor_type = t;
        r.actor_id = id;
        r.actor_name = name;
        r.actor_email = email;
        actor(&r, &dir, |s| s)
    };
    // From our users table: by requester id or by e-mail.
    assert_eq!(
        actor_of(Some("user"), Some("user:7"), None, None),
        "Grace Hopper <grace@acme.example>"
    );
    assert_eq!(
        actor_of(Some("user"), Some("x"), None, Some("GRACE@acme.example")),
        "Grace Hopper <grace@acme.example>"
    );
    // From the event.
    assert_eq!(
        actor_of(
            Some("user"),
            Some("u_1"),
            Some("Ada"),
            Some("ada@x.example")
        ),
        "Ada <ada@x.example>"
    );
    assert_eq!(
        actor_of(Some("user"), None, None, Some("who@x.example")),
        "who@x.example"
    );
    assert_eq!(
        actor_of(Some("scim_client"), Some("azure"), Some("Entra ID"), None),
        "Entra ID"
    );
    assert_eq!(actor_of(None, None, None, None), "System");
    assert_eq!(actor_of(Some("system"), Some("cron"), None, None), "System");
    assert_eq!(
        actor_of(Some("user"), Some("u_404"), None, None),
        "Unresolved user"
    );
}

#[test]
fn cells_are_guarded_and_timestamps_follow_the_zone() {
    let mut r = base();
    r.target_name = Some("=HYPERLINK(\"http://x\",\"y\")");
    r.actor_name = Some("@admin");
    r.details = Some(r#"{"note":"+1 555","authorization":"Bearer abc"}"#);
    let c = row(&r, Directory::default(), Some("Europe/Paris"));
    assert_eq!(col(&c, "timestamp"), "2026-07-15T14:00:00.000+02:00");
    assert_eq!(col(&c, "target"), "'=HYPERLINK(\"http://x\",\"y\")");
    assert!(col(&c, "actor").starts_with("'@admin"));
    assert_eq!(
        col(&c, "additional_details"),
        "note=+1 555; authorization=[REDACTED]"
    );
    // A credential sent as the actor's name or e-mail is redacted in the
    // actor column and the summary, like every text field.
    let mut r = base();
    r.actor_name = Some("Bearer abcdef");
    r.actor_email = Some("Basic dXNlcjpwYXNz");
    let c = row(&r, Directory::default(), None);
    assert_eq!(col(&c, "actor"), "[REDACTED] <[REDACTED]>");
    assert!(
        !col(&c, "summary").contains("abcdef"),
        "{}",
        col(&c, "summary")
    );
    let mut out = Vec::new();
    let opts = ExportOptions {
        csv: CsvOptions {
            profile: CsvProfile::Readable,
            ..CsvOptions::default()
        },
        timezone: Some("Europe/Paris".into()),
        ..ExportOptions::default()
    };
    Encoder::new(Format::Csv, opts).header(&mut out);
    assert!(out.starts_with(b"\xEF\xBB\xBFtimestamp (Europe/Paris),event,actor,"));
}
