//! How exports read: redaction in every format (no secret of the fixtures
//! survives, siblings untouched, off for admins only and audited), the
//! readable CSV profile on the fixtures' hard values, time zones across both
//! DST changes, field selection, and the readable CSV opened in LibreOffice
//! Calc with formula evaluation on.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::http::req;
use common::Env;
use serde_json::{json, Value};

const ALL: [&str; 6] = [
    "--org",
    "acme",
    "--from",
    "2025-07-01",
    "--to",
    "2026-01-31",
];

fn export(env: &Env, org: &str, format: &str, extra: &[&str]) -> Vec<u8> {
    env.export_stdout(org, "2025-07-01", "2026-01-31", format, extra)
}

/// Every value under a sensitive key in the fixtures (strings, at any
/// depth), and some non-secret siblings that must survive.
fn fixture_secrets() -> (BTreeSet<String>, BTreeSet<String>) {
    let red = audit_export::format::Redactor::default();
    let mut secrets = BTreeSet::new();
    let mut siblings = BTreeSet::new();
    fn walk(
        v: &Value,
        red: &audit_export::format::Redactor,
        secret: bool,
        s: &mut BTreeSet<String>,
        keep: &mut BTreeSet<String>,
    ) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let sensitive = secret || red.is_sensitive_key(k);
                    if !sensitive && (k == "username" || k == "host" || k == "queue") {
                        if let Some(t) = v.as_str() {
                            keep.insert(t.to_string());
                        }
                    }
                    walk(v, red, sensitive, s, keep);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, red, secret, s, keep)),
            Value::String(t) if secret && t != "********" => {
                s.insert(t.clone());
            }
            _ => {}
        }
    }
    for line in std::fs::read_to_string(common::fixtures()).unwrap().lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        for col in ["changed_data", "details"] {
            walk(&e[col], &red, false, &mut secrets, &mut siblings);
        }
    }
    (secrets, siblings)
}

#[test]
fn no_secret_of_the_fixtures_survives_in_any_format_and_siblings_do() {
    let env = Env::new();
    env.ingest_fixtures();
    let (secrets, siblings) = fixture_secrets();
    assert!(secrets.len() > 50, "{}", secrets.len());
    assert!(secrets.contains("hunter2") && secrets.contains("vault:kv/ldap"));
    assert!(
        secrets.iter().any(|s| s.starts_with("atk_"))
            && secrets.iter().any(|s| s.starts_with("evtok_"))
    );
    for org in ["acme", "globex", "initech"] {
        for (format, extra) in [
            ("csv", &[][..]),
            ("csv", &["--csv-profile", "readable"][..]),
            ("json", &[][..]),
            ("jsonl", &[][..]),
        ] {
            let text = String::from_utf8(export(&env, org, format, extra)).unwrap();
            for s in &secrets {
                assert!(
                    !text.contains(s.as_str()),
                    "{org} {format} {extra:?}: {s:?} leaked"
                );
            }
            assert!(text.contains("[REDACTED]"), "{org} {format} {extra:?}");
            let kept = siblings
                .iter()
                .filter(|s| text.contains(s.as_str()))
                .count();
            assert!(kept > 0, "{org} {format}: non-secret siblings must stay");
        }
        // JSON stays otherwise lossless: parse, and compare with the stored
        // rows where nothing was redacted.
        let jsonl = String::from_utf8(export(&env, org, "jsonl", &[])).unwrap();
        let raw = String::from_utf8(export(&env, org, "jsonl", &["--no-redact"])).unwrap();
        let (mut same, mut redacted) = (0, 0);
        for (a, b) in jsonl.lines().zip(raw.lines()) {
            if a == b {
                same += 1;
            } else {
                redacted += 1;
                assert!(a.contains("[REDACTED]"));
                assert!(a.len() <= b.len() + 40);
            }
        }
        assert!(
            same > 0 && redacted > 0,
            "{org}: {same} same, {redacted} redacted"
        );
        assert!(
            secrets.iter().any(|s| raw.contains(s.as_str())),
            "--no-redact keeps the values"
        );
    }
}

