//! The job store and engine in-process, on a real SQLite file: fencing,
//! duplicates, restart, cancel, per-requester limit, storage faults and
//! every clean-up rule. Several jobs at once wherever it matters. Time is
//! the engine's test clock: waits for backoff or expiry move it instead of
//! sleeping.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use audit_export::filters::{FilterInput, Filters, Limits};
use audit_export::format::Format;
use audit_export::jobs::cleanup::cleanup_once;
use audit_export::jobs::rescue::rescue_once;
use audit_export::jobs::store::{self, Checkpoint, CreateOutcome, Fence, NewJob, Patch, Request};
use audit_export::jobs::{spool_dir, Compress, JobError, JobEvent, JobState, JobsConfig, Runner};
use audit_export::storage::{Storage, StorageConfig};
use audit_export::time::Clock;
use tokio_util::sync::CancellationToken;

struct Fixture {
    dir: tempfile::TempDir,
    clock: Clock,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
            clock: Clock::manual(Clock::system().now_ms()),
        };
        let mut conn = audit_export::db::open_data_dir(&f.data()).unwrap();
        let opts = audit_export::audit::ingest::IngestOptions {
            format: audit_export::audit::ingest::InputFormat::Jsonl,
            skip_invalid: false,
        };
        audit_export::audit::ingest::ingest_file(&mut conn, &common::fixtures(), opts, 0).unwrap();
        f
    }
    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }
    fn conn(&self) -> rusqlite::Connection {
        audit_export::db::open_data_dir(&self.data()).unwrap()
    }
    fn now(&self) -> i64 {
        self.clock.now_ms()
    }
    fn runner(&self, cfg: JobsConfig, storage: Option<Storage>) -> Arc<Runner> {
        let storage = storage.unwrap_or_else(|| {
            Storage::from_config(&StorageConfig::default(), &self.data()).unwrap()
        });
        Arc::new(
            Runner::new(self.data(), cfg, 200, storage, self.clock.clone())
                .expect("the runner's signing key"),
        )
    }
}

fn filters(org: &str, from: &str) -> Filters {
    FilterInput {
        organization: Some(org.into()),
        from: Some(from.into()),
        to: Some("2026-01-31".into()),
        ..Default::default()
    }
    .validate(&Limits::default())
    .unwrap()
}

fn new_job(requester: &str, f: Filters) -> NewJob {
    NewJob {
        requester: requester.into(),
        filters: f,
        format: Format::Csv,
        options: Default::default(),
        compress: Compress::Never,
        max_attempts: 3,
        estimated_count: None,
        schedule_id: None,
        fire_time: None,
        recipients: vec![],
        restart: false,
        archive_key: None,
    }
}

/// The default settings (the test clock makes their waits free), with an
/// hour's lease: at the clock's pace that is 18 s of real time, so a
/// stalled thread on a loaded machine never lets a job be taken over
/// mid-test (which would add to the histories the tests compare).
fn cfg() -> JobsConfig {
    JobsConfig {
        lease_secs: 3600,
        ..JobsConfig::default()
    }
}

/// Runs the scheduler until `done` holds for the database, or panics. The
/// test clock moves one second every 5 ms of real time, so retries after
/// their backoff (5 s, then 10 s) come within a fraction of a second,
/// while a running job's lease never lapses between its renewals.
async fn run_until(
    runner: Arc<Runner>,
    data: std::path::PathBuf,
    done: impl Fn(&rusqlite::Connection) -> bool,
) {
    let shutdown = CancellationToken::new();
    let clock = runner.clock.clone();
    let task = tokio::spawn(audit_export::jobs::scheduler::run(runner, shutdown.clone()));
    let conn = audit_export::db::open_data_dir(&data).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done(&conn) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for jobs"
        );
        clock.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.cancel();
    task.await.unwrap();
}

/// Creates `job` (3 attempts) at `now`; its id.
fn queued(conn: &mut rusqlite::Connection, job: &NewJob, now: i64) -> String {
    store::create(conn, job, 3, now).unwrap().job().id.clone()
}

fn state(conn: &rusqlite::Connection, id: &str) -> JobState {
    store::get(conn, id).unwrap().state
}

