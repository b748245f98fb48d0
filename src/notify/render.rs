//! E-mail content for each notification kind, as plain text and HTML.
//! Rendered from the payload snapshot taken at the job's end, plus the
//! signed link, so a message reads the same whenever it is sent.

use serde_json::Value;

use super::Kind;
use crate::links::Link;

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body, values escaped.
    pub html: String,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders a message of `kind` from the job snapshot `p`.
pub fn render(kind: Kind, p: &Value, link: Option<&Link>) -> Rendered {
    let summary = p["summary"].as_str().unwrap_or_default();
    let job = p["job_id"].as_str().unwrap_or_default();
    let format = p["format"].as_str().unwrap_or_default().to_uppercase();
    let (subject, lines): (String, Vec<String>) = match kind {
        Kind::Completed => {
            let f = &p["file"];
            let mut l = vec![
                format!("Your {format} export of audit logs is ready."),
                String::new(),
                format!("File:     {}", f["name"].as_str().unwrap_or_default()),
                format!("Records:  {}", p["record_count"]),
                format!("Size:     {} bytes", f["size"]),
                format!("SHA-256:  {}", f["sha256"].as_str().unwrap_or_default()),
                format!("Filters:  {summary}"),
            ];
            if let Some(link) = link {
                l.push(String::new());
                l.push(format!("Download: {}", link.url));
                l.push(format!(
                    "The link expires at {}. After that, run the export again.",
                    link.expires_at()
                ));
            }
            (
                format!(
                    "Your audit log export is ready ({} records)",
                    p["record_count"]
                ),
                l,
            )
        }
        Kind::Failed => {
            let code = p["error"]["code"].as_str().unwrap_or("error");
            let msg = p["error"]["message"].as_str().unwrap_or_default();
            let retry = if code == "cancelled" {
                "The export was cancelled. Request it again if you still need it.".to_string()
            } else {
                "To retry, request the same export again; if it keeps failing, contact your administrator with the job id.".to_string()
            };
            (
                "Your audit log export failed".to_string(),
                vec![
                    format!("Your {format} export of audit logs failed."),
                    String::new(),
                    format!("Reason:   {code}: {msg}"),
                    format!("Filters:  {summary}"),
                    format!("Job:      {job}"),
                    String::new(),
                    retry,
                ],
            )
        }
        Kind::Expired => (
            "Your audit log export expired".to_string(),
            vec![
                format!("Your {format} export of audit logs did not finish in time and expired."),
                String::new(),
                format!("Filters:  {summary}"),
                format!("Job:      {job}"),
                String::new(),
                "Request the export again; a narrower date range finishes sooner.".to_string(),
            ],
        ),
        Kind::NoResults => (
            "Your audit log export found no records".to_string(),
            vec![
                format!("No audit events matched your {format} export, so no file was created."),
                String::new(),
                format!("Filters:  {summary}"),
                String::new(),
                "Check the date range and filters, then request the export again.".to_string(),
            ],
        ),
    };
    let text = lines.join("\n") + "\n";
    let mut html = String::from("<!DOCTYPE html><html><body style=\"font-family:sans-serif\">");
    for l in &lines {
        if l.is_empty() {
            continue;
        }
        match (l.strip_prefix("Download: "), link) {
            (Some(_), Some(link)) => html.push_str(&format!(
                "<p><a href=\"{0}\">Download the export</a><br><small>{0}</small></p>",
                esc(&link.url)
            )),
            _ => html.push_str(&format!("<p>{}</p>", esc(l))),
        }
    }
    html.push_str("</body></html>");
    Rendered {
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn completed_mail_carries_link_file_and_filters_escaped() {
        let p = json!({"job_id": "J1", "format": "csv", "summary": "acme <script>", "record_count": 12,
            "file": {"name": "a.csv", "size": 34, "sha256": "ab12"}});
        let link = Link {
            url: "http://x/download/J1?expires=1&sig=aa".into(),
            expires: 1_767_225_600,
        };
        let r = render(Kind::Completed, &p, Some(&link));
        for needle in [
            "a.csv",
            "12",
            "34 bytes",
            "ab12",
            "acme <script>",
            "http://x/download/J1?expires=1&sig=aa",
            "2026-01-01T00:00:00.000Z",
        ] {
            assert!(r.text.contains(needle), "{needle}");
        }
        assert!(r.html.contains("acme &lt;script&gt;") && !r.html.contains("<script>"));
        assert!(r
            .html
            .contains("href=\"http://x/download/J1?expires=1&amp;sig=aa\""));
        let f = render(
            Kind::Failed,
            &json!({"error": {"code": "storage_error", "message": "boom"}, "summary": "s"}),
            None,
        );
        assert!(f.text.contains("storage_error: boom") && f.text.contains("To retry"));
        assert!(
            render(Kind::NoResults, &json!({"summary": "acme from X"}), None)
                .text
                .contains("acme from X")
        );
        assert!(render(Kind::Expired, &json!({"summary": "s"}), None)
            .subject
            .contains("expired"));
    }
}
