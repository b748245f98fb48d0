//! Clients that stall cannot take the server down: stalled request bodies
//! and slow readers hold connection slots, never request threads;
//! `/healthz` and an authenticated call still answer at once; heads and
//! bodies that do not arrive in time get `408`; connections beyond the cap
//! get `503` at once; over-long request lines and headers get `414`/`431`
//! with the JSON error shape; SIGTERM exits within the grace period with
//! all of them still open.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::req;
use common::Env;

/// Reads one whole answer from a raw socket (until the server closes it).
fn read_all(s: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// A POST that declares a body and sends none of it.
fn stalled_body(addr: &str) -> TcpStream {
    let mut s = connect(addr);
    s.write_all(
        b"POST /api/v1/audit-logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nobody\r\n\
          Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n[{\"a\":",
    )
    .unwrap();
    s
}

/// Asks for a sync export, then reads the answer at ~100 bytes a second
/// until `stop`.
fn slow_reader(addr: &str, token: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    let mut s = connect(addr);
    // A small receive buffer, so the server's writes really wait on us.
    let body =
        r#"{"format":"csv","mode":"sync","filters":{"from":"2025-07-01","to":"2026-01-31"}}"#;
    write!(
        s,
        "POST /api/v1/exports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    std::thread::spawn(move || {
        let mut got = 0;
        let mut buf = [0u8; 100];
        while !stop.load(Ordering::Relaxed) {
            match s.read(&mut buf) {
                // Cut at shutdown, once the grace period is over.
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        got
    })
}

fn timed(addr: &str, path: &str, token: Option<&str>) -> (u16, Duration) {
    let t = Instant::now();
    let r = req(addr, "GET", path, token, None);
    (r.status, t.elapsed())
}

#[test]
fn stalled_bodies_and_slow_readers_hold_no_request_thread_and_sigterm_still_exits() {
    let env = Env::new();
    env.ingest_fixtures();
    let token = env.user("acme", "ada@acme.example", "admin");
    let mut srv = env.serve(&[
        ("AUDIT_EXPORT_HTTP_WORKERS", "4"),
        ("AUDIT_EXPORT_HTTP_SHUTDOWN_GRACE_SECS", "3"),
    ]);
    let addr = srv.addr.clone();
    let stalled: Vec<TcpStream> = (0..48).map(|_| stalled_body(&addr)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..16)
        .map(|_| slow_reader(&addr, &token, stop.clone()))
        .collect();
    // Let every slow reader's export start and its socket buffers fill.
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..5 {
        let (status, took) = timed(&addr, "/healthz", None);
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
        let (status, took) = timed(&addr, "/api/v1/exports", Some(&token));
        assert_eq!(status, 200);
        assert!(
            took < Duration::from_secs(1),
            "an authenticated list took {took:?}"
        );
    }
    // SIGTERM with all of them still open: out within the grace period.
    let t = Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &srv.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "serve still running {:?} after SIGTERM (grace 3 s)",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    stop.store(true, Ordering::Relaxed);
    drop(stalled);
    for r in readers {
        assert!(r.join().unwrap() > 0, "slow readers did receive bytes");
    }
}

/// The answers the connection layer makes itself carry the security
/// headers of every other answer.
fn secured(answer: &str) {
    let head = answer
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "content-security-policy: default-src 'none'; frame-ancestors 'none'",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
    ] {
        assert!(head.contains(h), "{h} missing in {head}");
    }
}

#[test]
fn heads_and_bodies_that_do_not_arrive_in_time_get_408() {
    let env = Env::new();
    let srv = env.serve(&[
        ("AUDIT_EXPORT_HTTP_HEAD_TIMEOUT_SECS", "2"),
        ("AUDIT_EXPORT_HTTP_BODY_TIMEOUT_SECS", "2"),
    ]);
    // A body that never comes.
    let t = Instant::now();
    let mut s = stalled_body(&srv.addr);
    let text = read_all(&mut s);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#""code":"request_timeout""#), "{text}");
    secured(&text);
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());

    // A head dribbled one byte at a time, each within any per-read timeout:
    // the deadline is for the whole head.
    let t = Instant::now();
    let mut s = connect(&srv.addr);
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut closed = false;
    for b in head.iter().chain(std::iter::repeat(&b'a')) {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if t.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    let text = read_all(&mut s);
    assert!(
        closed || text.starts_with("HTTP/1.1 408"),
        "a dribbled head was still accepted after {:?}: {text}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());

    // An idle keep-alive connection is closed quietly, without a 408 a
    // client could take for the answer to its next request.
    let mut s = connect(&srv.addr);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let text = read_all(&mut s);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text}");
}

#[test]
fn connections_beyond_the_cap_get_503_at_once() {
    let env = Env::new();
    let srv = env.serve(&[("AUDIT_EXPORT_HTTP_MAX_CONNECTIONS", "8")]);
    let held: Vec<TcpStream> = (0..8).map(|_| connect(&srv.addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let mut s = connect(&srv.addr);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let text = read_all(&mut s);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains(r#""code":"too_many_connections""#), "{text}");
    secured(&text);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // Once slots free up, requests are served again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut s = connect(&srv.addr);
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        if read_all(&mut s).starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "slots never freed");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn over_long_request_lines_and_headers_get_414_and_431_as_json() {
    let env = Env::new();
    let srv = env.serve(&[]);
    let ask = |raw: Vec<u8>| {
        let mut s = connect(&srv.addr);
        let _ = s.write_all(&raw);
        read_all(&mut s)
    };
    let long_query = format!(
        "GET /api/v1/audit-logs?q={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100_000)
    );
    let text = ask(long_query.into_bytes());
    assert!(
        text.starts_with("HTTP/1.1 414"),
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(text.contains(r#""code":"uri_too_long""#), "{text}");
    secured(&text);
    let long_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    let text = ask(long_header.into_bytes());
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert!(text.contains(r#""code":"headers_too_large""#), "{text}");
    secured(&text);
    let many: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let text = ask(format!("GET /healthz HTTP/1.1\r\n{many}\r\n").into_bytes());
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    let text = ask(b"\x16\x03\x01 garbage\r\n\r\n".to_vec());
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains(r#""error""#), "{text}");
    secured(&text);
    // The server is fine afterwards.
    assert_eq!(req(&srv.addr, "GET", "/healthz", None, None).status, 200);
}

/// HEAD of a console page (link checkers, uptime probes): the GET's status
/// and headers, no body; an API route still refuses HEAD with 405.
#[test]
fn head_of_a_console_page_answers_without_a_body() {
    let env = Env::new();
    let srv = env.serve(&[]);
    let mut s = connect(&srv.addr);
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = read_all(&mut s);
    let (head, body) = answer.split_once("\r\n\r\n").expect("a complete head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{head}"
    );
    assert!(head.contains("Content-Security-Policy"), "{head}");
    assert!(body.is_empty(), "HEAD sent a body: {body:?}");
    let mut s = connect(&srv.addr);
    s.write_all(b"HEAD /api/v1/exports HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = read_all(&mut s);
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
}