#[test]
fn turning_redaction_off_is_for_admins_and_is_audited() {
    let env = Env::new();
    env.ingest_fixtures();
    let srv = env.serve(&[("AUDIT_EXPORT_HTTP_SYNC_THRESHOLD", "100000")]);
    let admin = env.user("acme", "ada@acme.example", "admin");
    let compliance = env.user("acme", "cy@acme.example", "compliance");
    let body = |redact: bool| {
        json!({"format": "jsonl", "redact": redact, "filters": {"from": "2025-07-01", "to": "2026-01-31"}}).to_string()
    };
    let r = req(
        &srv.addr,
        "POST",
        "/api/v1/exports",
        Some(&compliance),
        Some(body(false).as_bytes()),
    );
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));
    let r = req(
        &srv.addr,
        "POST",
        "/api/v1/exports",
        Some(&admin),
        Some(body(false).as_bytes()),
    );
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("hunter2"));
    let r = req(
        &srv.addr,
        "POST",
        "/api/v1/exports",
        Some(&compliance),
        Some(body(true).as_bytes()),
    );
    assert!(!String::from_utf8_lossy(&r.body).contains("hunter2"));
    let details: Vec<Value> = env
        .db()
        .prepare("SELECT details FROM audit_logs WHERE action = 'audit_log.exported' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|d| serde_json::from_str(&d.unwrap()).unwrap())
        .filter(|d: &Value| d.get("redacted").is_some())
        .collect();
    assert_eq!(details.len(), 2);
    assert_eq!(details[0]["redacted"], false);
    assert_eq!(details[1]["redacted"], true);
    // The audit-log view is redacted too.
    let view = req(
        &srv.addr,
        "GET",
        "/api/v1/audit-logs?from=2025-07-01&to=2026-01-31&limit=1000",
        Some(&admin),
        None,
    );
    assert!(!String::from_utf8_lossy(&view.body).contains("hunter2"));
}

fn parse_csv(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rd = csv::ReaderBuilder::new().from_reader(bytes);
    let headers = rd
        .headers()
        .unwrap()
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    let rows = rd
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (headers, rows)
}

#[test]
fn the_readable_profile_reads_every_fixture_event() {
    let env = Env::new();
    env.ingest_fixtures();
    // An event of an operation nobody mapped.
    let extra = env.path("extra.jsonl");
    std::fs::write(
        &extra,
        r#"{"organization_id":"acme","occurred_at":"2025-12-24T10:00:00Z","stream":"audit","action":"totally.unknown_operation","actor":{"type":"user","id":"u_9"},"details":{"warnings":["a","b"],"trigger":{"k":1},"flag":true,"n":2.50}}"#,
    )
    .unwrap();
    env.expect(&["ingest", extra.to_str().unwrap()], 0);
    let csv_bytes = export(&env, "acme", "csv", &["--csv-profile", "readable"]);
    assert!(
        csv_bytes.starts_with(b"\xEF\xBB\xBF"),
        "BOM as in the raw profile"
    );
    let (headers, rows) = parse_csv(&csv_bytes);
    assert_eq!(headers, audit_export::format::readable::COLUMNS);
    let db = env.db();
    let n: i64 = db
        .query_row(
            "SELECT count(*) FROM audit_logs WHERE organization_id = 'acme'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows.len() as i64, n);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    for row in &rows {
        assert!(!row[col("event")].is_empty());
        assert!(!row[col("actor")].is_empty());
        let extra = &row[col("additional_details")];
        assert!(
            !extra.contains("{\"") && !extra.contains("[\""),
            "raw JSON in {extra:?}"
        );
        assert!(row[col("summary")].ends_with('.'));
    }
    let find = |op: &str| rows.iter().find(|r| r[col("operation")] == op).unwrap();
    let unknown = find("totally.unknown_operation");
    assert_eq!(unknown[col("event")], "Totally unknown operation");
    assert_eq!(unknown[col("actor")], "Unresolved user");
    // Numbers read as they were sent (2.50 stays 2.50).
    assert_eq!(
        unknown[col("additional_details")],
        "warnings=2 items; trigger=object; flag=true; n=2.50"
    );
    let publish = find("workflow_definition_publish");
    assert_eq!(publish[col("event")], "Workflow published");
    assert!(
        !publish[col("workflow_name")].is_empty() && !publish[col("workflow_version")].is_empty()
    );
    let run = find("workflow_run_cancel");
    assert_eq!(run[col("event")], "Run canceled");
    assert!(!run[col("run_status")].is_empty());
    // Every hard value of the targets comes back exactly (guarded when it
    // looks like a formula).
    let names: Vec<(i64, Option<String>)> = db
        .prepare("SELECT id, target_name FROM audit_logs WHERE organization_id = 'acme'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let guarded = |v: &str| match v.trim_start_matches(' ').chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{v}"),
        _ => v.to_string(),
    };
    let mut checked = 0;
    for (id, name) in names {
        let Some(name) = name.filter(|n| {
            !n.trim().is_empty() && !n.starts_with("Bearer ") && !n.starts_with("Basic ")
        }) else {
            continue;
        };
        let row = rows
            .iter()
            .find(|r| r[col("audit_id")] == id.to_string())
            .unwrap();
        assert_eq!(row[col("target")], guarded(&name), "event {id}");
        checked += 1;
    }
    assert!(checked > 500, "{checked}");
}

