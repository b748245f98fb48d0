//! MCP tools driven by a real MCP client — the official Python SDK
//! (tests/tools/mcp_bridge.py) — over stdio (`audit-export mcp`) and over
//! streamable HTTP (`POST /mcp` on `serve`): initialize, list the tools,
//! call each one; a search gives the HTTP API's events; exports complete
//! and their links download; roles, tenant scope and bad arguments answer
//! as tool errors naming their code and field.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use common::http::{req, Server};
use common::{Env, FAST_JOBS};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_audit-export");
const TOOLS: [&str; 7] = [
    "search_audit_logs",
    "estimate_export",
    "create_export",
    "get_export",
    "list_exports",
    "cancel_export",
    "restart_export",
];

fn bridge_script() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/mcp_bridge.py").to_string()
}

fn have_client() -> bool {
    common::have_tool(
        "python3 -c 'import mcp'",
        "the Python MCP SDK (pip install mcp)",
    )
}

/// One MCP client session, one command at a time.
struct Bridge {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    init: Value,
}

impl Bridge {
    fn start(mut cmd: Command) -> Bridge {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("python3 runs");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the MCP client could not connect");
        let init: Value = serde_json::from_str(&line).unwrap();
        Bridge {
            child,
            stdin,
            stdout,
            init: init["initialize"].clone(),
        }
    }

    /// `audit-export mcp` on stdio, as the user of `token`.
    fn stdio(env: &Env, token: &str, extra_env: &[(&str, &str)], args: &[&str]) -> Bridge {
        let mut c = Command::new("python3");
        c.arg(bridge_script())
            .args(["stdio", BIN, "--data-dir"])
            .arg(env.data_dir())
            .arg("mcp")
            .args(args)
            .env("AUDIT_EXPORT_TOKEN", token)
            .env_remove("AUDIT_EXPORT_DATA_DIR");
        for (k, v) in FAST_JOBS.iter().chain(extra_env) {
            c.env(k, v);
        }
        Bridge::start(c)
    }

    /// `/mcp` of a running server, with `token` as bearer.
    fn http(server: &Server, token: &str) -> Bridge {
        let mut c = Command::new("python3");
        c.arg(bridge_script())
            .args(["http", &format!("http://{}/mcp", server.addr)])
            .env("MCP_BEARER", token);
        Bridge::start(c)
    }

    fn send(&mut self, cmd: Value) -> Value {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the MCP client died on {cmd}");
        serde_json::from_str(&line).unwrap()
    }

    /// A tool call that must succeed; its structured result.
    fn ok(&mut self, name: &str, args: Value) -> Value {
        let r = self.send(json!({"op": "call", "name": name, "args": args}));
        assert_eq!(r["is_error"], false, "{name} {args}: {r}");
        r["structured"].clone()
    }

    /// A tool call that must be a tool error; its `error` object.
    fn refused(&mut self, name: &str, args: Value) -> Value {
        let r = self.send(json!({"op": "call", "name": name, "args": args}));
        assert!(
            r.get("protocol_error").is_none(),
            "{name}: not a tool error: {r}"
        );
        assert_eq!(r["is_error"], true, "{name} {args}: {r}");
        r["structured"]["error"].clone()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup() -> (Env, Server, String, String, String) {
    let env = Env::new();
    env.ingest_fixtures();
    let admin = env.user("acme", "ada@acme.example", "admin");
    let viewer = env.user("acme", "vi@acme.example", "viewer");
    let other = env.user("globex", "gus@globex.example", "admin");
    // 1,100 acme events: exports of 500 or more are background jobs.
    let server = env.serve(&[("AUDIT_EXPORT_HTTP_SYNC_THRESHOLD", "500")]);
    (env, server, admin, viewer, other)
}

/// Every event of `filters` through the HTTP API, page by page.
fn http_events(server: &Server, token: &str, query: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/api/v1/audit-logs?{query}&limit=37"),
            Some(c) => format!("/api/v1/audit-logs?{query}&limit=37&cursor={c}"),
        };
        let r = req(&server.addr, "GET", &path, Some(token), None);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        all.extend(v["data"].as_array().unwrap().iter().cloned());
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return all,
        }
    }
}

/// Every event of `filters` through MCP's search, page by page.
fn mcp_events(b: &mut Bridge, filters: &Value, limit: u64) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let mut args = json!({"filters": filters, "limit": limit});
        if !cursor.is_null() {
            args["cursor"] = cursor.clone();
        }
        let page = b.ok("search_audit_logs", args);
        let events = page["events"].as_array().unwrap();
        assert!(events.len() as u64 <= limit);
        assert_eq!(page["count"], events.len());
        all.extend(events.iter().cloned());
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            return all;
        }
    }
}

