//! Ingest through the real binary: whole-file rejection, precise line and
//! field errors, --skip-invalid, CSV and JSON-array round trips, idempotent
//! re-ingest.

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
    // Done once: the same content is recognised before its bad lines are
    // held against it again (the identity is hashed during validation).
    let err = env.expect(&["ingest", file.to_str().unwrap()], 0);
    assert!(err.contains("already ingested completely"), "{err}");
    assert_eq!(count(&env), 2);
}

#[test]
fn reingesting_the_fixtures_is_a_no_op_but_a_changed_event_is_an_error() {
    let env = Env::new();
    env.ingest_fixtures();
    assert_eq!(count(&env), 2400);
    // The same file: known by its content, nothing to do.
    let err = env.expect(&["ingest", fixtures().to_str().unwrap()], 0);
    assert!(err.contains("already ingested completely"), "{err}");
    assert_eq!(count(&env), 2400);
    // Other bytes, the same events (their ids): each recognised, unchanged.
    let copy = env.path("copy.jsonl");
    let mut text = std::fs::read_to_string(fixtures()).unwrap();
    text.push('\n');
    std::fs::write(&copy, text).unwrap();
    let err = env.expect(&["ingest", copy.to_str().unwrap()], 0);
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
                "--no-redact",
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
            "--no-redact",
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
fn json_array_export_reingests_byte_for_byte() {
    let src = Env::new();
    src.ingest_fixtures();
    let dst = Env::new();
    let export = |env: &Env, format: &str, out: &str| {
        let args = [
            "export",
            "--org",
            "globex",
            "--from",
            "2025-07-01",
            "--to",
            "2026-01-31",
            "--format",
            format,
            "--no-redact",
            "--output",
            out,
        ];
        env.expect(&args, 0);
        std::fs::read(out).unwrap()
    };
    let json = src.path("globex.json");
    let original = export(&src, "json", json.to_str().unwrap());
    let events: Vec<serde_json::Value> = serde_json::from_slice(&original).unwrap();
    assert!(events.len() > 500, "{}", events.len());
    dst.expect(&["ingest", json.to_str().unwrap()], 0);
    assert_eq!(count(&dst), events.len() as i64);
    let again = dst.path("again.json");
    assert_eq!(export(&dst, "json", again.to_str().unwrap()), original);
}

#[test]
fn a_json_array_names_the_line_of_each_bad_element_and_its_structure_errors() {
    let env = Env::new();
    let file = env.path("in.json");
    let bad_date = GOOD.replace("2026-01-05T10:00:00.000Z", "2026-13-45");
    // A string holding `]`, `,` and an escaped quote must not end an element.
    let tricky = GOOD.replace(r#""name":"Ada""#, r#""name":"A ], \"b\", {c""#);
    let body = format!("\u{feff}[\n  {GOOD},\n  {bad_date},\n\n  {tricky},\n  42\n]\n");
    std::fs::write(&file, body).unwrap();
    let err = env.expect(&["ingest", file.to_str().unwrap(), "--format", "json"], 2);
    assert!(err.contains("line 3: field `occurred_at`"), "{err}");
    assert!(err.contains("line 6:"), "{err}");
    assert!(err.contains("2 invalid line(s)"), "{err}");
    assert_eq!(count(&env), 0);
    let err = env.expect(&["ingest", file.to_str().unwrap(), "--skip-invalid"], 0);
    assert!(err.contains("ingested 2 events"), "{err}");
    let name: String = env
        .db()
        .query_row(
            "SELECT actor_name FROM audit_logs ORDER BY id DESC",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(name, r#"A ], "b", {c"#);

    for (text, line, message) in [
        (format!("[{GOOD}"), 1, "the JSON array is not closed"),
        (format!("[\n{GOOD},\n]"), 3, "empty array element"),
        (format!("[{GOOD}]\n\n{GOOD}"), 3, "text after the closing"),
        (format!("[{GOOD},,{GOOD}]"), 1, "empty array element"),
    ] {
        std::fs::write(&file, &text).unwrap();
        let err = env.expect(&["ingest", file.to_str().unwrap()], 2);
        assert!(
            err.contains(&format!("line {line}: {message}")),
            "{text}: {err}"
        );
    }
    std::fs::write(&file, "[ ]\n").unwrap();
    let err = env.expect(&["ingest", file.to_str().unwrap()], 0);
    assert!(err.contains("ingested 0 events"), "{err}");
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

/// Large inputs are parsed on several threads in chunks of ~1,000 events:
/// order, line numbers and errors must be those of a serial read, in
/// JSONL and in a JSON array, with explicit ids mixed with id-less events.
#[test]
fn a_large_input_keeps_its_order_and_line_numbers_across_parse_chunks() {
    let env = Env::new();
    let n = 5_000usize;
    let bad = [1_500usize, 3_001, 4_999];
    let event = |i: usize| {
        let ev = GOOD.replace("u_1", &format!("u_{i}"));
        // Every seventh event brings its own id (far above the others),
        // and some carry JSON with white space, a number and an escape.
        match i % 7 {
            0 => ev.replacen('{', &format!(r#"{{"id":{},"#, 1_000_000 + i), 1),
            3 => ev.replacen('}', r#"},"details":{"b": 1.50, "a": "\u00e9"}"#, 1),
            _ => ev,
        }
    };
    let lines: Vec<String> = (1..=n)
        .map(|i| {
            if bad.contains(&i) {
                GOOD.replace("user.login", "")
            } else {
                event(i)
            }
        })
        .collect();
    let jsonl = env.path("big.jsonl");
    std::fs::write(&jsonl, lines.join("\n") + "\n").unwrap();
    let err = env.expect(&["ingest", jsonl.to_str().unwrap()], 2);
    let reported: Vec<&str> = err.lines().filter(|l| l.contains("line ")).collect();
    assert_eq!(reported.len(), 3, "{err}");
    for (l, i) in reported.iter().zip(bad) {
        assert!(l.contains(&format!("line {i}: field `action`")), "{err}");
    }
    // The same events as an array (one per line after `[`): line i + 1.
    let array = env.path("big.json");
    std::fs::write(&array, format!("[\n{}\n]\n", lines.join(",\n"))).unwrap();
    let err = env.expect(&["ingest", array.to_str().unwrap()], 2);
    assert!(err.contains("line 1501: field `action`"), "{err}");
    assert!(err.contains("line 5000: field `action`"), "{err}");

    let out = env.expect(&["ingest", jsonl.to_str().unwrap(), "--skip-invalid"], 0);
    assert!(out.contains("ingested 4,997 events"), "{out}");
    // Stored in input order: actor ids ascend with the assigned ids.
    let db = env.db();
    let mut st = db
        .prepare(&format!(
            "SELECT actor_id, details FROM audit_logs WHERE NOT {EXPLICIT} ORDER BY id"
        ))
        .unwrap();
    let rows: Vec<(String, Option<String>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected: Vec<usize> = (1..=n).filter(|i| i % 7 != 0 && !bad.contains(i)).collect();
    assert_eq!(rows.len(), expected.len());
    for ((actor, details), i) in rows.iter().zip(&expected) {
        assert_eq!(actor, &format!("u_{i}"));
        if i % 7 == 3 {
            // Kept as sent (numbers, escapes), white space removed.
            assert_eq!(details.as_deref(), Some(r#"{"b":1.50,"a":"\u00e9"}"#));
        }
    }
    let explicit: i64 = db
        .query_row(
            &format!("SELECT count(*) FROM audit_logs WHERE {EXPLICIT}"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    // None lost to an id that AUTOINCREMENT gave an id-less event first.
    assert_eq!(explicit, (1..=n).filter(|i| i % 7 == 0).count() as i64);
}

/// The rows that kept the explicit id their line gave them.
const EXPLICIT: &str = "id = 1000000 + CAST(substr(actor_id, 3) AS INTEGER)";

/// JSON columns go from input to export exactly as sent (numbers past
/// f64, trailing zeros, exponents, escapes, key order), white space aside,
/// from JSONL and from CSV alike.
#[test]
fn json_columns_are_kept_as_sent_from_ingest_to_export() {
    let env = Env::new();
    let sent = r#"{"amount": 1.50, "big": 123456789012345678901234567890, "e": 1E3, "u": "\u00e9", "z": 1, "a": 2}"#;
    let kept =
        r#"{"amount":1.50,"big":123456789012345678901234567890,"e":1E3,"u":"\u00e9","z":1,"a":2}"#;
    let line = GOOD.replacen('}', &format!(r#"}},"details":{sent}"#), 1);
    let file = env.path("numbers.jsonl");
    std::fs::write(&file, line + "\n").unwrap();
    env.expect(&["ingest", file.to_str().unwrap()], 0);
    let out = env.export_stdout("acme", "2026-01-05", "2026-01-05", "jsonl", &[]);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains(&format!(r#""details":{kept}"#)), "{out}");

    // The same cell through a raw CSV.
    let csv = env.path("numbers.csv");
    let mut w = csv::Writer::from_path(&csv).unwrap();
    w.write_record(audit_export::audit::event::COLUMNS).unwrap();
    let mut rec = vec![""; 17];
    rec[1] = "2026-01-06T10:00:00.000Z";
    rec[2] = "acme";
    rec[3] = "audit";
    rec[4] = "user.login";
    rec[16] = sent;
    w.write_record(&rec).unwrap();
    w.flush().unwrap();
    env.expect(&["ingest", csv.to_str().unwrap()], 0);
    let out = env.export_stdout("acme", "2026-01-06", "2026-01-06", "jsonl", &[]);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains(&format!(r#""details":{kept}"#)), "{out}");
}

#[test]
fn jsonl_lines_are_counted_across_read_buffers_blank_lines_bom_and_no_final_newline() {
    let env = Env::new();
    let file = env.path("edges.jsonl");
    // A line longer than the 64 KiB read buffer, lines cut at every
    // buffer boundary, CRLF, blank lines, a BOM, and a bad last line with
    // no newline after it.
    let big = GOOD.replace(
        r#""stream":"audit""#,
        &format!(
            r#""stream":"audit","details":{{"pad":"{}"}}"#,
            "x".repeat(150_000)
        ),
    );
    let mut text = String::from("\u{FEFF}");
    text.push_str(GOOD);
    text.push_str("\r\n\r\n");
    text.push_str(&big);
    text.push('\n');
    for _ in 0..3_000 {
        text.push_str(GOOD);
        text.push('\n');
    }
    text.push_str("   \n");
    text.push_str(&GOOD.replace("user.login", ""));
    std::fs::write(&file, &text).unwrap();
    let err = env.expect(&["ingest", file.to_str().unwrap()], 2);
    // BOM line 1, blank line 2, big line 3, 3,000 lines 4..=3003, blank
    // 3004, the bad one 3005.
    assert!(err.contains("line 3005: field `action`"), "{err}");
    assert!(err.contains("1 invalid line(s)"), "{err}");
    let err = env.expect(&["ingest", file.to_str().unwrap(), "--skip-invalid"], 0);
    assert!(err.contains("ingested 3,002 events"), "{err}");
    let pad: i64 = env
        .db()
        .query_row(
            "SELECT length(details) FROM audit_logs WHERE details IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pad, 150_000 + r#"{"pad":""}"#.len() as i64);
}

#[test]
fn new_events_scattered_among_known_ones_are_all_inserted() {
    // 20,000 events with ids, then the same file with a new id-less event
    // after every 1,000 lines: each new event sits in a parse chunk of
    // its own, so the insert batches commit early (they would otherwise
    // keep every chunk's text alive), and nothing is lost or doubled.
    let env = Env::new();
    let with_id = |id: u64| GOOD.replacen('{', &format!(r#"{{"id":{id},"#), 1);
    let known: Vec<String> = (1..=20_000).map(with_id).collect();
    let first = env.path("first.jsonl");
    std::fs::write(&first, known.join("\n") + "\n").unwrap();
    env.expect(&["ingest", first.to_str().unwrap()], 0);
    assert_eq!(count(&env), 20_000);
    let mut lines = Vec::new();
    for (i, line) in known.iter().enumerate() {
        lines.push(line.clone());
        if i % 1_000 == 999 {
            lines.push(GOOD.replace("user.login", &format!("user.new_{i}")));
        }
    }
    let second = env.path("second.jsonl");
    std::fs::write(&second, lines.join("\n") + "\n").unwrap();
    let err = env.expect(&["ingest", second.to_str().unwrap()], 0);
    assert!(err.contains("ingested 20 events"), "{err}");
    assert!(err.contains("20,000 already present, unchanged"), "{err}");
    assert_eq!(count(&env), 20_020);
    let new: i64 = env
        .db()
        .query_row(
            "SELECT count(DISTINCT action) FROM audit_logs WHERE action LIKE 'user.new_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(new, 20);
}
