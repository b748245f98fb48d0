//! Who may be mailed an export's link.

use super::common::Env;
use super::support::*;
use serde_json::{json, Value};

#[test]
fn email_to_must_be_a_verified_colleague_or_an_allowed_domain() {
    let env = Env::new();
    env.ingest_fixtures();
    let srv = env.serve(&[
        ("AUDIT_EXPORT_JOBS_MAX_PARALLEL_JOBS", "0"),
        (
            "AUDIT_EXPORT_NOTIFY_ALLOWED_RECIPIENT_DOMAINS",
            "{acme = [\"auditors.example\"]}",
        ),
    ]);
    let a = &srv.addr;
    let t = env.user("acme", "boss@acme.example", "admin");
    env.user("acme", "peer@acme.example", "viewer");
    let out = env.run(&[
        "users",
        "add",
        "--org",
        "acme",
        "--email",
        "new@acme.example",
        "--name",
        "New",
        "--role",
        "viewer",
        "--unverified",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let globex = env.user("globex", "x@globex.example", "admin");
    // acme's allowed domain is acme's alone.
    let mut b = export_body("csv", "async");
    b["email_to"] = json!("lead@auditors.example");
    let r = post(a, "/api/v1/exports", &globex, &b);
    assert_eq!((r.status, r.code().as_str()), (422, "unverified_recipient"));
    let with = |to: Value, format: &str| {
        let mut b = export_body(format, "async");
        b["email_to"] = to;
        post(a, "/api/v1/exports", &t, &b)
    };
    for bad in [
        json!("new@acme.example"),
        json!("x@globex.example"),
        json!(["peer@acme.example", "stranger@example.com"]),
    ] {
        let r = with(bad.clone(), "csv");
        assert_eq!(
            (r.status, r.code().as_str()),
            (422, "unverified_recipient"),
            "{bad}"
        );
    }
    assert_eq!(with(json!("not-an-address"), "csv").status, 400);
    assert_eq!(
        with(json!(["peer@acme.example", "Lead@Auditors.example"]), "csv").status,
        202
    );
    let recipients: String = env
        .db()
        .query_row("SELECT recipients FROM export_jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        recipients,
        r#"["lead@auditors.example","peer@acme.example"]"#
    );
    // Once verified, the same address is accepted; an unknown user is bad input.
    let verify = |email: &str| {
        env.run(&["users", "verify", "--org", "acme", "--email", email])
            .status
            .code()
    };
    assert_eq!(verify("nobody@acme.example"), Some(2));
    assert_eq!(verify("New@acme.example"), Some(0));
    assert_eq!(with(json!("new@acme.example"), "jsonl").status, 202);
}
