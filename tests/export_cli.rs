//! Exports through the real binary over the fixtures, parsed back and
//! compared row by row with independent SQL over the same filters.

mod common;

use common::{day_ms, oracle, Env, Row};
use serde_json::Value;
use std::path::Path;

/// A filter combination: CLI flags and the equivalent hand-written SQL.
struct Case {
    name: &'static str,
    args: Vec<String>,
    sql: String,
}

fn cases() -> Vec<Case> {
    let range = |org: &str, from: &str, to_incl: &str| {
        format!(
            "organization_id = '{org}' AND occurred_at >= {} AND occurred_at < {}",
            day_ms(from),
            day_ms(to_incl) + 86_400_000
        )
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        Case {
            name: "whole acme range",
            args: s(&[
                "--org",
                "acme",
                "--from",
                "2025-07-01",
                "--to",
                "2026-01-31",
            ]),
            sql: range("acme", "2025-07-01", "2026-01-31"),
        },
        Case {
            name: "globex autumn, action prefix and exact",
            args: s(&[
                "--org",
                "globex",
                "--from",
                "2025-09-01",
                "--to",
                "2025-10-31",
                "--action",
                "user.*",
                "--action",
                "role.assigned",
            ]),
            sql: format!(
                "{} AND (action LIKE 'user.%' OR action = 'role.assigned')",
                range("globex", "2025-09-01", "2025-10-31")
            ),
        },
        Case {
            name: "acme actors by e-mail (any case) and id",
            args: s(&[
                "--org",
                "acme",
                "--from",
                "2025-07-01",
                "--to",
                "2026-01-31",
                "--actor",
                "ADA@acme.example",
                "--actor",
                "u_105",
            ]),
            sql: format!(
                "{} AND (lower(actor_email) = 'ada@acme.example' OR actor_id = 'u_105')",
                range("acme", "2025-07-01", "2026-01-31")
            ),
        },
        Case {
            name: "initech scim and workflow streams",
            args: s(&[
                "--org",
                "initech",
                "--from",
                "2025-07-01",
                "--to",
                "2026-01-31",
                "--stream",
                "scim",
                "--stream",
                "workflow",
            ]),
            sql: format!(
                "{} AND stream IN ('scim', 'workflow')",
                range("initech", "2025-07-01", "2026-01-31")
            ),
        },
        Case {
            name: "acme pages",
            args: s(&[
                "--org",
                "acme",
                "--from",
                "2025-07-01",
                "--to",
                "2026-01-31",
                "--target-type",
                "page",
            ]),
            sql: format!(
                "{} AND target_type = 'page'",
                range("acme", "2025-07-01", "2026-01-31")
            ),
        },
        Case {
            name: "free text with a LIKE wildcard is literal",
            args: s(&[
                "--org",
                "globex",
                "--from",
                "2025-07-01",
                "--to",
                "2026-01-31",
                "--q",
                "%",
            ]),
            sql: format!(
                "{} AND (instr(action,'%') OR instr(actor_id,'%') OR instr(actor_name,'%') \
                 OR instr(actor_email,'%') OR instr(target_type,'%') OR instr(target_id,'%') \
                 OR instr(target_name,'%') OR instr(request_id,'%') OR instr(details,'%'))",
                range("globex", "2025-07-01", "2026-01-31")
            ),
        },
        Case {
            name: "free text is case-insensitive",
            args: s(&[
                "--org",
                "acme",
                "--from",
                "2025-07-01",
                "--to",
                "2026-01-31",
                "--q",
                "LOVELACE",
            ]),
            sql: format!(
                "{} AND (instr(lower(action),'lovelace') OR instr(lower(actor_id),'lovelace') \
                 OR instr(lower(actor_name),'lovelace') OR instr(lower(actor_email),'lovelace') \
                 OR instr(lower(target_type),'lovelace') OR instr(lower(target_id),'lovelace') \
                 OR instr(lower(target_name),'lovelace') OR instr(lower(request_id),'lovelace') \
                 OR instr(lower(details),'lovelace'))",
                range("acme", "2025-07-01", "2026-01-31")
            ),
        },
        Case {
            name: "one day, bare date end includes it",
            args: s(&[
                "--org",
                "acme",
                "--from",
                "2025-08-14",
                "--to",
                "2025-08-14",
            ]),
            sql: range("acme", "2025-08-14", "2025-08-14"),
        },
    ]
}

