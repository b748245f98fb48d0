//! Embeds the web console (`console/`: plain HTML, CSS and JS modules, no
//! build step) into the binary: generates the list of its files with their
//! bytes and content types.

use std::fmt::Write as _;
use std::path::Path;

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, root, out);
        } else {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, p.canonicalize().unwrap().display().to_string()));
        }
    }
}

fn main() {
    let root = Path::new("console");
    println!("cargo:rerun-if-changed=console");
    let mut files = Vec::new();
    walk(root, root, &mut files);
    let mut code = String::from("/// The console's files: (path under console/, content type, bytes).\npub static ASSETS: &[(&str, &str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        let _ = writeln!(
            code,
            "    ({rel:?}, {:?}, include_bytes!({abs:?})),",
            content_type(rel)
        );
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("console_assets.rs");
    std::fs::write(out, code).unwrap();
}
