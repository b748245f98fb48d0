//! Finding the bytes of a cell that a format must treat specially: the
//! ones CSV quotes for (`,` `"` CR LF) and the ones JSON escapes (`"` `\`
//! and the control bytes). Every cell of an export passes through one of
//! these, and most hold none: a per-byte table lookup was ~10% of an
//! export's instructions. So: 16 bytes at a time with SSE2 (part of every
//! x86-64 CPU), 8 at a time (SWAR) for shorter runs and other targets.
//! This module only finds bytes; it never writes output.

/// The index of the first byte at or after `from` that CSV quotes for,
/// or `bytes.len()` if none.
pub(super) fn csv_special(bytes: &[u8], from: usize) -> usize {
    find::<Csv>(bytes, from)
}

/// The index of the first byte at or after `from` that JSON escapes, or
/// `bytes.len()` if none.
pub(super) fn json_special(bytes: &[u8], from: usize) -> usize {
    find::<Json>(bytes, from)
}

/// A set of bytes, tested three ways.
trait Set {
    fn byte(b: u8) -> bool;
    /// Whether the little-endian word `w` holds a byte of the set (exact).
    fn word(w: u64) -> bool;
    #[cfg(target_arch = "x86_64")]
    /// One bit per byte of `v`, set for the bytes of the set (exact).
    fn lanes(v: std::arch::x86_64::__m128i) -> u32;
}

const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGH: u64 = u64::from_le_bytes([0x80; 8]);

/// Whether `w` has a byte equal to `c`: `v = w ^ c…c` has a zero byte,
/// which `(v - 0x01…) & !v & 0x80…` answers exactly (as a yes/no).
fn has(w: u64, c: u8) -> bool {
    let v = w ^ (ONES * u64::from(c));
    v.wrapping_sub(ONES) & !v & HIGH != 0
}

struct Csv;

impl Set for Csv {
    fn byte(b: u8) -> bool {
        matches!(b, b',' | b'"' | b'\n' | b'\r')
    }

    fn word(w: u64) -> bool {
        has(w, b',') | has(w, b'"') | has(w, b'\n') | has(w, b'\r')
    }

    #[cfg(target_arch = "x86_64")]
    fn lanes(v: std::arch::x86_64::__m128i) -> u32 {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of every x86-64 CPU (the target's baseline);
        // these read no memory.
        unsafe {
            let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
            let m = _mm_or_si128(
                _mm_or_si128(eq(b','), eq(b'"')),
                _mm_or_si128(eq(b'\n'), eq(b'\r')),
            );
            _mm_movemask_epi8(m) as u32
        }
    }
}

struct Json;

impl Set for Json {
    fn byte(b: u8) -> bool {
        matches!(b, 0..=0x1f | b'"' | b'\\')
    }

    fn word(w: u64) -> bool {
        // `(w - n…) & !w & 0x80…` is non-zero exactly when `w` has a byte
        // below `n` (n ≤ 0x80).
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0;
        control | has(w, b'"') | has(w, b'\\')
    }