fn download(server: &Server, url: &str) -> Vec<u8> {
    let path = &url[url.find("/download/").expect("a download link")..];
    let r = req(&server.addr, "GET", path, None, None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.body
}

fn wait_completed(b: &mut Bridge, id: &str) -> Value {
    for _ in 0..600 {
        let job = b.ok("get_export", json!({"id": id}));
        match job["state"].as_str().unwrap() {
            "completed" => return job,
            "exporting" | "uploading" => std::thread::sleep(std::time::Duration::from_millis(50)),
            other => panic!("job ended {other}: {job}"),
        }
    }
    panic!("job {id} did not complete in 30 s");
}

fn csv_rows(bytes: &[u8]) -> usize {
    csv::Reader::from_reader(bytes).records().count()
}

#[test]
fn stdio_tools_follow_the_api_rules_and_exports_download() {
    if !have_client() {
        return;
    }
    let (env, server, admin, viewer, other) = setup();
    let public = [
        (
            "AUDIT_EXPORT_HTTP_PUBLIC_URL",
            format!("http://{}", server.addr),
        ),
        ("AUDIT_EXPORT_HTTP_SYNC_THRESHOLD", "500".to_string()),
    ];
    let public: Vec<(&str, &str)> = public.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut b = Bridge::stdio(&env, &admin, &public, &[]);
    assert_eq!(b.init["server_info"]["name"], "audit-export");
    assert!(b.init["capabilities"]["tools"].is_object());

    // Tools: all seven, each described, each with an object schema.
    let tools = b.send(json!({"op": "list_tools"}))["tools"].clone();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, TOOLS);
    for t in tools.as_array().unwrap() {
        assert!(t["description"].as_str().unwrap().len() > 30, "{t}");
        assert_eq!(t["input_schema"]["type"], "object", "{t}");
    }
    let create = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "create_export")
        .unwrap();
    assert_eq!(
        create["input_schema"]["required"],
        json!(["format", "filters"])
    );

    // Resources: the filter reference and the event shape.
    let res = b.send(json!({"op": "list_resources"}))["resources"].clone();
    assert_eq!(res.as_array().unwrap().len(), 2, "{res}");
    let text = b.send(json!({"op": "read_resource", "uri": "audit-export://filters"}));
    assert!(text["contents"][0]["text"]
        .as_str()
        .unwrap()
        .contains("user.*"));
    let missing = b.send(json!({"op": "read_resource", "uri": "audit-export://nope"}));
    assert!(missing["protocol_error"].is_string(), "{missing}");

    // search = the HTTP API's view, page for page different, same events.
    let filters = json!({"from": "2025-09-01", "to": "2025-10-31", "actions": ["user.*"]});
    let via_mcp = mcp_events(&mut b, &filters, 7);
    let via_http = http_events(
        &server,
        &admin,
        "from=2025-09-01&to=2025-10-31&action=user.*",
    );
    assert!(via_http.len() > 7, "the filter must span several pages");
    assert_eq!(via_mcp, via_http);
    // Redacted as exports are: no secret of the fixtures survives.
    let all = mcp_events(
        &mut b,
        &json!({"from": "2025-07-01", "to": "2026-01-31"}),
        200,
    );
    assert_eq!(all.len(), 1100);
    let text = serde_json::to_string(&all).unwrap();
    assert!(text.contains("[REDACTED]"));

    // estimate = the row count; the mode follows the threshold.
    let est = b.ok("estimate_export", json!({"filters": filters}));
    assert_eq!(est["record_count"], via_http.len());
    assert_eq!(est["mode"], "sync");
    assert_eq!(est["link_ttl_seconds"], 86400);

    // A small export: a stored copy's signed link, at once.
    let small = b.ok(
        "create_export",
        json!({"format": "csv", "filters": filters, "csv": {"profile": "readable"}}),
    );
    assert_eq!(small["mode"], "sync", "{small}");
    assert_eq!(small["record_count"], via_http.len());
    let bytes = download(&server, small["download_url"].as_str().unwrap());
    assert_eq!(csv_rows(&bytes), via_http.len());
    // Recorded in the audit trail, as made through MCP.
    let (agent, n): (String, i64) = env
        .db()
        .query_row(
            "SELECT user_agent, count(*) FROM audit_logs \
             WHERE action = 'audit_log.exported' AND target_id = ?",
            [small["job"]["id"].as_str().unwrap()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(n, 1);
    assert!(agent.contains("mcp"), "{agent}");

    // A large export: a background job, run by this process's worker.
    let big = b.ok(
        "create_export",
        json!({"format": "jsonl", "filters": {"from": "2025-07-01", "to": "2026-01-31"}}),
    );
    assert_eq!(big["mode"], "async", "{big}");
    assert_eq!(big["record_count"], 1100);
    let id = big["job"]["id"].as_str().unwrap().to_string();
    assert_eq!(big["job"]["recipients"], json!(["ada@acme.example"]));
    let done = wait_completed(&mut b, &id);
    assert_eq!(done["record_count"], 1100);
    let file = download(&server, done["download_url"].as_str().unwrap());
    let file = if done["file"]["compressed"] == true {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(file)).unwrap();
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut z.by_index(0).unwrap(), &mut s).unwrap();
        s
    } else {
        file
    };
    assert_eq!(
        file.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        1100
    );

    // list_exports: both jobs, newest first.
    let list = b.ok("list_exports", json!({}));
    let ids: Vec<&str> = list["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str(), small["job"]["id"].as_str().unwrap()]);
    // A completed job can be neither cancelled nor restarted.
    assert_eq!(
        b.refused("cancel_export", json!({"id": id}))["code"],
        "not_in_progress"
    );
    assert_eq!(
        b.refused("restart_export", json!({"id": id}))["code"],
        "not_in_progress"
    );
    // The same export twice while the first is queued: duplicate.
    // Bad arguments: tool errors naming the field.
    let e = b.refused(
        "create_export",
        json!({"format": "xml", "filters": filters}),
    );
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("invalid_format"), Some("format"))
    );
    let e = b.refused(
        "search_audit_logs",
        json!({"filters": {"from": "2025-09-01", "to": "2025-09-30", "actors": 5}}),
    );
    assert_eq!(e["field"], "filters.actors", "{e}");
    let e = b.refused(
        "search_audit_logs",
        json!({"filters": filters, "limit": 201}),
    );
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("invalid_limit"), Some("limit"))
    );
    let e = b.refused(
        "search_audit_logs",
        json!({"filters": {"form": "2025-01-01"}}),
    );
    assert_eq!(e["code"], "unknown_field", "{e}");
    assert_eq!(e["field"], "filters.form", "{e}");
    let e = b.refused(
        "estimate_export",
        json!({"filters": {"from": "2025-03-01", "to": "2025-01-01"}}),
    );
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("range_reversed"), Some("to")),
        "{e}"
    );
    let e = b.refused(
        "search_audit_logs",
        json!({"filters": {"to": "2025-09-30"}}),
    );
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("from_required"), Some("from")),
        "{e}"
    );
    let e = b.refused("get_export", json!({}));
    assert_eq!(e["field"], "id", "{e}");
    let e = b.refused(
        "search_audit_logs",
        json!({"filters": filters, "cursor": "garbage"}),
    );
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("invalid_cursor"), Some("cursor"))
    );
    let e = b.refused(
        "create_export",
        json!({"format": "csv", "filters": filters, "email_to": ["stranger@evil.example"]}),
    );
    assert_eq!(e["code"], "unverified_recipient", "{e}");
    let e = b.refused(
        "create_export",
        json!({"format": "csv", "filters": {"organization": "globex", "from": "2025-09-01", "to": "2025-09-30"}}),
    );
    assert_eq!(e["code"], "forbidden", "{e}");
    // An unknown tool is a protocol error, not a tool error.
    let r = b.send(json!({"op": "call", "name": "drop_database", "args": {}}));
    assert!(r["protocol_error"].is_string(), "{r}");
    drop(b);

    // A viewer searches but cannot export or estimate.
    let mut v = Bridge::stdio(&env, &viewer, &public, &[]);
    assert_eq!(mcp_events(&mut v, &filters, 50), via_http);
    assert_eq!(
        v.refused(
            "create_export",
            json!({"format": "csv", "filters": filters})
        )["code"],
        "forbidden"
    );
    assert_eq!(
        v.refused("estimate_export", json!({"filters": filters}))["code"],
        "forbidden"
    );
    drop(v);

    // Another organization's job does not exist for globex's admin.
    let mut g = Bridge::stdio(&env, &other, &public, &[]);
    assert_eq!(
        g.refused("get_export", json!({"id": id}))["code"],
        "not_found"
    );
    assert_eq!(
        g.refused("cancel_export", json!({"id": id}))["code"],
        "not_found"
    );
    assert!(g.ok("list_exports", json!({}))["exports"]
        .as_array()
        .unwrap()
        .is_empty());
    // Its search sees globex's events only.
    let globex = mcp_events(
        &mut g,
        &json!({"from": "2025-07-01", "to": "2026-01-31"}),
        200,
    );
    assert!(!globex.is_empty());
    assert!(globex.iter().all(|e| e["organization_id"] == "globex"));
}