/// Applies the formula guard as the issue states it, independently.
fn guarded(v: &str) -> String {
    match v.chars().find(|c| *c != ' ') {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{v}"),
        _ => v.to_string(),
    }
}

fn parse_csv(bytes: &[u8], bom: bool) -> Vec<Row> {
    let body = if bom {
        assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "missing BOM");
        &bytes[3..]
    } else {
        assert!(!bytes.starts_with(b"\xEF\xBB\xBF"), "unexpected BOM");
        bytes
    };
    let mut r = csv::ReaderBuilder::new().from_reader(body);
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, audit_export::audit::COLUMNS);
    r.records()
        .map(|rec| {
            rec.unwrap()
                .iter()
                .map(|c| (!c.is_empty()).then(|| c.to_string()))
                .collect()
        })
        .collect()
}

fn json_row(v: &Value) -> Row {
    let s = |v: &Value| match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    let nested = |obj: &Value, k: &str| match obj {
        Value::Null => None,
        o => s(&o[k]),
    };
    let json = |v: &Value| match v {
        Value::Null => None,
        other => Some(other.to_string()),
    };
    vec![
        Some(v["id"].as_i64().unwrap().to_string()),
        s(&v["occurred_at"]),
        s(&v["organization_id"]),
        s(&v["stream"]),
        s(&v["action"]),
        nested(&v["actor"], "type"),
        nested(&v["actor"], "id"),
        nested(&v["actor"], "name"),
        nested(&v["actor"], "email"),
        nested(&v["target"], "type"),
        nested(&v["target"], "id"),
        nested(&v["target"], "name"),
        nested(&v["context"], "ip_address"),
        nested(&v["context"], "user_agent"),
        nested(&v["context"], "request_id"),
        json(&v["changed_data"]),
        json(&v["details"]),
    ]
}

/// JSON columns re-serialized through serde_json so both sides compare in
/// the same spelling.
fn normalize_json_cols(mut rows: Vec<Row>) -> Vec<Row> {
    for r in &mut rows {
        for i in [15, 16] {
            if let Some(s) = &r[i] {
                let v: Value = serde_json::from_str(s).unwrap();
                r[i] = Some(v.to_string());
            }
        }
    }
    rows
}

/// Exports a case unredacted: these tests compare with the stored rows
/// (redaction has its own tests in tests/presentation.rs).
fn export(env: &Env, case: &Case, format: &str, extra: &[&str]) -> Option<Vec<u8>> {
    let out = env.path(&format!("out.{format}"));
    let _ = std::fs::remove_file(&out);
    let mut args: Vec<&str> = vec!["export", "--no-redact"];
    args.extend(case.args.iter().map(String::as_str));
    args.extend(["--format", format, "--output", out.to_str().unwrap()]);
    args.extend(extra);
    let o = env.run(&args);
    match o.status.code() {
        Some(0) => Some(std::fs::read(&out).unwrap()),
        Some(3) => {
            assert!(!out.exists(), "{}: exit 3 but a file exists", case.name);
            None
        }
        c => panic!(
            "{}: exit {c:?}: {}",
            case.name,
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

#[test]
fn every_format_matches_independent_sql_for_every_filter_case() {
    let env = Env::new();
    env.ingest_fixtures();
    let conn = env.db();
    for case in cases() {
        let expected = oracle(&conn, &case.sql);
        assert!(
            !expected.is_empty(),
            "{}: the case should match something",
            case.name
        );
        let expected_json = normalize_json_cols(expected.clone());

        let csv = export(&env, &case, "csv", &[]).unwrap();
        let want: Vec<Row> = expected
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(i, c)| {
                        c.as_ref()
                            .map(|v| if i < 2 { v.clone() } else { guarded(v) })
                    })
                    .collect()
            })
            .collect();
        assert_eq!(parse_csv(&csv, true), want, "{}: csv", case.name);

        let raw = export(&env, &case, "csv", &["--no-bom", "--no-formula-guard"]).unwrap();
        assert_eq!(parse_csv(&raw, false), expected, "{}: raw csv", case.name);

        let json = export(&env, &case, "json", &[]).unwrap();
        let arr: Vec<Value> = serde_json::from_slice(&json).unwrap();
        let got: Vec<Row> = arr.iter().map(json_row).collect();
        assert_eq!(got, expected_json, "{}: json", case.name);

        let jsonl = export(&env, &case, "jsonl", &[]).unwrap();
        let text = String::from_utf8(jsonl).unwrap();
        assert!(text.ends_with('\n'));
        let got: Vec<Row> = text
            .lines()
            .map(|l| json_row(&serde_json::from_str(l).unwrap()))
            .collect();
        assert_eq!(got, expected_json, "{}: jsonl", case.name);
    }
}

