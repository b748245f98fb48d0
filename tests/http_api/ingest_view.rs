//! Ingest (all or nothing, organization from the token), the paginated view, and the service endpoints.

use super::common::http::req;
use super::common::Env;
use super::support::*;
use serde_json::json;

#[test]
fn ingest_view_pagination_and_service_endpoints() {
    let env = Env::new();
    env.ingest_fixtures();
    let srv = env.serve(&[("AUDIT_EXPORT_HTTP_MAX_BODY_BYTES", "20000")]);
    let a = &srv.addr;
    let admin = env.user("initech", "root@initech.example", "admin");
    // Ingest: a JSON array and JSONL; the organization comes from the token.
    let ev = |action: &str| json!({"occurred_at": "2026-01-20T10:00:00.000Z", "stream": "audit", "action": action, "actor": {"id": "u_x"}});
    let r = post(
        a,
        "/api/v1/audit-logs",
        &admin,
        &json!([ev("http.one"), ev("http.two")]),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["ingested"], 2);
    let jsonl = format!("{}\n{}\n", ev("http.three"), ev("http.four"));
    assert_eq!(
        req(
            a,
            "POST",
            "/api/v1/audit-logs",
            Some(&admin),
            Some(jsonl.as_bytes())
        )
        .status,
        201
    );
    // Per-event errors name index and field; nothing is ingested.
    let bad = json!([ev("ok"), {"occurred_at": "nope", "stream": "audit", "action": "x"}, {"stream": "s", "action": "y", "occurred_at": "2026-01-01T00:00:00Z", "actor": {"email": 5}}]);
    let r = post(a, "/api/v1/audit-logs", &admin, &bad);
    assert_eq!((r.status, r.code().as_str()), (422, "invalid_events"));
    let errs = r.json()["error"]["errors"].clone();
    assert_eq!(errs[0]["index"], 1);
    assert_eq!(errs[0]["field"], "occurred_at");
    assert_eq!(errs[1]["index"], 2);
    assert_eq!(errs[1]["field"], "actor.email");
    let other_org = post(
        a,
        "/api/v1/audit-logs",
        &admin,
        &json!([{"organization_id": "acme", "occurred_at": "2026-01-01T00:00:00Z", "stream": "a", "action": "b"}]),
    );
    assert_eq!(other_org.status, 422);
    let with_id = post(
        a,
        "/api/v1/audit-logs",
        &admin,
        &json!([{"id": 5, "occurred_at": "2026-01-01T00:00:00Z", "stream": "a", "action": "b"}]),
    );
    assert_eq!(
        (with_id.status, with_id.code().as_str()),
        (422, "invalid_events")
    );
    assert_eq!(with_id.json()["error"]["errors"][0]["field"], "id");
    let big = vec![b' '; 20_001];
    assert_eq!(
        req(a, "POST", "/api/v1/audit-logs", Some(&admin), Some(&big)).status,
        413
    );
    let n: i64 = env.db().query_row("SELECT count(*) FROM audit_logs WHERE organization_id = 'initech' AND action LIKE 'http.%'", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 4);

    // The view walks every page with the cursor, in (occurred_at, id) order.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = req(
            a,
            "GET",
            &format!(
                "/api/v1/audit-logs?from=2025-07-01&to=2026-01-31&limit=37&action=user.%2A{cursor}"
            ),
            Some(&admin),
            None,
        );
        assert_eq!(r.status, 200);
        let v = r.json();
        seen.extend(
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let expected: Vec<i64> = env
        .db()
        .prepare("SELECT id FROM audit_logs WHERE organization_id = 'initech' AND action LIKE 'user.%' ORDER BY occurred_at, id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(expected.len() > 37);
    assert_eq!(seen, expected);
    for (q, code) in [
        ("from=2025-07-01", "to_required"),
        ("from=2025-07-01&to=2025-08-01&limit=0", "invalid_limit"),
        ("from=2025-07-01&to=2025-08-01&cursor=zz", "invalid_cursor"),
        (
            "from=2025-07-01&to=2025-08-01&colour=red",
            "unknown_parameter",
        ),
        (
            "from=2025-07-01&to=2025-08-01&from=2025-07-02",
            "duplicate_parameter",
        ),
    ] {
        let r = req(
            a,
            "GET",
            &format!("/api/v1/audit-logs?{q}"),
            Some(&admin),
            None,
        );
        assert_eq!((r.status, r.code().as_str()), (400, code), "{q}");
    }

    // Service endpoints.
    assert_eq!(req(a, "GET", "/healthz", None, None).json()["status"], "ok");
    let doc = req(a, "GET", "/api/v1/openapi.json", None, None).json();
    assert_eq!(doc["openapi"], "3.1.0");
    let metrics = String::from_utf8(req(a, "GET", "/metrics", None, None).body).unwrap();
    for needle in [
        "audit_export_jobs{state=\"completed\"}",
        "audit_export_rows_exported{mode=\"sync\"}",
        "audit_export_job_duration_seconds_count",
        "audit_export_http_requests_total{status=\"201\"}",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }
    let r = req(a, "PUT", "/api/v1/exports", Some(&admin), None);
    assert_eq!((r.status, r.code().as_str()), (405, "method_not_allowed"));
    assert_eq!(req(a, "GET", "/nope", None, None).code(), "not_found");
}
