//! Real full disks, on small tmpfs mounts (needs root; skipped otherwise):
//! an export folder that fills during an upload leaves nothing at the final
//! key; a database whose disk is full answers `507 insufficient_storage`
//! (HTTP) and one line naming the data dir (CLI), stays intact
//! (`PRAGMA integrity_check`), and works again once space is freed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::http::req;
use common::Env;
use serde_json::json;

/// A tmpfs of `mb` MiB mounted at `dir` until dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mb: u32) -> Option<Tmpfs> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !root {
            eprintln!("SKIPPED: mounting a tmpfs needs root");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("running as root but `mount -t tmpfs` failed: the disk-full tests need it in CI");
            }
            eprintln!("SKIPPED: mount -t tmpfs failed");
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }

    /// Fills the mount until the disk is full; returns the filler's path.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0xAAu8; 64 * 1024];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
        // Whatever fits in the last partial block too.
        let _ = std::io::Write::write_all(&mut f, &[0u8; 1]);
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Every file under `dir` (folders are not files).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn an_upload_that_fills_the_export_disk_leaves_nothing_at_its_key() {
    let env = Env::new();
    let exports = env.path("exports-disk");
    let Some(_disk) = Tmpfs::mount(&exports, 2) else {
        return;
    };
    // About 7 MB of CSV for a 2 MiB disk.
    env.expect(&["seed", "--rows", "20000", "--orgs", "1"], 0);
    let vars = [
        ("AUDIT_EXPORT_STORAGE_ROOT", exports.to_str().unwrap()),
        ("AUDIT_EXPORT_STORAGE_RETRY_SECS", "0"),
        ("AUDIT_EXPORT_JOBS_MAX_ATTEMPTS", "1"),
        ("AUDIT_EXPORT_JOBS_COMPRESS", "never"),
    ];
    let id = env.enqueue(
        &[
            "--org",
            "org_1",
            "--from",
            "2025-01-01",
            "--to",
            "2025-12-31",
            "--format",
            "csv",
        ],
        &vars,
    );
    let out = env.run_env(&["worker", "--drain"], &vars);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (state, code, message): (String, String, String) = env
        .db()
        .query_row(
            "SELECT state, error_code, error_message FROM export_jobs WHERE id = ?",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(state, "failed");
    assert_eq!(code, "disk_full", "{message}");
    assert!(message.contains("No space left"), "{message}");
    // Not the cut file, not an unfinished copy: nothing at all.
    assert_eq!(files(&exports), Vec::<PathBuf>::new());
}

/// `export --output` writes its file with direct I/O (tmpfs does it since
/// Linux 6.6): a disk that fills mid-export fails the command with one
/// line, and leaves neither the file nor its temporary. Then, with room,
/// the same export writes exactly what standard output gets.
#[test]
fn a_cli_export_that_fills_its_disk_leaves_no_file_and_succeeds_with_room() {
    let env = Env::new();
    let disk = env.path("out-disk");
    let Some(_disk) = Tmpfs::mount(&disk, 3) else {
        return;
    };
    // About 7 MB of CSV for a 3 MiB disk.
    env.expect(&["seed", "--rows", "20000", "--orgs", "1"], 0);
    let target = disk.join("all.csv");
    let args = [
        "export",
        "--org",
        "org_1",
        "--from",
        "2025-01-01",
        "--to",
        "2025-12-31",
        "--format",
        "csv",
        "--output",
    ];
    let mut full = args.to_vec();
    full.push(target.to_str().unwrap());
    let out = env.run(&full);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("No space left"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_eq!(files(&disk), Vec::<PathBuf>::new());

    // Room for it: a quarter (~1.7 MB), byte for byte as on stdout.
    let mut some = args.to_vec();
    some[6] = "2025-03-31";
    some.push(target.to_str().unwrap());
    env.expect(&some, 0);
    let stdout = env.export_stdout("org_1", "2025-01-01", "2025-03-31", "csv", &[]);
    assert!(stdout.len() > 1 << 20, "more than one direct chunk");
    assert_eq!(std::fs::read(&target).unwrap(), stdout);
    assert_eq!(files(&disk), vec![target]);
}

#[test]
fn a_full_database_disk_answers_507_stays_intact_and_recovers() {
    let env = Env::new();
    let Some(disk) = Tmpfs::mount(&env.data_dir(), 16) else {
        return;
    };
    env.ingest_fixtures();
    let srv = env.serve(&[]);
    let admin = env.user("acme", "ada@acme.example", "admin");
    let events: Vec<_> = (0..2000)
        .map(|i| {
            json!({"occurred_at": "2026-01-05T10:00:00Z", "stream": "audit", "action": "user.login",
                   "actor": {"type": "user", "id": format!("u_{i}")}, "details": {"pad": "x".repeat(400)}})
        })
        .collect();
    let body = serde_json::to_vec(&events).unwrap();
    let filler = disk.fill();

    let r = req(
        &srv.addr,
        "POST",
        "/api/v1/audit-logs",
        Some(&admin),
        Some(&body),
    );
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.code(), "insufficient_storage");
    // A sync export needs its work file: 507 too, not a cut file.
    let export = json!({"format": "csv", "mode": "sync", "filters": {"from": "2025-07-01", "to": "2026-01-31"}});
    let r = req(
        &srv.addr,
        "POST",
        "/api/v1/exports",
        Some(&admin),
        Some(export.to_string().as_bytes()),
    );
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    // Reads still work.
    assert_eq!(req(&srv.addr, "GET", "/healthz", None, None).status, 200);
    // The CLI says it in one line, naming the data dir.
    let file = env.path("more.jsonl");
    let lines: Vec<String> = events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e["organization_id"] = json!("acme");
            e.to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = env.run(&["ingest", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is full") && stderr.contains(env.data_dir().to_str().unwrap()),
        "{stderr}"
    );
    // Enqueueing a job may still fit in a free page; if it does not, the
    // same line names the data dir.
    let out = env.run(&[
        "export",
        "--async",
        "--org",
        "acme",
        "--from",
        "2025-07-01",
        "--to",
        "2026-01-31",
        "--format",
        "csv",
    ]);
    let queued = out.status.success();
    if !queued {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("is full") && stderr.contains(env.data_dir().to_str().unwrap()),
            "{stderr}"
        );
    }
    drop(srv);

    let check: String = env
        .db()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    assert_eq!(
        env.db()
            .query_row("SELECT count(*) FROM audit_logs", [], |r| r
                .get::<_, i64>(0))
            .unwrap(),
        // (and the job's audit event, if it could be queued)
        2400 + i64::from(queued),
        "nothing half-written"
    );

    // Space freed: the same request succeeds.
    std::fs::remove_file(filler).unwrap();
    let srv = env.serve(&[]);
    let r = req(
        &srv.addr,
        "POST",
        "/api/v1/audit-logs",
        Some(&admin),
        Some(&body),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = req(
        &srv.addr,
        "POST",
        "/api/v1/exports",
        Some(&admin),
        Some(export.to_string().as_bytes()),
    );
    assert_eq!(r.status, 200);
}
