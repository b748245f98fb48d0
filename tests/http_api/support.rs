//! Requests and waits the API tests share.

use super::common::http::{req, Resp};
use serde_json::{json, Value};

pub const ACME_ALL: &str = r#"{"from":"2025-07-01","to":"2026-01-31"}"#;

pub fn post(addr: &str, path: &str, token: &str, body: &Value) -> Resp {
    req(
        addr,
        "POST",
        path,
        Some(token),
        Some(body.to_string().as_bytes()),
    )
}

pub fn export_body(format: &str, mode: &str) -> Value {
    json!({"format": format, "filters": serde_json::from_str::<Value>(ACME_ALL).unwrap(), "mode": mode})
}

pub fn wait_completed(addr: &str, token: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = req(
            addr,
            "GET",
            &format!("/api/v1/exports/{id}"),
            Some(token),
            None,
        );
        assert_eq!(r.status, 200);
        let v = r.json();
        if v["state"] == "completed" {
            return v;
        }
        assert!(v["state"] != "failed", "{v}");
        assert!(
            std::time::Instant::now() < deadline,
            "job did not complete: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn path_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_string()
}
