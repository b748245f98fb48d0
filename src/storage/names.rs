//! Names of stored exports: the file name a user sees, and key components
//! that tenant-supplied text can never climb out of.

/// The file name of an export (stored file and sync download alike):
/// organization, range (first and last day, in the export's zone: a Paris
/// day is named as that day) and creation time (UTC), e.g.
/// `audit-logs_acme_2025-01-01_2025-12-31_20260105T100000Z.csv`.
pub fn export_file_name(
    f: &crate::filters::Filters,
    format: crate::format::Format,
    zone: &crate::time::Zone,
    created_ms: i64,
) -> String {
    let created = chrono::DateTime::from_timestamp_millis(created_ms)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ");
    let day = |ms: i64| crate::time::format_date(ms + i64::from(zone.offset_secs(ms)) * 1000);
    format!(
        "audit-logs_{}_{}_{}_{created}.{}",
        safe_component(&f.organization),
        day(f.from_ms),
        day(f.to_ms - 1),
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
    fn the_range_is_named_in_the_exports_zone() {
        let input = crate::filters::FilterInput {
            organization: Some("acme".into()),
            from: Some("2025-08-02T22:00:00Z".into()),
            to: Some("2025-08-03T22:00:00Z".into()),
            ..Default::default()
        };
        // A half-open range ending at midnight Paris time.
        let mut f = input.validate(&Default::default()).unwrap();
        f.to_ms = crate::time::parse_rfc3339_ms("2025-08-03T22:00:00Z").unwrap();
        let csv = crate::format::Format::Csv;
        let paris = crate::time::Zone::parse("Europe/Paris").unwrap();
        assert_eq!(
            export_file_name(&f, csv, &paris, 0),
            "audit-logs_acme_2025-08-03_2025-08-03_19700101T000000Z.csv"
        );
        assert_eq!(
            export_file_name(&f, csv, &crate::time::Zone::utc(), 0),
            "audit-logs_acme_2025-08-02_2025-08-03_19700101T000000Z.csv"
        );
    }

    #[test]
    fn components_cannot_escape() {
        assert_eq!(safe_component("../../etc"), "-..-etc");
        assert_eq!(safe_component("acme corp/ü"), "acme-corp--");
        assert_eq!(safe_component(".."), "_");
    }
}
