//! The word rule of redaction: a built-in sensitive key is recognised by
//! its last words however it is spelled (`accessToken`, `CLIENT_SECRET`,
//! `private_key_pem`). Pure functions over the key's bytes, on the export
//! hot path: they must never allocate.

/// Built-in keys by their last words, however they are spelled
/// (`accessToken`, `refresh-token`, `CLIENT_SECRET`, `passwordHash`,
/// `aws_secret_access_key`, `private_key_pem`, `APIKey`): the key is cut
/// into words at `_`, `-`, `.`, spaces and camelCase humps, and matches
/// when it ends with one of these word sequences (case-insensitively).
/// Ending, not containing: `token_type`, `tokens_used`, `password_changed_at`
/// and `secretName` keep their values.
pub(super) const SENSITIVE_ENDINGS: &[&[&str]] = &[
    &["password"],
    &["passwd"],
    &["pwd"],
    &["passphrase"],
    &["secret"],
    &["token"],
    &["credential"],
    &["apikey"],
    &["privatekey"],
    &["secretref"],
    &["password", "hash"],
    &["api", "key"],
    &["private", "key"],
    &["secret", "key"],
    &["access", "key"],
    &["secret", "ref"],
    &["private", "key", "pem"],
];

/// The last bytes (lowercase) of the words above: a key ending otherwise
/// is rejected at once.
pub(super) const WORD_LAST: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < SENSITIVE_ENDINGS.len() {
        let ending = SENSITIVE_ENDINGS[i];
        let word = ending[ending.len() - 1].as_bytes();
        t[word[word.len() - 1] as usize] = true;
        i += 1;
    }
    t
};

/// Where the word ending at `end` (exclusive; `b[end - 1]` is no
/// separator) starts in `b` (see [`SENSITIVE_ENDINGS`]): after a separator,
/// or at a camelCase hump (`aB`, `1B`, or the `K` of `APIKey`).
fn word_start(b: &[u8], end: usize) -> usize {
    let mut k = end - 1;
    while k > 0 {
        let (prev, here) = (b[k - 1], b[k]);
        if matches!(prev, b'_' | b'-' | b'.' | b' ') {
            return k;
        }
        let next_lower = k + 1 < end && b[k + 1].is_ascii_lowercase();
        if here.is_ascii_uppercase()
            && (prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower))
        {
            return k;
        }
        k -= 1;
    }
    0
}

/// Whether `key` ends with one of [`SENSITIVE_ENDINGS`].
pub(super) fn sensitive_words(key: &str) -> bool {
    let b = key.as_bytes();
    // The last three words, from the end.
    let mut words: [&[u8]; 3] = [&[]; 3];
    let mut end = b.len();
    let mut n = 0;
    while n < 3 {
        while end > 0 && matches!(b[end - 1], b'_' | b'-' | b'.' | b' ') {
            end -= 1;
        }
        if end == 0 {
            break;
        }
        let start = word_start(b, end);
        words[n] = &b[start..end];
        // Most keys end in a word no ending ends with: stop there.
        if n == 0
            && !SENSITIVE_ENDINGS
                .iter()
                .any(|e| words[0].eq_ignore_ascii_case(e[e.len() - 1].as_bytes()))
        {
            return false;
        }
        n += 1;
        end = start;
    }
    SENSITIVE_ENDINGS.iter().any(|ending| {
        ending.len() <= n
            && ending
                .iter()
                .rev()
                .zip(&words)
                .all(|(w, got)| got.eq_ignore_ascii_case(w.as_bytes()))
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn compound_and_camel_case_keys_are_redacted_by_their_last_words() {
        let red = super::super::Redactor::default();
        for key in [
            "accessToken",
            "refreshToken",
            "sessionToken",
            "csrf-token",
            "clientSecret",
            "CLIENT_SECRET",
            "secret_key",
            "secretKey",
            "aws_secret_access_key",
            "private_key_pem",
            "privateKeyPem",
            "passwordHash",
            "password_hash",
            "APIKey",
            "x.api.key",
            "dbPassword",
            "adminPwd",
            "password_",
            "accessToken ",
        ] {
            assert!(red.is_sensitive_key(key), "{key} should be redacted");
        }
        for key in [
            "token_type",
            "tokens_used",
            "max_tokens",
            "tokenExpiresAt",
            "password_changed_at",
            "passwordPolicy",
            "secretName",
            "workflow_key",
            "keyboard",
            "aws_access_key_id",
            "id",
            "name",
            "Tokenizer",
        ] {
            assert!(!red.is_sensitive_key(key), "{key} should be kept");
        }
    }
}
