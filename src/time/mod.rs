//! Instants as the engine stores them: `i64` milliseconds since the Unix
//! epoch, UTC. Parses RFC 3339 and bare `YYYY-MM-DD` dates, and formats
//! RFC 3339 with exactly three fractional digits and `Z`.
//!
//! Formatting is on the export hot path (once per row), so it is done by
//! hand with integer arithmetic instead of a format-string interpreter.
//! This module never consults the local time zone. [`Clock`] is the one
//! source of "now".

mod clock;

pub use clock::Clock;

use chrono::{DateTime, NaiveDate};

/// Milliseconds in one day.
pub const DAY_MS: i64 = 86_400_000;

/// Parses an RFC 3339 instant (any offset) into UTC milliseconds,
/// truncating sub-millisecond digits.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let dt = DateTime::parse_from_rfc3339(s).ok()?;
    Some(dt.timestamp_millis())
}

/// Parses a bare `YYYY-MM-DD` date into the UTC milliseconds of its midnight.
pub fn parse_date_ms(s: &str) -> Option<i64> {
    if s.len() != 10 {
        return None;
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// Appends `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn push_rfc3339_ms(out: &mut Vec<u8>, ms: i64) {
    let days = ms.div_euclid(DAY_MS);
    let rem = ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1000;
    let millis = rem % 1000;
    let (hh, mm, ss) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if (0..=9999).contains(&y) {
        push_digits(out, y as u32, 4);
    } else {
        // Outside four-digit years RFC 3339 has no form; keep it readable
        // and round-trippable through chrono rather than panicking.
        out.extend_from_slice(format!("{y:+}").as_bytes());
    }
    out.push(b'-');
    push_digits(out, m, 2);
    out.push(b'-');
    push_digits(out, d, 2);
    out.push(b'T');
    push_digits(out, hh as u32, 2);
    out.push(b':');
    push_digits(out, mm as u32, 2);
    out.push(b':');
    push_digits(out, ss as u32, 2);
    out.push(b'.');
    push_digits(out, millis as u32, 3);
    out.push(b'Z');
}

/// `ms` as an RFC 3339 string (see [`push_rfc3339_ms`]).
pub fn format_rfc3339_ms(ms: i64) -> String {
    let mut v = Vec::with_capacity(24);
    push_rfc3339_ms(&mut v, ms);
    String::from_utf8(v).expect("ASCII")
}

/// `ms` as `YYYY-MM-DD` (the UTC day it falls in).
pub fn format_date(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// A duration for people: the largest whole unit that fits, e.g.
/// `24 hours`, `90 minutes`, `7 days`, `2 seconds` (days from two on: a
/// download window reads better as 24 hours than as 1 day).
pub fn human_duration(secs: u64) -> String {
    let (n, unit) = [(86_400, "day"), (3_600, "hour"), (60, "minute")]
        .into_iter()
        .find(|&(u, _)| secs >= u * if u == 86_400 { 2 } else { 1 } && secs.is_multiple_of(u))
        .map_or((secs, "second"), |(u, name)| (secs / u, name));
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn push_digits(out: &mut Vec<u8>, mut v: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for i in (0..width).rev() {
        out[start + i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
/// Howard Hinnant's `civil_from_days`, exact for the whole i64 day range we use.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {

    #[test]
    fn durations_read_in_the_largest_whole_unit() {
        assert_eq!(human_duration(86_400), "24 hours");
        assert_eq!(human_duration(24 * 3_600 * 7), "7 days");
        assert_eq!(human_duration(3_600), "1 hour");
        assert_eq!(human_duration(5_400), "90 minutes");
        assert_eq!(human_duration(2), "2 seconds");
        assert_eq!(human_duration(0), "0 seconds");
    }
    use super::*;

    #[test]
    fn formats_like_chrono_across_the_range() {
        // Every ~37 hours plus odd milliseconds from 1900 to 2200, compared
        // with chrono's own formatting.
        let mut ms = -2_208_988_800_000i64;
        while ms < 7_258_118_400_000 {
            let ours = format_rfc3339_ms(ms);
            let theirs = DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(ours, theirs, "ms={ms}");
            ms += 133_200_123;
        }
    }

    #[test]
    fn parses_offsets_into_utc() {
        assert_eq!(
            parse_rfc3339_ms("2026-01-05T12:00:00.250+02:00"),
            parse_rfc3339_ms("2026-01-05T10:00:00.250Z")
        );
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("2026-01-05"), None);
        assert_eq!(parse_date_ms("1970-01-02"), Some(DAY_MS));
        assert_eq!(parse_date_ms("2026-02-30"), None);
        assert_eq!(parse_date_ms("2026-1-5"), None);
        assert_eq!(format_date(DAY_MS + 5), "1970-01-02");
    }
}
