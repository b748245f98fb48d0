use super::*;

#[test]
fn like_wildcards_are_escaped() {
    assert_eq!(escape_like(r"50%_off\"), r"50\%\_off\\");
}

#[test]
fn the_page_query_walks_the_time_index_without_sorting() {
    let dir = tempfile::tempdir().unwrap();
    let conn = crate::db::open_data_dir(dir.path()).unwrap();
    let f = crate::filters::FilterInput {
        organization: Some("o".into()),
        from: Some("2025-01-01".into()),
        to: Some("2025-12-31".into()),
        actors: vec!["u".into()],
        actions: vec!["user.*".into(), "a".into()],
        q: Some("x".into()),
        ..Default::default()
    }
    .validate(&Default::default())
    .unwrap();
    let scan = Scan::new(&f, 10);
    let mut params = scan.params.clone();
    params.extend([Value::Integer(0), Value::Integer(0), Value::Integer(10)]);
    let mut st = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", scan.sql))
        .unwrap();
    let plan: Vec<String> = st
        .query_map(rusqlite::params_from_iter(params.iter()), |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("audit_logs_org_time"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "page query sorts: {plan}");
}

#[test]
fn slice_bounds_are_every_nth_key_after_any_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let conn = crate::db::open_data_dir(dir.path()).unwrap();
    // Runs of rows sharing an instant, another organization's rows
    // between them, and rows on both sides of the range.
    let mut keys = Vec::new();
    for id in 1..=400i64 {
        let at = 1_000 + id / 7;
        let org = if id % 5 == 0 { "p" } else { "o" };
        conn.execute(
            "INSERT INTO audit_logs (id, occurred_at, organization_id, stream, action) \
             VALUES (?, ?, ?, 's', 'a')",
            rusqlite::params![id, at, org],
        )
        .unwrap();
        if org == "o" && (1_005..1_050).contains(&at) {
            keys.push(Cursor {
                occurred_at: at,
                id,
            });
        }
    }
    let f = crate::filters::Filters {
        organization: "o".into(),
        from_ms: 1_005,
        to_ms: 1_050,
        actors: vec![],
        actions: vec![],
        target_type: None,
        target_id: None,
        streams: vec![],
        q: None,
    };
    let afters = [
        None,
        Some(keys[0]),
        Some(keys[10]),
        Some(keys[11]),
        keys.last().copied(),
    ];
    for after in afters {
        let rest: Vec<Cursor> = keys.iter().copied().filter(|k| Some(*k) > after).collect();
        for every in [1, 3, 7, 1_000] {
            let mut got = Vec::new();
            let walked = slice_bounds(&conn, &f, after, every, |k| {
                got.push(k);
                true
            })
            .unwrap();
            assert_eq!(walked, rest.len() as u64, "{after:?} {every}");
            let want: Vec<Cursor> = rest
                .iter()
                .copied()
                .skip(every as usize - 1)
                .step_by(every as usize)
                .collect();
            assert_eq!(got, want, "{after:?} every {every}");
        }
        // Stopping at the first bound stops the walk.
        let mut calls = 0;
        slice_bounds(&conn, &f, after, 2, |_| {
            calls += 1;
            false
        })
        .unwrap();
        assert_eq!(calls, usize::from(rest.len() >= 2));
    }
}
