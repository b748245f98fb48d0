//! The engine's one clock. Every loop and every rule that depends on "now"
//! (the scheduler, leases, crons, outbox backoff, link expiry, clean-up,
//! schedule fires) reads it from a [`Clock`] handed to it, never from the
//! wall clock directly, so tests move time instead of sleeping through it.
//!
//! Two kinds: [`Clock::system`] (the wall clock, tokio timers) and
//! [`Clock::manual`] (a test clock that only moves when told; sleepers wake
//! when it is set past their deadline). This module never decides anything
//! about what time means for a job; it only tells and waits.
//!
//! Elapsed-time measurements that are about performance, not business
//! rules (progress bars, checkpoint pacing), keep using `Instant`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// A source of "now" in engine milliseconds (UTC, since the Unix epoch).
#[derive(Clone)]
pub struct Clock(Kind);

#[derive(Clone)]
enum Kind {
    System,
    /// The current instant; every change wakes the sleepers, which re-check
    /// their deadline.
    Manual(Arc<watch::Sender<i64>>),
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::System => f.write_str("Clock::System"),
            Kind::Manual(t) => write!(f, "Clock::Manual({})", *t.borrow()),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Clock {
        Clock(Kind::System)
    }

    /// A test clock standing at `start_ms` until [`set_ms`](Clock::set_ms)
    /// or [`advance`](Clock::advance) moves it.
    pub fn manual(start_ms: i64) -> Clock {
        Clock(Kind::Manual(Arc::new(watch::Sender::new(start_ms))))
    }

    /// Whether this is a test clock.
    pub fn is_manual(&self) -> bool {
        matches!(self.0, Kind::Manual(_))
    }

    /// Milliseconds since the Unix epoch, now.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Kind::System => chrono::Utc::now().timestamp_millis(),
            Kind::Manual(t) => *t.borrow(),
        }
    }

    /// Moves a test clock to `ms` (backwards too: a test may need to) and
    /// wakes every sleeper. Does nothing to the system clock.
    pub fn set_ms(&self, ms: i64) {
        if let Kind::Manual(t) = &self.0 {
            t.send_replace(ms);
        }
    }

    /// Moves a test clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        if let Kind::Manual(t) = &self.0 {
            t.send_modify(|now| *now += d.as_millis() as i64);
        }
    }

    /// Resolves once the clock reads `at_ms` or later.
    pub async fn sleep_until(&self, at_ms: i64) {
        match &self.0 {
            Kind::System => {
                // Re-check after waking: the wall clock may have been
                // stepped while we slept.
                loop {
                    let left = at_ms - self.now_ms();
                    if left <= 0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(left as u64)).await;
                }
            }
            Kind::Manual(t) => {
                let mut rx = t.subscribe();
                loop {
                    if *rx.borrow_and_update() >= at_ms {
                        return;
                    }
                    if rx.changed().await.is_err() {
                        // The clock is gone with its engine: nobody can
                        // ever move it again.
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    /// Resolves once `d` has passed on this clock.
    pub async fn sleep(&self, d: Duration) {
        self.sleep_until(self.now_ms().saturating_add(d.as_millis() as i64))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_only_when_moved_past_their_deadline() {
        let clock = Clock::manual(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        let c = clock.clone();
        let sleeper = tokio::spawn(async move {
            c.sleep(Duration::from_secs(60)).await;
            c.now_ms()
        });
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sleeper.is_finished(), "woke before its deadline");
        clock.set_ms(61_000);
        let woke_at = tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woke once the deadline passed")
            .unwrap();
        assert_eq!(woke_at, 61_000);
    }

    #[tokio::test]
    async fn the_system_clock_reads_the_wall_clock() {
        let c = Clock::system();
        let before = chrono::Utc::now().timestamp_millis();
        let now = c.now_ms();
        assert!((now - before).abs() < 1_000);
        c.set_ms(0); // no effect on the wall clock
        assert!(c.now_ms() >= before);
        let t = std::time::Instant::now();
        c.sleep(Duration::from_millis(30)).await;
        assert!(t.elapsed() >= Duration::from_millis(25));
    }
}
