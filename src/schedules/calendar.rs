//! Time in a schedule's zone: when a crontab line fires, and which period a
//! relative range covers. Pure functions over instants (UTC milliseconds);
//! no clock, no I/O.
//!
//! Fire times follow the zone's wall clock: the crontab line is matched
//! against local times, then each local time becomes an instant. A local
//! time that does not exist (the hour skipped when clocks spring forward)
//! fires once, at the first valid instant after it (the transition); a
//! local time that exists twice (the hour repeated when clocks fall back)
//! fires once, at its first occurrence.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike};
use chrono_tz::Tz;

/// A crontab line: 5 fields (minute hour day-of-month month day-of-week,
/// crontab semantics: 0 and 7 are Sunday) or `@hourly`, `@daily`,
/// `@weekly` (Sunday 00:00), `@monthly`.
#[derive(Debug, Clone)]
pub struct CronLine {
    cron: croner::Cron,
    text: String,
}

impl CronLine {
    /// Parses a 5-field line or one of the nicknames (surrounding space
    /// ignored); the error message quotes the line.
    pub fn parse(line: &str) -> Result<CronLine, String> {
        let text = line.trim();
        let fields = text.split_whitespace().count();
        let nickname = matches!(text, "@hourly" | "@daily" | "@weekly" | "@monthly");
        if !nickname && fields != 5 {
            return Err(format!(
                "{text:?} is not a 5-field crontab line (minute hour day-of-month month day-of-week) \
                 nor one of @hourly, @daily, @weekly, @monthly"
            ));
        }
        let cron = croner::Cron::from_str(text)
            .map_err(|e| format!("{text:?} is not a valid crontab line: {e}"))?;
        Ok(CronLine {
            cron,
            text: text.to_string(),
        })
    }

    /// The line as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first fire strictly after `after_ms`, in zone `tz`.
    pub fn next_after(&self, tz: Tz, after_ms: i64) -> Option<i64> {
        let after = tz.timestamp_millis_opt(after_ms).single()?;
        let mut local = after.naive_local();
        // A few years of candidates at most (a line that never matches,
        // like 31 February, has croner return an error first).
        for _ in 0..100_000 {
            let next: NaiveDateTime = self.cron.find_next_occurrence(&local, false).ok()?;
            let at = instant(tz, next)?;
            if at > after_ms {
                return Some(at);
            }
            // The first occurrence of a repeated local time already passed
            // (we are in the repeated hour): this one was fired then.
            local = next;
        }
        None
    }

    /// The fires in `(after_ms, until_ms]`, oldest first, at most `max`
    /// (the newest are kept when there are more).
    pub fn fires_between(&self, tz: Tz, after_ms: i64, until_ms: i64, max: usize) -> Vec<i64> {
        let mut out = std::collections::VecDeque::new();
        let mut t = after_ms;
        while let Some(next) = self.next_after(tz, t) {
            if next > until_ms {
                break;
            }
            if out.len() == max {
                out.pop_front();
            }
            out.push_back(next);
            t = next;
        }
        out.into()
    }
}

/// The instant of a local wall time: its first occurrence if it repeats,
/// the transition instant if it falls in a gap.
pub fn instant(tz: Tz, local: NaiveDateTime) -> Option<i64> {
    if let Some(dt) = tz.from_local_datetime(&local).earliest() {
        return Some(dt.timestamp_millis());
    }
    // In a gap: the first valid local minute after it is where the clocks
    // jumped to; the transition happened at that instant.
    let mut probe = local;
    for _ in 0..(26 * 60) {
        probe += Duration::minutes(1);
        let probe_start = probe.with_second(0)?.with_nanosecond(0)?;
        if let Some(dt) = tz.from_local_datetime(&probe_start).earliest() {
            return Some(dt.timestamp_millis());
        }
    }
    None
}

/// A period relative to the fire time, computed in the schedule's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelativeRange {
    /// The last complete local hour before the fire.
    PreviousHour,
    /// The day before the fire's, local midnight to midnight.
    PreviousDay,
    /// The last complete week, Monday 00:00 to Monday 00:00.
    PreviousWeek,
    /// The month before the fire's, from its first day 00:00 to the fire
    /// month's first day 00:00.
    PreviousMonth,
    /// The 24 hours (86,400,000 ms) up to the fire.
    Last24Hours,
    /// From the same local time 7 days before, up to the fire.
    Last7Days,
    /// From the same local time 30 days before, up to the fire.
    Last30Days,
}

