use super::*;
use crate::audit::event::NewEvent;
use crate::format::{ExportOptions, Format};
use crate::stream::Pages;

/// The organization whose pieces make an export thread panic.
pub(super) const PANICKING_ORG: &str = "panics";

/// 2025-01-01T00:00:00Z.
const T0: i64 = 1_735_689_600_000;
const DAY: i64 = 86_400_000;

fn event(org: &str, at: i64, actor: &str) -> NewEvent {
    NewEvent {
        occurred_at: at,
        organization_id: org.into(),
        stream: "audit".into(),
        action: "user.login".into(),
        actor_id: Some(actor.into()),
        details: Some(format!("{{\"at\":{at}}}")),
        ..Default::default()
    }
}

/// Rows of organization `o` shaped to trip a time-cut scan: a steady
/// stretch, an instant holding far more rows than a piece, months without
/// a row, a dense day, rows at the range's very edges; and another
/// organization's rows interleaved everywhere.
fn shaped_db() -> (tempfile::TempDir, Connection, PathBuf) {
    let (dir, mut conn) = crate::db::temp_db();
    let mut ev = Vec::new();
    ev.push(event("o", T0, "edge"));
    for i in 0..300 {
        ev.push(event("o", T0 + DAY + i * 37, &format!("u_{}", i % 7)));
    }
    for i in 0..150 {
        ev.push(event("o", T0 + 2 * DAY, &format!("burst_{}", i % 3)));
    }
    for i in 0..400 {
        ev.push(event("o", T0 + 200 * DAY + i * 11, &format!("u_{}", i % 5)));
    }
    ev.push(event("o", T0 + 300 * DAY, "u_80"));
    ev.push(event("o", T0 + 365 * DAY - 1, "edge"));
    // Just outside the range, on both sides.
    ev.push(event("o", T0 - 1, "outside"));
    ev.push(event("o", T0 + 365 * DAY, "outside"));
    for i in 0..200 {
        ev.push(event("p", T0 + i * 5 * DAY / 3, "other"));
    }
    crate::audit::insert::insert_events(&mut conn, &ev).unwrap();
    let db = PathBuf::from(conn.path().unwrap());
    (dir, conn, db)
}

fn filters(actors: &[&str]) -> Filters {
    crate::filters::FilterInput {
        organization: Some("o".into()),
        from: Some("2025-01-01".into()),
        to: Some("2025-12-31".into()),
        actors: actors.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }
    .validate(&Default::default())
    .unwrap()
}

/// What an export run produced: bytes, records, first row, last row.
type Run = (Vec<u8>, u64, Option<Cursor>, Option<Cursor>);

fn serial(conn: &Connection, f: &Filters, format: Format, after: Option<Cursor>) -> Run {
    let records = u64::from(after.is_some());
    let enc = Encoder::new(format, ExportOptions::default());
    let mut pages = Pages::new(Scan::new(f, 7).resume_after(after), enc, records);
    let mut buf = Vec::new();
    while pages
        .next_into(conn, &mut buf, usize::MAX, |_| Ok::<_, rusqlite::Error>(()))
        .unwrap()
        > 0
    {}
    (buf, pages.records(), pages.first(), pages.cursor())
}