#[test]
fn a_stale_worker_is_fenced_out() {
    let fx = Fixture::new();
    let mut conn = fx.conn();
    let now = fx.now();
    let job = store::create(
        &mut conn,
        &new_job("u1", filters("acme", "2025-07-01")),
        3,
        now,
    )
    .unwrap();
    let id = job.job().id.clone();
    // Worker A claims with a 10 ms lease; it lapses; worker B takes over.
    let (_, a) = store::claim(&mut conn, "A", 1, 10, now)
        .unwrap()
        .pop()
        .unwrap();
    assert!(
        store::claim(&mut conn, "B", 1, 60_000, now + 5)
            .unwrap()
            .is_empty(),
        "lease still held"
    );
    let (_, b) = store::claim(&mut conn, "B", 1, 60_000, now + 20)
        .unwrap()
        .pop()
        .unwrap();
    assert_ne!(a.token, b.token);
    let before = store::get(&conn, &id).unwrap();
    let cp = Checkpoint {
        first: None,
        cursor: None,
        exported_count: 99,
        spool_bytes: 999,
    };
    assert!(matches!(
        store::checkpoint(&conn, &a, &cp, 60_000, now + 30),
        Err(JobError::LeaseLost(_))
    ));
    assert!(matches!(
        store::poll_flags(&conn, &a, 60_000, now + 30),
        Err(JobError::LeaseLost(_))
    ));
    let r = store::apply(
        &mut conn,
        &id,
        Fence::Lease(&a),
        JobEvent::SpoolComplete,
        Patch::default(),
        now + 30,
    );
    assert!(matches!(r, Err(JobError::LeaseLost(_))));
    assert!(matches!(
        store::release(&conn, &a, now + 30),
        Err(JobError::LeaseLost(_))
    ));
    assert_eq!(
        store::get(&conn, &id).unwrap(),
        before,
        "the stale worker changed the job"
    );
    // The new owner can still write.
    store::checkpoint(&conn, &b, &cp, 60_000, now + 40).unwrap();
    assert_eq!(store::get(&conn, &id).unwrap().exported_count, 99);
}

