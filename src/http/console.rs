//! The web console: its files (`console/`, embedded at build time by
//! `build.rs`: plain HTML, CSS and JS modules, nothing to build) served at
//! `/` and `/console/…`. The console only calls the public API with the
//! user's token; this module serves bytes and holds no logic.

use super::routes::{boxed, Reply};
use super::util::header;

include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// Serves the console from this folder instead of the embedded copy (for
/// working on the console without rebuilding the binary).
pub const DEV_DIR_VARIABLE: &str = "AUDIT_EXPORT_CONSOLE_DIR";

/// The asset for a request path, if it is the console's: `/` is
/// `index.html`, `/console/x` is `x`.
pub fn asset(path: &str) -> Option<Reply> {
    let rel = match path {
        "/" | "/index.html" => "index.html",
        p => p.strip_prefix("/console/")?,
    };
    if rel
        .split('/')
        .any(|part| part.is_empty() || part == ".." || part.starts_with('.'))
    {
        return None;
    }
    let (ctype, bytes) = match std::env::var_os(DEV_DIR_VARIABLE) {
        Some(dir) => {
            let (_, ctype, _) = ASSETS
                .iter()
                .find(|(p, _, _)| *p == rel)
                .copied()
                .unwrap_or(("", content_type(rel), &[]));
            (
                ctype,
                std::fs::read(std::path::Path::new(&dir).join(rel)).ok()?,
            )
        }
        None => {
            let (_, ctype, bytes) = ASSETS.iter().find(|(p, _, _)| *p == rel)?;
            (*ctype, bytes.to_vec())
        }
    };
    Some(boxed(
        tiny_http::Response::from_data(bytes)
            .with_header(header("Content-Type", ctype))
            // Cheap to revalidate, and a new binary serves new files.
            .with_header(header("Cache-Control", "no-cache")),
    ))
}

fn content_type(rel: &str) -> &'static str {
    match rel.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// Headers on every answer, console and API: no inline script, no
/// framing, no MIME sniffing, no referrer (links carry signatures).
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
];
