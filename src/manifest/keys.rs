//! Signing keys: Ed25519 (ring), PKCS#8 files in `<data-dir>/keys/`
//! (mode 0600), created at first start. `keys rotate` adds a key and makes
//! it the active one; older keys stay (their public halves keep verifying
//! old manifests). A key's id is `ed25519:` and the first 16 hex digits of
//! the SHA-256 of its public key. `[signing] key_file` names a PKCS#8 file
//! to use instead of the data dir's.

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

/// `[signing]` settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningConfig {
    /// A PKCS#8 Ed25519 key to sign with (default: the data dir's active key).
    pub key_file: Option<String>,
}

/// Why the signing keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file cannot be read or is not a PKCS#8 Ed25519 key.
    #[error("signing key {path}: {message}")]
    File {
        /// The key file's path.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The keys folder could not be read or written.
    #[error("signing keys: {0}")]
    Io(#[from] std::io::Error),
}

/// A public key and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicKey {
    /// `ed25519:` and the first 16 hex digits of the key's SHA-256 (see [`key_id`]).
    pub key_id: String,
    /// Always `Ed25519`.
    pub algorithm: &'static str,
    /// The 32-byte Ed25519 public key, hex.
    pub public_key: String,
    /// Whether manifests are signed with it now.
    pub active: bool,
}

/// The id of a public key.
pub fn key_id(public: &[u8]) -> String {
    format!("ed25519:{}", &crate::util::sha256_hex(public)[..16])
}

/// The instance's keys: one active (signing), all public halves.
pub struct Keyring {
    active: Ed25519KeyPair,
    active_id: String,
    public: Vec<PublicKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({})", self.active_id)
    }
}

/// Folder of the data dir's keys.
pub fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys")
}

fn read_pair(path: &Path) -> Result<Ed25519KeyPair, KeyError> {
    let bytes = std::fs::read(path).map_err(|e| KeyError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ed25519KeyPair::from_pkcs8(&bytes).map_err(|e| KeyError::File {
        path: path.to_path_buf(),
        message: format!("not a PKCS#8 Ed25519 key: {e}"),
    })
}

/// Writes a new key into `dir` (0600, created exclusively) and returns its id.
fn generate(dir: &Path) -> Result<String, KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let rng = ring::rand::SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| std::io::Error::other("the system random source failed"))?;
    let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
        .map_err(|_| std::io::Error::other("a generated key did not parse"))?;
    let id = key_id(pair.public_key().as_ref());
    let path = dir.join(format!("{}.pk8", id.replace(':', "-")));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(doc.as_ref())?;
    f.sync_all()?;
    Ok(id)
}

/// The ids of the key files in `dir` (file `ed25519-<hex>.pk8`).
fn key_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "pk8"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl Keyring {
    /// Loads the data dir's keys, creating the first one if there is none;
    /// with `configured`, signs with that file's key instead.
    pub fn load_or_create(
        data_dir: &Path,
        configured: &SigningConfig,
    ) -> Result<Keyring, KeyError> {
        let dir = keys_dir(data_dir);
        let active_file = dir.join("active");
        if key_files(&dir).is_empty() && configured.key_file.is_none() {
            let id = generate(&dir)?;
            write_active(&active_file, &id)?;
        }
        let mut public = Vec::new();
        let mut pairs = Vec::new();
        for path in key_files(&dir) {
            let pair = read_pair(&path)?;
            let id = key_id(pair.public_key().as_ref());
            public.push(PublicKey {
                key_id: id.clone(),
                algorithm: "Ed25519",
                public_key: crate::util::hex(pair.public_key().as_ref()),
                active: false,
            });
            pairs.push((id, pair));
        }
        let (active, active_id) = match &configured.key_file {
            Some(file) => {
                let pair = read_pair(Path::new(file))?;
                let id = key_id(pair.public_key().as_ref());
                if !public.iter().any(|p| p.key_id == id) {
                    public.push(PublicKey {
                        key_id: id.clone(),
                        algorithm: "Ed25519",
                        public_key: crate::util::hex(pair.public_key().as_ref()),
                        active: false,
                    });
                }
                (pair, id)
            }
            None => {
                let wanted = std::fs::read_to_string(&active_file).unwrap_or_default();
                let wanted = wanted.trim();
                let idx = pairs
                    .iter()
                    .position(|(id, _)| id == wanted)
                    .unwrap_or(pairs.len() - 1);
                let (id, pair) = pairs.swap_remove(idx);
                (pair, id)
            }
        };
        for p in &mut public {
            p.active = p.key_id == active_id;
        }
        Ok(Keyring {
            active,
            active_id,
            public,
        })
    }

    /// `keys rotate`: a new key, active from now on; returns its id.
    pub fn rotate(data_dir: &Path) -> Result<String, KeyError> {
        let dir = keys_dir(data_dir);
        let id = generate(&dir)?;
        write_active(&dir.join("active"), &id)?;
        Ok(id)
    }

    /// The id of the key manifests are signed with.
    pub fn active_id(&self) -> &str {
        &self.active_id
    }

    /// Signs `message` with the active key (hex signature).
    pub fn sign(&self, message: &[u8]) -> String {
        crate::util::hex(self.active.sign(message).as_ref())
    }

    /// Every known public key (the active one marked).
    pub fn public_keys(&self) -> &[PublicKey] {
        &self.public
    }
}

fn write_active(path: &Path, id: &str) -> Result<(), KeyError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, id)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The public keys of the instance (for `verify` without a database): the
/// data dir's, and the configured key file's when there is one.
pub fn local_public_keys(data_dir: &Path, configured: &SigningConfig) -> Vec<PublicKey> {
    let public = |pair: &Ed25519KeyPair| PublicKey {
        key_id: key_id(pair.public_key().as_ref()),
        algorithm: "Ed25519",
        public_key: crate::util::hex(pair.public_key().as_ref()),
        active: false,
    };
    let mut keys: Vec<PublicKey> = key_files(&keys_dir(data_dir))
        .iter()
        .filter_map(|p| read_pair(p).ok())
        .map(|pair| public(&pair))
        .collect();
    if let Some(file) = &configured.key_file {
        // A verifier may not be allowed to read the private key file (0600):
        // then it trusts the data dir's keys, and says so.
        match read_pair(Path::new(file)) {
            Ok(pair) => {
                let k = public(&pair);
                if !keys.iter().any(|p| p.key_id == k.key_id) {
                    keys.push(k);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "[signing] key_file not usable here; trusting the data dir's keys")
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_key_is_created_once_and_rotation_keeps_old_keys() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = Keyring::load_or_create(dir.path(), &SigningConfig::default()).unwrap();
        let b = Keyring::load_or_create(dir.path(), &SigningConfig::default()).unwrap();
        assert_eq!(a.active_id(), b.active_id());
        assert!(a.active_id().starts_with("ed25519:") && a.active_id().len() == 24);
        let file = key_files(&keys_dir(dir.path())).pop().unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let new = Keyring::rotate(dir.path()).unwrap();
        let c = Keyring::load_or_create(dir.path(), &SigningConfig::default()).unwrap();
        assert_eq!(c.active_id(), new);
        assert_eq!(c.public_keys().len(), 2);
        assert!(c
            .public_keys()
            .iter()
            .any(|k| k.key_id == a.active_id() && !k.active));
        assert_eq!(
            local_public_keys(dir.path(), &SigningConfig::default()).len(),
            2
        );
    }
}
