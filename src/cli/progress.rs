//! A one-line progress bar on stderr, drawn only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::thousands;

/// Redraw at most this often.
const REDRAW: Duration = Duration::from_millis(200);

pub struct Progress {
    enabled: bool,
    what: &'static str,
    total: Option<u64>,
    start: Instant,
    last: Option<Instant>,
}

impl Progress {
    /// A bar for `what` (e.g. "rows"); `total` is the estimate if known.
    pub fn new(what: &'static str, total: Option<u64>) -> Progress {
        Progress {
            enabled: Self::wanted(),
            what,
            total,
            start: Instant::now(),
            last: None,
        }
    }

    /// Whether a bar would be shown (stderr is a terminal).
    pub fn wanted() -> bool {
        std::io::stderr().is_terminal()
    }

    pub fn update(&mut self, done: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self.last.is_some_and(|t| now - t < REDRAW) {
            return;
        }
        self.last = Some(now);
        let secs = (now - self.start).as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let mut line = match self.total {
            Some(t) if t > 0 => {
                let pct = (done as f64 * 100.0 / t as f64).min(100.0);
                let eta = if rate > 0.0 && t > done {
                    (t - done) as f64 / rate
                } else {
                    0.0
                };
                format!(
                    "{} / {} {} ({pct:.0}%)  {}/s  ETA {eta:.0}s",
                    thousands(done),
                    thousands(t),
                    self.what,
                    thousands(rate as u64)
                )
            }
            _ => format!(
                "{} {}  {}/s",
                thousands(done),
                self.what,
                thousands(rate as u64)
            ),
        };
        line.truncate(100);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    /// Clears the bar so the summary line starts clean.
    pub fn finish(&mut self) {
        if self.enabled && self.last.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
