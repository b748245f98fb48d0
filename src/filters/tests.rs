//! Validation, canonical form and hash of filters.

use super::*;
use FilterErrorCode as C;

fn base() -> FilterInput {
    FilterInput {
        organization: Some("acme".into()),
        from: Some("2025-01-01".into()),
        to: Some("2025-01-31".into()),
        ..Default::default()
    }
}

fn code(input: FilterInput) -> FilterErrorCode {
    input.validate(&Limits::default()).unwrap_err().code
}

#[test]
fn bare_to_date_includes_the_whole_day_half_open() {
    let f = base().validate(&Limits::default()).unwrap();
    assert_eq!(f.from_ms, time::parse_date_ms("2025-01-01").unwrap());
    assert_eq!(f.to_ms, time::parse_date_ms("2025-02-01").unwrap());
}

#[test]
fn instant_to_is_inclusive_of_its_millisecond() {
    let mut i = base();
    i.to = Some("2025-01-05T10:00:00.500+01:00".into());
    let f = i.validate(&Limits::default()).unwrap();
    assert_eq!(
        f.to_ms,
        time::parse_rfc3339_ms("2025-01-05T09:00:00.501Z").unwrap()
    );
}

#[test]
fn same_set_in_any_order_gives_the_same_hash() {
    let mut a = base();
    a.actors = vec!["u_2".into(), "ada@acme.example".into(), "u_1".into()];
    a.actions = vec![
        "user.*".into(),
        "page.updated".into(),
        "role.assigned".into(),
    ];
    a.streams = vec!["scim".into(), "audit".into()];
    let mut b = base();
    b.actors = vec![
        " u_1".into(),
        "u_2".into(),
        "ada@acme.example".into(),
        "u_1".into(),
    ];
    b.actions = vec![
        "role.assigned".into(),
        "user.*".into(),
        "page.updated".into(),
    ];
    b.streams = vec!["audit".into(), "scim".into(), "audit".into()];
    // The same range, spelled as instants with another offset.
    b.from = Some("2025-01-01T01:00:00+01:00".into());
    b.to = Some("2025-01-31T23:59:59.999Z".into());
    let fa = a.validate(&Limits::default()).unwrap();
    let fb = b.validate(&Limits::default()).unwrap();
    assert_eq!(fa.canonical_json(), fb.canonical_json());
    assert_eq!(fa.hash(), fb.hash());
    assert_eq!(fa.hash().len(), 64);
}

#[test]
fn different_sets_give_different_hashes() {
    let fa = base().validate(&Limits::default()).unwrap();
    let mut b = base();
    b.q = Some("x".into());
    let fb = b.validate(&Limits::default()).unwrap();
    let mut c = base();
    c.actions = vec!["user.login".into()];
    let fc = c.validate(&Limits::default()).unwrap();
    let mut d = base();
    d.actions = vec!["user.login*".into()];
    let fd = d.validate(&Limits::default()).unwrap();
    let hashes = [fa.hash(), fb.hash(), fc.hash(), fd.hash()];
    for i in 0..hashes.len() {
        for j in i + 1..hashes.len() {
            assert_ne!(hashes[i], hashes[j]);
        }
    }
}

#[test]
fn canonical_json_round_trips() {
    let mut a = base();
    a.actors = vec!["u_1".into()];
    a.actions = vec!["user.*".into()];
    a.target_type = Some("page".into());
    a.target_id = Some("p_9".into());
    a.streams = vec!["audit".into()];
    a.q = Some("50%_off".into());
    a.to = Some("2025-01-05T10:00:00.123Z".into());
    let f = a.validate(&Limits::default()).unwrap();
    let back = Filters::from_canonical_json(&f.canonical_json(), &Limits::default()).unwrap();
    assert_eq!(back, f);
}

#[test]
fn every_error_code_is_reachable() {
    let mut seen = std::collections::HashSet::new();
    let mut check = |input: FilterInput, expected: FilterErrorCode| {
        assert_eq!(code(input), expected);
        seen.insert(expected);
    };
    check(
        FilterInput {
            organization: None,
            ..base()
        },
        C::OrganizationRequired,
    );
    check(
        FilterInput {
            organization: Some("  ".into()),
            ..base()
        },
        C::OrganizationRequired,
    );
    check(
        FilterInput {
            organization: Some("a\u{0}b".into()),
            ..base()
        },
        C::InvalidOrganization,
    );
    check(
        FilterInput {
            from: None,
            ..base()
        },
        C::FromRequired,
    );
    check(FilterInput { to: None, ..base() }, C::ToRequired);
    check(
        FilterInput {
            from: Some("2025-13-01".into()),
            ..base()
        },
        C::InvalidFrom,
    );
    check(
        FilterInput {
            from: Some("yesterday".into()),
            ..base()
        },
        C::InvalidFrom,
    );
    check(
        FilterInput {
            to: Some("2025/01/31".into()),
            ..base()
        },
        C::InvalidTo,
    );
    check(
        FilterInput {
            from: Some("2025-02-01".into()),
            ..base()
        },
        C::RangeReversed,
    );
    check(
        FilterInput {
            to: Some("2026-01-02".into()),
            ..base()
        },
        C::RangeTooLong,
    );
    check(
        FilterInput {
            actors: vec!["".into()],
            ..base()
        },
        C::InvalidActor,
    );
    check(
        FilterInput {
            actions: vec!["*".into()],
            ..base()
        },
        C::InvalidAction,
    );
    check(
        FilterInput {
            actions: vec!["us*er".into()],
            ..base()
        },
        C::InvalidAction,
    );
    check(
        FilterInput {
            streams: vec!["a b".into()],
            ..base()
        },
        C::InvalidStream,
    );
    check(
        FilterInput {
            target_type: Some(" ".into()),
            ..base()
        },
        C::InvalidTargetType,
    );
    check(
        FilterInput {
            target_type: Some("page".into()),
            target_id: Some("".into()),
            ..base()
        },
        C::InvalidTargetId,
    );
    check(
        FilterInput {
            target_id: Some("p_1".into()),
            ..base()
        },
        C::TargetIdWithoutType,
    );
    check(
        FilterInput {
            q: Some("x".repeat(MAX_Q_CHARS + 1)),
            ..base()
        },
        C::InvalidQuery,
    );
    check(
        FilterInput {
            actors: (0..=MAX_LIST_VALUES).map(|i| i.to_string()).collect(),
            ..base()
        },
        C::TooManyValues,
    );
    for c in FilterErrorCode::ALL {
        assert!(seen.contains(&c), "no test reaches {}", c.as_str());
    }
}

#[test]
fn range_limit_is_configurable_and_a_leap_year_fits() {
    let leap = FilterInput {
        from: Some("2024-01-01".into()),
        to: Some("2024-12-31".into()),
        ..base()
    };
    assert!(leap.validate(&Limits::default()).is_ok());
    assert_eq!(
        leap.validate(&Limits { max_span_days: 30 })
            .unwrap_err()
            .code,
        C::RangeTooLong
    );
    // A single day (from == to as dates) is a valid, non-empty range.
    let day = FilterInput {
        from: Some("2024-03-01".into()),
        to: Some("2024-03-01".into()),
        ..base()
    };
    let f = day.validate(&Limits::default()).unwrap();
    assert_eq!(f.to_ms - f.from_ms, DAY_MS);
}

#[test]
fn empty_q_means_no_text_filter() {
    let f = FilterInput {
        q: Some("   ".into()),
        ..base()
    }
    .validate(&Limits::default())
    .unwrap();
    assert_eq!(f.q, None);
}
