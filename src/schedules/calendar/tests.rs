//! Fire instants and periods across both DST changes in Paris and New
//! York, month ends, leap years, and Monday-start weeks.

use super::*;

fn at(s: &str) -> i64 {
    crate::time::parse_rfc3339_ms(s).unwrap()
}

fn paris() -> Tz {
    zone("Europe/Paris").unwrap()
}

fn new_york() -> Tz {
    zone("America/New_York").unwrap()
}

fn fires(line: &str, tz: Tz, from: &str, n: usize) -> Vec<String> {
    let c = CronLine::parse(line).unwrap();
    let mut t = at(from);
    (0..n)
        .map(|_| {
            t = c.next_after(tz, t).unwrap();
            local_rfc3339(tz, t)
        })
        .collect()
}

fn period(r: &str, tz: Tz, fire: &str) -> (String, String) {
    let (a, b) = RelativeRange::parse(r)
        .unwrap()
        .period(tz, at(fire))
        .unwrap();
    (local_rfc3339(tz, a), local_rfc3339(tz, b))
}

#[test]
fn a_fire_in_the_spring_forward_gap_runs_once_at_the_first_valid_instant() {
    // Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST.
    assert_eq!(
        fires("30 2 * * *", paris(), "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00"
        ]
    );
    // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    assert_eq!(
        fires("0 2 * * *", new_york(), "2026-03-07T12:00:00Z", 2),
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"]
    );
}

#[test]
fn a_repeated_local_time_on_fall_back_fires_once() {
    // Paris, 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    assert_eq!(
        fires("30 2 * * *", paris(), "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    );
    // New York, 2026-11-01: 01:00-02:00 happens twice; hourly fires once per wall time.
    assert_eq!(
        fires("0 * * * *", new_york(), "2026-11-01T04:30:00Z", 3),
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T02:00:00-05:00",
            "2026-11-01T03:00:00-05:00"
        ]
    );
    // Asking from inside the repeated hour does not fire its first half again.
    let c = CronLine::parse("30 1 * * *").unwrap();
    let second_pass = at("2026-11-01T06:10:00Z"); // 01:10 EST, the repeat
    assert_eq!(
        local_rfc3339(new_york(), c.next_after(new_york(), second_pass).unwrap()),
        "2026-11-02T01:30:00-05:00"
    );
}

