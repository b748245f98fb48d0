//! Verifiable exports: every stored export carries a signed manifest that
//! `audit-export verify` checks offline, each tamper caught with the right
//! reason; the organization's manifests form a linear chain, also when jobs
//! complete at once and across a key rotation.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use common::Env;
use serde_json::Value;

const JOB_ENV: &[(&str, &str)] = &[
    ("AUDIT_EXPORT_JOBS_POLL_INTERVAL_MS", "20"),
    ("AUDIT_EXPORT_JOBS_MAX_PARALLEL_JOBS", "4"),
    ("AUDIT_EXPORT_JOBS_MAX_IN_PROGRESS_PER_REQUESTER", "20"),
];

/// Queues an export of `org` from `from` and returns the job id.
fn queue(env: &Env, org: &str, from: &str, format: &str, compress: &str) -> String {
    env.enqueue(
        &[
            "--org",
            org,
            "--from",
            from,
            "--to",
            "2026-01-31",
            "--format",
            format,
            "--compress",
            compress,
        ],
        JOB_ENV,
    )
}

fn drain(env: &Env) {
    let out = env.run_env(&["worker", "--drain"], JOB_ENV);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The stored file of a completed job.
fn stored(env: &Env, id: &str) -> PathBuf {
    let key: String = env
        .db()
        .query_row(
            "SELECT file_key FROM export_jobs WHERE id = ? AND state = 'completed'",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    env.data_dir().join("exports").join(key)
}

/// `verify` on `file` with extra args: (exit code, stdout line).
fn verify(env: &Env, file: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify", file.to_str().unwrap()];
    args.extend(extra);
    let out = env.run(&args);
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// A copy of `file` (and its manifest beside it) in a fresh folder.
fn copy(env: &Env, file: &Path, tag: &str) -> PathBuf {
    let dir = env.path(tag);
    std::fs::create_dir_all(&dir).unwrap();
    let to = dir.join(file.file_name().unwrap());
    std::fs::copy(file, &to).unwrap();
    let m = PathBuf::from(format!("{}.manifest.json", file.display()));
    if m.exists() {
        std::fs::copy(&m, format!("{}.manifest.json", to.display())).unwrap();
    }
    to
}

fn manifest_beside(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.manifest.json", file.display()))
}

#[test]
fn fresh_exports_verify_and_every_tamper_is_caught_with_its_reason() {
    let env = Env::new();
    env.ingest_fixtures();
    let zipped = queue(&env, "acme", "2025-07-01", "csv", "always");
    let plain = queue(&env, "acme", "2025-09-01", "jsonl", "never");
    let other = queue(&env, "acme", "2025-11-01", "jsonl", "never");
    drain(&env);
    let (zip_file, plain_file, other_file) = (
        stored(&env, &zipped),
        stored(&env, &plain),
        stored(&env, &other),
    );

    // Fresh: valid, with the manifest inside the zip / beside the file.
    for f in [&zip_file, &plain_file] {
        let (code, line) = verify(&env, f, &[]);
        assert_eq!(code, 0, "{line}");
        assert!(line.starts_with("VALID "), "{line}");
    }
    let mut z = zip::ZipArchive::new(std::fs::File::open(&zip_file).unwrap()).unwrap();
    let mut m = String::new();
    z.by_name("manifest.json")
        .unwrap()
        .read_to_string(&mut m)
        .unwrap();
    let doc: Value = serde_json::from_str(&m).unwrap();
    assert_eq!(doc["organization"], "acme");
    assert_eq!(doc["record_count"], 1100);
    assert_eq!(doc["options"]["compressed"], true);
    assert_eq!(doc["options"]["redacted"], true);
    assert!(doc["file"]["entry"].as_str().unwrap().ends_with(".csv"));
    assert!(doc["first"]["id"].is_i64() && doc["last"]["occurred_at"].is_string());
    assert!(doc["signature"].as_str().unwrap().len() == 128);

    let failures = |code: i32, line: &str| -> Vec<String> {
        assert_eq!(code, 1, "{line}");
        let rest = line.split_once(": ").unwrap().1;
        rest.split(" (")
            .next()
            .unwrap()
            .split(", ")
            .map(String::from)
            .collect()
    };

    // One changed byte of data.
    let f = copy(&env, &plain_file, "byte");
    let mut bytes = std::fs::read(&f).unwrap();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
    std::fs::write(&f, &bytes).unwrap();
    let (code, line) = verify(&env, &f, &[]);
    assert_eq!(failures(code, &line), ["sha256"]);

    // A removed row.
    let f = copy(&env, &plain_file, "row");
    let text = std::fs::read_to_string(&f).unwrap();
    let cut: Vec<&str> = text.lines().collect();
    std::fs::write(&f, cut[..cut.len() - 1].join("\n") + "\n").unwrap();
    let (code, line) = verify(&env, &f, &[]);
    assert_eq!(failures(code, &line), ["sha256", "size", "record_count"]);

    // The same tampering on a renamed download (the manifest passed
    // explicitly): still named as tampering, not as another export's
    // manifest, whichever row goes.
    let renamed = |tag: &str, edit: &dyn Fn(&str) -> String| {
        let dir = env.path(tag);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("download.jsonl");
        std::fs::write(&f, edit(&std::fs::read_to_string(&plain_file).unwrap())).unwrap();
        let m = manifest_beside(&plain_file);
        verify(&env, &f, &["--manifest", m.to_str().unwrap()])
    };
    let (code, line) = renamed("renamed-ok", &|t| t.to_string());
    assert_eq!(code, 0, "{line}");
    let (code, line) = renamed("renamed-byte", &|t| t.replacen("acme", "acmf", 3));
    assert_eq!(failures(code, &line), ["sha256"]);
    for (tag, drop) in [
        ("renamed-first", 0),
        ("renamed-mid", 500),
        ("renamed-last", 1099),
    ] {
        let (code, line) = renamed(tag, &|t| {
            let rows: Vec<&str> = t.lines().collect();
            let drop = drop.min(rows.len() - 1);
            let kept: Vec<&str> = (0..rows.len())
                .filter(|&i| i != drop)
                .map(|i| rows[i])
                .collect();
            kept.join("\n") + "\n"
        });
        assert_eq!(
            failures(code, &line),
            ["sha256", "size", "record_count"],
            "{tag}"
        );
    }
    // Another export's manifest for a renamed file: its first and last
    // records are not this data's.
    let (code, line) = renamed("renamed-swap", &|t| t.to_string());
    assert_eq!(code, 0, "{line}");
    let f = env.path("renamed-swap").join("download.jsonl");
    let (code, line) = verify(
        &env,
        &f,
        &["--manifest", manifest_beside(&other_file).to_str().unwrap()],
    );
    assert_eq!(failures(code, &line), ["manifest_mismatch"]);

    // A manifest swapped from another export.
    let f = copy(&env, &plain_file, "swap");
    std::fs::copy(manifest_beside(&other_file), manifest_beside(&f)).unwrap();
    let (code, line) = verify(&env, &f, &[]);
    assert_eq!(failures(code, &line), ["manifest_mismatch"]);
    let (code, line) = verify(
        &env,
        &zip_file,
        &["--manifest", manifest_beside(&other_file).to_str().unwrap()],
    );
    assert_eq!(failures(code, &line), ["manifest_mismatch"]);

    // A changed filter in the manifest.
    let f = copy(&env, &plain_file, "filter");
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(manifest_beside(&f)).unwrap()).unwrap();
    doc["filters"]["actions"] = serde_json::json!(["user.login"]);
    std::fs::write(manifest_beside(&f), doc.to_string()).unwrap();
    let (code, line) = verify(&env, &f, &[]);
    assert_eq!(failures(code, &line), ["signature"]);

    // A signature by another key: claimed as ours, or as the other key.
    let stranger = Env::new();
    let out = stranger.run(&["keys", "show"]);
    assert_eq!(out.status.code(), Some(0));
    let keys_dir = stranger.data_dir().join("keys");
    let pk8 = std::fs::read_dir(&keys_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "pk8"))
        .unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&std::fs::read(pk8).unwrap()).unwrap();
    use ring::signature::KeyPair;
    let stranger_id = audit_export::manifest::keys::key_id(pair.public_key().as_ref());
    for (claimed, reason) in [
        (None, "signature"),
        (Some(stranger_id.as_str()), "unknown_key"),
    ] {
        let f = copy(&env, &plain_file, &format!("key-{reason}"));
        let mut signed =
            audit_export::manifest::Signed::parse(&std::fs::read(manifest_beside(&f)).unwrap())
                .unwrap();
        if let Some(id) = claimed {
            signed.manifest.key_id = id.to_string();
        }
        signed.signature =
            audit_export::util::hex(pair.sign(&signed.manifest.signed_bytes()).as_ref());
        std::fs::write(manifest_beside(&f), signed.document()).unwrap();
        let (code, line) = verify(&env, &f, &[]);
        assert_eq!(failures(code, &line), [reason]);
    }

    // One changed byte inside the zipped data (CRC or deflate error): the
    // data is not the one signed.
    let f = copy(&env, &zip_file, "flip");
    let mut bytes = std::fs::read(&f).unwrap();
    let at = 30 + 200; // past the first local header and name, in the data
    bytes[at] ^= 0x55;
    std::fs::write(&f, &bytes).unwrap();
    let (code, line) = verify(&env, &f, &[]);
    assert_eq!(failures(code, &line), ["sha256"], "{line}");

    // A truncated zip.
    let f = copy(&env, &zip_file, "trunc");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (code, line) = verify(&env, &f, &[]);
    assert_eq!(failures(code, &line), ["truncated"]);

    // Offline with an explicit key, from another folder, no data dir at all.
    let pubkey = String::from_utf8(env.run(&["keys", "show"]).stdout).unwrap();
    let hex = pubkey.split_whitespace().nth(2).unwrap().to_string();
    let elsewhere = Env::new();
    let out = elsewhere.run(&["verify", plain_file.to_str().unwrap(), "--public-key", &hex]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !elsewhere.data_dir().join("audit-export.db").exists(),
        "verify needs no database"
    );
    let out = elsewhere.run(&["verify", plain_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "no trusted key: unknown_key");
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown_key"));
    let out = elsewhere.run(&["verify", env.path("nope.csv").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

/// The organization's manifests from the database into a folder.
fn dump_chain(env: &Env, org: &str, dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let db = env.db();
    let mut st = db
        .prepare(
            "SELECT sequence, document FROM manifests WHERE organization_id = ? ORDER BY sequence",
        )
        .unwrap();
    let rows: Vec<(i64, String)> = st
        .query_map([org], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.into_iter()
        .map(|(seq, doc)| {
            let p = dir.join(format!("{org}-{seq:04}.json"));
            std::fs::File::create(&p)
                .unwrap()
                .write_all(doc.as_bytes())
                .unwrap();
            p
        })
        .collect()
}

#[test]
fn manifests_chain_linearly_across_concurrent_completions_and_key_rotation() {
    let env = Env::new();
    env.ingest_fixtures();
    // Three exports, then a key rotation, then six more completing at once.
    for from in ["2025-07-01", "2025-08-01", "2025-09-01"] {
        queue(&env, "globex", from, "csv", "never");
    }
    drain(&env);
    let rotated = env.run(&["keys", "rotate"]);
    assert_eq!(rotated.status.code(), Some(0));
    for from in [
        "2025-07-02",
        "2025-07-03",
        "2025-07-04",
        "2025-07-05",
        "2025-07-06",
        "2025-07-07",
    ] {
        queue(&env, "globex", from, "jsonl", "never");
    }
    drain(&env);
    let db = env.db();
    let (n, max, keys): (i64, i64, i64) = db
        .query_row(
            "SELECT count(*), max(sequence), count(DISTINCT key_id) FROM manifests WHERE organization_id = 'globex'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (n, max, keys),
        (9, 9, 2),
        "one linear chain of 9, signed by two keys"
    );

    let out = env.run(&["verify", "--chain", "--org", "globex"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let dir = env.path("chain");
    let files = dump_chain(&env, "globex", &dir);
    let out = env.run(&["verify", "--chain", dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("9 manifests"));

    // Deleting the middle manifest is a gap, named.
    std::fs::remove_file(&files[4]).unwrap();
    let out = env.run(&["verify", "--chain", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains("gap: sequence 5 is missing"), "{line}");
    // A manifest replaced by another organization's is a break too.
    let acme = queue(&env, "acme", "2025-07-01", "jsonl", "never");
    drain(&env);
    let _ = acme;
    let acme_doc: String = db
        .query_row(
            "SELECT document FROM manifests WHERE organization_id = 'acme'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    std::fs::write(&files[4], acme_doc).unwrap();
    let out = env.run(&["verify", "--chain", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    // The chain survives the files' clean-up: the manifests stay.
    let srv = env.serve(&[("AUDIT_EXPORT_JOBS_DOWNLOAD_TTL_SECS", "0")]);
    let t = env.user("globex", "gus@globex.example", "compliance");
    let page = common::http::req(
        &srv.addr,
        "GET",
        "/api/v1/manifests?limit=5",
        Some(&t),
        None,
    )
    .json();
    assert_eq!(page["data"].as_array().unwrap().len(), 5);
    assert_eq!(page["data"][0]["sequence"], 1);
    let next = page["next_cursor"].as_str().unwrap().to_string();
    let page2 = common::http::req(
        &srv.addr,
        "GET",
        &format!("/api/v1/manifests?limit=5&cursor={next}"),
        Some(&t),
        None,
    )
    .json();
    assert_eq!(page2["data"].as_array().unwrap().len(), 4);
    let keys = common::http::req(&srv.addr, "GET", "/api/v1/signing-key", None, None).json();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2);
    let viewer = env.user("globex", "vi@globex.example", "viewer");
    assert_eq!(
        common::http::req(&srv.addr, "GET", "/api/v1/manifests", Some(&viewer), None).status,
        403
    );
}

/// `[signing] key_file`: manifests are signed with it, `keys show` lists it
/// active, `verify` trusts it without `--public-key`, and `keys rotate`
/// refuses (it could not take effect). Without it, a `keys rotate` reaches
/// a worker that is already running: its next manifest has the new key.
#[test]
fn a_configured_key_signs_and_verifies_and_a_rotation_reaches_a_running_worker() {
    // A key file of its own (made by another instance).
    let other = Env::new();
    let out = other.run(&["keys", "show"]);
    assert_eq!(out.status.code(), Some(0));
    let key_file = std::fs::read_dir(other.data_dir().join("keys"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "pk8"))
        .unwrap();
    let key_id = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let env = Env::new();
    env.ingest_fixtures();
    let file_var = ("AUDIT_EXPORT_SIGNING_KEY_FILE", key_file.to_str().unwrap());
    let with_file: Vec<(&str, &str)> = JOB_ENV.iter().copied().chain([file_var]).collect();
    let id = env.enqueue(
        &[
            "--org",
            "acme",
            "--from",
            "2025-07-01",
            "--to",
            "2026-01-31",
            "--format",
            "csv",
        ],
        &with_file,
    );
    let out = env.run_env(&["worker", "--drain"], &with_file);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed_by = |id: &str| -> String {
        env.db()
            .query_row("SELECT key_id FROM manifests WHERE job_id = ?", [id], |r| {
                r.get(0)
            })
            .unwrap()
    };
    assert_eq!(signed_by(&id), key_id);
    let out = env.run_env(&["keys", "show"], &[file_var]);
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&key_id) && l.ends_with("(active)")),
        "{listed}"
    );
    let file = stored(&env, &id);
    let out = env.run_env(&["verify", file.to_str().unwrap()], &[file_var]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = env.run_env(&["keys", "rotate"], &[file_var]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key_file"));

    // The data dir's own key, rotated under a running worker.
    let mut worker = env.spawn_worker(JOB_ENV, "worker.log");
    let first = queue(&env, "globex", "2025-07-01", "csv", "never");
    env.wait_job(&first, 60, |s| s == "completed");
    let out = env.run(&["keys", "rotate"]);
    assert_eq!(out.status.code(), Some(0));
    let rotated = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_ne!(signed_by(&first), rotated);
    let second = queue(&env, "globex", "2025-08-01", "csv", "never");
    env.wait_job(&second, 60, |s| s == "completed");
    assert_eq!(
        signed_by(&second),
        rotated,
        "the running worker signs with the new key"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    assert!(worker.wait().unwrap().success());
}