#[test]
fn time_zones_render_with_their_offset_across_both_dst_changes() {
    let env = Env::new();
    let f = env.path("dst.jsonl");
    let instants = [
        "2025-10-26T00:59:59.999Z", // 02:59:59.999 CEST
        "2025-10-26T01:00:00.000Z", // 02:00 CET, the repeated hour
        "2026-03-29T00:59:59.999Z", // 01:59:59.999 CET
        "2026-03-29T01:00:00.000Z", // 03:00 CEST
    ];
    let lines: Vec<String> = instants
        .iter()
        .map(|t| format!(r#"{{"organization_id":"tz","occurred_at":"{t}","stream":"audit","action":"user.login"}}"#))
        .collect();
    std::fs::write(&f, lines.join("\n")).unwrap();
    env.expect(&["ingest", f.to_str().unwrap()], 0);
    let want = [
        "2025-10-26T02:59:59.999+02:00",
        "2025-10-26T02:00:00.000+01:00",
        "2026-03-29T01:59:59.999+01:00",
        "2026-03-29T03:00:00.000+02:00",
    ];
    let run = |format: &str, extra: &[&str]| {
        let mut args = vec![
            "export",
            "--org",
            "tz",
            "--from",
            "2025-10-01",
            "--to",
            "2026-03-31",
            "--format",
            format,
            "--timezone",
            "Europe/Paris",
            "--output",
            "-",
        ];
        args.extend(extra);
        let o = env.run(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let raw = run("csv", &[]);
    assert!(
        raw.starts_with("\u{feff}id,occurred_at (Europe/Paris),organization_id"),
        "{raw}"
    );
    let readable = run("csv", &["--csv-profile", "readable"]);
    assert!(
        readable.starts_with("\u{feff}timestamp (Europe/Paris),event"),
        "{readable}"
    );
    let jsonl = run("jsonl", &[]);
    for (i, w) in want.iter().enumerate() {
        for (name, text) in [("raw", &raw), ("readable", &readable), ("jsonl", &jsonl)] {
            assert!(text.contains(w), "{name}: {w} missing in\n{text}");
        }
        // Still the same instant.
        assert_eq!(
            audit_export::time::parse_rfc3339_ms(w),
            audit_export::time::parse_rfc3339_ms(instants[i])
        );
    }
    // Default: UTC with Z, header unchanged.
    let o = env.run(&[
        "export",
        "--org",
        "tz",
        "--from",
        "2025-10-01",
        "--to",
        "2026-03-31",
        "--format",
        "csv",
        "--output",
        "-",
    ]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.starts_with("\u{feff}id,occurred_at,") && text.contains("2025-10-26T01:00:00.000Z")
    );
    // An unknown zone: exit 2 naming the flag and code, no file.
    let out = env.path("x.csv");
    let o = env.run(&[
        "export",
        "--org",
        "tz",
        "--from",
        "2025-10-01",
        "--to",
        "2026-03-31",
        "--format",
        "csv",
        "--timezone",
        "Mars/Olympus",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--timezone") && err.contains("invalid_timezone"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn fields_choose_and_order_raw_columns_and_an_unknown_one_is_named() {
    let env = Env::new();
    env.ingest_fixtures();
    let text = String::from_utf8(export(
        &env,
        "acme",
        "csv",
        &["--fields", "action,id,occurred_at", "--no-bom"],
    ))
    .unwrap();
    let (headers, rows) = parse_csv(text.as_bytes());
    assert_eq!(headers, ["action", "id", "occurred_at"]);
    let db = env.db();
    let first: (String, i64) = db
        .query_row("SELECT action, id FROM audit_logs WHERE organization_id = 'acme' ORDER BY occurred_at, id LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(rows[0][0], first.0);
    assert_eq!(rows[0][1], first.1.to_string());
    let out = env.path("f.csv");
    let mut args = vec!["export"];
    args.extend(ALL);
    args.extend([
        "--format",
        "csv",
        "--fields",
        "id,colour",
        "--output",
        out.to_str().unwrap(),
    ]);
    let o = env.run(&args);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--fields") && err.contains("unknown_field") && err.contains("\"colour\""),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1);
    assert!(!out.exists(), "no file for a bad field");
    let srv = env.serve(&[]);
    let t = env.user("acme", "ada@acme.example", "admin");
    let r = req(
        &srv.addr,
        "POST",
        "/api/v1/exports",
        Some(&t),
        Some(json!({"format": "csv", "csv": {"fields": ["id", "colour"]}, "filters": {"from": "2025-07-01", "to": "2025-07-31"}}).to_string().as_bytes()),
    );
    assert_eq!((r.status, r.code().as_str()), (400, "unknown_field"));
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("colour"));
    let r = req(
        &srv.addr,
        "POST",
        "/api/v1/exports",
        Some(&t),
        Some(json!({"format": "csv", "timezone": "Nowhere/Else", "filters": {"from": "2025-07-01", "to": "2025-07-31"}}).to_string().as_bytes()),
    );
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_timezone"));
}

/// The readable CSV of every organization, opened in LibreOffice Calc with
/// formula evaluation on (tests/tools/calc_check.py): cell for cell, no
/// live formula.
#[test]
fn the_readable_csv_reads_cell_for_cell_in_libreoffice_with_no_live_formula() {
    if !common::have_tool(
        "command -v soffice >/dev/null && python3 -c 'import openpyxl'",
        "LibreOffice Calc (soffice) with openpyxl",
    ) {
        return;
    }
    let env = Env::new();
    env.ingest_fixtures();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/calc_check.py");
    for org in ["acme", "globex", "initech"] {
        let file = env.path(&format!("{org}.csv"));
        std::fs::write(
            &file,
            export(&env, org, "csv", &["--csv-profile", "readable"]),
        )
        .unwrap();
        let o = std::process::Command::new("python3")
            .arg(&script)
            .arg(&file)
            .arg(env.path(&format!("calc-{org}")))
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{org}: {report} {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: Value = serde_json::from_str(report.trim()).unwrap();
        assert_eq!(v["formulas"], 0, "{org}");
        assert!(v["rows"].as_i64().unwrap() > 500, "{org}: {v}");
    }
}
