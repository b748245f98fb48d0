//! Ingest through the real binary: whole-file rejection, precise line and
//! field errors, --skip-invalid, CSV round trip, idempotent re-ingest.

mod common;

use common::{fixtures, Env};

fn count(env: &Env) -> i64 {
    env.db()
        .query_row("SELECT count(*) FROM audit_logs", [], |r| r.get(0))
        .unwrap()
}

const GOOD: &str = r#"{"organization_id":"acme","occurred_at":"2026-01-05T10:00:00.000Z","stream":"audit","action":"user.login","actor":{"type":"user","id":"u_1","name":"Ada","email":"ada@acme.example"}}"#;

#[test]
fn one_bad_line_rejects_the_whole_file_and_names_line_and_field() {
    let env = Env::new();
    let file = env.path("in.jsonl");
    let lines = [
        GOOD.to_string(),
        GOOD.replace("2026-01-05T10:00:00.000Z", "2026-13-45"),
        GOOD.to_string(),
        "{not json".to_string(),
        GOOD.replace(r#""email":"ada@acme.example""#, r#""email":42"#),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let err = env.expect(&["ingest", file.to_str().unwrap()], 2);
    assert!(err.contains("line 2: field `occurred_at`"), "{err}");
    assert!(
        err.contains("line 4:") && err.contains("not valid JSON"),
        "{err}"
    );
    assert!(err.contains("line 5: field `actor.email`"), "{err}");
    assert!(
        err.contains("3 invalid line(s); nothing was ingested"),
        "{err}"
    );
    assert_eq!(count(&env), 0);

    let err = env.expect(&["ingest", file.to_str().unwrap(), "--skip-invalid"], 0);
    assert!(err.contains("ingested 2 events"), "{err}");
    assert!(err.contains("skipped 3 invalid line(s)"), "{err}");
    assert_eq!(count(&env), 2);
}

#[test]
fn reingesting_the_fixtures_is_a_no_op_but_a_changed_event_is_an_error() {
    let env = Env::new();
    env.ingest_fixtures();
    assert_eq!(count(&env), 2400);
    let err = env.expect(&["ingest", fixtures().to_str().unwrap()], 0);
    assert!(err.contains("2,400 already present, unchanged"), "{err}");
    assert_eq!(count(&env), 2400);

    let file = env.path("conflict.jsonl");
    let changed = GOOD.replacen('{', r#"{"id":5,"#, 1);
    std::fs::write(&file, changed + "\n").unwrap();
    let err = env.expect(&["ingest", file.to_str().unwrap()], 2);
    assert!(
        err.contains("id 5 already exists with different content"),
        "{err}"
    );
}

#[test]
fn an_id_used_twice_in_one_file_is_rejected() {
    let env = Env::new();
    let file = env.path("dup.jsonl");
    let line = GOOD.replacen('{', r#"{"id":9,"#, 1);
    std::fs::write(&file, format!("{line}\n{line}\n")).unwrap();
    let err = env.expect(&["ingest", file.to_str().unwrap()], 2);
    assert!(err.contains("line 2: field `id`"), "{err}");
    assert_eq!(count(&env), 0);
}

#[test]
fn raw_csv_export_reingests_to_the_same_events() {
    let src = Env::new();
    src.ingest_fixtures();
    let dst = Env::new();
    for org in ["acme", "globex", "initech"] {
        let csv = src.path(&format!("{org}.csv"));
        src.expect(
            &[
                "export",
                "--org",
                org,
                "--from",
                "2025-07-01",
                "--to",
                "2026-01-31",
                "--format",
                "csv",
                "--no-formula-guard",
                "--output",
                csv.to_str().unwrap(),
            ],
            0,
        );
        // With the BOM (default) and without: both are read.
        dst.expect(&["ingest", csv.to_str().unwrap()], 0);
    }
    let dump = |env: &Env, org: &str| {
        let o = env.run(&[
            "export",
            "--org",
            org,
            "--from",
            "2025-07-01",
            "--to",
            "2026-01-31",
            "--format",
            "jsonl",
            "--output",
            "-",
        ]);
        assert_eq!(o.status.code(), Some(0));
        o.stdout
    };
    for org in ["acme", "globex", "initech"] {
        let (a, b) = (dump(&src, org), dump(&dst, org));
        // CSV cannot tell an empty string from null; the fixtures hold no
        // empty strings, so the round trip is exact.
        assert_eq!(
            String::from_utf8(a).unwrap(),
            String::from_utf8(b).unwrap(),
            "{org}"
        );
    }
}

#[test]
fn csv_with_a_wrong_header_or_bad_cell_is_rejected() {
    let env = Env::new();
    let file = env.path("bad.csv");
    std::fs::write(&file, "id,when,organization_id\n1,x,acme\n").unwrap();
    let err = env.expect(&["ingest", file.to_str().unwrap()], 2);
    assert!(err.contains("unknown column \"when\""), "{err}");

    let header = audit_export::audit::COLUMNS.join(",");
    let ok_row = ",2026-01-05T10:00:00.000Z,acme,audit,user.login,,,,,,,,,,,,";
    let bad_json = ",2026-01-05T10:00:00.000Z,acme,audit,user.login,,,,,,,,,,,,{oops";
    std::fs::write(&file, format!("{header}\r\n{ok_row}\r\n{bad_json}\r\n")).unwrap();
    let err = env.expect(&["ingest", file.to_str().unwrap()], 2);
    assert!(err.contains("line 3: field `details`"), "{err}");
    assert_eq!(count(&env), 0);
}

#[test]
fn a_missing_file_is_bad_input() {
    let env = Env::new();
    let err = env.expect(&["ingest", "/no/such/file.jsonl"], 2);
    assert!(err.contains("/no/such/file.jsonl"), "{err}");
}

#[test]
fn csv_line_numbers_count_physical_lines_across_multiline_cells() {
    let env = Env::new();
    let file = env.path("multi.csv");
    let header = audit_export::audit::COLUMNS.join(",");
    let multi = ",2026-01-05T10:00:00.000Z,acme,audit,user.login,,,\"two\nlines\",,,,,,,,,";
    let bad = ",not-a-time,acme,audit,user.login,,,,,,,,,,,,";
    for eol in ["\n", "\r\n"] {
        std::fs::write(&file, format!("{header}{eol}{multi}{eol}{bad}{eol}")).unwrap();
        let err = env.expect(&["ingest", file.to_str().unwrap()], 2);
        assert!(
            err.contains("line 4: field `occurred_at`"),
            "{eol:?}: {err}"
        );
    }
}