fn parallel(
    db: &std::path::Path,
    f: &Filters,
    format: Format,
    after: Option<Cursor>,
    threads: usize,
    sizing: Sizing,
) -> Run {
    let records = u64::from(after.is_some());
    let enc = Encoder::new(format, ExportOptions::default());
    let mut p = Parallel::start(db.into(), f, enc, after, records, 5, threads, sizing);
    let mut buf = Vec::new();
    let mut taken = 0;
    loop {
        let n = p.next_into(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        taken += n as u64;
    }
    assert_eq!(p.records(), records + taken);
    // Done stays done.
    assert_eq!(p.next_into(&mut buf).unwrap(), 0);
    // No piece held more than its cap (plus the row that reached it).
    let widest_row = 2 << 20;
    assert!(p.largest <= CAP_BYTES + widest_row, "{} bytes", p.largest);
    (buf, p.records(), p.first(), p.cursor())
}

/// A CSV scan of `f` on two threads, pieces one millisecond wide.
fn csv_scan(db: PathBuf, f: &Filters) -> Parallel {
    let enc = Encoder::new(Format::Csv, ExportOptions::default());
    Parallel::start(db, f, enc, None, 0, 5, 2, sizing(1))
}

fn sizing(width: i64) -> Sizing {
    Sizing {
        target: 8,
        cap_rows: 16,
        width,
        max_width: 400 * DAY,
    }
}

#[test]
fn pieces_cut_by_time_give_the_one_thread_bytes_whatever_the_estimate() {
    let (_dir, conn, db) = shaped_db();
    let all = filters(&[]);
    let burst_row: i64 = conn
        .query_row(
            "SELECT id FROM audit_logs WHERE organization_id = 'o' AND occurred_at = ?1 \
             ORDER BY id LIMIT 1 OFFSET 60",
            [T0 + 2 * DAY],
            |r| r.get(0),
        )
        .unwrap();
    let cursors = [
        None,
        // Inside the burst, at its last row's instant after another run.
        Some(Cursor {
            occurred_at: T0 + 2 * DAY,
            id: burst_row,
        }),
        // Before every row, and after the last one.
        Some(Cursor {
            occurred_at: T0 - 1,
            id: 0,
        }),
        Some(Cursor {
            occurred_at: T0 + 365 * DAY - 1,
            id: i64::MAX,
        }),
        // After a whole instant mid-range, and at an instant without rows.
        Some(Cursor {
            occurred_at: T0 + 2 * DAY,
            id: i64::MAX,
        }),
        Some(Cursor {
            occurred_at: T0 + 100 * DAY,
            id: 5,
        }),
    ];
    // Every row of the range, none outside it.
    assert_eq!(serial(&conn, &all, Format::Csv, None).1, 853);
    // Widths far too narrow, about right, and the whole year at once.
    for width in [1, 40, 400 * DAY] {
        for threads in [2, 3] {
            for format in [Format::Csv, Format::Json, Format::Jsonl] {
                for after in cursors {
                    let want = serial(&conn, &all, format, after);
                    let got = parallel(&db, &all, format, after, threads, sizing(width));
                    assert!(
                        got == want,
                        "width {width}, {threads} threads, {format:?} after {after:?}: \
                         {} records vs {}",
                        got.1,
                        want.1
                    );
                }
            }
        }
    }
    // A filter that leaves most pieces empty (JSON's first separator).
    let few = filters(&["u_80", "edge"]);
    for width in [1, 40, 400 * DAY] {
        let want = serial(&conn, &few, Format::Json, None);
        assert_eq!(want.1, 3);
        assert!(parallel(&db, &few, Format::Json, None, 2, sizing(width)) == want);
    }
}

#[test]
fn the_first_width_is_measured_from_the_first_slice_of_keys() {
    let (_dir, conn, _db) = shaped_db();
    let f = filters(&[]);
    // 853 rows: less than one slice.
    assert_eq!(Sizing::measure(&conn, &f, None, 2).unwrap(), None);
    let (_dir, mut conn) = crate::db::temp_db();
    let ev: Vec<NewEvent> = (0..2 * SLICE_ROWS as i64)
        .map(|i| event("o", T0 + 1000 + 10 * i, "u"))
        .collect();
    crate::audit::insert::insert_events(&mut conn, &ev).unwrap();
    let s = Sizing::measure(&conn, &f, None, 2).unwrap().unwrap();
    // The 4096th key is 40,950 ms after the first.
    assert_eq!(s.width, 40_951);
    assert_eq!(s.max_width, (365 * DAY - 1000) / 8);
    assert_eq!((s.target, s.cap_rows), (SLICE_ROWS, 2 * SLICE_ROWS));
    // Never wider than a piece may be (here: a quarter of a share of a
    // million threads).
    let many = Sizing::measure(&conn, &f, None, 1_000_000)
        .unwrap()
        .unwrap();
    assert_eq!(many.max_width, (365 * DAY - 1000) / 4_000_000);
    assert_eq!(many.width, many.max_width);
    let resumed = Sizing::measure(
        &conn,
        &f,
        Some(Cursor {
            occurred_at: T0 + 1000 + 10 * 100,
            id: 101,
        }),
        2,
    )
    .unwrap()
    .unwrap();
    // From the cursor's instant to the 4096th key after it (id 4197).
    assert_eq!(resumed.width, 40_961);
}

#[test]
fn the_width_follows_the_rows_found_within_bounds() {
    let mut plan = Plan {
        open: BTreeMap::new(),
        tokens: 1,
        active: 0,
        closed: false,
        sizing: Sizing {
            target: 100,
            cap_rows: 200,
            width: 1000,
            max_width: 5000,
        },
    };
    let piece = Piece {
        after: boundary(0),
        end: 1000,
        empty: false,
    };
    let done = |records, first: i64, last: i64, capped: bool| Done {
        bytes: Vec::new(),
        records,
        first: Some(Cursor {
            occurred_at: first,
            id: 1,
        }),
        last: Some(Cursor {
            occurred_at: last,
            id: 2,
        }),
        upto: if capped {
            Cursor {
                occurred_at: last,
                id: 2,
            }
        } else {
            boundary(1000)
        },
    };
    // 100 rows over 1000 ms: the width was right.
    plan.learn(&piece, &done(100, 0, 999, false));
    assert_eq!(plan.sizing.width, 1000);
    // 200 rows within 10 ms before the cap: an eighth at most at once.
    plan.learn(&piece, &done(200, 0, 9, true));
    assert_eq!(plan.sizing.width, 125);
    // Half as many rows as wanted: half-way to twice as wide.
    plan.sizing.width = 1000;
    plan.learn(&piece, &done(50, 0, 999, false));
    assert_eq!(plan.sizing.width, 1500);
    // Nothing matched: wider, up to the most a piece may span.
    let none = Done {
        first: None,
        last: None,
        ..done(0, 0, 0, false)
    };
    plan.learn(&piece, &none);
    assert_eq!(plan.sizing.width, 5000);
    plan.sizing.width = 1;
    plan.learn(&piece, &done(1000, 0, 0, true));
    assert_eq!(plan.sizing.width, 1, "never below one millisecond");
}

#[test]
fn a_worker_that_cannot_read_fails_the_scan_instead_of_ending_it() {
    let f = filters(&[]);
    let missing = PathBuf::from("/nonexistent/dir/audit-export.db");
    let mut p = csv_scan(missing, &f);
    let mut buf = Vec::new();
    let e = p.next_into(&mut buf).unwrap_err();
    assert!(e.to_string().contains("read connection"), "{e}");
    assert!(buf.is_empty());
}

#[test]
fn rows_larger_than_a_piece_are_cut_by_bytes_and_kept_in_order() {
    let (_dir, mut conn) = crate::db::temp_db();
    // 24 rows of ~1 MiB in three instants: a piece holds four at most.
    let ev: Vec<NewEvent> = (0..24)
        .map(|i| NewEvent {
            details: Some(format!("{{\"pad\":\"{}\"}}", "x".repeat((1 << 20) + i))),
            ..event("o", T0 + DAY + (i as i64 / 8) * 1000, &format!("u_{i}"))
        })
        .collect();
    crate::audit::insert::insert_events(&mut conn, &ev).unwrap();
    let db = PathBuf::from(conn.path().unwrap());
    let f = filters(&[]);
    for format in [Format::Csv, Format::Jsonl] {
        let want = serial(&conn, &f, format, None);
        assert_eq!(want.1, 24);
        assert!(want.0.len() > 4 * CAP_BYTES);
        for width in [1, 400 * DAY] {
            let s = Sizing {
                cap_rows: 1000,
                ..sizing(width)
            };
            assert!(
                parallel(&db, &f, format, None, 2, s) == want,
                "{format:?} {width}"
            );
        }
    }
}

#[test]
fn a_scan_dropped_early_stops_its_workers() {
    let (_dir, _conn, db) = shaped_db();
    let f = filters(&[]);
    let mut p = csv_scan(db, &f);
    let mut buf = Vec::new();
    assert!(p.next_into(&mut buf).unwrap() > 0);
    // The workers wait for tokens the reader will never give back: the
    // drop must still join them (the test would hang otherwise).
    drop(p);
}

#[test]
fn an_error_in_a_later_piece_fails_the_scan_and_stays() {
    let (_dir, conn, db) = shaped_db();
    let f = filters(&[]);
    let mut p = csv_scan(db, &f);
    let mut buf = Vec::new();
    assert!(p.next_into(&mut buf).unwrap() > 0);
    // Pieces read ahead are fine; every later one cannot be read.
    conn.execute_batch("ALTER TABLE audit_logs RENAME TO gone")
        .unwrap();
    let e = loop {
        match p.next_into(&mut buf) {
            Ok(0) => panic!("the scan ended as if complete"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(e.to_string().contains("audit_logs"), "{e}");
    let again = p.next_into(&mut buf).unwrap_err();
    assert_eq!(again.to_string(), e.to_string());
}

#[test]
fn a_panicking_worker_fails_the_scan_instead_of_hanging_it() {
    let (_dir, _conn, db) = shaped_db();
    let f = crate::filters::Filters {
        organization: PANICKING_ORG.into(),
        ..filters(&[])
    };
    let mut p = csv_scan(db, &f);
    let mut buf = Vec::new();
    let e = p.next_into(&mut buf).unwrap_err();
    assert!(e.to_string().contains("panicked"), "{e}");
    assert!(p.next_into(&mut buf).is_err());
}
