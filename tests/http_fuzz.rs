//! Bad input never yields a 5xx or a panic: 10,000+ malformed or mutated
//! requests (bad JSON, wrong types, unknown fields, huge and truncated
//! bodies, bad dates, reversed and over-long ranges, unknown formats, odd
//! paths and ids, missing or bad headers), each answered with a 4xx and a
//! JSON error code; then a valid request still works.

// `*rng.pick(&[..])` is needed: without it the literal is inferred as `[str]`.
#![allow(clippy::explicit_auto_deref)]

mod common;

use common::http::{raw, req};
use common::Env;
use serde_json::{json, Value};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// Values of the wrong type for any field.
fn wrong_types() -> Vec<Value> {
    vec![
        json!(null),
        json!(5),
        json!(-1.5),
        json!(true),
        json!([]),
        json!({}),
        json!([1, 2]),
        json!({"a": 1}),
        json!(""),
    ]
}

fn valid_export() -> Value {
    json!({"format": "csv", "filters": {"from": "2025-07-01", "to": "2025-12-31"}, "mode": "async"})
}

/// A mutated export body that is certainly invalid.
fn bad_export(rng: &mut Rng) -> Vec<u8> {
    let mut v = valid_export();
    match rng.below(12) {
        0 => v["format"] = rng.pick(&wrong_types()).clone(),
        1 => v["format"] = json!(*rng.pick(&["xml", "CSV2", "pdf", "", "csv;", "jsonll"])),
        2 => v["filters"] = rng.pick(&wrong_types()[..6]).clone(),
        3 => {
            v["filters"]["from"] = json!(*rng.pick(&[
                "2025-13-01",
                "yesterday",
                "2025/07/01",
                "",
                "2025-07-01T25:00:00Z",
                "99999-01-01"
            ]))
        }
        4 => {
            v["filters"]["to"] = json!(*rng.pick(&[
                "2025-02-30",
                "tomorrow",
                "31.12.2025",
                "2025-12-31T00:00:00"
            ]))
        }
        5 => {
            // Reversed or over-long ranges.
            v["filters"]["from"] = json!("2025-12-31");
            v["filters"]["to"] = json!(*rng.pick(&["2025-01-01", "2027-06-01"]));
            if v["filters"]["to"] == "2027-06-01" {
                v["filters"]["from"] = json!("2024-01-01");
            }
        }
        6 => v[*rng.pick(&["colour", "formats", "filter", "mode2", "emailTo"])] = json!(1),
        7 => {
            v["filters"][*rng.pick(&["actor", "action", "organisation", "stream", "target"])] =
                json!("x")
        }
        8 => v["mode"] = json!(*rng.pick(&["fast", "", "SYNC", "later"])),
        9 => {
            v["filters"]["actions"] = json!(*rng.pick(&["*", "us*er", ""]))
                .as_str()
                .map(|s| json!([s]))
                .unwrap()
        }
        10 => v["filters"]["target_id"] = json!("p_1"),
        _ => v["csv"] = json!({"bom": "yes"}),
    }
    let text = v.to_string();
    if rng.below(4) == 0 {
        // Truncated JSON.
        let cut = 1 + rng.below(text.len() - 1);
        return text.as_bytes()[..cut].to_vec();
    }
    text.into_bytes()
}

fn garbage(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| (rng.next() & 0xff) as u8).collect()
}

