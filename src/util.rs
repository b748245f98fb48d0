//! Small helpers with no better home: hex, SHA-256 of bytes and files, secure
//! random bytes, time-ordered ids, retry backoff. Nothing here knows about
//! jobs, HTTP or the database.

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// SHA-256 of `data`, as lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// SHA-256 (hex) and size of a file's content, read once.
pub fn file_sha256(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        ctx.update(&buf[..n]);
    }
    Ok((hex(ctx.finish().as_ref()), size))
}

/// Lowercase or uppercase hex back to bytes; `None` if it is not hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Fills `buf` from the system's secure random source.
pub fn random_bytes(buf: &mut [u8]) {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .expect("the system random source works");
}

/// A new id: 26 characters of Crockford base32, time-ordered (48-bit
/// milliseconds) then 80 random bits, like a ULID.
pub fn new_id(now_ms: i64) -> String {
    let mut rand = [0u8; 10];
    random_bytes(&mut rand);
    let mut v: u128 = (now_ms.max(0) as u128 & ((1 << 48) - 1)) << 80;
    for (i, b) in rand.iter().enumerate() {
        v |= (*b as u128) << (8 * (9 - i));
    }
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..26)
        .rev()
        .map(|i| ALPHABET[((v >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// Delay before retry number `attempt` (1-based): `base` doubled per
/// attempt, capped at `cap_ms`, plus (with `jitter`) up to half a base at
/// random so retries of many jobs do not fall on the same instant.
pub fn backoff_ms(base_ms: u64, attempt: u32, cap_ms: u64, jitter: bool) -> i64 {
    let base = base_ms.max(1);
    let exp = base
        .saturating_mul(1 << attempt.saturating_sub(1).min(20))
        .min(cap_ms);
    let extra = if jitter {
        let mut r = [0u8; 4];
        random_bytes(&mut r);
        u64::from(u32::from_le_bytes(r)) % (base / 2 + 1)
    } else {
        0
    };
    (exp + extra) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_what_is_not_hex() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert_eq!(unhex("ABff").unwrap(), [0xab, 0xff]);
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
        assert!(unhex("é1").is_none());
    }

    #[test]
    fn ids_are_unique_and_time_ordered() {
        let a = new_id(1_000);
        let b = new_id(2_000);
        assert_eq!(a.len(), 26);
        assert!(a < b);
        assert_ne!(new_id(5), new_id(5));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff_ms(1_000, 1, 3_600_000, false), 1_000);
        assert_eq!(backoff_ms(1_000, 3, 3_600_000, false), 4_000);
        assert_eq!(backoff_ms(1_000, 40, 3_600_000, false), 3_600_000);
        for _ in 0..50 {
            let j = backoff_ms(1_000, 2, 3_600_000, true);
            assert!((2_000..=2_500).contains(&j), "{j}");
        }
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}

/// A name that is not one of an enum's (see `text_enum!`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {got:?}: expected {}", expected_list(.expected))]
pub struct UnknownName {
    /// What kind of name was expected, e.g. `format` or `job state`.
    pub what: &'static str,
    /// The text given, as is.
    pub got: String,
    /// Every valid name, in declaration order (listed in the message).
    pub expected: &'static [&'static str],
}

fn expected_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Declares a closed enum with one text name per variant — `ALL`,
/// `as_str`, `Display`, and `FromStr` on the exact names (the error lists
/// them) — so each enum has one table and a name cannot drift between the
/// database, the API and the command line. Attributes pass through (e.g.
/// `clap::ValueEnum`, whose names a test checks against these).
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];
            /// Every name, in declaration order.
            pub const NAMES: [&'static str; [$($text),+].len()] = [$($text),+];

            /// The variant's name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::util::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $crate::util::UnknownName {
                        what: $what,
                        got: s.to_string(),
                        expected: &$name::NAMES,
                    })
            }
        }
    };
}
pub(crate) use text_enum;
