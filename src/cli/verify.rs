//! `audit-export verify` (an export against its signed manifest, or a chain
//! of manifests — offline) and `audit-export keys show | rotate`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{Cli, CliError};
use crate::manifest::keys::{key_id, local_public_keys, PublicKey};
use crate::manifest::verify::{verify_chain, verify_file};
use crate::manifest::{Keyring, Signed};
use crate::util::unhex;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The export file (a zip carries its manifest; a plain file has
    /// FILE.manifest.json beside it).
    #[arg(required_unless_present = "chain")]
    file: Option<PathBuf>,
    /// The manifest, when not in the zip nor beside the file.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// A public key to trust: 64 hex digits, or a file holding them or the
    /// JSON of GET /api/v1/signing-key (repeatable). Default: the keys of
    /// the local instance (--data-dir).
    #[arg(long = "public-key", value_name = "K")]
    public_keys: Vec<String>,
    /// Verify a chain of manifests instead: a folder of manifest files,
    /// (default: this one) or, with --org, the organization's chain in the
    /// database.
    #[arg(long, num_args = 0..=1, default_missing_value = ".", value_name = "DIR")]
    chain: Option<PathBuf>,
    /// With --chain: the organization whose chain in the database to check.
    #[arg(long, requires = "chain")]
    org: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// The instance's public keys with their ids (the active one marked).
    Show,
    /// Create a new signing key and make it the active one; older public
    /// keys stay listed, so old manifests keep verifying.
    Rotate,
}

/// The keys to trust: `--public-key` values, else the local instance's.
fn trusted(cli: &Cli, values: &[String]) -> Result<Vec<PublicKey>, CliError> {
    if values.is_empty() {
        // The instance's keys, with `[signing] key_file` if the config
        // names one (verify itself needs no valid config otherwise).
        let signing = crate::config::Config::load(cli.config.as_deref())
            .map(|c| c.signing)
            .unwrap_or_default();
        return Ok(local_public_keys(&cli.data_dir, &signing));
    }
    let mut keys = Vec::new();
    for v in values {
        let text = if Path::new(v).is_file() {
            std::fs::read_to_string(v)
                .map_err(|e| CliError::bad_input(format!("--public-key: {v}: {e}")))?
        } else {
            v.clone()
        };
        let hexes: Vec<String> = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(j) => j["keys"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k["public_key"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            Err(_) => vec![text.trim().to_string()],
        };
        if hexes.is_empty() {
            return Err(CliError::bad_input(format!("--public-key: no key in {v}")));
        }
        for h in hexes {
            let bytes = unhex(&h).filter(|b| b.len() == 32).ok_or_else(|| {
                CliError::bad_input(format!("--public-key: {h:?} is not 64 hex digits"))
            })?;
            keys.push(PublicKey {
                key_id: key_id(&bytes),
                algorithm: "Ed25519",
                public_key: h.to_ascii_lowercase(),
                active: false,
            });
        }
    }
    Ok(keys)
}

pub fn verify(cli: &Cli, a: &VerifyArgs) -> Result<(), CliError> {
    let keys = trusted(cli, &a.public_keys)?;
    if let Some(dir) = &a.chain {
        return chain(cli, a, dir, &keys);
    }
    let file = a.file.as_ref().expect("clap requires FILE without --chain");
    if !file.is_file() {
        return Err(CliError::bad_input(format!(
            "FILE: {} is not a file",
            file.display()
        )));
    }
    let verdict = verify_file(file, a.manifest.as_deref(), &keys)
        .map_err(|e| CliError::bad_input(e.to_string()))?;
    if verdict.valid() {
        println!("VALID {}: {}", file.display(), verdict.detail);
        Ok(())
    } else {
        println!(
            "INVALID {}: {} ({})",
            file.display(),
            verdict.failures.join(", "),
            verdict.detail
        );
        Err(CliError {
            code: 1,
            message: format!(
                "{} does not match its manifest: {}",
                file.display(),
                verdict.failures.join(", ")
            ),
        })
    }
}

fn chain(cli: &Cli, a: &VerifyArgs, dir: &Path, keys: &[PublicKey]) -> Result<(), CliError> {
    let mut docs = Vec::new();
    let what = match &a.org {
        Some(org) => {
            let conn = crate::db::open_existing(&cli.data_dir)?;
            let mut after = 0;
            loop {
                let page = crate::manifest::store::list(&conn, org, after, 1000)?;
                let Some(last) = page.last() else { break };
                after = last.sequence;
                for m in page {
                    let s = Signed::parse(m.document.as_bytes())
                        .map_err(|e| CliError::failure(format!("sequence {}: {e}", m.sequence)))?;
                    docs.push((format!("sequence {}", m.sequence), s));
                }
            }
            format!("organization {org}")
        }
        None => {
            if !dir.is_dir() {
                return Err(CliError::bad_input(format!(
                    "--chain: {} is not a folder",
                    dir.display()
                )));
            }
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| CliError::bad_input(format!("--chain: {e}")))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for f in files {
                let text = std::fs::read(&f)
                    .map_err(|e| CliError::bad_input(format!("{}: {e}", f.display())))?;
                let s = Signed::parse(&text)
                    .map_err(|e| CliError::bad_input(format!("{}: {e}", f.display())))?;
                docs.push((f.display().to_string(), s));
            }
            dir.display().to_string()
        }
    };
    if docs.is_empty() {
        return Err(CliError::bad_input(format!(
            "--chain: no manifests in {what}"
        )));
    }
    let v = verify_chain(docs, keys);
    match v.problem {
        None => {
            println!(
                "VALID chain {what}: {} manifests, sequences 1 to {} linked",
                v.manifests, v.manifests
            );
            Ok(())
        }
        Some(p) => {
            println!("INVALID chain {what}: {p}");
            Err(CliError {
                code: 1,
                message: format!("the chain of {what} is broken: {p}"),
            })
        }
    }
}

pub fn keys(cli: &Cli, cfg: &crate::config::Config, a: &KeysArgs) -> Result<(), CliError> {
    match a.command {
        KeysCommand::Show => {
            let ring = Keyring::load_or_create(&cli.data_dir, &cfg.signing)
                .map_err(|e| CliError::failure(e.to_string()))?;
            for k in ring.public_keys() {
                println!(
                    "{}  {}  {}{}",
                    k.key_id,
                    k.algorithm,
                    k.public_key,
                    if k.active { "  (active)" } else { "" }
                );
            }
        }
        KeysCommand::Rotate => {
            if let Some(file) = &cfg.signing.key_file {
                return Err(CliError::bad_input(format!(
                    "[signing] key_file is set ({file}): manifests are signed with that key; \
                     to rotate, point key_file at a new PKCS#8 key and restart"
                )));
            }
            std::fs::create_dir_all(&cli.data_dir)
                .map_err(|e| CliError::failure(format!("{}: {e}", cli.data_dir.display())))?;
            let id =
                Keyring::rotate(&cli.data_dir).map_err(|e| CliError::failure(e.to_string()))?;
            println!("{id}");
            eprintln!("new signing key {id} is active; older public keys stay listed (a running serve or worker signs with it from its next manifest)");
        }
    }
    Ok(())
}
