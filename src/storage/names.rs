//! Names of stored exports: the file name a user sees, and key components
//! that tenant-supplied text can never climb out of.

/// The file name of an export (stored file and sync download alike):
/// organization, range and creation time, e.g.
/// `audit-logs_acme_2025-01-01_2025-12-31_20260105T100000Z.csv`.
pub fn export_file_name(
    f: &crate::filters::Filters,
    format: crate::format::Format,
    created_ms: i64,
) -> String {
    let created = chrono::DateTime::from_timestamp_millis(created_ms)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ");
    format!(
        "audit-logs_{}_{}_{}_{created}.{}",
        safe_component(&f.organization),
        crate::time::format_date(f.from_ms),
        crate::time::format_date(f.to_ms - 1),
        format.extension()
    )
}

/// A storage key or file-name component: keeps `[A-Za-z0-9._-]`, maps the
/// rest to `-`, so tenant-supplied names can never climb out of a folder.
pub fn safe_component(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('.');
    if trimmed.is_empty() {
        "_".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_cannot_escape() {
        assert_eq!(safe_component("../../etc"), "-..-etc");
        assert_eq!(safe_component("acme corp/ü"), "acme-corp--");
        assert_eq!(safe_component(".."), "_");
    }
}