#[test]
fn ten_thousand_malformed_requests_get_4xx_with_codes() {
    let env = Env::new();
    env.ingest_fixtures();
    let srv = env.serve(&[
        ("AUDIT_EXPORT_HTTP_MAX_BODY_BYTES", "65536"),
        ("AUDIT_EXPORT_JOBS_MAX_PARALLEL_JOBS", "0"),
    ]);
    let admin = env.user("acme", "admin@acme.example", "admin");
    let viewer = env.user("acme", "viewer@acme.example", "viewer");
    let addr = srv.addr.clone();
    // A truncated upload may be answered with a closed connection (the
    // client broke the protocol); those are not counted as answers.
    let total = 11_600;
    let threads = 4;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (addr, admin, viewer) = (addr.clone(), admin.clone(), viewer.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x1234_5678));
                let mut kinds = std::collections::BTreeMap::<String, usize>::new();
                for _ in 0..total / threads {
                    let kind = rng.below(14);
                    let resp = match kind {
                        0..=3 => req(&addr, "POST", "/api/v1/exports", Some(&admin), Some(&bad_export(&mut rng))),
                        4 => {
                            let body = bad_export(&mut rng);
                            req(&addr, "POST", "/api/v1/exports/estimate", Some(&admin), Some(&body))
                        }
                        5 => {
                            let len = rng.below(300);
                            req(&addr, "POST", *rng.pick(&["/api/v1/exports", "/api/v1/audit-logs", "/api/v1/exports/estimate"]), Some(&admin), Some(&garbage(&mut rng, len)))
                        }
                        6 => {
                            // Bad events for ingest.
                            let ev = json!([{"occurred_at": *rng.pick(&["2025-01-01", "x", ""]), "stream": rng.pick(&wrong_types()).clone(), "action": "a"}]);
                            req(&addr, "POST", "/api/v1/audit-logs", Some(&admin), Some(ev.to_string().as_bytes()))
                        }
                        7 => {
                            // Huge bodies: declared and real.
                            let body = vec![b'['; 65_537 + rng.below(100_000)];
                            req(&addr, "POST", *rng.pick(&["/api/v1/exports", "/api/v1/audit-logs"]), Some(&admin), Some(&body))
                        }
                        8 => {
                            let path = *rng.pick(&[
                                "/api/v1/exports/%00", "/api/v1/exports/../../etc/passwd", "/api/v2/exports", "/api/v1/exports/NOPE",
                                "/api/v1/exports/01ARZ3NDEKTSV4RRFFQ69G5FAV", "/api/v1/exports//restart", "/api/v1/exports/x/y/z",
                                "/download/NOPE", "/download/01ARZ3NDEKTSV4RRFFQ69G5FAV?expires=abc&sig=zz", "/download/x?expires=99999999999&sig=00",
                                "/%zz", "/api/v1/audit-logs/1", "/metrics/x", "/console/../etc/passwd", "/api", "/api/v1/",
                            ]);
                            req(&addr, *rng.pick(&["GET", "DELETE", "POST"]), path, Some(&admin), None)
                        }
                        9 => req(&addr, *rng.pick(&["PUT", "PATCH", "OPTIONS"]), *rng.pick(&["/api/v1/exports", "/healthz", "/api/v1/audit-logs"]), Some(&admin), None),
                        10 => {
                            // Missing or malformed authorization.
                            let path = *rng.pick(&["/api/v1/exports", "/api/v1/audit-logs?from=2025-01-01&to=2025-02-01"]);
                            let mut r = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
                            match rng.below(4) {
                                0 => {}
                                1 => r.push_str("Authorization: Basic YWRtaW46YWRtaW4=\r\n"),
                                2 => r.push_str("Authorization: Bearer\r\n"),
                                _ => r.push_str(&format!("Authorization: Bearer {}x\r\n", admin)),
                            }
                            r.push_str("\r\n");
                            raw(&addr, r.as_bytes()).expect("answer")
                        }
                        11 => {
                            let q = *rng.pick(&[
                                "from=2025-01-01", "to=2025-01-01", "from=x&to=y", "from=2025-02-01&to=2025-01-01", "from=2024-01-01&to=2025-06-01",
                                "from=2025-01-01&to=2025-02-01&limit=0", "from=2025-01-01&to=2025-02-01&limit=-3", "from=2025-01-01&to=2025-02-01&limit=x",
                                "from=2025-01-01&to=2025-02-01&cursor=1_", "from=2025-01-01&to=2025-02-01&cursor=%ZZ", "from=%ff&to=2025-01-01",
                                "from=2025-01-01&to=2025-02-01&action=*", "from=2025-01-01&to=2025-02-01&target_id=1", "from=2025-01-01&to=2025-02-01&bogus=1",
                            ]);
                            req(&addr, "GET", &format!("/api/v1/audit-logs?{q}"), Some(&admin), None)
                        }
                        12 => req(&addr, "POST", "/api/v1/exports", Some(&viewer), Some(valid_export().to_string().as_bytes())),
                        _ => {
                            // Declared length longer than the body (truncated upload).
                            let body = valid_export().to_string();
                            let r = format!(
                                "POST /api/v1/exports HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {admin}\r\nContent-Length: {}\r\n\r\n{}",
                                body.len() + 10,
                                &body[..body.len() / 2]
                            );
                            match raw(&addr, r.as_bytes()) {
                                Some(r) => r,
                                None => continue,
                            }
                        }
                    };
                    assert!((400..500).contains(&resp.status), "kind {kind}: status {} body {}", resp.status, String::from_utf8_lossy(&resp.body));
                    let code = resp.code();
                    assert!(!code.is_empty(), "kind {kind}: no error code in {}", String::from_utf8_lossy(&resp.body));
                    *kinds.entry(format!("{} {code}", resp.status)).or_default() += 1;
                }
                kinds
            })
        })
        .collect();
    let mut all = std::collections::BTreeMap::<String, usize>::new();
    for h in handles {
        for (k, n) in h.join().unwrap() {
            *all.entry(k).or_default() += n;
        }
    }
    let answered: usize = all.values().sum();
    eprintln!("{answered} answers by status and code: {all:?}");
    assert!(answered >= 10_000, "only {answered} requests were answered");
    // The server still serves a valid request.
    let ok = req(
        &addr,
        "POST",
        "/api/v1/exports",
        Some(&admin),
        Some(valid_export().to_string().as_bytes()),
    );
    assert_eq!(ok.status, 202, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(req(&addr, "GET", "/healthz", None, None).status, 200);
}