impl RelativeRange {
    /// Every range's name (as written in a schedule file), in declaration order.
    pub const NAMES: [&'static str; 7] = [
        "previous_hour",
        "previous_day",
        "previous_week",
        "previous_month",
        "last_24_hours",
        "last_7_days",
        "last_30_days",
    ];

    /// The range of this exact name, e.g. `previous_day`.
    pub fn parse(s: &str) -> Option<RelativeRange> {
        use RelativeRange::*;
        Some(match s {
            "previous_hour" => PreviousHour,
            "previous_day" => PreviousDay,
            "previous_week" => PreviousWeek,
            "previous_month" => PreviousMonth,
            "last_24_hours" => Last24Hours,
            "last_7_days" => Last7Days,
            "last_30_days" => Last30Days,
            _ => return None,
        })
    }

    /// The range's name, e.g. `previous_day`.
    pub fn as_str(self) -> &'static str {
        use RelativeRange::*;
        match self {
            PreviousHour => "previous_hour",
            PreviousDay => "previous_day",
            PreviousWeek => "previous_week",
            PreviousMonth => "previous_month",
            Last24Hours => "last_24_hours",
            Last7Days => "last_7_days",
            Last30Days => "last_30_days",
        }
    }

    /// The half-open period `[start, end)` (UTC milliseconds) this range
    /// covers for a fire at `fire_ms` in zone `tz`.
    pub fn period(self, tz: Tz, fire_ms: i64) -> Option<(i64, i64)> {
        use RelativeRange::*;
        let fire: DateTime<Tz> = tz.timestamp_millis_opt(fire_ms).single()?;
        let local = fire.naive_local();
        let midnight = |d: NaiveDate| instant(tz, d.and_hms_opt(0, 0, 0)?);
        let today = local.date();
        Some(match self {
            PreviousHour => {
                // The local hour in progress, with the fire's own offset
                // (offsets change on hour boundaries, so it is constant
                // within the hour), then the hour before it...
                let offset = fire.offset().fix().local_minus_utc() as i64 * 1000;
                let local_ms = fire_ms + offset;
                let end = local_ms - local_ms.rem_euclid(3_600_000) - offset;
                // ...from its first pass when clocks fell back: an hourly
                // line fires once per wall time, so the repeated hour's
                // second pass has no fire of its own and the next one
                // covers both (as a 25-hour day is one previous_day).
                let before = end - 3_600_000;
                let wall =
                    tz.timestamp_millis_opt(end).single()?.naive_local() - Duration::hours(1);
                let second_pass = tz.timestamp_millis_opt(before).single()?.naive_local() == wall;
                let start = match tz.from_local_datetime(&wall).earliest() {
                    Some(first) if second_pass => first.timestamp_millis().min(before),
                    _ => before,
                };
                (start, end)
            }
            PreviousDay => (midnight(today.pred_opt()?)?, midnight(today)?),
            PreviousWeek => {
                let monday = today - Duration::days(today.weekday().num_days_from_monday() as i64);
                (midnight(monday - Duration::days(7))?, midnight(monday)?)
            }
            PreviousMonth => {
                let first = NaiveDate::from_ymd_opt(today.year(), today.month(), 1)?;
                let prev = if today.month() == 1 {
                    NaiveDate::from_ymd_opt(today.year() - 1, 12, 1)?
                } else {
                    NaiveDate::from_ymd_opt(today.year(), today.month() - 1, 1)?
                };
                (midnight(prev)?, midnight(first)?)
            }
            Last24Hours => (fire_ms - 86_400_000, fire_ms),
            Last7Days => (instant(tz, local - Duration::days(7))?, fire_ms),
            Last30Days => (instant(tz, local - Duration::days(30))?, fire_ms),
        })
    }
}

/// `ms` as RFC 3339 in zone `tz` with its offset, e.g.
/// `2026-03-29T03:00:00+02:00`.
pub fn local_rfc3339(tz: Tz, ms: i64) -> String {
    match tz.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        None => crate::time::format_rfc3339_ms(ms),
    }
}

/// Parses an IANA zone name (`Europe/Paris`, `UTC`).
pub fn zone(name: &str) -> Option<Tz> {
    name.trim().parse::<Tz>().ok()
}

#[cfg(test)]
mod tests;
