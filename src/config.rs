//! Settings and their defaults.
//!
//! Sources, later ones winning: built-in defaults, `audit-export.toml`
//! (path from `--config`, `AUDIT_EXPORT_CONFIG`, or `./audit-export.toml`
//! when present), environment variables named after section and key
//! (`[export] max_range_days` → `AUDIT_EXPORT_EXPORT_MAX_RANGE_DAYS`), and
//! finally CLI flags (applied by `cli`). Every key is optional.
//!
//! This module does no I/O beyond reading that file and the environment.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::filters::Limits;

/// All settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub export: ExportConfig,
    pub jobs: crate::jobs::JobsConfig,
    pub storage: crate::storage::StorageConfig,
    pub http: crate::http::HttpConfig,
    pub notify: crate::notify::NotifyConfig,
    pub smtp: crate::notify::SmtpConfig,
}

/// Sections that environment variables can address.
const SECTIONS: [&str; 6] = ["export", "jobs", "storage", "http", "notify", "smtp"];

/// `[export]`: how exports run.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// Longest date range one export may cover, in days.
    pub max_range_days: u32,
    /// Rows per keyset page.
    pub batch_size: usize,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            max_range_days: 366,
            batch_size: crate::audit::query::DEFAULT_BATCH,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
}

/// File name looked for in the working directory.
pub const DEFAULT_FILE: &str = "audit-export.toml";

impl Config {
    /// Loads defaults, then the file (explicit path, or the default file if
    /// it exists), then environment overrides.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let (table, path) = match explicit {
            Some(p) => (Self::read_table(p)?, p.to_path_buf()),
            None if Path::new(DEFAULT_FILE).is_file() => (
                Self::read_table(Path::new(DEFAULT_FILE))?,
                PathBuf::from(DEFAULT_FILE),
            ),
            None => (
                toml::Table::new(),
                PathBuf::from("(none: defaults and AUDIT_EXPORT_* variables)"),
            ),
        };
        Self::from_table(table, &path, std::env::vars())
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
    pub fn from_table(
        mut table: toml::Table,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("AUDIT_EXPORT_") else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            let Some(section) = SECTIONS.iter().find(|s| rest.starts_with(&format!("{s}_"))) else {
                continue;
            };
            let key = &rest[section.len() + 1..];
            let parsed = format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(value.clone()));
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
                message: format!(
                "{} (environment variables AUDIT_EXPORT_<SECTION>_<KEY> count as the file's keys)",
                one_line(&e.to_string())
            ),
            })
    }

    /// Filter limits derived from these settings.
    pub fn limits(&self) -> Limits {
        Limits {
            max_span_days: self.export.max_range_days,
        }
    }
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
        assert!(load("", &[("AUDIT_EXPORT_JOBS_MAX_PARALEL_JOBS", "3")]).is_err());
    }
}
