//! Who may do what: tokens, roles, tenancy; one export at a time per filter set, and the per-user limit.

use super::common::http::req;
use super::common::Env;
use super::support::*;
use serde_json::json;

#[test]
fn roles_tenancy_and_the_role_by_endpoint_matrix() {
    let env = Env::new();
    env.ingest_fixtures();
    // No worker claims anything here: jobs stay in progress.
    let srv = env.serve(&[
        ("AUDIT_EXPORT_JOBS_MAX_PARALLEL_JOBS", "0"),
        ("AUDIT_EXPORT_HTTP_SYNC_THRESHOLD", "1"),
    ]);
    let a = &srv.addr;
    let admin = env.user("acme", "admin@acme.example", "admin");
    let comp = env.user("acme", "comp@acme.example", "compliance");
    let viewer = env.user("acme", "viewer@acme.example", "viewer");
    let other = env.user("globex", "admin@globex.example", "admin");

    // No or bad token.
    for (m, p) in [
        ("GET", "/api/v1/audit-logs?from=2025-07-01&to=2025-08-01"),
        ("POST", "/api/v1/exports"),
        ("GET", "/api/v1/exports"),
    ] {
        let r = req(a, m, p, None, Some(b"{}"));
        assert_eq!(
            (r.status, r.code().as_str()),
            (401, "unauthorized"),
            "{m} {p}"
        );
        let r = req(a, m, p, Some("ae_nope"), Some(b"{}"));
        assert_eq!(r.status, 401, "{m} {p}");
    }
    // Matrix: (token, may export, may ingest).
    for (tok, export_ok, ingest_ok) in [
        (&admin, true, true),
        (&comp, true, false),
        (&viewer, false, false),
    ] {
        let view = req(
            a,
            "GET",
            "/api/v1/audit-logs?from=2025-07-01&to=2025-08-01&limit=5",
            Some(tok),
            None,
        );
        assert_eq!(view.status, 200);
        let est = post(
            a,
            "/api/v1/exports/estimate",
            tok,
            &json!({"filters": {"from": "2025-07-01", "to": "2025-08-01"}}),
        );
        assert_eq!(est.status, if export_ok { 200 } else { 403 });
        let ex = post(a, "/api/v1/exports", tok, &export_body("csv", "async"));
        if export_ok {
            assert_eq!(ex.status, 202, "{}", String::from_utf8_lossy(&ex.body));
        } else {
            assert_eq!((ex.status, ex.code().as_str()), (403, "forbidden"));
        }
        let ing = req(a, "POST", "/api/v1/audit-logs", Some(tok), Some(b"[]"));
        assert_eq!(
            ing.status == 403,
            !ingest_ok,
            "ingest as {tok}: {}",
            ing.status
        );
        assert_eq!(
            req(a, "GET", "/api/v1/exports", Some(tok), None).status,
            200
        );
    }
    // Compliance sees only its own jobs; admin sees the organization's.
    let mine = req(a, "GET", "/api/v1/exports", Some(&comp), None).json();
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
    let all = req(a, "GET", "/api/v1/exports", Some(&admin), None).json();
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
    let comp_job = mine["data"][0]["id"].as_str().unwrap().to_string();
    // A same-organization colleague without admin rights cannot see it.
    let colleague = env.user("acme", "comp2@acme.example", "compliance");
    let r = req(
        a,
        "GET",
        &format!("/api/v1/exports/{comp_job}"),
        Some(&colleague),
        None,
    );
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    assert_eq!(
        req(
            a,
            "GET",
            &format!("/api/v1/exports/{comp_job}"),
            Some(&admin),
            None
        )
        .status,
        200
    );
    // Another organization: 404 everywhere, and an empty list.
    for (m, p) in [
        ("GET", format!("/api/v1/exports/{comp_job}")),
        ("DELETE", format!("/api/v1/exports/{comp_job}")),
        ("POST", format!("/api/v1/exports/{comp_job}/restart")),
    ] {
        let r = req(a, m, &p, Some(&other), None);
        assert_eq!((r.status, r.code().as_str()), (404, "not_found"), "{m} {p}");
    }
    assert_eq!(
        req(a, "GET", "/api/v1/exports", Some(&other), None).json()["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // The viewer cannot cancel; the admin can; cancelling twice is a 409.
    assert_eq!(
        req(
            a,
            "DELETE",
            &format!("/api/v1/exports/{comp_job}"),
            Some(&viewer),
            None
        )
        .status,
        403
    );
    let c = req(
        a,
        "DELETE",
        &format!("/api/v1/exports/{comp_job}"),
        Some(&admin),
        None,
    );
    assert_eq!(c.status, 200);
    assert_eq!(c.json()["state"], "failed");
    assert_eq!(c.json()["error"]["code"], "cancelled");
    let again = req(
        a,
        "DELETE",
        &format!("/api/v1/exports/{comp_job}"),
        Some(&admin),
        None,
    );
    assert_eq!(
        (again.status, again.code().as_str()),
        (409, "not_in_progress")
    );
    // Another organization's data never shows in a view.
    let v = req(
        a,
        "GET",
        "/api/v1/audit-logs?from=2025-07-01&to=2026-01-31&limit=1000",
        Some(&other),
        None,
    )
    .json();
    assert!(v["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["organization_id"] == "globex"));
    // Naming another organization in filters is refused.
    let r = post(
        a,
        "/api/v1/exports",
        &admin,
        &json!({"format": "csv", "filters": {"organization": "globex", "from": "2025-07-01", "to": "2025-08-01"}}),
    );
    assert_eq!(r.status, 403);
}

#[test]
fn duplicates_limits_and_restart() {
    let env = Env::new();
    env.ingest_fixtures();
    let srv = env.serve(&[
        ("AUDIT_EXPORT_JOBS_MAX_PARALLEL_JOBS", "0"),
        ("AUDIT_EXPORT_JOBS_MAX_IN_PROGRESS_PER_REQUESTER", "2"),
    ]);
    let a = &srv.addr;
    let t = env.user("acme", "a@acme.example", "admin");
    let first = post(a, "/api/v1/exports", &t, &export_body("csv", "async"));
    assert_eq!(first.status, 202);
    let id = first.json()["id"].as_str().unwrap().to_string();
    let dup = post(a, "/api/v1/exports", &t, &export_body("csv", "async"));
    assert_eq!((dup.status, dup.code().as_str()), (409, "duplicate_export"));
    assert_eq!(dup.json()["error"]["job_id"], id.as_str());
    assert_eq!(
        dup.json()["error"]["created_at"],
        first.json()["created_at"]
    );
    let mut restart = export_body("csv", "async");
    restart["restart"] = json!(true);
    let r = post(a, "/api/v1/exports", &t, &restart);
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["id"], id.as_str());
    assert_eq!(r.json()["restart_requested"], true);
    assert_eq!(
        post(a, "/api/v1/exports", &t, &export_body("json", "async")).status,
        202
    );
    let many = post(a, "/api/v1/exports", &t, &export_body("jsonl", "async"));
    assert_eq!(
        (many.status, many.code().as_str()),
        (429, "too_many_exports")
    );
}
