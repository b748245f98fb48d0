//! The manifest document: what was exported and how, the data's digest,
//! the chain link, and an Ed25519 signature over the canonical JSON of all
//! of it (object keys sorted, compact) — so re-indenting a manifest file
//! does not break it, and changing any value does.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::keys::{Keyring, PublicKey};
use crate::util::unhex;

/// The manifest format's version.
pub const VERSION: u32 = 1;

/// An event named by the manifest (first and last exported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRef {
    /// The event's id.
    pub id: i64,
    /// Its time, RFC 3339 UTC with milliseconds.
    pub occurred_at: String,
}

/// How the data was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// CSV: the file starts with a UTF-8 byte order mark.
    pub bom: bool,
    /// CSV: formula-like cells are prefixed with `'`.
    pub formula_guard: bool,
    /// CSV profile: `raw` or `readable`.
    pub profile: String,
    /// Raw CSV columns chosen, in order; `None`: all of them.
    pub fields: Option<Vec<String>>,
    /// IANA zone timestamps are rendered in; `None`: UTC.
    pub timezone: Option<String>,
    /// Sensitive values were redacted.
    pub redacted: bool,
    /// The stored file is a zip.
    pub compressed: bool,
}

/// The data the manifest vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// The stored file's name (`….csv` or `….csv.zip`).
    pub name: String,
    /// In a zip, the name of the data entry (what sha256 and size are of).
    pub entry: Option<String>,
    /// SHA-256 (hex) of the data: the zip entry when zipped, else the file.
    pub sha256: String,
    /// Size of the data in bytes (uncompressed when zipped).
    pub size: u64,
}

/// The link to the organization's previous manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Previous {
    /// The previous manifest's sequence number.
    pub sequence: u64,
    /// SHA-256 of the previous manifest document (signature included).
    pub sha256: String,
}

/// A manifest, before signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The manifest format's version, [`VERSION`].
    pub version: u32,
    /// What wrote it: `audit-export <version>`.
    pub engine: String,
    /// The organization whose events were exported (and whose chain this is).
    pub organization: String,
    /// The export job.
    pub job_id: String,
    /// Who asked: `user:<id>` or a system label.
    pub requester: String,
    /// Output format: `csv`, `json` or `jsonl`.
    pub format: String,
    /// How the data was written.
    pub options: Options,
    /// The job's canonical filters, as JSON.
    pub filters: Value,
    /// SHA-256 (hex) of the canonical filters.
    pub filter_hash: String,
    /// When the export was requested, RFC 3339 UTC (a resumed job signs the
    /// same bytes).
    pub generated_at: String,
    /// Records in the data.
    pub record_count: u64,
    /// The first event exported; `None` if there is none.
    pub first: Option<EventRef>,
    /// The last event exported; `None` if there is none.
    pub last: Option<EventRef>,
    /// The data vouched for.
    pub file: FileRef,
    /// 1 for the organization's first manifest, then +1 each.
    pub sequence: u64,
    /// The organization's previous manifest; `None` for the first.
    pub previous: Option<Previous>,
    /// Id of the signing key (see `GET /api/v1/signing-key`).
    pub key_id: String,
}

/// `value` as canonical JSON: object keys sorted at every level, compact.
pub fn canonical(value: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sort(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sort(value)).expect("values serialize")
}

impl Manifest {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        canonical(&serde_json::to_value(self).expect("manifest serializes")).into_bytes()
    }

    /// Signs with the keyring's active key (whose id must be `key_id`).
    pub fn sign(self, keys: &Keyring) -> Signed {
        let signature = keys.sign(&self.signed_bytes());
        Signed {
            manifest: self,
            signature,
        }
    }
}

/// A signed manifest: the document stored, served and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The document signed.
    pub manifest: Manifest,
    /// Ed25519 signature, hex.
    pub signature: String,
}

/// Why a manifest document cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a manifest: {0}")]
pub struct Unreadable(pub String);

impl Signed {
    /// The document: canonical JSON of the manifest and its `signature`,
    /// and a newline.
    pub fn document(&self) -> String {
        let mut v = serde_json::to_value(&self.manifest).expect("manifest serializes");
        v["signature"] = Value::String(self.signature.clone());
        canonical(&v) + "\n"
    }

    /// SHA-256 of [`Signed::document`] (what the next manifest links to).
    pub fn sha256(&self) -> String {
        crate::util::sha256_hex(self.document().as_bytes())
    }

    /// Reads a document (any formatting of the same JSON).
    pub fn parse(text: &[u8]) -> Result<Signed, Unreadable> {
        let mut v: Value = serde_json::from_slice(text).map_err(|e| Unreadable(e.to_string()))?;
        let signature = match v.as_object_mut().and_then(|m| m.remove("signature")) {
            Some(Value::String(s)) => s,
            _ => return Err(Unreadable("no signature".into())),
        };
        let manifest: Manifest =
            serde_json::from_value(v).map_err(|e| Unreadable(e.to_string()))?;
        Ok(Signed {
            manifest,
            signature,
        })
    }

    /// Whether the signature verifies with `key`.
    pub fn verifies_with(&self, key: &PublicKey) -> bool {
        let (Some(pk), Some(sig)) = (unhex(&key.public_key), unhex(&self.signature)) else {
            return false;
        };
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, pk)
            .verify(&self.manifest.signed_bytes(), &sig)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(key_id: &str) -> Manifest {
        Manifest {
            version: VERSION,
            engine: "audit-export test".into(),
            organization: "acme".into(),
            job_id: "J1".into(),
            requester: "user:1".into(),
            format: "csv".into(),
            options: Options {
                bom: true,
                formula_guard: true,
                profile: "raw".into(),
                fields: None,
                timezone: None,
                redacted: true,
                compressed: false,
            },
            filters: serde_json::json!({"organization": "acme", "actions": ["b", "a"]}),
            filter_hash: "h".into(),
            generated_at: "2026-01-01T00:00:00.000Z".into(),
            record_count: 2,
            first: Some(EventRef {
                id: 1,
                occurred_at: "x".into(),
            }),
            last: None,
            file: FileRef {
                name: "f.csv".into(),
                entry: None,
                sha256: "00".into(),
                size: 3,
            },
            sequence: 1,
            previous: None,
            key_id: key_id.into(),
        }
    }

    #[test]
    fn documents_round_trip_and_any_change_breaks_the_signature() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keyring::load_or_create(dir.path(), &Default::default()).unwrap();
        let key = keys.public_keys()[0].clone();
        let signed = sample(keys.active_id()).sign(&keys);
        let doc = signed.document();
        assert!(doc.starts_with("{\"engine\":"), "keys sorted: {doc}");
        let back = Signed::parse(doc.as_bytes()).unwrap();
        assert_eq!(back, signed);
        assert!(back.verifies_with(&key));
        // Re-indented: still the same document.
        let pretty =
            serde_json::to_string_pretty(&serde_json::from_str::<Value>(&doc).unwrap()).unwrap();
        let again = Signed::parse(pretty.as_bytes()).unwrap();
        assert!(again.verifies_with(&key));
        assert_eq!(again.sha256(), signed.sha256());
        // A changed filter: the signature no longer holds.
        let mut tampered = again.clone();
        tampered.manifest.filters["organization"] = Value::String("globex".into());
        assert!(!tampered.verifies_with(&key));
        assert!(Signed::parse(b"{\"a\":1}").is_err());
    }
}
