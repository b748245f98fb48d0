//! Tests of schedule definitions.
use super::*;

fn parse_str(text: &str) -> Result<ScheduleDef, Box<Invalid>> {
    parse(Path::new("workflows/t.toml"), text, &Limits::default())
}

const GOOD: &str = r#"
name = "daily"
schedule = "0 6 * * *"
timezone = "Europe/Paris"
organization = "acme"
range = "previous_day"
recipients = ["ada@acme.example"]
archive = "archive/{organization}/{name}/{period_start:%Y-%m-%d}.{ext}"
[filters]
actions = ["user.*"]
"#;

#[test]
fn a_good_file_parses_with_defaults() {
    let d = parse_str(GOOD).unwrap();
    assert_eq!(d.name, "daily");
    assert_eq!(d.tz.name(), "Europe/Paris");
    assert_eq!(d.format, Format::Csv);
    assert!(d.enabled && d.options.csv.bom && d.options.redact.0 && d.catch_up == CatchUp::Latest);
    let d =
        parse_str("name='n'\nschedule='@daily'\norganization='o'\nrange='last_7_days'\n").unwrap();
    assert_eq!(d.tz.name(), "UTC");
}

#[test]
fn each_mistake_names_its_field_and_code() {
    let cases = [
        (
            GOOD.replace("0 6 * * *", "0 6 * *"),
            "schedule",
            "invalid_schedule",
        ),
        (
            GOOD.replace("Europe/Paris", "Europe/Pariss"),
            "timezone",
            "invalid_timezone",
        ),
        (
            GOOD.replace("previous_day", "yesterday"),
            "range",
            "invalid_range",
        ),
        (
            GOOD.replace("user.*", "user*x"),
            "filters.actions",
            "invalid_action",
        ),
        (
            GOOD.replace("[filters]", "colour = 'red'\n[filters]"),
            "colour",
            "unknown_field",
        ),
        (
            GOOD.replace("range = \"previous_day\"\n", ""),
            "range",
            "missing_field",
        ),
        (
            GOOD.replace("{name}", "{nom}"),
            "archive",
            "invalid_archive",
        ),
        (
            GOOD.replace("archive/", "../"),
            "archive",
            "invalid_archive",
        ),
        (
            GOOD.replace("organization = \"acme\"", "organization = \"\""),
            "organization",
            "organization_required",
        ),
    ];
    for (text, field, code) in cases {
        let e = parse_str(&text).unwrap_err();
        assert_eq!((e.field.as_str(), e.code.as_str()), (field, code), "{e}");
        assert!(e.to_string().starts_with("workflows/t.toml: "), "{e}");
    }
}

#[test]
fn archive_keys_fill_in_safely() {
    let v = ArchiveValues {
        organization: "acme/../x",
        name: "daily",
        job_id: "J1",
        ext: "csv",
        tz: zone("Europe/Paris").unwrap(),
        period_start: crate::time::parse_rfc3339_ms("2026-03-27T23:00:00Z").unwrap(),
        period_end: 0,
        fire_time: 0,
    };
    assert_eq!(
        archive_key(
            "archive/{organization}/{name}/{period_start:%Y-%m-%d}.{ext}",
            &v
        ),
        "archive/acme-..-x/daily/2026-03-28.csv"
    );
}

#[test]
fn compress_is_a_policy_or_a_flag() {
    let with =
        |v: &str| parse_str(&GOOD.replace("[filters]", &format!("compress = {v}\n[filters]")));
    assert_eq!(with("true").unwrap().compress, Some(Compress::Always));
    assert_eq!(with("false").unwrap().compress, Some(Compress::Never));
    assert_eq!(with("'auto'").unwrap().compress, Some(Compress::Auto));
    assert_eq!(parse_str(GOOD).unwrap().compress, None);
    assert_eq!(with("'zip'").unwrap_err().code, "invalid_compress");
}