#[test]
fn instant_bounds_are_inclusive_at_both_ends() {
    let env = Env::new();
    env.ingest_fixtures();
    let conn = env.db();
    // Pick the 10th and 20th acme events and export exactly that span.
    let times: Vec<i64> = conn
        .prepare("SELECT occurred_at FROM audit_logs WHERE organization_id='acme' ORDER BY occurred_at, id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let (a, b) = (times[10], times[20]);
    let case = Case {
        name: "instants",
        args: vec![
            "--org".into(),
            "acme".into(),
            "--from".into(),
            common::rfc3339(a),
            "--to".into(),
            // Same instant in another offset: still inclusive.
            chrono::DateTime::from_timestamp_millis(b)
                .unwrap()
                .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
                .to_rfc3339(),
        ],
        sql: format!("organization_id='acme' AND occurred_at BETWEEN {a} AND {b}"),
    };
    let expected = normalize_json_cols(oracle(&conn, &case.sql));
    let got = export(&env, &case, "jsonl", &[]).unwrap();
    let got: Vec<Row> = String::from_utf8(got)
        .unwrap()
        .lines()
        .map(|l| json_row(&serde_json::from_str(l).unwrap()))
        .collect();
    assert!(got.len() >= 11);
    assert_eq!(got, expected);
}

#[test]
fn bom_and_formula_guard_on_hard_values() {
    let env = Env::new();
    env.ingest_fixtures();
    let mut checked = 0;
    for org in ["acme", "globex", "initech"] {
        let case = Case {
            name: "all",
            args: ["--org", org, "--from", "2025-07-01", "--to", "2026-01-31"]
                .map(String::from)
                .to_vec(),
            sql: String::new(),
        };
        let guarded_csv = export(&env, &case, "csv", &[]).unwrap();
        assert!(guarded_csv.starts_with(b"\xEF\xBB\xBFid,occurred_at,"));
        let rows = parse_csv(&guarded_csv, true);
        let raw = parse_csv(
            &export(&env, &case, "csv", &["--no-bom", "--no-formula-guard"]).unwrap(),
            false,
        );
        assert_eq!(rows.len(), raw.len());
        for (g, r) in rows.iter().zip(&raw) {
            for (gc, rc) in g.iter().zip(r).skip(2) {
                let (Some(gc), Some(rc)) = (gc, rc) else {
                    assert_eq!(gc, rc);
                    continue;
                };
                let dangerous = matches!(
                    rc.chars().find(|c| *c != ' '),
                    Some('=' | '+' | '-' | '@' | '\t' | '\r')
                );
                if dangerous {
                    checked += 1;
                    assert_eq!(gc, &format!("'{rc}"));
                } else {
                    assert_eq!(gc, rc);
                }
                // Whatever the guard, no exported cell starts a formula.
                assert!(!matches!(
                    gc.chars().find(|c| *c != ' '),
                    Some('=' | '+' | '-' | '@')
                ));
            }
        }
    }
    assert!(
        checked >= 27,
        "fixtures should hold many formula-like cells, saw {checked}"
    );
}

#[test]
fn nothing_matched_exits_3_and_creates_no_file() {
    let env = Env::new();
    env.ingest_fixtures();
    for format in ["csv", "json", "jsonl"] {
        let out = env.path(&format!("none.{format}"));
        let err = env.expect(
            &[
                "export",
                "--org",
                "nobody",
                "--from",
                "2025-07-01",
                "--to",
                "2025-07-31",
                "--format",
                format,
                "--output",
                out.to_str().unwrap(),
            ],
            3,
        );
        assert!(err.contains("no events match"), "{err}");
        assert!(!out.exists());
    }
    let o = env.run(&[
        "export",
        "--org",
        "nobody",
        "--from",
        "2025-07-01",
        "--to",
        "2025-07-31",
        "--format",
        "csv",
        "--output",
        "-",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(o.stdout.is_empty());
    // No stray temporary files either.
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn bad_input_exits_2_naming_the_flag_and_code() {
    let env = Env::new();
    env.ingest_fixtures();
    let out = env.path("bad.csv");
    let o = out.to_str().unwrap();
    let base = ["export", "--format", "csv", "--output", o];
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["--from", "2025-01-01", "--to", "2025-02-01"],
            "--org",
            "organization_required",
        ),
        (
            vec!["--org", "acme", "--to", "2025-02-01"],
            "--from",
            "from_required",
        ),
        (
            vec!["--org", "acme", "--from", "2025-01-01"],
            "--to",
            "to_required",
        ),
        (
            vec![
                "--org",
                "acme",
                "--from",
                "01/02/2025",
                "--to",
                "2025-02-01",
            ],
            "--from",
            "invalid_from",
        ),
        (
            vec![
                "--org",
                "acme",
                "--from",
                "2025-01-01",
                "--to",
                "2025-02-30",
            ],
            "--to",
            "invalid_to",
        ),
        (
            vec![
                "--org",
                "acme",
                "--from",
                "2025-03-01",
                "--to",
                "2025-02-01",
            ],
            "--to",
            "range_reversed",
        ),
        (
            vec![
                "--org",
                "acme",
                "--from",
                "2024-01-01",
                "--to",
                "2025-02-01",
            ],
            "--to",
            "range_too_long",
        ),
        (
            vec![
                "--org",
                "acme",
                "--from",
                "2025-01-01",
                "--to",
                "2025-02-01",
                "--actor",
                " ",
            ],
            "--actor",
            "invalid_actor",
        ),
        (
            vec![
                "--org",
                "acme",
                "--from",
                "2025-01-01",
                "--to",
                "2025-02-01",
                "--action",
                "*.login",
            ],
            "--action",
            "invalid_action",
        ),
        (
            vec![
                "--org",
                "acme",
                "--from",
                "2025-01-01",
                "--to",
                "2025-02-01",
                "--stream",
                "a b",
            ],
            "--stream",
            "invalid_stream",
        ),
        (
            vec![
                "--org",
                "acme",
                "--from",
                "2025-01-01",
                "--to",
                "2025-02-01",
                "--target-id",
                "p_1",
            ],
            "--target-id",
            "target_id_without_type",
        ),
        (
            vec![
                "--org",
                "acme",
                "--from",
                "2025-01-01",
                "--to",
                "2025-02-01",
                "--target-type",
                "",
            ],
            "--target-type",
            "invalid_target_type",
        ),
    ];
    for (extra, flag, code) in cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(extra);
        let err = env.expect(&args, 2);
        assert!(err.contains(flag) && err.contains(code), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one-line reason: {err}");
        assert!(!out.exists());
    }
    // Unknown format and missing output folder are bad input too.
    let err = env.expect(
        &[
            "export",
            "--org",
            "acme",
            "--from",
            "2025-07-01",
            "--to",
            "2025-07-02",
            "--format",
            "xml",
            "--output",
            o,
        ],
        2,
    );
    assert!(err.contains("--format"), "{err}");
    let missing = env.path("no/such/dir/x.csv");
    let err = env.expect(
        &[
            "export",
            "--org",
            "acme",
            "--from",
            "2025-07-01",
            "--to",
            "2025-07-02",
            "--format",
            "csv",
            "--output",
            missing.to_str().unwrap(),
        ],
        2,
    );
    assert!(err.contains("--output"), "{err}");
    // A range limit from the environment is honoured.
    let o2 = env.run_env(
        &[
            "export",
            "--org",
            "acme",
            "--from",
            "2025-07-01",
            "--to",
            "2025-09-01",
            "--format",
            "csv",
            "--output",
            o,
        ],
        &[("AUDIT_EXPORT_EXPORT_MAX_RANGE_DAYS", "31")],
    );
    assert_eq!(o2.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o2.stderr).contains("range_too_long"));
}

#[test]
fn tiny_pages_and_stdout_give_the_same_bytes() {
    let env = Env::new();
    env.ingest_fixtures();
    let args = [
        "export",
        "--org",
        "acme",
        "--from",
        "2025-07-01",
        "--to",
        "2026-01-31",
        "--format",
        "json",
    ];
    let file = env.path("a.json");
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["--output", file.to_str().unwrap()]);
    env.expect(&a, 0);
    let reference = std::fs::read(&file).unwrap();
    // Pages of 7 rows cross many page boundaries, including ties in time.
    let mut b: Vec<&str> = args.to_vec();
    b.extend(["--output", "-"]);
    let o = env.run_env(&b, &[("AUDIT_EXPORT_EXPORT_BATCH_SIZE", "7")]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(o.stdout, reference);
    let arr: Vec<Value> = serde_json::from_slice(&reference).unwrap();
    assert_eq!(arr.len(), 1100);
}

#[test]
fn seed_is_deterministic() {
    let a = Env::new();
    let b = Env::new();
    for env in [&a, &b] {
        env.expect(&["seed", "--rows", "3000", "--orgs", "2", "--seed", "7"], 0);
    }
    let c = Env::new();
    c.expect(&["seed", "--rows", "3000", "--orgs", "2", "--seed", "8"], 0);
    let dump = |env: &Env| {
        let o = env.run(&[
            "export",
            "--org",
            "org_1",
            "--from",
            "2025-01-01",
            "--to",
            "2025-12-31",
            "--format",
            "jsonl",
            "--output",
            "-",
        ]);
        assert_eq!(o.status.code(), Some(0));
        o.stdout
    };
    let (da, db, dc) = (dump(&a), dump(&b), dump(&c));
    assert!(!da.is_empty());
    assert_eq!(da, db);
    assert_ne!(da, dc);
}

#[test]
fn a_named_pipe_is_written_through_and_a_symlink_is_followed() {
    use std::os::unix::fs::FileTypeExt;
    let env = Env::new();
    env.ingest_fixtures();
    let run = |out: &Path| {
        let out = out.to_str().unwrap();
        let args = [
            "export",
            "--org",
            "acme",
            "--from",
            "2025-07-01",
            "--to",
            "2025-07-31",
        ];
        env.expect(
            &[&args[..], &["--format", "csv", "--output", out]].concat(),
            0,
        );
    };
    let plain = env.path("plain.csv");
    run(&plain);
    let expected = std::fs::read(&plain).unwrap();

    let fifo = env.path("out.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    run(&fifo);
    assert_eq!(reader.join().unwrap(), expected);
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "the pipe was replaced by {kind:?}");

    std::fs::create_dir(env.path("real")).unwrap();
    std::fs::write(env.path("real/target.csv"), "old").unwrap();
    let link = env.path("link.csv");
    std::os::unix::fs::symlink("real/target.csv", &link).unwrap();
    run(&link);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read(env.path("real/target.csv")).unwrap(),
        expected
    );
    // A dangling link: its destination is created.
    let dangling = env.path("dangling.csv");
    std::os::unix::fs::symlink("real/new.csv", &dangling).unwrap();
    run(&dangling);
    assert_eq!(std::fs::read(env.path("real/new.csv")).unwrap(), expected);
}

