//! Retries of transient storage errors inside one operation (opendal's
//! retry layer), spread over about `[storage] retry_secs`, each logged.

/// The waits (seconds, before jitter) between retries that add up to at
/// least `secs`: 1, 2, 4, 8, 16, then 20 each.
fn retry_delays(secs: u64) -> Vec<u64> {
    let (mut total, mut delay, mut out) = (0u64, 1u64, Vec::new());
    while total < secs {
        out.push(delay);
        total += delay;
        delay = (delay * 2).min(20);
    }
    out
}

/// The retries of transient errors, spread over about `secs` seconds:
/// exponential from 1 s, at most 20 s apart. No jitter: it would stretch
/// the window by up to half again (an outage of 120 s was retried for
/// over 200 s), and one process's few uploads need no spreading.
pub(super) fn retry_layer(
    secs: u64,
) -> Option<opendal::layers::RetryLayer<impl opendal::layers::RetryInterceptor>> {
    if secs == 0 {
        return None;
    }
    let times = retry_delays(secs).len();
    Some(
        opendal::layers::RetryLayer::new()
            .with_factor(2.0)
            .with_min_delay(std::time::Duration::from_secs(1))
            .with_max_delay(std::time::Duration::from_secs(20))
            .with_max_times(times)
            .with_notify(|e: opendal::layers::RetryEvent<'_>| {
                tracing::warn!(
                    op = %e.op,
                    attempt = e.attempt,
                    retry_in_ms = e.retry_after.as_millis() as u64,
                    error = %e.err,
                    "storage: transient error, retrying"
                );
            }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_spread_over_about_the_configured_time() {
        assert!(retry_layer(0).is_none());
        assert_eq!(retry_delays(120), [1, 2, 4, 8, 16, 20, 20, 20, 20, 20]);
        for secs in [1, 5, 60, 120, 600] {
            let total: u64 = retry_delays(secs).iter().sum();
            assert!(total >= secs && total < secs + 20, "{secs}: {total}");
        }
    }
}
