//! Crontab schedules for the maintenance services: parsing (standard
//! 5-field lines and `@hourly`-style nicknames, via croner) and the thin
//! loop that runs a task at every fire time, on the engine's clock.

use std::future::Future;
use std::str::FromStr;

use tokio_util::sync::CancellationToken;

use crate::time::Clock;

/// A parsed crontab line, evaluated in UTC.
#[derive(Debug, Clone)]
pub struct Schedule(croner::Cron);

impl Schedule {
    /// Parses a 5-field crontab line or a nickname such as `@hourly`; the
    /// error message quotes the line.
    pub fn parse(line: &str) -> Result<Schedule, String> {
        croner::Cron::from_str(line.trim())
            .map(Schedule)
            .map_err(|e| format!("invalid cron schedule {line:?}: {e}"))
    }

    /// The first fire time strictly after `after_ms` (UTC milliseconds).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let t = chrono::DateTime::from_timestamp_millis(after_ms)?;
        self.0
            .find_next_occurrence(&t, false)
            .ok()
            .map(|n| n.timestamp_millis())
    }
}

/// Runs `task(now)` at every fire time of `schedule` until shutdown.
pub async fn every<F, Fut>(
    name: &'static str,
    schedule: Schedule,
    clock: Clock,
    shutdown: CancellationToken,
    mut task: F,
) where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        let Some(next) = schedule.next_after(clock.now_ms()) else {
            tracing::error!(name, "cron schedule has no next fire time; stopping it");
            return;
        };
        tokio::select! {
            _ = clock.sleep_until(next) => task(clock.now_ms()).await,
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        crate::time::parse_rfc3339_ms(s).unwrap()
    }

    #[test]
    fn crontab_lines_have_crontab_semantics() {
        // Monday 09:00: 2026-11-23 is a Monday.
        let s = Schedule::parse("0 9 * * 1").unwrap();
        assert_eq!(
            s.next_after(at("2026-11-22T12:00:00Z")),
            Some(at("2026-11-23T09:00:00Z"))
        );
        // 0 and 7 are both Sunday.
        for line in ["30 6 * * 0", "30 6 * * 7"] {
            let s = Schedule::parse(line).unwrap();
            assert_eq!(
                s.next_after(at("2026-11-23T00:00:00Z")),
                Some(at("2026-11-29T06:30:00Z")),
                "{line}"
            );
        }
        let hourly = Schedule::parse("0 * * * *").unwrap();
        assert_eq!(
            hourly.next_after(at("2026-11-23T10:00:00Z")),
            Some(at("2026-11-23T11:00:00Z"))
        );
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("not a schedule").is_err());
    }

    #[tokio::test]
    async fn a_task_fires_when_the_clock_reaches_its_time() {
        let clock = Clock::manual(at("2026-11-23T10:00:30Z"));
        let fired = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let f = fired.clone();
        let task = tokio::spawn(every(
            "test",
            Schedule::parse("* * * * *").unwrap(),
            clock.clone(),
            shutdown.clone(),
            move |now| {
                f.lock().unwrap().push(now);
                async {}
            },
        ));
        tokio::task::yield_now().await;
        assert!(fired.lock().unwrap().is_empty());
        clock.set_ms(at("2026-11-23T10:01:00Z"));
        for _ in 0..100 {
            if !fired.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(*fired.lock().unwrap(), vec![at("2026-11-23T10:01:00Z")]);
        shutdown.cancel();
        task.await.unwrap();
    }
}