    #[cfg(target_arch = "x86_64")]
    fn lanes(v: std::arch::x86_64::__m128i) -> u32 {
        use std::arch::x86_64::*;
        // SAFETY: as for `Csv::lanes`.
        unsafe {
            let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
            // Unsigned v ≤ 0x1f exactly when min(v, 0x1f) == v.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(eq(b'"'), eq(b'\\')))) as u32
        }
    }
}

#[inline(always)]
fn find<S: Set>(bytes: &[u8], from: usize) -> usize {
    let n = bytes.len();
    let mut i = from.min(n);
    #[cfg(target_arch = "x86_64")]
    if n >= 16 {
        let lanes_at = |at: usize| {
            debug_assert!(at + 16 <= n);
            // SAFETY: `at + 16 <= n`: sixteen readable bytes, read
            // unaligned (`loadu`).
            S::lanes(unsafe { std::arch::x86_64::_mm_loadu_si128(bytes.as_ptr().add(at).cast()) })
        };
        // `i <= n - 16` (not `i + 16 <= n`, which could wrap): n >= 16 here.
        while i <= n - 16 {
            let m = lanes_at(i);
            if m != 0 {
                return i + m.trailing_zeros() as usize;
            }
            i += 16;
        }
        if i >= n {
            return n;
        }
        // The last, partial block: the last 16 bytes, without the lanes
        // before `i` (already seen; a lane answers for its byte alone).
        let m = lanes_at(n - 16) >> (i - (n - 16));
        return if m != 0 {
            i + m.trailing_zeros() as usize
        } else {
            n
        };
    }
    while let Some(word) = bytes.get(i..i + 8) {
        if S::word(u64::from_le_bytes(word.try_into().expect("8 bytes"))) {
            break;
        }
        i += 8;
    }
    // The word that has one (found within it), or the tail.
    while i < n && !S::byte(bytes[i]) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every special byte, alone or in a run, at every position of cells
    /// around the block sizes, from every start: the first one found is
    /// the one a byte-by-byte search finds.
    fn agrees_with_bytewise(
        plain: &[u8],
        specials: &[u8],
        find: fn(&[u8], usize) -> usize,
        is: fn(u8) -> bool,
    ) {
        for len in 0..50 {
            let base: Vec<u8> = plain.iter().cycle().skip(len).take(len).copied().collect();
            let slow =
                |v: &[u8], from: usize| (from..v.len()).find(|&i| is(v[i])).unwrap_or(v.len());
            for from in 0..=len {
                assert_eq!(find(&base, from), len, "{base:?} from {from}");
            }
            for &c in specials {
                for at in 0..len {
                    for run in [1, 2, 17] {
                        let mut v = base.clone();
                        v[at..(at + run).min(len)].fill(c);
                        for from in 0..=len {
                            assert_eq!(find(&v, from), slow(&v, from), "{v:?} from {from}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn csv_finds_what_a_bytewise_search_finds() {
        // Bytes next to the special ones in value, high bytes, and bytes
        // one bit away from a special one.
        let plain = b"az09 !#[]^_`{|}~\x7f\x80\xff\xe9+-./\t\x0b\x0c\x0e\xac\xa2\x8d\x8a\x03\x0f";
        agrees_with_bytewise(plain, b",\"\n\r", csv_special, Csv::byte);
    }

    #[test]
    fn json_finds_what_a_bytewise_search_finds() {
        let specials: Vec<u8> = (0u8..0x20).chain([b'"', b'\\']).collect();
        let plain = b"az09 !#[]^_`{|}~\x7f\x80\xff\xe9+-./\xa0\xa2\xdc\x9f\x3f\x5d\x7c\x60";
        agrees_with_bytewise(plain, &specials, json_special, Json::byte);
    }

    #[test]
    fn the_word_and_lane_tests_agree_with_the_byte_test_on_every_byte() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut w = [b'a'; 8];
                w[at] = b;
                let w = u64::from_le_bytes(w);
                assert_eq!(Csv::word(w), Csv::byte(b), "{b:#x}");
                assert_eq!(Json::word(w), Json::byte(b), "{b:#x}");
            }
            #[cfg(target_arch = "x86_64")]
            for at in 0..16 {
                let mut v = [b'a'; 16];
                v[at] = b;
                // SAFETY: sixteen readable bytes.
                let lanes = unsafe { std::arch::x86_64::_mm_loadu_si128(v.as_ptr().cast()) };
                let want = |is: fn(u8) -> bool| if is(b) { 1u32 << at } else { 0 };
                assert_eq!(Csv::lanes(lanes), want(Csv::byte), "{b:#x} at {at}");
                assert_eq!(Json::lanes(lanes), want(Json::byte), "{b:#x} at {at}");
            }
        }
        // A start past the end finds nothing (and reads nothing).
        assert_eq!(csv_special(b"a,b", 7), 3);
        assert_eq!(json_special(&[b'"'; 40], 99), 40);
    }
}