#[test]
fn stdio_cancel_restart_and_duplicates_of_queued_jobs() {
    if !have_client() {
        return;
    }
    let env = Env::new();
    env.ingest_fixtures();
    let admin = env.user("acme", "ada@acme.example", "admin");
    // --no-worker: jobs stay queued, so they can be cancelled and restarted.
    let mut b = Bridge::stdio(&env, &admin, &[], &["--no-worker"]);
    let args = json!({"format": "csv", "mode": "async", "filters": {"from": "2025-07-01", "to": "2026-01-31"}});
    let job = b.ok("create_export", args.clone());
    let id = job["job"]["id"].as_str().unwrap().to_string();
    assert_eq!(job["state"], "exporting");
    let dup = b.refused("create_export", args.clone());
    assert_eq!(dup["code"], "duplicate_export");
    assert_eq!(dup["job_id"], id.as_str());
    let mut again = args.clone();
    again["restart"] = json!(true);
    assert_eq!(b.ok("create_export", again)["restarted"], true);
    // Nobody runs it: the restart applies at once, from the beginning.
    let r = b.ok("restart_export", json!({"id": id}));
    assert_eq!(
        (r["state"].as_str(), r["progress"]["exported"].as_u64()),
        (Some("exporting"), Some(0)),
        "{r}"
    );
    let restarts: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM export_job_transitions WHERE job_id = ? AND event LIKE '%restart%'",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(restarts >= 1);
    let c = b.ok("cancel_export", json!({"id": id}));
    assert_eq!(c["state"], "failed", "{c}");
    assert_eq!(c["error"]["code"], "cancelled", "{c}");
}

