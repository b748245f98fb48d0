//! `audit-export config show`: every setting's effective value and where it
//! came from (built-in default, the config file, an environment variable),
//! with secrets masked. Printed as TOML with the source as a comment, so
//! the output can be edited into a config file.

use std::path::Path;

use serde_json::Value;

use super::{env_setting, Config, ConfigError};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The config file, by its path.
    File(String),
    /// An environment variable, by its name.
    Env(String),
}

/// Keys whose values are never printed.
fn is_secret(key: &str) -> bool {
    matches!(
        key,
        "password" | "secret" | "secret_access_key" | "access_key_id" | "username"
    ) || key.ends_with("_token")
        || key.ends_with("_secret")
}

/// Renders the effective configuration with the source of each value.
pub fn show(
    file: &toml::Table,
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<String, ConfigError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let effective = Config::from_table(file.clone(), path, env.iter().cloned())?;
    // serde_json keeps `None` as null, so unset keys are listed too.
    let all = serde_json::to_value(&effective).expect("config serializes");
    let mut from_env = std::collections::BTreeMap::new();
    for (name, value) in &env {
        if let Some((section, key, _)) = env_setting(name, value)? {
            from_env.insert((section.to_string(), key), name.clone());
        }
    }
    let mut out = String::new();
    let Value::Object(sections) = all else {
        unreachable!("a struct serializes to an object")
    };
    for (section, keys) in sections {
        out.push_str(&format!("[{section}]\n"));
        let Value::Object(keys) = keys else { continue };
        for (key, value) in keys {
            let source = match from_env.get(&(section.clone(), key.clone())) {
                Some(var) => Source::Env(var.clone()),
                None if file
                    .get(&section)
                    .and_then(|t| t.as_table())
                    .is_some_and(|t| t.contains_key(&key)) =>
                {
                    Source::File(path.display().to_string())
                }
                None => Source::Default,
            };
            let rendered = match &value {
                Value::Null => None,
                _ if is_secret(&key) => Some("\"********\"".to_string()),
                Value::Object(m) if m.is_empty() => Some("{}".to_string()),
                v => Some(toml_value(v)),
            };
            let from = match &source {
                Source::Default => "default".to_string(),
                Source::File(p) => format!("file {p}"),
                Source::Env(v) => format!("variable {v}"),
            };
            let line = match rendered {
                Some(v) => format!("{key} = {v}"),
                None => format!("# {key} (not set)"),
            };
            out.push_str(&format!("{line:<48} # {from}\n"));
        }
        out.push('\n');
    }
    Ok(out)
}

/// A JSON value as a TOML value (inline).
fn toml_value(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).expect("strings serialize"),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{ {} }}",
            m.iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        serde_json::to_string(k).expect("strings serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_names_its_source_and_secrets_are_masked() {
        let file: toml::Table =
            "[smtp]\nhost = \"mail.example\"\npassword = \"hunter2\"\n[notify.allowed_recipient_domains]\nacme = [\"auditors.example\"]\n"
                .parse()
                .unwrap();
        let env = [
            (
                "AUDIT_EXPORT_JOBS_MAX_ATTEMPTS".to_string(),
                "5".to_string(),
            ),
            (
                "AUDIT_EXPORT_HTTP_SECRET".to_string(),
                "s3cr3t-value".to_string(),
            ),
        ];
        let out = show(&file, Path::new("audit-export.toml"), env).unwrap();
        let line = |k: &str| {
            out.lines()
                .find(|l| l.starts_with(k))
                .unwrap_or_else(|| panic!("{k} missing in\n{out}"))
                .to_string()
        };
        assert!(line("max_attempts = 5").contains("variable AUDIT_EXPORT_JOBS_MAX_ATTEMPTS"));
        assert!(line("host = \"mail.example\"").contains("file audit-export.toml"));
        assert!(line("max_range_days = 366").contains("default"));
        assert!(line("password = \"********\"").contains("file"));
        assert!(line("secret = \"********\"").contains("variable"));
        assert!(line("allowed_recipient_domains").contains("auditors.example"));
        assert!(out.contains("# public_url (not set)"));
        assert!(
            !out.contains("hunter2") && !out.contains("s3cr3t-value"),
            "{out}"
        );
    }
}
