//! Remembered verdicts on JSON keys, per thread: an export meets the same
//! few keys in every row (`source`, `session`, `ip`, …), and judging one by
//! the word rule (cutting it into words, comparing the endings) cost ~6% of
//! an export's instructions. A small direct-mapped table answers a key seen
//! before with one comparison. It must never change a verdict: each entry
//! records which [`Redactor`](super::Redactor) judged it (its settings can
//! differ), and a key too long for an entry is judged every time.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries per thread (a power of two).
const SLOTS: usize = 64;
/// Longest key remembered, in bytes.
const MAX_KEY: usize = 22;

#[derive(Clone, Copy)]
struct Slot {
    /// The judging redactor's id; 0: empty.
    redactor: u64,
    len: u8,
    sensitive: bool,
    key: [u8; MAX_KEY],
}

const EMPTY: Slot = Slot {
    redactor: 0,
    len: 0,
    sensitive: false,
    key: [0; MAX_KEY],
};

thread_local! {
    static TABLE: RefCell<[Slot; SLOTS]> = const { RefCell::new([EMPTY; SLOTS]) };
}

/// A fresh id for a new redactor (never 0).
pub(super) fn new_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The verdict on `key` by the redactor `id`: remembered, or `judge(key)`
/// (then remembered).
pub(super) fn verdict(id: u64, key: &str, judge: impl FnOnce(&str) -> bool) -> bool {
    let b = key.as_bytes();
    let n = b.len();
    if n == 0 || n > MAX_KEY {
        return judge(key);
    }
    let slot = (n.wrapping_mul(31)
        ^ (b[0] as usize).wrapping_mul(7)
        ^ b[n - 1] as usize
        ^ (b[n / 2] as usize) << 2)
        & (SLOTS - 1);
    let known = TABLE.with(|t| {
        let t = t.borrow();
        let s = &t[slot];
        (s.redactor == id && s.len as usize == n && &s.key[..n] == b).then_some(s.sensitive)
    });
    if let Some(sensitive) = known {
        return sensitive;
    }
    // Judged outside the borrow: the rule may use this table itself one day.
    let sensitive = judge(key);
    TABLE.with(|t| {
        let s = &mut t.borrow_mut()[slot];
        s.redactor = id;
        s.len = n as u8;
        s.sensitive = sensitive;
        s.key[..n].copy_from_slice(b);
    });
    sensitive
}

#[cfg(test)]
mod tests {
    use super::super::Redactor;

    /// Remembered verdicts agree with judging afresh, for keys that collide
    /// in the table, keys too long for it, and two redactors with different
    /// settings taking turns on one thread.
    #[test]
    fn remembered_verdicts_are_the_rule_s_verdicts() {
        let plain = Redactor::default();
        let extra = Redactor::new(&["source".into(), "sess*".into()]);
        let mut keys: Vec<String> = [
            "source",
            "session",
            "password",
            "token",
            "accessToken",
            "mfa",
            "ip",
            "a",
            "this_key_is_longer_than_22_bytes_token",
            "this_key_is_longer_than_22_bytes",
            "ééé",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Many keys: most of them share a slot with another.
        keys.extend((0..500).map(|i| format!("k{i}_secret")));
        keys.extend((0..500).map(|i| format!("k{i}")));
        for round in 0..3 {
            for k in &keys {
                for r in [&plain, &extra] {
                    assert_eq!(
                        r.is_sensitive_key_cached(k),
                        r.is_sensitive_key(k),
                        "{k} (round {round})"
                    );
                }
            }
        }
        assert!(extra.is_sensitive_key_cached("source"));
        assert!(!plain.is_sensitive_key_cached("source"));
        assert!(plain.is_sensitive_key_cached("k7_secret"));
        assert!(!plain.is_sensitive_key_cached("k7"));
    }
}
