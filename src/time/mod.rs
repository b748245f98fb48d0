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
    push_wall_clock(out, ms);
    out.push(b'Z');
}

/// Appends `ms` as the wall-clock time `offset_secs` east of UTC, with the
/// offset: `YYYY-MM-DDTHH:MM:SS.mmm+HH:MM`.
pub fn push_rfc3339_ms_offset(out: &mut Vec<u8>, ms: i64, offset_secs: i32) {
    push_wall_clock(out, ms + offset_secs as i64 * 1000);
    out.push(if offset_secs < 0 { b'-' } else { b'+' });
    let m = offset_secs.unsigned_abs() / 60;
    push_digits(out, m / 60, 2);
    out.push(b':');
    push_digits(out, m % 60, 2);
}

/// The time zone timestamps are rendered in: UTC (`…Z`, the default) or
/// an IANA zone (`…+02:00`). Rows come in time order, so the zone's offset
/// is looked up once per quarter hour (every zone changes its offset on a
/// quarter-hour boundary) rather than once per row.
#[derive(Debug, Clone)]
pub struct Zone {
    tz: Option<chrono_tz::Tz>,
    /// (quarter-hour bucket, offset in seconds) of the last lookup.
    cache: std::cell::Cell<(i64, i32)>,
}

impl Default for Zone {
    fn default() -> Self {
        Zone::utc()
    }
}

impl Zone {
    /// UTC: offset 0, timestamps written with `Z`.
    pub fn utc() -> Zone {
        Zone {
            tz: None,
            cache: std::cell::Cell::new((i64::MIN, 0)),
        }
    }

    /// An IANA zone by name (`Europe/Paris`); `UTC`, `Etc/UTC` and `Z`
    /// are UTC.
    pub fn parse(name: &str) -> Option<Zone> {
        let name = name.trim();
        if matches!(name, "UTC" | "Etc/UTC" | "Z" | "utc") {
            return Some(Zone::utc());
        }
        let tz: chrono_tz::Tz = name.parse().ok()?;
        Some(Zone {
            tz: Some(tz),
            cache: std::cell::Cell::new((i64::MIN, 0)),
        })
    }

    /// The zone's name (`UTC` for UTC).
    pub fn name(&self) -> &'static str {
        self.tz.map_or("UTC", |t| t.name())
    }

    /// Whether this is UTC (no IANA zone).
    pub fn is_utc(&self) -> bool {
        self.tz.is_none()
    }

    /// The offset east of UTC at `ms`, in seconds.
    pub fn offset_secs(&self, ms: i64) -> i32 {
        use chrono::{Offset, TimeZone};
        let Some(tz) = self.tz else { return 0 };
        let bucket = ms.div_euclid(900_000);
        let (b, off) = self.cache.get();
        if b == bucket {
            return off;
        }
        let off = tz
            .timestamp_millis_opt(bucket * 900_000)
            .single()
            .map_or(0, |t| t.offset().fix().local_minus_utc());
        self.cache.set((bucket, off));
        off
    }

    /// Appends `ms` in this zone: `…Z` for UTC, else with the offset.
    pub fn push_rfc3339(&self, out: &mut Vec<u8>, ms: i64) {
        if self.tz.is_none() {
            push_rfc3339_ms(out, ms);
        } else {
            push_rfc3339_ms_offset(out, ms, self.offset_secs(ms));
        }
    }

    /// `ms` in this zone as a string.
    pub fn format(&self, ms: i64) -> String {
        let mut v = Vec::with_capacity(29);
        self.push_rfc3339(&mut v, ms);
        String::from_utf8(v).expect("ASCII")
    }
}

/// Appends `YYYY-MM-DDTHH:MM:SS.mmm` for `ms` taken as wall-clock
/// milliseconds.
fn push_wall_clock(out: &mut Vec<u8>, ms: i64) {
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
    fn zones_render_with_their_offset_across_dst() {
        let paris = Zone::parse("Europe/Paris").unwrap();
        let at = |s: &str| parse_rfc3339_ms(s).unwrap();
        assert_eq!(
            paris.format(at("2026-07-15T12:00:00Z")),
            "2026-07-15T14:00:00.000+02:00"
        );
        assert_eq!(
            paris.format(at("2026-01-15T12:00:00.250Z")),
            "2026-01-15T13:00:00.250+01:00"
        );
        // Both DST changes: the instant before and after each.
        assert_eq!(
            paris.format(at("2026-03-29T00:59:59.999Z")),
            "2026-03-29T01:59:59.999+01:00"
        );
        assert_eq!(
            paris.format(at("2026-03-29T01:00:00Z")),
            "2026-03-29T03:00:00.000+02:00"
        );
        assert_eq!(
            paris.format(at("2026-10-25T00:59:59.999Z")),
            "2026-10-25T02:59:59.999+02:00"
        );
        assert_eq!(
            paris.format(at("2026-10-25T01:00:00Z")),
            "2026-10-25T02:00:00.000+01:00"
        );
        let ny = Zone::parse("America/New_York").unwrap();
        assert_eq!(
            ny.format(at("2026-03-08T07:00:00Z")),
            "2026-03-08T03:00:00.000-04:00"
        );
        assert_eq!(
            ny.format(at("2026-11-01T06:00:00Z")),
            "2026-11-01T01:00:00.000-05:00"
        );
        let kolkata = Zone::parse("Asia/Kolkata").unwrap();
        assert_eq!(kolkata.format(0), "1970-01-01T05:30:00.000+05:30");
        assert_eq!(
            Zone::parse("UTC").unwrap().format(0),
            "1970-01-01T00:00:00.000Z"
        );
        assert!(Zone::parse("Mars/Olympus").is_none());
        // Every rendering parses back to the same instant.
        let mut ms = at("2025-01-01T00:00:00Z");
        while ms < at("2027-01-01T00:00:00Z") {
            assert_eq!(parse_rfc3339_ms(&paris.format(ms)), Some(ms));
            assert_eq!(parse_rfc3339_ms(&ny.format(ms)), Some(ms));
            ms += 3_599_999;
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