/// A declared body far larger than memory, a header line without end and a
/// flood of headers: each gets an answer or a closed connection, and the
/// server process lives on (tiny_http used to allocate the declared
/// Content-Length when draining an unread body, and abort).
#[test]
fn a_huge_declared_body_or_header_does_not_take_the_server_down() {
    let env = Env::new();
    let mut srv = env.serve(&[]);
    let addr = srv.addr.clone();
    let admin = env.user("acme", "ada@acme.example", "admin");
    let huge = "Content-Length: 99999999999\r\n";
    let cases: Vec<(Vec<u8>, Option<u16>)> = vec![
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{huge}\r\n").into_bytes(),
            Some(200),
        ),
        (
            format!("POST /api/v1/exports HTTP/1.1\r\nHost: x\r\n{huge}\r\n{{\"format\"").into_bytes(),
            Some(401),
        ),
        (
            format!("POST /api/v1/audit-logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n{huge}\r\n[").into_bytes(),
            Some(413),
        ),
        // Refused before any handler runs: no answer is fine, a crash is not.
        (
            format!("GET /healthz HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(1 << 20)).into_bytes(),
            None,
        ),
        (
            format!("GET /healthz HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(5_000)).into_bytes(),
            None,
        ),
    ];
    for (request, want) in cases {
        let got = raw(&addr, &request).map(|r| r.status);
        if let Some(want) = want {
            assert_eq!(got, Some(want));
        } else if let Some(status) = got {
            assert!((400..500).contains(&status), "{status}");
        }
        assert!(
            srv.child.try_wait().unwrap().is_none(),
            "the server died on {}",
            String::from_utf8_lossy(&request[..request.len().min(80)])
        );
    }
    assert_eq!(req(&addr, "GET", "/healthz", None, None).status, 200);
}
