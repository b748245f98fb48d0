//! Settings and their defaults.
//!
//! Sources, later ones winning: built-in defaults, `audit-export.toml`
//! (path from `--config`, `AUDIT_EXPORT_CONFIG`, or `./audit-export.toml`
//! when present), environment variables named after section and key
//! (`[export] max_range_days` → `AUDIT_EXPORT_EXPORT_MAX_RANGE_DAYS`), and
//! finally CLI flags (applied by `cli`). Every key is optional.
//!
//! [`show`] tells, for `audit-export config show`, where each effective
//! value came from. This module does no I/O beyond reading that file and the
//! environment.

mod show;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::filters::Limits;

pub use show::{show, Source};

/// All settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[export]`: range limit, batch size, threads of an export.
    pub export: ExportConfig,
    /// `[jobs]`: background export jobs (parallelism, leases, retries, TTLs).
    pub jobs: crate::jobs::JobsConfig,
    /// `[storage]`: where stored export files go (local disk or S3).
    pub storage: crate::storage::StorageConfig,
    /// `[http]`: the API server.
    pub http: HttpConfig,
    /// `[notify]`: e-mail sender, recipient rules, outbox delivery.
    pub notify: crate::notify::NotifyConfig,
    /// `[smtp]`: the mail server; none means `.eml` files.
    pub smtp: crate::notify::SmtpConfig,
    /// `[schedules]`: scheduled exports.
    pub schedules: SchedulesConfig,
    /// `[redaction]`: keys redacted besides the built-in ones.
    pub redaction: crate::format::RedactionConfig,
    /// `[signing]`: the manifest signing keys.
    pub signing: crate::manifest::keys::SigningConfig,
}

/// Sections that environment variables can address.
const SECTIONS: [&str; 9] = [
    "export",
    "jobs",
    "storage",
    "http",
    "notify",
    "smtp",
    "schedules",
    "redaction",
    "signing",
];

/// `AUDIT_EXPORT_*` variables that are not settings of a section: read by
/// the command line itself.
pub const COMMAND_VARIABLES: [&str; 7] = [
    "AUDIT_EXPORT_DATA_DIR",
    "AUDIT_EXPORT_CONFIG",
    "AUDIT_EXPORT_CONSOLE_DIR",
    "AUDIT_EXPORT_LOG",
    "AUDIT_EXPORT_LOG_FORMAT",
    "AUDIT_EXPORT_REQUESTER",
    "AUDIT_EXPORT_TOKEN",
];

/// `[schedules]` settings (here rather than in `schedules`, which runs on
/// the service that holds the whole configuration).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulesConfig {
    /// The folder of schedule files (default: `workflows` in the working
    /// directory).
    pub dir: Option<String>,
}

impl SchedulesConfig {
    /// The folder to read.
    pub fn dir(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(self.dir.as_deref().unwrap_or("workflows"))
    }
}

/// `[http]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: String,
    /// Base of links handed out (e-mails, `download_url`); default
    /// `http://<listen>`.
    pub public_url: Option<String>,
    /// Request threads (the bound on concurrent requests).
    pub workers: usize,
    /// Largest accepted request body.
    pub max_body_bytes: u64,
    /// Below this many matching rows, `mode: auto` streams the file at once.
    pub sync_threshold: u64,
    /// How long a download link stays valid after the job completes.
    pub link_ttl_secs: u64,
    /// Link-signing secret; default: generated into `<data-dir>/link-secret`.
    pub secret: Option<String>,
    /// The whole request head must arrive within this (also the idle
    /// keep-alive timeout).
    pub head_timeout_secs: u64,
    /// Longest pause between two reads of a request body.
    pub body_timeout_secs: u64,
    /// Longest pause of a client that stops reading an answer.
    pub write_timeout_secs: u64,
    /// Connections open at once; beyond, `503` at once.
    pub max_connections: usize,
    /// After SIGTERM, how long answers still being sent may take before the
    /// process exits anyway.
    pub shutdown_grace_secs: u64,
    /// If set, `GET /metrics` needs `Authorization: Bearer <metrics_token>`.
    pub metrics_token: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            workers: 8,
            max_body_bytes: 10 << 20,
            sync_threshold: 10_000,
            link_ttl_secs: 24 * 3600,
            secret: None,
            head_timeout_secs: 10,
            body_timeout_secs: 30,
            write_timeout_secs: 30,
            max_connections: 512,
            shutdown_grace_secs: 10,
            metrics_token: None,
        }
    }
}

