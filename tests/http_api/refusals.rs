//! Refused exports are audited; failed logins are counted; metrics can need a token.

use super::common::http::req;
use super::common::Env;
use super::support::*;
use serde_json::json;

#[test]
fn refused_exports_are_audited_and_failed_logins_counted() {
    let env = Env::new();
    env.ingest_fixtures();
    let srv = env.serve(&[
        ("AUDIT_EXPORT_HTTP_METRICS_TOKEN", "m3tr1cs"),
        ("AUDIT_EXPORT_JOBS_MAX_IN_PROGRESS_PER_REQUESTER", "1"),
        // No job runs here, so the first one stays in progress.
        ("AUDIT_EXPORT_JOBS_MAX_PARALLEL_JOBS", "0"),
    ]);
    let a = &srv.addr;
    let admin = env.user("acme", "ada@acme.example", "admin");
    let viewer = env.user("acme", "vi@acme.example", "viewer");
    let denied = |reason: &str| -> i64 {
        env.db()
            .query_row(
                "SELECT count(*) FROM audit_logs WHERE action = 'audit_log.export_denied' \
                 AND json_extract(details, '$.reason') = ?",
                [reason],
                |r| r.get(0),
            )
            .unwrap()
    };
    // A viewer's export.
    assert_eq!(
        post(a, "/api/v1/exports", &viewer, &export_body("csv", "async")).status,
        403
    );
    assert_eq!(denied("forbidden"), 1);
    // Another organization.
    let mut other = export_body("csv", "async");
    other["filters"]["organization"] = json!("globex");
    assert_eq!(post(a, "/api/v1/exports", &admin, &other).status, 403);
    assert_eq!(denied("forbidden"), 2);
    // An unverified recipient.
    let mut stranger = export_body("csv", "async");
    stranger["email_to"] = json!("who@evil.example");
    assert_eq!(post(a, "/api/v1/exports", &admin, &stranger).status, 422);
    assert_eq!(denied("unverified_recipient"), 1);
    // A duplicate, then one too many (the limit is 1 here).
    let first = post(a, "/api/v1/exports", &admin, &export_body("csv", "async"));
    assert_eq!(first.status, 202);
    assert_eq!(
        post(a, "/api/v1/exports", &admin, &export_body("csv", "async")).status,
        409
    );
    assert_eq!(denied("duplicate_export"), 1);
    assert_eq!(
        post(a, "/api/v1/exports", &admin, &export_body("jsonl", "async")).status,
        429
    );
    assert_eq!(denied("too_many_exports"), 1);
    // The refusals name who asked.
    let actor: String = env
        .db()
        .query_row(
            "SELECT actor_email FROM audit_logs WHERE action = 'audit_log.export_denied' ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(actor, "vi@acme.example");

    // Failed logins are counted; /metrics wants its own token.
    assert_eq!(req(a, "GET", "/api/v1/exports", None, None).status, 401);
    assert_eq!(
        req(a, "GET", "/api/v1/exports", Some("ae_nope"), None).status,
        401
    );
    assert_eq!(req(a, "GET", "/metrics", None, None).status, 401);
    assert_eq!(req(a, "GET", "/metrics", Some(&admin), None).status, 401);
    let m = req(a, "GET", "/metrics", Some("m3tr1cs"), None);
    assert_eq!(m.status, 200);
    let text = String::from_utf8_lossy(&m.body).into_owned();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    assert_eq!(
        value("audit_export_auth_failures_total{reason=\"missing\"}"),
        2.0
    );
    assert_eq!(
        value("audit_export_auth_failures_total{reason=\"invalid\"}"),
        2.0
    );
    assert!(value("audit_export_http_connections") >= 1.0);
}
