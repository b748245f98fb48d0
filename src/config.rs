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
}

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
        let mut cfg = match explicit {
            Some(p) => Self::from_file(p)?,
            None if Path::new(DEFAULT_FILE).is_file() => Self::from_file(Path::new(DEFAULT_FILE))?,
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().lines().collect::<Vec<_>>().join(" "),
        })
    }

    /// Applies `AUDIT_EXPORT_<SECTION>_<KEY>` overrides read through `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        env_parse(
            &get,
            "AUDIT_EXPORT_EXPORT_MAX_RANGE_DAYS",
            &mut self.export.max_range_days,
        )?;
        env_parse(
            &get,
            "AUDIT_EXPORT_EXPORT_BATCH_SIZE",
            &mut self.export.batch_size,
        )?;
        Ok(())
    }

    /// Filter limits derived from these settings.
    pub fn limits(&self) -> Limits {
        Limits {
            max_span_days: self.export.max_range_days,
        }
    }
}

fn env_parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    slot: &mut T,
) -> Result<(), ConfigError>
where
    T::Err: std::fmt::Display,
{
    if let Some(v) = get(name) {
        *slot = v.trim().parse().map_err(|e: T::Err| ConfigError::Env {
            name: name.to_string(),
            message: format!("{v:?}: {e}"),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[export]\nmax_range_days = 31\n").unwrap();
        let mut c = Config::from_file(&p).unwrap();
        assert_eq!(c.export.max_range_days, 31);
        assert_eq!(c.export.batch_size, 5_000);
        c.apply_env(|k| (k == "AUDIT_EXPORT_EXPORT_BATCH_SIZE").then(|| "100".to_string()))
            .unwrap();
        assert_eq!(c.export.batch_size, 100);
        assert!(c
            .apply_env(|k| (k == "AUDIT_EXPORT_EXPORT_MAX_RANGE_DAYS").then(|| "x".into()))
            .is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[export]\nmax_range_dayz = 31\n").unwrap();
        assert!(matches!(
            Config::from_file(&p),
            Err(ConfigError::Parse { .. })
        ));
    }
}