/// `[export]`: how exports run.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// Longest date range one export may cover, in days.
    pub max_range_days: u32,
    /// Rows per keyset page.
    pub batch_size: usize,
    /// Threads one export scans and encodes with (0: one per core); the
    /// output is the same bytes whatever the number.
    pub threads: usize,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            max_range_days: 366,
            batch_size: crate::audit::query::DEFAULT_BATCH,
            threads: 0,
        }
    }
}

impl ExportConfig {
    /// The threads an export uses.
    pub fn threads(&self) -> usize {
        crate::stream::threads(self.threads)
    }
}

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file's path.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not TOML, or has an unknown key or a value of the wrong type.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file's path.
        path: PathBuf,
        /// The parser's message, on one line.
        message: String,
    },
    /// An `AUDIT_EXPORT_*` variable names no setting or has a bad value.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable's name.
        name: String,
        /// What is wrong with it.
        message: String,
    },
}

/// File name looked for in the working directory.
pub const DEFAULT_FILE: &str = "audit-export.toml";

impl Config {
    /// Loads defaults, then the file (explicit path, or the default file if
    /// it exists), then environment overrides.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let (table, path) = Self::file(explicit)?;
        Self::from_table(table, &path, std::env::vars())
    }

    /// The config file's table and its path (an empty table when there is
    /// no file).
    pub fn file(explicit: Option<&Path>) -> Result<(toml::Table, PathBuf), ConfigError> {
        Ok(match explicit {
            Some(p) => (Self::read_table(p)?, p.to_path_buf()),
            None if Path::new(DEFAULT_FILE).is_file() => (
                Self::read_table(Path::new(DEFAULT_FILE))?,
                PathBuf::from(DEFAULT_FILE),
            ),
            None => (toml::Table::new(), PathBuf::from(NO_FILE)),
        })
    }

    fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        text.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: one_line(&e.to_string()),
        })
    }

    /// Merges `AUDIT_EXPORT_<SECTION>_<KEY>` variables into `table`, then
    /// deserializes. A variable's value is read as a TOML value when it is
    /// one (`31`, `true`), else as a string (`auto`, `smtp.example.com`).
    /// A variable naming no setting, or with a value its setting cannot
    /// take, is an error naming that variable.
    pub fn from_table(
        mut table: toml::Table,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        for (name, value) in env {
            let Some((section, key, parsed)) = env_setting(&name, &value)? else {
                continue;
            };
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => {
                    t.insert(key.to_string(), parsed);
                }
                _ => {
                    return Err(ConfigError::Env {
                        name,
                        message: format!("[{section}] in the config file is not a table"),
                    })
                }
            }
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: path.to_path_buf(),
                message: one_line(&e.to_string()),
            })
    }

    /// How long a download link lives after its job completed: the link
    /// TTL, but never past the download window (the file is deleted then).
    pub fn link_secs(&self) -> u64 {
        self.http.link_ttl_secs.min(self.jobs.download_ttl_secs)
    }

    /// The redaction rules: the built-in sensitive keys and `[redaction] keys`.
    pub fn redactor(&self) -> crate::format::Redactor {
        crate::format::Redactor::new(&self.redaction.keys)
    }

    /// Filter limits derived from these settings.
    pub fn limits(&self) -> Limits {
        Limits {
            max_span_days: self.export.max_range_days,
        }
    }
}

/// What the config file's path reads as when there is none.
const NO_FILE: &str = "(no config file)";

