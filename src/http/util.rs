//! Request plumbing: query strings, bodies, JSON replies.

use std::io::Read;

use serde_json::Value;

use super::error::ApiError;

/// Decodes `application/x-www-form-urlencoded` text (`+`, `%XX`).
pub fn percent_decode(s: &str) -> Result<String, ApiError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => out.push(v),
                    None => {
                        return Err(ApiError::bad_request(
                            "invalid_query",
                            "bad percent-escape in the query string",
                        ))
                    }
                }
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request("invalid_query", "the query string is not UTF-8"))
}

/// Query parameters in order (repeated keys kept).
pub fn parse_query(q: &str) -> Result<Vec<(String, String)>, ApiError> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// Reads a request body up to `limit` bytes: 413 beyond it.
pub fn read_body(req: &mut tiny_http::Request, limit: u64) -> Result<Vec<u8>, ApiError> {
    if req.body_length().is_some_and(|n| n as u64 > limit) {
        return Err(too_large(limit));
    }
    let mut body = Vec::new();
    req.as_reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("cannot read the body: {e}")))?;
    if body.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(body)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        413,
        "body_too_large",
        format!("the body is larger than {limit} bytes"),
    )
}

pub use crate::api::body::{json_body, json_value};

/// A `limit` query parameter: `default` when absent, else 1..=`max`.
pub fn limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match raw {
        None => Ok(default),
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_limit", format!("limit must be 1..{max}"))
            }),
    }
}

/// A JSON response.
pub fn json_response(status: u16, v: &Value) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let body = serde_json::to_vec(v).expect("values serialize");
    tiny_http::Response::from_data(body)
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"))
}

/// A response header; panics if `name` or `value` is not a valid header.
pub fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

/// A `Content-Disposition: attachment` value safe for any file name.
pub fn attachment(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("attachment; filename=\"{safe}\"")
}

/// A file in `<data-dir>/tmp/` already unlinked: it lives as long as its
/// handles, and nothing is left behind whatever happens.
pub fn anonymous_file(data_dir: &std::path::Path) -> Result<std::fs::File, ApiError> {
    let dir = data_dir.join("tmp");
    std::fs::create_dir_all(&dir).map_err(io_error)?;
    let mut name = [0u8; 8];
    crate::util::random_bytes(&mut name);
    let path = dir.join(format!("answer-{}", crate::util::hex(&name)));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_error)?;
    let _ = std::fs::remove_file(&path);
    Ok(file)
}

/// An I/O error of ours: a full disk is `507 insufficient_storage`, the
/// rest internal.
pub fn io_error(e: std::io::Error) -> ApiError {
    if e.raw_os_error() == Some(28) || e.kind() == std::io::ErrorKind::StorageFull {
        return ApiError::insufficient_storage();
    }
    ApiError::internal(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let q = parse_query("a=1&action=user.%2A&q=50%25+off&action=x&empty=&flag").unwrap();
        assert_eq!(q[1], ("action".into(), "user.*".into()));
        assert_eq!(q[2], ("q".into(), "50% off".into()));
        assert_eq!(q[4], ("empty".into(), "".into()));
        assert_eq!(q[5], ("flag".into(), "".into()));
        assert!(parse_query("a=%zz").is_err());
        assert!(parse_query("a=%ff").is_err());
    }
}
