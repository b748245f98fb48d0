//! The job engine as real worker processes: SIGKILL at random moments
//! (byte-identical result), two workers on one database, clean SIGTERM.

mod common;

use std::time::{Duration, Instant};

use common::{terminate, Env};

/// A small deterministic PRNG for kill delays (reproducible with a seed).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn job_row(env: &Env, id: &str) -> (String, Option<String>, Option<i64>, i64) {
    env.db()
        .query_row(
            "SELECT state, file_key, record_count, exported_count FROM export_jobs WHERE id = ?",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else if ty.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Waits until a worker process holds the job's lease.
fn wait_claimed(env: &Env, id: &str, pid: u32, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let owner: Option<String> = env
            .db()
            .query_row(
                "SELECT lease_owner FROM export_jobs WHERE id = ?",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        if owner.is_some_and(|o| o.contains(&format!(":{pid}:"))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn sigkill_at_random_moments_still_yields_the_same_bytes() {
    let env = Env::new();
    env.expect(&["seed", "--rows", "200000", "--seed", "11"], 0);
    let job_env: &[(&str, &str)] = &[
        ("AUDIT_EXPORT_EXPORT_BATCH_SIZE", "500"),
        ("AUDIT_EXPORT_JOBS_CHECKPOINT_INTERVAL_MS", "100"),
        ("AUDIT_EXPORT_JOBS_COMPRESS", "always"),
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
        job_env,
    );
    // The reference: a copy of the database with the same job, run without
    // interruption.
    let reference = Env::new();
    copy_dir(&env.data_dir(), &reference.data_dir());
    let mut w = reference.spawn_worker(job_env, "ref.log");
    reference.wait_job(&id, 300, |s| s == "completed");
    assert!(terminate(&mut w).success());
    let (_, ref_key, ref_count, _) = job_row(&reference, &id);
    let ref_bytes =
        std::fs::read(reference.data_dir().join("exports").join(ref_key.unwrap())).unwrap();
    assert_eq!(ref_count, Some(200_000));

    // Phase lengths of the uninterrupted run set the kill windows, so kills
    // land inside each phase whatever this machine's speed.
    let (started, upload_at, done_at): (i64, i64, i64) = reference
        .db()
        .query_row(
            "SELECT j.started_at, \
                    (SELECT at FROM export_job_transitions WHERE job_id = j.id AND to_state = 'uploading'), \
                    (SELECT at FROM export_job_transitions WHERE job_id = j.id AND to_state = 'completed') \
             FROM export_jobs j WHERE j.id = ?",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let export_ms = (upload_at - started).max(1) as u64;
    let upload_ms = (done_at - upload_at).max(1) as u64;
    eprintln!("reference: exporting {export_ms} ms, uploading {upload_ms} ms");

    // The crash run: kill -9 while exporting, then while uploading.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill-delay seed {seed:#x}");
    let mut rng = Rng(seed);
    let (mut in_export, mut in_upload) = (0, 0);
    let mut progress_seen = Vec::new();
    let spool_dir = env.data_dir().join("spool").join(&id);
    for _ in 0..100 {
        if in_upload >= 8 && in_export + in_upload >= 22 {
            break;
        }
        let (state, ..) = job_row(&env, &id);
        if state == "completed" {
            break;
        }
        // The first upload, killed the moment it starts (below), only wraps
        // the stream compressed while exporting: it is short. Every later
        // one finds the stream removed and compresses the spool again (its
        // longest form, so a kill lands inside it on any machine, and a
        // check that the stream made again is the one made while
        // exporting).
        if state == "uploading" {
            for f in ["export.deflate", "export.deflate.json"] {
                let _ = std::fs::remove_file(spool_dir.join(f));
            }
        }
        let mut w = env.spawn_worker(job_env, "crash.log");
        // The dead worker's lease (1 s) must lapse before this one claims.
        assert!(
            wait_claimed(&env, &id, w.id(), 30),
            "worker never claimed the job"
        );
        if state == "exporting" && in_export >= 14 {
            // Enough kills while exporting: ride to the upload and kill
            // the moment it starts.
            // One connection, no sleep: the wrap-only upload is short.
            let db = env.db();
            let t = std::time::Instant::now();
            while t.elapsed() < Duration::from_secs(120) {
                let state: String = db
                    .query_row("SELECT state FROM export_jobs WHERE id = ?", [&id], |r| {
                        r.get(0)
                    })
                    .unwrap();
                if state != "exporting" {
                    break;
                }
            }
        } else {
            // Exporting: long enough for a checkpoint (every 100 ms) now
            // and then, so the job advances; uploading: within its length
            // (it restarts from the spool each time).
            let delay = if state == "uploading" {
                rng.below(upload_ms * 7 / 10 + 1)
            } else {
                60 + rng.below(export_ms / 6 + 1)
            };
            std::thread::sleep(Duration::from_millis(delay));
        }
        let (state_at_kill, _, _, exported) = job_row(&env, &id);
        w.kill().unwrap();
        w.wait().unwrap();
        match state_at_kill.as_str() {
            "exporting" => in_export += 1,
            "uploading" => in_upload += 1,
            _ => {}
        }
        progress_seen.push(exported);
    }
    eprintln!("kills: {in_export} while exporting, {in_upload} while uploading");
    assert!(
        in_export >= 5,
        "kills while exporting: {in_export} (progress {progress_seen:?})"
    );
    assert!(in_upload >= 5, "kills while uploading: {in_upload}");
    assert!(in_export + in_upload >= 20);
    let mut w = env.spawn_worker(job_env, "final.log");
    env.wait_job(&id, 300, |s| s == "completed");
    assert!(terminate(&mut w).success());

    let (_, key, count, _) = job_row(&env, &id);
    let bytes = std::fs::read(env.data_dir().join("exports").join(key.unwrap())).unwrap();
    assert_eq!(count, Some(200_000));
    if bytes != ref_bytes {
        let manifest = |b: &[u8]| {
            let mut z = zip::ZipArchive::new(std::io::Cursor::new(b.to_vec())).unwrap();
            let mut m = String::new();
            std::io::Read::read_to_string(&mut z.by_name("manifest.json").unwrap(), &mut m)
                .unwrap();
            m
        };
        eprintln!(
            "crash run manifest: {}\nreference manifest: {}",
            manifest(&bytes),
            manifest(&ref_bytes)
        );
    }
    assert!(
        bytes == ref_bytes,
        "stored file differs from the uninterrupted run ({} vs {} bytes)",
        bytes.len(),
        ref_bytes.len()
    );
    // And the file really holds every row once: unzip and count.
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let entry = zip.by_index(0).unwrap();
    let mut rdr = csv::ReaderBuilder::new().from_reader(entry);
    let mut ids = std::collections::HashSet::new();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        assert!(
            ids.insert(rec[0].trim_start_matches('\u{feff}').to_string()),
            "duplicate row {}",
            &rec[0]
        );
    }
    assert_eq!(ids.len(), 200_000);
    let completions: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM export_job_transitions WHERE job_id = ? AND to_state = 'completed'",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(completions, 1);
    eprintln!("kills: {in_export} while exporting, {in_upload} while uploading");
}

#[test]
fn two_workers_complete_every_job_exactly_once() {
    let env = Env::new();
    env.expect(
        &["seed", "--rows", "60000", "--orgs", "3", "--seed", "3"],
        0,
    );
    let job_env: &[(&str, &str)] = &[
        ("AUDIT_EXPORT_EXPORT_BATCH_SIZE", "700"),
        ("AUDIT_EXPORT_JOBS_CHECKPOINT_INTERVAL_MS", "0"),
        ("AUDIT_EXPORT_JOBS_MAX_IN_PROGRESS_PER_REQUESTER", "100"),
        ("AUDIT_EXPORT_JOBS_COMPRESS", "never"),
    ];
    let mut jobs = Vec::new();
    for org in ["org_1", "org_2", "org_3"] {
        for (from, format) in [
            ("2025-01-01", "csv"),
            ("2025-03-01", "jsonl"),
            ("2025-06-01", "json"),
            ("2025-09-15", "csv"),
        ] {
            let args = [
                "--org",
                org,
                "--from",
                from,
                "--to",
                "2025-12-31",
                "--format",
                format,
            ];
            jobs.push((env.enqueue(&args, job_env), args));
        }
    }
    assert_eq!(jobs.len(), 12);
    let mut a = env.spawn_worker(job_env, "a.log");
    let mut b = env.spawn_worker(job_env, "b.log");
    for (id, _) in &jobs {
        env.wait_job(id, 300, |s| s == "completed");
    }
    assert!(terminate(&mut a).success());
    assert!(terminate(&mut b).success());
    let mut owners = std::collections::HashSet::new();
    for (id, args) in &jobs {
        let conn = env.db();
        let completions: Vec<String> = conn
            .prepare("SELECT coalesce(owner, '') FROM export_job_transitions WHERE job_id = ? AND to_state = 'completed'")
            .unwrap()
            .query_map([id], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            completions.len(),
            1,
            "job {id} completed {} times",
            completions.len()
        );
        owners.insert(completions[0].clone());
        // The stored file equals a synchronous export of the same filters.
        let (_, key, _, _) = job_row(&env, id);
        let stored = std::fs::read(env.data_dir().join("exports").join(key.unwrap())).unwrap();
        let mut sync_args = vec!["export"];
        sync_args.extend(args.iter().copied());
        sync_args.extend(["--output", "-"]);
        let out = env.run(&sync_args);
        assert_eq!(out.status.code(), Some(0));
        assert!(
            stored == out.stdout,
            "job {id} ({args:?}) differs from the sync export"
        );
    }
    assert_eq!(
        owners.len(),
        2,
        "both workers should have completed jobs: {owners:?}"
    );
    for log in ["a.log", "b.log"] {
        let text = std::fs::read_to_string(env.path(log)).unwrap();
        assert!(
            !text.contains("database is locked") && !text.to_lowercase().contains("busy"),
            "{log}: {text}"
        );
    }
}

#[test]
fn sigterm_releases_the_lease_and_another_worker_resumes() {
    let env = Env::new();
    env.expect(&["seed", "--rows", "150000", "--seed", "5"], 0);
    let job_env: &[(&str, &str)] = &[
        ("AUDIT_EXPORT_EXPORT_BATCH_SIZE", "300"),
        ("AUDIT_EXPORT_JOBS_CHECKPOINT_INTERVAL_MS", "50"),
        ("AUDIT_EXPORT_JOBS_LEASE_SECS", "600"),
        // At least 3 s of exporting on any machine: the SIGTERM lands in it.
        ("AUDIT_EXPORT_JOBS_ROWS_PER_SECOND", "50000"),
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
            "jsonl",
        ],
        job_env,
    );
    let mut w = env.spawn_worker(job_env, "w1.log");
    assert!(wait_claimed(&env, &id, w.id(), 30));
    // Once a checkpoint is recorded, so there is progress to keep.
    let t = Instant::now();
    while job_row(&env, &id).3 == 0 {
        assert!(t.elapsed() < Duration::from_secs(60), "no checkpoint");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        terminate(&mut w).success(),
        "worker exits cleanly on SIGTERM"
    );
    let (state, owner, exported): (String, Option<String>, i64) = env
        .db()
        .query_row(
            "SELECT state, lease_owner, exported_count FROM export_jobs WHERE id = ?",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(state, "exporting");
    assert_eq!(owner, None, "lease released");
    assert!(exported > 0, "checkpoint kept");
    // With a 10-minute lease, only a released job can be resumed this fast.
    let mut w2 = env.spawn_worker(job_env, "w2.log");
    env.wait_job(&id, 60, |s| s == "completed");
    assert!(terminate(&mut w2).success());
    assert_eq!(job_row(&env, &id).2, Some(150_000));
}