#[test]
fn duplicates_restart_and_the_per_requester_limit() {
    let fx = Fixture::new();
    let mut conn = fx.conn();
    let now = fx.now();
    let first = store::create(
        &mut conn,
        &new_job("u1", filters("acme", "2025-07-01")),
        3,
        now,
    )
    .unwrap();
    let first = first.job().clone();
    // Same filters spelled differently: a duplicate, carrying the first job.
    let same = FilterInput {
        organization: Some(" acme".into()),
        from: Some("2025-07-01T00:00:00Z".into()),
        to: Some("2026-01-31".into()),
        ..Default::default()
    }
    .validate(&Limits::default())
    .unwrap();
    match store::create(&mut conn, &new_job("u1", same.clone()), 3, now + 1) {
        Err(JobError::DuplicateExport { id, created_at, .. }) => {
            assert_eq!(id, first.id);
            assert_eq!(created_at, first.created_at);
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    // Another requester, or another format, is not a duplicate.
    store::create(&mut conn, &new_job("u2", same.clone()), 3, now + 2).unwrap();
    let mut json = new_job("u1", same.clone());
    json.format = Format::Json;
    store::create(&mut conn, &json, 3, now + 3).unwrap();
    // restart = true restarts the existing job instead.
    let mut again = new_job("u1", same);
    again.restart = true;
    match store::create(&mut conn, &again, 3, now + 4).unwrap() {
        CreateOutcome::Restarted(j) => {
            assert_eq!(j.id, first.id);
            assert!(j.restart_requested);
        }
        other => panic!("expected a restart, got {other:?}"),
    }
    // u1 has 2 in progress; a third is fine, a fourth is too many.
    store::create(
        &mut conn,
        &new_job("u1", filters("globex", "2025-07-01")),
        3,
        now + 5,
    )
    .unwrap();
    match store::create(
        &mut conn,
        &new_job("u1", filters("initech", "2025-07-01")),
        3,
        now + 6,
    ) {
        Err(JobError::TooManyExports { limit: 3 }) => {}
        other => panic!("expected too many, got {other:?}"),
    }
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM export_jobs WHERE requester = 'u1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 3);
}

#[test]
fn the_limit_holds_under_concurrent_creates() {
    let fx = Fixture::new();
    let data = fx.data();
    let orgs = ["acme", "globex", "initech"];
    let froms = ["2025-07-01", "2025-08-01", "2025-09-01", "2025-10-01"];
    let now = fx.now();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let data = data.clone();
            std::thread::spawn(move || {
                let mut conn = audit_export::db::open_data_dir(&data).unwrap();
                let f = filters(orgs[i % 3], froms[i % 4]);
                store::create(&mut conn, &new_job("racer", f), 3, now).is_ok()
            })
        })
        .collect();
    let ok = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|x| *x)
        .count();
    assert_eq!(ok, 3, "exactly the limit may be created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_restart_of_idle_and_running_jobs() {
    let fx = Fixture::new();
    let mut conn = fx.conn();
    let now = fx.now();
    let a = store::create(
        &mut conn,
        &new_job("u1", filters("acme", "2025-07-01")),
        3,
        now,
    )
    .unwrap()
    .job()
    .clone();
    let b = store::create(
        &mut conn,
        &new_job("u1", filters("globex", "2025-07-01")),
        3,
        now,
    )
    .unwrap()
    .job()
    .clone();
    // Idle job: cancel applies at once.
    match store::request_cancel(&mut conn, &a.id, now).unwrap() {
        Request::Applied(out) => {
            assert_eq!(out.job.state, JobState::Failed);
            assert_eq!(out.job.error_code.as_deref(), Some("cancelled"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store::request_cancel(&mut conn, &a.id, now),
        Err(JobError::NotInProgress(_))
    ));
    // Running job: cancel is flagged and the worker honours it.
    let (_, lease) = store::claim(&mut conn, "W", 1, 60_000, now)
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(lease.job_id, b.id);
    std::fs::create_dir_all(spool_dir(&fx.data(), &b.id)).unwrap();
    assert!(matches!(
        store::request_cancel(&mut conn, &b.id, now).unwrap(),
        Request::Flagged(_)
    ));
    store::release(&conn, &lease, now).unwrap();
    run_until(fx.runner(cfg(), None), fx.data(), |c| {
        state(c, &b.id) == JobState::Failed
    })
    .await;
    let jb = store::get(&conn, &b.id).unwrap();
    assert_eq!(jb.error_code.as_deref(), Some("cancelled"));
    assert!(
        !spool_dir(&fx.data(), &b.id).exists(),
        "spool of a cancelled job removed"
    );

    // Restart: a job with a checkpoint starts over and completes with every row.
    let c = store::create(
        &mut conn,
        &new_job("u1", filters("initech", "2025-07-01")),
        3,
        now,
    )
    .unwrap()
    .job()
    .clone();
    let (_, lease) = store::claim(&mut conn, "W", 1, 60_000, now)
        .unwrap()
        .pop()
        .unwrap();
    let cp = Checkpoint {
        first: None,
        cursor: Some(audit_export::audit::query::Cursor {
            occurred_at: 1,
            id: 1,
        }),
        exported_count: 7,
        spool_bytes: 70,
    };
    store::checkpoint(&conn, &lease, &cp, 60_000, now).unwrap();
    store::release(&conn, &lease, now).unwrap();
    assert!(matches!(
        store::request_restart(&mut conn, &c.id, now).unwrap(),
        Request::Applied(_)
    ));
    let jc = store::get(&conn, &c.id).unwrap();
    assert_eq!(
        (jc.checkpoint, jc.exported_count, jc.spool_bytes),
        (None, 0, 0)
    );
    run_until(fx.runner(cfg(), None), fx.data(), |cn| {
        state(cn, &c.id) == JobState::Completed
    })
    .await;
    assert_eq!(store::get(&conn, &c.id).unwrap().record_count, Some(500));
}

fn failing_storage(fx: &Fixture, failures: usize) -> (Storage, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let st = Storage::from_config(&StorageConfig::default(), &fx.data())
        .unwrap()
        .with_fault(Arc::new(move |_key: &str| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            (n < failures).then(|| format!("injected failure #{}", n + 1))
        }));
    (st, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_failing_twice_then_working_completes_on_attempt_3() {
    let fx = Fixture::new();
    let mut conn = fx.conn();
    let id = queued(
        &mut conn,
        &new_job("u1", filters("acme", "2025-07-01")),
        fx.now(),
    );
    let (st, calls) = failing_storage(&fx, 2);
    run_until(fx.runner(cfg(), Some(st)), fx.data(), |c| {
        state(c, &id) == JobState::Completed
    })
    .await;
    let job = store::get(&conn, &id).unwrap();
    assert_eq!(job.attempt, 3);
    // Two failed writes, then the file and its manifest beside it.
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let f = job.file.unwrap();
    let storage = Storage::from_config(&StorageConfig::default(), &fx.data()).unwrap();
    let bytes = storage.read(&f.key).await.unwrap();
    assert_eq!(bytes.len() as u64, f.size);
    assert!(!spool_dir(&fx.data(), &id).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_always_failing_fails_after_3_attempts_and_cleans_the_spool() {
    let fx = Fixture::new();
    let mut conn = fx.conn();
    let ids: Vec<String> = ["acme", "globex"]
        .iter()
        .map(|o| {
            queued(
                &mut conn,
                &new_job("u1", filters(o, "2025-07-01")),
                fx.now(),
            )
        })
        .collect();
    let (st, _) = failing_storage(&fx, usize::MAX);
    run_until(fx.runner(cfg(), Some(st)), fx.data(), |c| {
        ids.iter().all(|id| state(c, id) == JobState::Failed)
    })
    .await;
    for id in &ids {
        let job = store::get(&conn, id).unwrap();
        assert_eq!(job.attempt, 3);
        assert_eq!(job.error_code.as_deref(), Some("storage_error"));
        assert!(job.error_message.unwrap().contains("injected failure"));
        assert!(!spool_dir(&fx.data(), id).exists(), "spool leaked");
        let hist = store::history(&conn, id).unwrap();
        assert_eq!(hist.last().unwrap().to, "failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_matching_rows_complete_with_no_file() {
    let fx = Fixture::new();
    let mut conn = fx.conn();
    let id = queued(
        &mut conn,
        &new_job("u1", filters("nobody", "2025-07-01")),
        fx.now(),
    );
    run_until(fx.runner(cfg(), None), fx.data(), |c| {
        state(c, &id) == JobState::Completed
    })
    .await;
    let job = store::get(&conn, &id).unwrap();
    assert_eq!(job.record_count, Some(0));
    assert!(job.file.is_none());
    assert!(!spool_dir(&fx.data(), &id).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cleanup_rule() {
    let fx = Fixture::new();
    let mut conn = fx.conn();
    let cfg = JobsConfig::default();
    let engine = fx.runner(cfg.clone(), None);
    let t0 = fx.now();
    let hour = 3_600_000i64;
    // A completed job with a stored file.
    let done = queued(&mut conn, &new_job("u1", filters("acme", "2025-07-01")), t0);
    run_until(engine.clone(), fx.data(), |c| {
        state(c, &done) == JobState::Completed
    })
    .await;
    let key = store::get(&conn, &done).unwrap().file.unwrap().key;
    assert!(engine.storage.exists(&key).await.unwrap());
    // A stuck job (in progress), a failed job, and an orphan spool folder.
    let stuck = queued(
        &mut conn,
        &new_job("u2", filters("globex", "2025-07-01")),
        t0,
    );
    std::fs::create_dir_all(spool_dir(&fx.data(), &stuck)).unwrap();
    let failed = queued(
        &mut conn,
        &new_job("u3", filters("initech", "2025-07-01")),
        t0,
    );
    store::request_cancel(&mut conn, &failed, t0).unwrap();
    std::fs::create_dir_all(spool_dir(&fx.data(), "01ORPHAN")).unwrap();

    // Right away: only the orphan goes.
    let c = cleanup_once(&engine, t0 + 1).await;
    assert_eq!(
        (
            c.expired,
            c.deleted_completed,
            c.deleted_final,
            c.orphan_spools,
            c.errors
        ),
        (0, 0, 0, 1, 0)
    );
    assert!(
        spool_dir(&fx.data(), &stuck).exists(),
        "a live job's spool must stay"
    );

    // After 25 h: the stuck job expires, the completed one is deleted with its file.
    let c = cleanup_once(&engine, t0 + 25 * hour).await;
    assert_eq!(
        (c.expired, c.deleted_completed, c.deleted_final, c.errors),
        (1, 1, 0, 0)
    );
    let js = store::get(&conn, &stuck).unwrap();
    assert_eq!(js.state, JobState::Expired);
    assert_eq!(js.error_code.as_deref(), Some("expired"));
    assert!(!spool_dir(&fx.data(), &stuck).exists());
    assert!(matches!(
        store::get(&conn, &done),
        Err(JobError::NotFound(_))
    ));
    assert!(!engine.storage.exists(&key).await.unwrap());
    let folder = fx
        .data()
        .join("exports")
        .join(key.rsplit_once('/').unwrap().0);
    assert!(
        !folder.exists(),
        "the job's empty folder {} was left",
        folder.display()
    );
    assert!(store::history(&conn, &done).unwrap().is_empty());

    // After 7 days (+ the expiry time): failed and expired jobs go.
    let c = cleanup_once(&engine, t0 + 25 * hour + 7 * 24 * hour).await;
    assert_eq!((c.deleted_final, c.errors), (2, 0));
    assert!(matches!(
        store::get(&conn, &failed),
        Err(JobError::NotFound(_))
    ));
    assert!(matches!(
        store::get(&conn, &stuck),
        Err(JobError::NotFound(_))
    ));
}

#[test]
fn rescue_frees_expired_leases_only() {
    let fx = Fixture::new();
    let mut conn = fx.conn();
    let now = fx.now();
    for org in ["acme", "globex"] {
        store::create(
            &mut conn,
            &new_job("u1", filters(org, "2025-07-01")),
            3,
            now,
        )
        .unwrap();
    }
    let claimed = store::claim(&mut conn, "dead", 1, 1_000, now).unwrap();
    let claimed2 = store::claim(&mut conn, "alive", 1, 60_000, now).unwrap();
    assert_eq!((claimed.len(), claimed2.len()), (1, 1));
    assert_eq!(rescue_once(&conn, now + 500).unwrap(), 0);
    assert_eq!(rescue_once(&conn, now + 2_000).unwrap(), 1);
    let dead = store::get(&conn, &claimed[0].0.id).unwrap();
    assert_eq!(dead.lease_token, None);
    let alive = store::get(&conn, &claimed2[0].0.id).unwrap();
    assert!(alive.lease_token.is_some());
}

#[test]
fn a_stale_worker_cannot_touch_the_new_owners_spool() {
    use audit_export::jobs::steps::spool::{SpoolOutcome, SpoolStep};
    use audit_export::jobs::steps::StepError;
    let fx = Fixture::new();
    let mut conn = fx.conn();
    let now = fx.now();
    let id = store::create(
        &mut conn,
        &new_job("u1", filters("acme", "2025-07-01")),
        3,
        now,
    )
    .unwrap()
    .job()
    .id
    .clone();
    let (_, a) = store::claim(&mut conn, "A", 1, 1, now)
        .unwrap()
        .pop()
        .unwrap();
    let (job_b, b) = store::claim(&mut conn, "B", 1, 60_000, now + 5)
        .unwrap()
        .pop()
        .unwrap();
    let stop = CancellationToken::new();
    let runner = fx.runner(JobsConfig::default(), None);
    let step = SpoolStep {
        conn: &conn,
        runner: &runner,
        shutdown: &stop,
    };
    // B finishes its spool; then stale A tries to run the step.
    assert!(matches!(
        step.run(&job_b, &b).unwrap(),
        SpoolOutcome::Complete { records: 1100, .. }
    ));
    let spool = audit_export::jobs::steps::spool_file(&fx.data(), &job_b);
    let before = std::fs::read(&spool).unwrap();
    let job_a = store::get(&conn, &id).unwrap();
    assert!(matches!(
        step.run(&job_a, &a),
        Err(StepError::Job(JobError::LeaseLost(_)))
    ));
    assert_eq!(
        std::fs::read(&spool).unwrap(),
        before,
        "the stale worker changed the spool"
    );
    let names: Vec<_> = std::fs::read_dir(spool_dir(&fx.data(), &id))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_error_fails_at_once_without_retries() {
    let fx = Fixture::new();
    let mut conn = fx.conn();
    let id = queued(
        &mut conn,
        &new_job("u1", filters("acme", "2025-07-01")),
        fx.now(),
    );
    // Stored filters that can never be valid again (as if edited by hand).
    conn.execute(
        "UPDATE export_jobs SET filters = '{\"organization\":\"acme\"}' WHERE id = ?",
        [&id],
    )
    .unwrap();
    run_until(fx.runner(cfg(), None), fx.data(), |c| {
        state(c, &id) == JobState::Failed
    })
    .await;
    let job = store::get(&conn, &id).unwrap();
    assert_eq!(job.attempt, 1, "no retry for a fatal error");
    assert_eq!(job.error_code.as_deref(), Some("invalid_filters"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_requested_while_running_is_honoured() {
    let fx = Fixture::new();
    let mut conn = fx.conn();
    let now = fx.now();
    let id = store::create(
        &mut conn,
        &new_job("u1", filters("acme", "2025-07-01")),
        3,
        now,
    )
    .unwrap()
    .job()
    .id
    .clone();
    let (_, lease) = store::claim(&mut conn, "W", 1, 60_000, now)
        .unwrap()
        .pop()
        .unwrap();
    let cp = Checkpoint {
        first: None,
        cursor: Some(audit_export::audit::query::Cursor {
            occurred_at: 0,
            id: 0,
        }),
        exported_count: 3,
        spool_bytes: 10,
    };
    store::checkpoint(&conn, &lease, &cp, 60_000, now).unwrap();
    assert!(matches!(
        store::request_restart(&mut conn, &id, now).unwrap(),
        Request::Flagged(_)
    ));
    // The worker that holds the job hands it back; the next run starts over.
    store::release(&conn, &lease, now).unwrap();
    run_until(fx.runner(cfg(), None), fx.data(), |c| {
        state(c, &id) == JobState::Completed
    })
    .await;
    let job = store::get(&conn, &id).unwrap();
    assert_eq!(job.record_count, Some(1100), "every row, once");
    assert!(!job.restart_requested);
    let events: Vec<String> = store::history(&conn, &id)
        .unwrap()
        .into_iter()
        .map(|h| h.event)
        .collect();
    assert_eq!(events, ["create", "restart", "spool_complete", "stored"]);
}

/// A cancel or restart that arrives while the file is being stored wins
/// over the upload: the job is not reported completed, and the stored file
/// of the unwanted run is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_or_restart_arriving_during_upload_wins_over_the_stored_file() {
    let fx = Fixture::new();
    let mut conn = fx.conn();
    let mut create = |org: &str| {
        queued(
            &mut conn,
            &new_job("u1", filters(org, "2025-07-01")),
            fx.now(),
        )
    };
    let (cancelled, restarted) = (create("acme"), create("globex"));
    let keys = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (k, data) = (keys.clone(), fx.data());
    let (c_id, r_id) = (cancelled.clone(), restarted.clone());
    // The user's request lands while storage is writing the file.
    let hook = Arc::new(move |key: &str| {
        let mut seen = k.lock().unwrap();
        seen.push(key.to_string());
        let db = audit_export::db::open_data_dir(&data).unwrap();
        let first_for = |id: &str| seen.iter().filter(|s| s.contains(id)).count() == 1;
        if key.contains(&c_id) {
            db.execute(
                "UPDATE export_jobs SET cancel_requested = 1 WHERE id = ?",
                [&c_id],
            )
            .unwrap();
        } else if key.contains(&r_id) && first_for(&r_id) {
            db.execute(
                "UPDATE export_jobs SET restart_requested = 1 WHERE id = ?",
                [&r_id],
            )
            .unwrap();
        }
        None
    });
    let st = Storage::from_config(&StorageConfig::default(), &fx.data())
        .unwrap()
        .with_fault(hook);
    run_until(fx.runner(cfg(), Some(st)), fx.data(), |c| {
        state(c, &cancelled) == JobState::Failed && state(c, &restarted) == JobState::Completed
    })
    .await;
    let storage = Storage::from_config(&StorageConfig::default(), &fx.data()).unwrap();

    let job = store::get(&conn, &cancelled).unwrap();
    assert_eq!(job.error_code.as_deref(), Some("cancelled"));
    assert!(job.file.is_none());
    let key = keys
        .lock()
        .unwrap()
        .iter()
        .find(|k| k.contains(&cancelled))
        .cloned()
        .unwrap();
    assert!(
        !storage.exists(&key).await.unwrap(),
        "the cancelled upload's file was left"
    );
    assert!(!spool_dir(&fx.data(), &cancelled).exists(), "spool leaked");
    let events: Vec<String> = store::history(&conn, &cancelled)
        .unwrap()
        .into_iter()
        .map(|h| h.event)
        .collect();
    assert_eq!(events, ["create", "spool_complete", "cancel"]);

    let job = store::get(&conn, &restarted).unwrap();
    let file = job.file.expect("the restarted job stored its file again");
    assert!(storage.exists(&file.key).await.unwrap());
    assert_eq!(
        storage.read(&file.key).await.unwrap().len() as u64,
        file.size
    );
    let events: Vec<String> = store::history(&conn, &restarted)
        .unwrap()
        .into_iter()
        .map(|h| h.event)
        .collect();
    assert_eq!(
        events,
        [
            "create",
            "spool_complete",
            "restart",
            "spool_complete",
            "stored"
        ]
    );
}

/// `auto` compresses while exporting only once the spool passes its
/// threshold (the stream then starts from the prefix already written): the
/// zip holds the same rows, with a valid CRC, as with `always` and as the
/// plain file below the threshold. (A stream whose length does not match
/// the spool is made again by the upload; this checks the bytes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_compression_starts_at_the_threshold_with_the_same_content() {
    let fx = Fixture::new();
    let mut conn = fx.conn();
    let create = |conn: &mut rusqlite::Connection, requester: &str, compress: Compress| {
        let mut job = new_job(requester, filters("acme", "2025-07-01"));
        job.compress = compress;
        queued(conn, &job, fx.now())
    };
    let always = create(&mut conn, "u1", Compress::Always);
    let crossing = create(&mut conn, "u2", Compress::Auto);
    // Past the first page (200 rows), before the last.
    let small = JobsConfig {
        compress_threshold_bytes: 50_000,
        ..cfg()
    };
    let runner = fx.runner(small, None);
    let storage = runner.storage.clone();
    run_until(runner, fx.data(), |c| {
        [&always, &crossing]
            .iter()
            .all(|id| state(c, id) == JobState::Completed)
    })
    .await;
    let below = create(&mut conn, "u3", Compress::Auto);
    run_until(fx.runner(cfg(), None), fx.data(), |c| {
        state(c, &below) == JobState::Completed
    })
    .await;

    let stored = |id: &str| {
        let job = store::get(&conn, id).unwrap();
        (job.file.unwrap().key, job.spool_bytes)
    };
    let (raw_key, raw_len) = stored(&below);
    assert!(!raw_key.ends_with(".zip"), "{raw_key}");
    let raw = storage.read(&raw_key).await.unwrap();
    assert!(raw_len > 50_000 && raw.len() as u64 == raw_len, "{raw_len}");
    for id in [&always, &crossing] {
        let (key, _) = stored(id);
        assert!(key.ends_with(".zip"), "{key}");
        let bytes = storage.read(&key).await.unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        // The export is the first entry (the manifest follows it); reading
        // it to the end checks its CRC-32 too.
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_index(0).unwrap(), &mut content).unwrap();
        assert!(
            content == raw,
            "{id}: the zipped rows differ from the plain file"
        );
    }
}

/// On shutdown an upload that hangs (a storage endpoint that accepts and
/// never answers) gets the grace period, then is abandoned: the scheduler
/// returns, and the job is left uploading with its lease released, for the
/// next owner to store from the spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_abandons_a_hanging_upload_after_the_grace_period() {
    let fx = Fixture::new();
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hole.local_addr().unwrap().port();
    // Accepted connections are kept open and never read or answered.
    std::thread::spawn(move || {
        let held: Vec<_> = hole.incoming().take(64).collect();
        std::thread::sleep(Duration::from_secs(600));
        drop(held);
    });
    let cfg_s3 = StorageConfig {
        kind: audit_export::storage::StorageKind::S3,
        bucket: Some("audit-exports".into()),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        retry_secs: Some(600),
        ..StorageConfig::default()
    };
    let storage = Storage::from_config(&cfg_s3, &fx.data()).unwrap();
    let runner = Arc::new(
        Runner::new(fx.data(), cfg(), 200, storage, fx.clock.clone())
            .unwrap()
            .with_shutdown_grace(Duration::from_secs(1)),
    );
    let mut conn = fx.conn();
    let id = queued(
        &mut conn,
        &new_job("u1", filters("acme", "2025-07-01")),
        fx.now(),
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(audit_export::jobs::scheduler::run(runner, shutdown.clone()));
    let t = std::time::Instant::now();
    while state(&conn, &id) != JobState::Uploading {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "never reached the upload"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = std::time::Instant::now();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the scheduler stopped")
        .unwrap();
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "stopped {took:?} after the shutdown; the grace is 1 s"
    );
    let job = store::get(&conn, &id).unwrap();
    assert_eq!(job.state, JobState::Uploading);
    assert_eq!(job.lease_token, None, "lease released");
    assert!(spool_dir(&fx.data(), &id).exists(), "the spool is kept");
}
