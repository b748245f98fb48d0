//! Signed download links — the only place a download URL is made, for
//! `http` (job answers, notices), `notify` (e-mails) and MCP alike:
//! HMAC-SHA256 over job id, file key and expiry with a server secret,
//! compared in constant time. The secret is created at first start (32
//! random bytes, hex, mode 0600 in the data dir) unless the configuration
//! sets one. This module never touches storage.

use crate::util::unhex;
use std::io::Write;
use std::path::Path;
use std::sync::RwLock;

/// A signed link to a stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Absolute URL: `<public_url>/download/<job>?expires=<secs>&sig=<hex>`.
    pub url: String,
    /// Expiry, Unix seconds (what the link carries).
    pub expires: i64,
}

impl Link {
    /// Expiry as RFC 3339.
    pub fn expires_at(&self) -> String {
        crate::time::format_rfc3339_ms(self.expires.saturating_mul(1000))
    }
}

/// Builds links: the signer, the public base URL and the links' life.
pub struct Links {
    signer: Signer,
    /// Settable once `serve` knows the address it bound (port 0).
    public_url: RwLock<String>,
    /// Life after the job completed: the link TTL, never past the download
    /// window (the file is deleted then).
    link_secs: u64,
}

impl Links {
    /// Links signed by `signer`, starting with `public_url`, living
    /// `link_secs` seconds after their job completed.
    pub fn new(signer: Signer, public_url: String, link_secs: u64) -> Links {
        Links {
            signer,
            public_url: RwLock::new(public_url),
            link_secs,
        }
    }

    /// The base URL links start with.
    pub fn public_url(&self) -> String {
        self.public_url.read().expect("links lock").clone()
    }

    /// Replaces the base URL (once `serve` knows the address it bound).
    pub fn set_public_url(&self, url: String) {
        *self.public_url.write().expect("links lock") = url;
    }

    /// The link to job `job_id`'s file `file_key`, completed at `completed_at_ms`.
    pub fn for_file(&self, job_id: &str, file_key: &str, completed_at_ms: i64) -> Link {
        let expires = completed_at_ms.div_euclid(1000) + self.link_secs as i64;
        let sig = self.signer.sign(job_id, file_key, expires);
        Link {
            url: format!(
                "{}/download/{job_id}?expires={expires}&sig={sig}",
                self.public_url().trim_end_matches('/')
            ),
            expires,
        }
    }

    /// The link to the manifest stored beside job `job_id`'s (not zipped)
    /// file `file_key`.
    pub fn for_manifest(&self, job_id: &str, file_key: &str, completed_at_ms: i64) -> Link {
        let key = format!("{file_key}{}", crate::manifest::verify::SUFFIX);
        let mut link = self.for_file(job_id, &key, completed_at_ms);
        link.url = link.url.replacen(
            &format!("/download/{job_id}?"),
            &format!("/download/{job_id}/manifest?"),
            1,
        );
        link
    }

    /// The signer (the download route verifies with it).
    pub fn signer(&self) -> &Signer {
        &self.signer
    }
}

use ring::hmac;

/// The link-signing key.
pub struct Signer {
    key: hmac::Key,
}

fn message(job_id: &str, file_key: &str, expires: i64) -> String {
    format!("{job_id}\n{file_key}\n{expires}")
}

impl Signer {
    /// A signer with this secret as its HMAC-SHA256 key.
    pub fn new(secret: &[u8]) -> Signer {
        Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// Loads `<data-dir>/link-secret`, creating it (0600) on first start.
    pub fn load_or_create(data_dir: &Path, configured: Option<&str>) -> std::io::Result<Signer> {
        if let Some(s) = configured.filter(|s| !s.is_empty()) {
            return Ok(Signer::new(s.as_bytes()));
        }
        let path = data_dir.join("link-secret");
        match std::fs::read_to_string(&path) {
            Ok(s) if s.trim().len() >= 32 => return Ok(Signer::new(s.trim().as_bytes())),
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is too short; delete it to regenerate",
                    path.display()
                )))
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        let mut b = [0u8; 32];
        crate::util::random_bytes(&mut b);
        let secret = crate::util::hex(&b);
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(secret.as_bytes())?;
                f.sync_all()?;
                Ok(Signer::new(secret.as_bytes()))
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Signer::load_or_create(data_dir, None)
            }
            Err(e) => Err(e),
        }
    }

    /// The signature of a link (lower-case hex HMAC-SHA256 of job id, file
    /// key and expiry in Unix seconds).
    pub fn sign(&self, job_id: &str, file_key: &str, expires: i64) -> String {
        crate::util::hex(
            hmac::sign(&self.key, message(job_id, file_key, expires).as_bytes()).as_ref(),
        )
    }

    /// Constant-time check of a hex signature, in the exact form [`sign`]
    /// writes (lower-case): any other spelling is a different link.
    ///
    /// [`sign`]: Signer::sign
    pub fn verify(&self, job_id: &str, file_key: &str, expires: i64, sig_hex: &str) -> bool {
        // Strictly lower-case hex digits: `from_str_radix` would also take
        // a `+` sign or upper case, other spellings of the same bytes.
        if !sig_hex
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return false;
        }
        let Some(sig) = unhex(sig_hex) else {
            return false;
        };
        hmac::verify(
            &self.key,
            message(job_id, file_key, expires).as_bytes(),
            &sig,
        )
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_changed_byte_breaks_the_signature() {
        let s = Signer::new(b"0123456789abcdef0123456789abcdef");
        let sig = s.sign("JOB1", "acme/JOB1/f.csv", 1_800_000_000);
        assert!(s.verify("JOB1", "acme/JOB1/f.csv", 1_800_000_000, &sig));
        assert!(!s.verify("JOB2", "acme/JOB1/f.csv", 1_800_000_000, &sig));
        assert!(!s.verify("JOB1", "acme/JOB1/f.csv", 1_800_000_001, &sig));
        let mut bad = sig.clone().into_bytes();
        bad[5] = if bad[5] == b'0' { b'1' } else { b'0' };
        assert!(!s.verify(
            "JOB1",
            "acme/JOB1/f.csv",
            1_800_000_000,
            std::str::from_utf8(&bad).unwrap()
        ));
        assert!(!s.verify("JOB1", "acme/JOB1/f.csv", 1_800_000_000, "zz"));
        // The same bytes spelled another way are not the signature handed out.
        let plus = format!("+{}", &sig[1..]);
        for other in [sig.to_ascii_uppercase(), plus] {
            if other != sig {
                assert!(!s.verify("JOB1", "acme/JOB1/f.csv", 1_800_000_000, &other));
            }
        }
        assert!(!Signer::new(b"another secret, another signature").verify(
            "JOB1",
            "acme/JOB1/f.csv",
            1_800_000_000,
            &sig
        ));
    }

    #[test]
    fn the_secret_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = Signer::load_or_create(dir.path(), None).unwrap();
        let b = Signer::load_or_create(dir.path(), None).unwrap();
        assert_eq!(a.sign("j", "k", 1), b.sign("j", "k", 1));
        let mode = std::fs::metadata(dir.path().join("link-secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