#[test]
fn http_mcp_needs_a_bearer_token_and_answers_like_stdio() {
    if !have_client() {
        return;
    }
    let (_env, server, admin, viewer, _other) = setup();
    // No token, a wrong token: the API's 401, before any MCP.
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let r = req(&server.addr, "POST", "/mcp", None, Some(body));
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "unauthorized");
    assert!(r.header("WWW-Authenticate").unwrap().starts_with("Bearer"));
    let r = req(&server.addr, "POST", "/mcp", Some("ae_wrong"), Some(body));
    assert_eq!(r.status, 401);
    // GET and DELETE too: the token first, then 405 (no stream, no sessions).
    for method in ["GET", "DELETE"] {
        let r = req(&server.addr, method, "/mcp", None, None);
        assert_eq!(r.status, 401, "{method}");
        assert!(r.header("WWW-Authenticate").unwrap().starts_with("Bearer"));
        let r = req(&server.addr, method, "/mcp", Some(&admin), None);
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.code(), "method_not_allowed");
        assert_eq!(r.header("Allow"), Some("POST"));
    }

    let mut b = Bridge::http(&server, &admin);
    assert_eq!(b.init["server_info"]["name"], "audit-export");
    let tools = b.send(json!({"op": "list_tools"}))["tools"].clone();
    assert_eq!(tools.as_array().unwrap().len(), TOOLS.len());
    let filters = json!({"from": "2025-12-01", "to": "2026-01-31"});
    let via_http = http_events(&server, &admin, "from=2025-12-01&to=2026-01-31");
    assert_eq!(mcp_events(&mut b, &filters, 200), via_http);
    // Large: a job of the server's own worker; its link downloads.
    let big = b.ok(
        "create_export",
        json!({"format": "csv", "filters": {"from": "2025-07-01", "to": "2026-01-31"}}),
    );
    assert_eq!(big["mode"], "async", "{big}");
    let done = wait_completed(&mut b, big["job"]["id"].as_str().unwrap());
    let file = download(&server, done["download_url"].as_str().unwrap());
    assert!(!file.is_empty());
    // Small: the link at once.
    let small = b.ok(
        "create_export",
        json!({"format": "csv", "filters": filters}),
    );
    assert_eq!(small["mode"], "sync", "{small}");
    let bytes = download(&server, small["download_url"].as_str().unwrap());
    assert_eq!(csv_rows(&bytes), via_http.len());
    drop(b);

    let mut v = Bridge::http(&server, &viewer);
    assert_eq!(
        v.refused(
            "create_export",
            json!({"format": "csv", "filters": filters})
        )["code"],
        "forbidden"
    );
}

#[test]
fn mcp_without_a_valid_token_exits_with_a_reason() {
    let env = Env::new();
    env.ingest_fixtures();
    let out = env.run(&["mcp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AUDIT_EXPORT_TOKEN"));
    let out = env.run_env(&["mcp"], &[("AUDIT_EXPORT_TOKEN", "ae_not_a_token")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown or revoked token"));
    // The token is never an argument.
    let out = env.run(&["mcp", "--token", "x"]);
    assert_eq!(out.status.code(), Some(2));
}
