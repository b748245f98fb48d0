//! Verifiable exports: every stored export carries a manifest — what was
//! exported, how, its data's SHA-256, size and record count, and the
//! SHA-256 of the organization's previous manifest (a chain) — signed with
//! Ed25519 by the instance's key, so an auditor can prove offline, years
//! later, that an export is complete and unaltered and that none of the
//! organization's exports was silently removed.
//!
//! - [`keys`]: the signing keys (created at first start, rotated; old
//!   public keys stay listed).
//! - [`document`]: the manifest, its canonical JSON and signature.
//! - [`verify`]: checking an export file and a chain of manifests, with
//!   no database and no network.
//! - [`store`]: the manifests kept in the database (the chain outlives the
//!   files' clean-up).
//!
//! This module does no storage I/O: the job's upload step stores what it
//! builds here.

pub mod document;
pub mod keys;
pub mod store;
pub mod verify;

pub use document::{Manifest, Signed};
pub use keys::Keyring;