/// The setting an `AUDIT_EXPORT_*` variable addresses: `(section, key,
/// value)`; `None` for other variables and the command's own. Checked on
/// its own, so a misspelled name or a bad value is blamed on the variable.
fn env_setting(
    name: &str,
    value: &str,
) -> Result<Option<(&'static str, String, toml::Value)>, ConfigError> {
    let Some(rest) = name.strip_prefix("AUDIT_EXPORT_") else {
        return Ok(None);
    };
    if COMMAND_VARIABLES.contains(&name) {
        return Ok(None);
    }
    let rest = rest.to_ascii_lowercase();
    let bad = |message: String| ConfigError::Env {
        name: name.to_string(),
        message,
    };
    let Some(section) = SECTIONS
        .iter()
        .copied()
        .find(|s| rest.starts_with(&format!("{s}_")))
    else {
        return Err(bad(format!(
            "no such setting (variables are AUDIT_EXPORT_<SECTION>_<KEY>, sections {}; or one of {})",
            SECTIONS.join(", "),
            COMMAND_VARIABLES.join(", ")
        )));
    };
    let key = rest[section.len() + 1..].to_string();
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut alone = toml::Table::new();
    alone.insert(
        section.to_string(),
        toml::Value::Table(toml::Table::from_iter([(key.clone(), parsed.clone())])),
    );
    if let Err(e) = toml::Value::Table(alone).try_into::<Config>() {
        let msg = one_line(&e.to_string());
        return Err(bad(if msg.contains("unknown field") {
            format!("[{section}] has no key {key:?} ({msg})")
        } else {
            format!("[{section}] {key}: {msg}")
        }));
    }
    Ok(Some((section, key, parsed)))
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let table: toml::Table = file.parse().unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::from_table(table, Path::new("test.toml"), env)
    }

    #[test]
    fn file_then_env_override_defaults() {
        let c = load("[export]\nmax_range_days = 31\n", &[]).unwrap();
        assert_eq!(c.export.max_range_days, 31);
        assert_eq!(c.export.batch_size, 5_000);
        assert_eq!(c.jobs.max_parallel_jobs, 2);
        let c = load(
            "[export]\nmax_range_days = 31\n",
            &[
                ("AUDIT_EXPORT_EXPORT_BATCH_SIZE", "100"),
                ("AUDIT_EXPORT_EXPORT_MAX_RANGE_DAYS", "40"),
                ("AUDIT_EXPORT_JOBS_COMPRESS", "never"),
                ("AUDIT_EXPORT_STORAGE_KIND", "s3"),
                ("AUDIT_EXPORT_STORAGE_BUCKET", "exports"),
                ("AUDIT_EXPORT_DATA_DIR", "/elsewhere"),
                ("PATH", "/bin"),
            ],
        )
        .unwrap();
        assert_eq!(c.export.batch_size, 100);
        assert_eq!(c.export.max_range_days, 40);
        assert_eq!(c.jobs.compress, crate::jobs::Compress::Never);
        assert_eq!(c.storage.kind, crate::storage::StorageKind::S3);
        assert_eq!(c.storage.bucket.as_deref(), Some("exports"));
        assert!(load("", &[("AUDIT_EXPORT_EXPORT_MAX_RANGE_DAYS", "x")]).is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(matches!(
            load("[export]\nmax_range_dayz = 31\n", &[]),
            Err(ConfigError::Parse { .. })
        ));
        let err = load("", &[("AUDIT_EXPORT_JOBS_MAX_PARALEL_JOBS", "3")]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Env { name, .. } if name == "AUDIT_EXPORT_JOBS_MAX_PARALEL_JOBS"),
            "{err}"
        );
        let err = load("", &[("AUDIT_EXPORT_JOBZ_MAX_PARALLEL_JOBS", "3")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("AUDIT_EXPORT_JOBZ_MAX_PARALLEL_JOBS"),
            "{err}"
        );
        let err = load("", &[("AUDIT_EXPORT_EXPORT_MAX_RANGE_DAYS", "x")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("AUDIT_EXPORT_EXPORT_MAX_RANGE_DAYS"),
            "{err}"
        );
        assert!(load(
            "",
            &[
                ("AUDIT_EXPORT_LOG", "debug"),
                ("AUDIT_EXPORT_REQUESTER", "x")
            ]
        )
        .is_ok());
    }
}
