//! Load generator for `scripts/bench-load.sh`: N concurrent clients, each on
//! its own keep-alive connection, alternating a synchronous export and a
//! status poll for a fixed time. Prints one JSON object: requests, errors,
//! and latency percentiles per kind. Standard library only.
//!
//!   cargo run --release --example loadgen -- ADDR TOKEN CLIENTS SECONDS SYNC_BODY

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One client connection.
struct Conn {
    addr: String,
    r: Option<BufReader<TcpStream>>,
}

impl Conn {
    /// Sends one request and reads the whole answer; the status, or the error.
    fn call(&mut self, request: &[u8]) -> Result<u16, String> {
        if self.r.is_none() {
            let s = TcpStream::connect(&self.addr).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(60))).ok();
            self.r = Some(BufReader::new(s));
        }
        let r = self.r.as_mut().expect("connected");
        let result = (|| {
            r.get_mut().write_all(request).map_err(|e| e.to_string())?;
            let mut line = String::new();
            r.read_line(&mut line).map_err(|e| e.to_string())?;
            let status: u16 = line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad status line {line:?}"))?;
            let (mut length, mut close) = (None, false);
            loop {
                line.clear();
                r.read_line(&mut line).map_err(|e| e.to_string())?;
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                let (k, v) = l.split_once(':').unwrap_or((l, ""));
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<u64>().ok();
                } else if k.eq_ignore_ascii_case("connection") && v.trim() == "close" {
                    close = true;
                }
            }
            let length = length.ok_or("no Content-Length")?;
            let got = std::io::copy(&mut r.by_ref().take(length), &mut std::io::sink())
                .map_err(|e| e.to_string())?;
            if got != length {
                return Err(format!("body cut at {got} of {length} bytes"));
            }
            Ok((status, close))
        })();
        match result {
            Ok((status, close)) => {
                if close {
                    self.r = None;
                }
                Ok(status)
            }
            Err(e) => {
                self.r = None;
                Err(e)
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [addr, token, clients, secs, body] = &a[..] else {
        eprintln!("usage: loadgen ADDR TOKEN CLIENTS SECONDS SYNC_BODY");
        std::process::exit(2);
    };
    let clients: usize = clients.parse().expect("CLIENTS");
    let deadline = Instant::now() + Duration::from_secs(secs.parse().expect("SECONDS"));
    let export = format!(
        "POST /api/v1/exports HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    let poll = format!(
        "GET /api/v1/exports?limit=10 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .into_bytes();
    // (kind, ms) of every answered request; errors with their reason.
    let times = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (export, poll, addr) = (export.clone(), poll.clone(), addr.clone());
            let (times, errors) = (times.clone(), errors.clone());
            std::thread::spawn(move || {
                let mut conn = Conn { addr, r: None };
                let mut n = i;
                while Instant::now() < deadline {
                    let is_export = n % 2 == 0;
                    n += 1;
                    let t = Instant::now();
                    let result = conn.call(if is_export { &export } else { &poll });
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    match result {
                        Ok(200) => {
                            let mut g = times.lock().unwrap();
                            if is_export {
                                g.0.push(ms)
                            } else {
                                g.1.push(ms)
                            }
                        }
                        Ok(status) => errors.lock().unwrap().push(format!("status {status}")),
                        Err(e) => errors.lock().unwrap().push(e),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (mut exports, mut polls) = std::mem::take(&mut *times.lock().unwrap());
    exports.sort_by(f64::total_cmp);
    polls.sort_by(f64::total_cmp);
    let errors = errors.lock().unwrap();
    let mut kinds = std::collections::BTreeMap::new();
    for e in errors.iter() {
        *kinds.entry(e.clone()).or_insert(0u64) += 1;
    }
    let stats = |v: &[f64]| {
        format!(
            r#"{{"count":{},"p50_ms":{:.1},"p95_ms":{:.1},"p99_ms":{:.1},"max_ms":{:.1}}}"#,
            v.len(),
            percentile(v, 0.50),
            percentile(v, 0.95),
            percentile(v, 0.99),
            v.last().copied().unwrap_or(0.0)
        )
    };
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k:?}: {n}")).collect();
    println!(
        r#"{{"clients":{clients},"exports":{},"polls":{},"errors":{},"error_kinds":{{{}}}}}"#,
        stats(&exports),
        stats(&polls),
        errors.len(),
        kinds.join(",")
    );
}