#[test]
fn async_duplicates_and_the_per_requester_limit_exit_2_naming_the_way_out() {
    let env = Env::new();
    env.ingest_fixtures();
    let job = |from: &str| {
        env.run(&[
            "export",
            "--async",
            "--org",
            "acme",
            "--from",
            from,
            "--to",
            "2025-12-31",
            "--format",
            "csv",
        ])
    };
    let first = job("2025-07-01");
    assert_eq!(first.status.code(), Some(0));
    let id = String::from_utf8(first.stdout).unwrap().trim().to_string();
    let again = job("2025-07-01");
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{err}");
    assert!(err.contains(&id) && err.contains("--restart"), "{err}");
    assert_eq!(job("2025-08-01").status.code(), Some(0));
    assert_eq!(job("2025-09-01").status.code(), Some(0));
    let over = job("2025-10-01");
    let err = String::from_utf8_lossy(&over.stderr);
    assert_eq!(over.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--requester") && err.contains("limit 3"),
        "{err}"
    );
}

/// The parallel scan's output is the one-thread output, byte for byte, in
/// every format and profile — also when filters leave early slices empty
/// (JSON's first separator) and on a range smaller than one slice.
#[test]
fn parallel_exports_are_byte_identical_to_one_thread() {
    let env = Env::new();
    env.expect(
        &["seed", "--rows", "30000", "--orgs", "2", "--seed", "5"],
        0,
    );
    let run_with = |threads: &str, batch: &str, args: &[&str]| -> Vec<u8> {
        let mut a = vec!["export", "--org", "org_1", "--output", "-"];
        a.extend_from_slice(args);
        let out = env.run_env(
            &a,
            &[
                ("AUDIT_EXPORT_EXPORT_THREADS", threads),
                ("AUDIT_EXPORT_EXPORT_BATCH_SIZE", batch),
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{a:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let run = |threads: &str, args: &[&str]| run_with(threads, "5000", args);
    let cases: &[&[&str]] = &[
        &[
            "--from",
            "2025-01-01",
            "--to",
            "2025-12-31",
            "--format",
            "csv",
        ],
        &[
            "--from",
            "2025-01-01",
            "--to",
            "2025-12-31",
            "--format",
            "csv",
            "--csv-profile",
            "readable",
        ],
        &[
            "--from",
            "2025-01-01",
            "--to",
            "2025-12-31",
            "--format",
            "json",
        ],
        &[
            "--from",
            "2025-01-01",
            "--to",
            "2025-12-31",
            "--format",
            "jsonl",
            "--timezone",
            "Europe/Paris",
        ],
        // Matches only in the second half: the first slices are empty.
        &[
            "--from",
            "2025-01-01",
            "--to",
            "2025-12-31",
            "--format",
            "json",
            "--actor",
            "u_80",
        ],
        // Smaller than one slice.
        &[
            "--from",
            "2025-03-01",
            "--to",
            "2025-03-02",
            "--format",
            "json",
        ],
    ];
    for args in cases {
        let one = run("1", args);
        assert!(!one.is_empty());
        for threads in ["2", "5"] {
            let many = run(threads, args);
            assert!(
                one == many,
                "{args:?} with {threads} threads differs ({} vs {} bytes)",
                one.len(),
                many.len()
            );
        }
    }
    // Pages smaller than a slice (a slice takes several, the last one
    // short) and exactly a slice long (a full page, then an empty one).
    let args = cases[0];
    let one = run("1", args);
    for batch in ["100", "4096"] {
        let many = run_with("2", batch, args);
        assert!(one == many, "page size {batch} differs");
    }
}

/// Turning redaction off leaves a trace even on the direct CLI path: an
/// `audit_log.exported` event with `redacted: false` and the operator's
/// label; a default (redacted) direct export adds no event.
#[test]
fn a_direct_export_without_redaction_is_recorded() {
    let env = Env::new();
    env.ingest_fixtures();
    // The fixtures hold exports of their own: only new events count.
    let before: i64 = env
        .db()
        .query_row("SELECT max(id) FROM audit_logs", [], |r| r.get(0))
        .unwrap();
    let exported = |env: &Env| -> Vec<(String, String)> {
        let db = env.db();
        let mut st = db
            .prepare(
                "SELECT actor_id, details FROM audit_logs \
                 WHERE action = 'audit_log.exported' AND id > ? ORDER BY id",
            )
            .unwrap();
        st.query_map([before], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    env.export_stdout("acme", "2025-01-01", "2025-12-31", "jsonl", &[]);
    assert!(exported(&env).is_empty());
    env.export_stdout(
        "acme",
        "2025-01-01",
        "2025-12-31",
        "csv",
        &["--no-redact", "--requester", "ops-alice"],
    );
    let events = exported(&env);
    assert_eq!(events.len(), 1, "{events:?}");
    let (actor, details) = &events[0];
    assert_eq!(actor, "ops-alice");
    let d: serde_json::Value = serde_json::from_str(details).unwrap();
    assert_eq!(d["redacted"], false);
    assert_eq!(d["format"], "csv");
    assert_eq!(d["destination"], "stdout");
    assert!(d["record_count"].as_u64().unwrap() > 0);

    // A user named by --requester exports under the API's rules: a viewer
    // may not export, a compliance officer may not turn redaction off, an
    // admin may, and is the recorded actor.
    for (email, role) in [
        ("vi@acme.example", "viewer"),
        ("cy@acme.example", "compliance"),
        ("ada@acme.example", "admin"),
    ] {
        let out = env.run(&[
            "users", "add", "--org", "acme", "--email", email, "--name", email, "--role", role,
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let direct = |requester: &str, extra: &[&str]| {
        let mut args = vec![
            "export",
            "--org",
            "acme",
            "--from",
            "2025-01-01",
            "--to",
            "2025-12-31",
            "--format",
            "jsonl",
            "--output",
            "-",
            "--requester",
            requester,
        ];
        args.extend_from_slice(extra);
        env.run(&args)
    };
    let out = direct("vi@acme.example", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing exported");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not export them"));
    let out = direct("cy@acme.example", &["--no-redact"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing exported");
    assert!(String::from_utf8_lossy(&out.stderr).contains("only admins may turn redaction off"));
    assert_eq!(direct("cy@acme.example", &[]).status.code(), Some(0));
    let out = direct("ada@acme.example", &["--no-redact"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = exported(&env);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[1].0.starts_with("user:"), "{events:?}");
}