#[test]
fn nicknames_month_ends_and_crontab_weekdays() {
    // @weekly is Sunday 00:00 in the zone.
    assert_eq!(
        fires("@weekly", paris(), "2026-11-25T12:00:00Z", 1),
        ["2026-11-29T00:00:00+01:00"]
    );
    assert_eq!(
        fires("@monthly", new_york(), "2026-01-31T12:00:00Z", 2),
        ["2026-02-01T00:00:00-05:00", "2026-03-01T00:00:00-05:00"]
    );
    // The 31st skips the months without one.
    assert_eq!(
        fires("0 6 31 * *", paris(), "2026-04-01T00:00:00Z", 2),
        ["2026-05-31T06:00:00+02:00", "2026-07-31T06:00:00+02:00"]
    );
    // 1 = Monday, 0 and 7 = Sunday.
    assert_eq!(
        fires("0 9 * * 1", paris(), "2026-11-25T00:00:00Z", 1),
        ["2026-11-30T09:00:00+01:00"]
    );
    assert_eq!(
        fires("0 9 * * 7", paris(), "2026-11-25T00:00:00Z", 1),
        ["2026-11-29T09:00:00+01:00"]
    );
    for bad in [
        "0 9 * *",
        "0 0 9 * * 1",
        "61 * * * *",
        "@yearly",
        "every day",
    ] {
        assert!(CronLine::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn fires_between_keeps_the_newest_when_capped() {
    let c = CronLine::parse("0 * * * *").unwrap();
    let utc = zone("UTC").unwrap();
    let all = c.fires_between(
        utc,
        at("2026-01-01T00:30:00Z"),
        at("2026-01-01T05:00:00Z"),
        100,
    );
    assert_eq!(all.len(), 5);
    let capped = c.fires_between(
        utc,
        at("2026-01-01T00:30:00Z"),
        at("2026-01-01T05:00:00Z"),
        2,
    );
    assert_eq!(
        capped,
        vec![at("2026-01-01T04:00:00Z"), at("2026-01-01T05:00:00Z")]
    );
}

#[test]
fn previous_day_is_the_local_calendar_day_across_dst() {
    let p = paris();
    assert_eq!(
        period("previous_day", p, "2026-03-29T04:00:00Z"),
        (
            "2026-03-28T00:00:00+01:00".into(),
            "2026-03-29T00:00:00+01:00".into()
        )
    );
    // The day clocks sprang forward has 23 hours…
    let (a, b) = RelativeRange::PreviousDay
        .period(p, at("2026-03-30T04:00:00Z"))
        .unwrap();
    assert_eq!(b - a, 23 * 3_600_000);
    assert_eq!(local_rfc3339(p, b), "2026-03-30T00:00:00+02:00");
    // …the day they fell back, 25.
    let (a, b) = RelativeRange::PreviousDay
        .period(p, at("2026-10-26T05:00:00Z"))
        .unwrap();
    assert_eq!(b - a, 25 * 3_600_000);
    assert_eq!(
        period("previous_day", new_york(), "2026-11-02T11:00:00Z"),
        (
            "2026-11-01T00:00:00-04:00".into(),
            "2026-11-02T00:00:00-05:00".into()
        )
    );
}

#[test]
fn previous_week_starts_on_monday_in_the_zone() {
    // A Wednesday in Paris.
    assert_eq!(
        period("previous_week", paris(), "2026-11-25T08:00:00Z"),
        (
            "2026-11-16T00:00:00+01:00".into(),
            "2026-11-23T00:00:00+01:00".into()
        )
    );
    // Monday 00:30 in Paris is still Sunday in UTC: the zone decides.
    assert_eq!(
        period("previous_week", paris(), "2026-11-22T23:30:00Z"),
        (
            "2026-11-16T00:00:00+01:00".into(),
            "2026-11-23T00:00:00+01:00".into()
        )
    );
    // A week with the fall-back change in it: 7 days and one hour.
    let (a, b) = RelativeRange::PreviousWeek
        .period(paris(), at("2026-10-26T05:00:00Z"))
        .unwrap();
    assert_eq!(local_rfc3339(paris(), a), "2026-10-19T00:00:00+02:00");
    assert_eq!(local_rfc3339(paris(), b), "2026-10-26T00:00:00+01:00");
    assert_eq!(b - a, (7 * 24 + 1) * 3_600_000);
}

#[test]
fn previous_month_handles_leap_february_and_the_year_end() {
    assert_eq!(
        period("previous_month", new_york(), "2028-03-01T05:30:00Z"),
        (
            "2028-02-01T00:00:00-05:00".into(),
            "2028-03-01T00:00:00-05:00".into()
        )
    );
    let (a, b) = RelativeRange::PreviousMonth
        .period(new_york(), at("2028-03-01T05:30:00Z"))
        .unwrap();
    assert_eq!(b - a, 29 * 86_400_000, "leap February has 29 days");
    let (a, b) = RelativeRange::PreviousMonth
        .period(new_york(), at("2027-03-01T05:30:00Z"))
        .unwrap();
    assert_eq!(b - a, 28 * 86_400_000);
    assert_eq!(
        period("previous_month", paris(), "2026-01-01T08:00:00Z"),
        (
            "2025-12-01T00:00:00+01:00".into(),
            "2026-01-01T00:00:00+01:00".into()
        )
    );
    // Fired at 00:30 on the 1st in Paris, which is still the 31st in UTC.
    assert_eq!(
        period("previous_month", paris(), "2026-05-31T22:30:00Z"),
        (
            "2026-05-01T00:00:00+02:00".into(),
            "2026-06-01T00:00:00+02:00".into()
        )
    );
}

#[test]
fn hours_and_rolling_ranges() {
    // The repeated hour in New York (01:00-02:00 twice): the fire at 02:00
    // EST covers both passes, the one at 01:00 EDT the hour before.
    assert_eq!(
        period("previous_hour", new_york(), "2026-11-01T07:00:00Z"),
        (
            "2026-11-01T01:00:00-04:00".into(),
            "2026-11-01T02:00:00-05:00".into()
        )
    );
    assert_eq!(
        period("previous_hour", new_york(), "2026-11-01T05:00:00Z"),
        (
            "2026-11-01T00:00:00-04:00".into(),
            "2026-11-01T01:00:00-04:00".into()
        )
    );
    // A run at 01:30 EST (the second pass): the hour before is the first.
    assert_eq!(
        period("previous_hour", new_york(), "2026-11-01T06:30:00Z"),
        (
            "2026-11-01T01:00:00-04:00".into(),
            "2026-11-01T01:00:00-05:00".into()
        )
    );
    // An hourly line's periods tile time with no gap and no overlap, across
    // fall-back and spring-forward.
    let hourly = CronLine::parse("0 * * * *").unwrap();
    for (from, to) in [
        ("2026-10-31T12:00:00Z", "2026-11-02T12:00:00Z"),
        ("2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z"),
    ] {
        let fires = hourly.fires_between(new_york(), at(from), at(to), 1000);
        assert!(fires.len() >= 46, "{}", fires.len());
        let periods: Vec<(i64, i64)> = fires
            .iter()
            .map(|&f| RelativeRange::PreviousHour.period(new_york(), f).unwrap())
            .collect();
        for (k, w) in periods.windows(2).enumerate() {
            assert_eq!(
                w[0].1, w[1].0,
                "gap or overlap before fire {k} after {from}"
            );
            assert_eq!(w[1].1, fires[k + 1], "a period ends at its fire");
        }
    }
    // A half-hour zone: local hours, not UTC ones.
    assert_eq!(
        period(
            "previous_hour",
            zone("Asia/Kolkata").unwrap(),
            "2026-01-01T05:15:00Z"
        ),
        (
            "2026-01-01T09:00:00+05:30".into(),
            "2026-01-01T10:00:00+05:30".into()
        )
    );
    let fire = at("2026-03-31T10:00:00Z");
    let (a, b) = RelativeRange::Last24Hours.period(paris(), fire).unwrap();
    assert_eq!((a, b), (fire - 86_400_000, fire));
    // Seven local days back from 12:00 CEST is 12:00 CET: 167 hours.
    let (a, b) = RelativeRange::Last7Days.period(paris(), fire).unwrap();
    assert_eq!(local_rfc3339(paris(), a), "2026-03-24T12:00:00+01:00");
    assert_eq!(b - a, 167 * 3_600_000);
    let (a, _) = RelativeRange::Last30Days.period(paris(), fire).unwrap();
    assert_eq!(local_rfc3339(paris(), a), "2026-03-01T12:00:00+01:00");
    assert!(RelativeRange::parse("yesterday").is_none());
}
