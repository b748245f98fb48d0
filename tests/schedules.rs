//! Scheduled exports on the engine's test clock (no sleeping for a fire):
//! exactly once per (schedule, fire time) across restarts and two engines
//! on one database, both catch-up policies, broken files and reloads, the
//! CLI and HTTP surfaces, and a shipped example end to end with a real SMTP
//! server: the mail's link downloads exactly the period's events and the
//! archive copy outlives the job.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use audit_export::jobs::JobState;
use audit_export::time::Clock;
use audit_export::users::{add_user, Role};
use audit_export::{Config, Engine};
use common::http::req;
use common::Env;
use serde_json::Value;

fn at(s: &str) -> i64 {
    audit_export::time::parse_rfc3339_ms(s).unwrap()
}

/// A data dir with the fixture events and a verified admin of acme.
fn data_dir(env: &Env) -> PathBuf {
    let data = env.data_dir();
    let mut conn = audit_export::db::open_data_dir(&data).unwrap();
    let opts = audit_export::audit::ingest::IngestOptions {
        format: audit_export::audit::ingest::InputFormat::Jsonl,
        skip_invalid: false,
    };
    audit_export::audit::ingest::ingest_file(&mut conn, &common::fixtures(), opts, 0).unwrap();
    for email in ["security@acme.example", "compliance@acme.example"] {
        add_user(&conn, "acme", email, email, Role::Admin, true, 0).unwrap();
    }
    data
}

fn engine(data: &Path, workflows: &Path, clock: &Clock, tweak: impl FnOnce(&mut Config)) -> Engine {
    let mut cfg = Config::default();
    cfg.schedules.dir = Some(workflows.display().to_string());
    tweak(&mut cfg);
    Engine::builder(data, cfg)
        .clock(clock.clone())
        .open()
        .unwrap()
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(file), text).unwrap();
}

const HOURLY: &str = r#"
name = "hourly"
schedule = "0 * * * *"
organization = "acme"
range = "previous_hour"
format = "jsonl"
catch_up = "latest"
"#;

fn count(db: &rusqlite::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn each_fire_is_enqueued_once_across_restarts_and_two_engines() {
    let env = Env::new();
    let data = data_dir(&env);
    let wf = env.path("wf");
    write(&wf, "hourly.toml", HOURLY);
    write(
        &wf,
        "quiet.toml",
        &HOURLY
            .replace("\"hourly\"", "\"quiet\"")
            .replace("catch_up = \"latest\"", "catch_up = \"none\""),
    );
    let clock = Clock::manual(at("2025-08-01T10:30:00Z"));
    let a = Arc::new(engine(&data, &wf, &clock, |_| {}));
    let b = Arc::new(engine(&data, &wf, &clock, |_| {}));
    for e in [&a, &b] {
        assert_eq!(e.schedules().reload().loaded, ["hourly", "quiet"]);
    }
    // First seen now: nothing from before.
    assert_eq!(a.schedules().run_once(clock.now_ms()).enqueued, 0);

    // Three hours of downtime, then both engines at once.
    clock.set_ms(at("2025-08-01T13:30:00Z"));
    let both = |now: i64| {
        let (a2, b2) = (a.clone(), b.clone());
        let ta = std::thread::spawn(move || a2.schedules().run_once(now));
        let tb = std::thread::spawn(move || b2.schedules().run_once(now));
        let (x, y) = (ta.join().unwrap(), tb.join().unwrap());
        (x.enqueued + y.enqueued, x.skipped + y.skipped)
    };
    // hourly (latest): the 13:00 fire runs, 11:00 and 12:00 are skipped;
    // quiet (none): all three are skipped.
    assert_eq!(both(clock.now_ms()), (1, 5));
    let db = env.db();
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM export_jobs WHERE schedule_id = 'hourly'"
        ),
        1
    );
    let fire: i64 = db
        .query_row(
            "SELECT fire_time FROM export_jobs WHERE schedule_id = 'hourly'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(fire, at("2025-08-01T13:00:00Z"));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM export_jobs WHERE schedule_id = 'quiet'"
        ),
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM schedule_runs WHERE status = 'skipped'"
        ),
        5
    );

    // A restart (a new engine) at the same instant fires nothing again.
    let c = engine(&data, &wf, &clock, |_| {});
    c.schedules().reload();
    assert_eq!(c.schedules().run_once(clock.now_ms()).enqueued, 0);

    // The next fire on time: each schedule once, although the previous
    // hourly job is still in progress (its period is different).
    clock.set_ms(at("2025-08-01T14:00:00Z"));
    assert_eq!(both(clock.now_ms()).0, 2);
    let periods: Vec<String> = db
        .prepare("SELECT filters FROM export_jobs WHERE schedule_id = 'hourly' ORDER BY fire_time")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(periods.len(), 2);
    assert!(
        periods[0].contains("\"from\":\"2025-08-01T12:00:00.000Z\""),
        "{}",
        periods[0]
    );
    assert!(
        periods[1].contains("\"from\":\"2025-08-01T13:00:00.000Z\""),
        "{}",
        periods[1]
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM export_jobs WHERE state = 'exporting' AND schedule_id IS NOT NULL"),
        3
    );
    // Every fire is audited with its schedule named.
    let audited: Vec<String> = db
        .prepare("SELECT details FROM audit_logs WHERE action = 'audit_log.exported' AND actor_id LIKE 'schedule:%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(audited.len(), 3);
    // ...and records how, as every export does (redaction, zone).
    assert!(
        audited.iter().all(|d| d.contains("\"schedule\":")
            && d.contains("\"manual\":false")
            && d.contains("\"redacted\":true")
            && d.contains("\"timezone\":")),
        "{audited:?}"
    );
}

#[test]
fn a_broken_file_never_stops_the_valid_ones_and_a_reload_keeps_the_last_good_version() {
    let env = Env::new();
    let data = data_dir(&env);
    let wf = env.path("wf");
    write(&wf, "hourly.toml", HOURLY);
    write(
        &wf,
        "zone.toml",
        &HOURLY
            .replace("\"hourly\"", "\"zone\"")
            .replace("range", "timezone = \"Mars/Olympus\"\nrange"),
    );
    write(
        &wf,
        "stranger.toml",
        &HOURLY.replace("\"hourly\"", "\"stranger\"").replace(
            "catch_up",
            "recipients = [\"eve@elsewhere.example\"]\ncatch_up",
        ),
    );
    write(
        &wf,
        "twin.toml",
        &HOURLY.replace("previous_hour", "previous_day"),
    );
    let clock = Clock::manual(at("2025-08-01T10:30:00Z"));
    let e = engine(&data, &wf, &clock, |_| {});
    let r = e.schedules().reload();
    assert_eq!(r.loaded, ["hourly"]);
    let codes: Vec<(String, String, String)> = r
        .invalid
        .iter()
        .map(|i| {
            (
                i.path.file_name().unwrap().to_string_lossy().into_owned(),
                i.field.clone(),
                i.code.clone(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            (
                "stranger.toml".into(),
                "recipients".into(),
                "unverified_recipient".into()
            ),
            ("twin.toml".into(), "name".into(), "duplicate_name".into()),
            (
                "zone.toml".into(),
                "timezone".into(),
                "invalid_timezone".into()
            ),
        ]
    );
    // hourly.toml breaks: its last good version stays in effect, and says so.
    write(&wf, "hourly.toml", &HOURLY.replace("0 * * * *", "0 * * *"));
    let r = e.schedules().reload();
    assert_eq!(r.loaded, ["hourly"]);
    assert_eq!(r.kept.len(), 1);
    assert_eq!(
        (r.kept[0].field.as_str(), r.kept[0].code.as_str()),
        ("schedule", "invalid_schedule")
    );
    assert_eq!(
        e.schedules().get("hourly").unwrap().cron.as_str(),
        "0 * * * *"
    );
    // Fixed: the new version is in effect.
    write(
        &wf,
        "hourly.toml",
        &HOURLY.replace("0 * * * *", "30 * * * *"),
    );
    let r = e.schedules().reload();
    assert!(r.kept.is_empty());
    assert_eq!(
        e.schedules().get("hourly").unwrap().cron.as_str(),
        "30 * * * *"
    );
    // A new file claiming a running schedule's name is refused, even when
    // it sorts first; the running one stays, once.
    write(
        &wf,
        "a-claim.toml",
        &HOURLY.replace("0 * * * *", "15 * * * *"),
    );
    let r = e.schedules().reload();
    assert_eq!(r.loaded, ["hourly"], "{r:?}");
    assert!(r.kept.is_empty(), "{:?}", r.kept);
    let claim = r
        .invalid
        .iter()
        .find(|i| i.path.ends_with("a-claim.toml"))
        .expect("the claiming file is invalid");
    assert_eq!(claim.code, "duplicate_name");
    assert_eq!(
        e.schedules().get("hourly").unwrap().cron.as_str(),
        "30 * * * *"
    );
    // A file renamed onto another's name keeps its last good version.
    std::fs::remove_file(wf.join("a-claim.toml")).unwrap();
    write(
        &wf,
        "other.toml",
        &HOURLY.replace("\"hourly\"", "\"other\""),
    );
    assert_eq!(e.schedules().reload().loaded, ["hourly", "other"]);
    write(
        &wf,
        "other.toml",
        &HOURLY.replace("0 * * * *", "45 * * * *"),
    );
    let r = e.schedules().reload();
    let mut loaded = r.loaded.clone();
    loaded.sort();
    assert_eq!(loaded, ["hourly", "other"], "{r:?}");
    assert_eq!(r.kept.len(), 1);
    assert_eq!(r.kept[0].code, "duplicate_name");
    assert_eq!(
        e.schedules().get("hourly").unwrap().cron.as_str(),
        "30 * * * *"
    );
}

#[test]
fn the_cli_and_the_api_list_and_run_schedules() {
    let env = Env::new();
    data_dir(&env);
    let wf = env.path("wf");
    write(
        &wf,
        "hourly.toml",
        &HOURLY.replace(
            "organization = \"acme\"",
            "organization = \"acme\"\ntimezone = \"America/New_York\"",
        ),
    );
    write(
        &wf,
        "bad.toml",
        "name = 'bad'\nschedule = 'often'\norganization = 'acme'\nrange = 'previous_day'\n",
    );
    let w = wf.to_str().unwrap();
    let out = env.run(&["--workflows", w, "schedules", "list"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let next = text
        .lines()
        .find(|l| l.trim_start().starts_with("next"))
        .unwrap();
    assert_eq!(
        next.matches("-05:00").count() + next.matches("-04:00").count(),
        3,
        "{text}"
    );
    assert!(text.contains("last   never ran"), "{text}");
    assert!(
        text.contains("bad.toml: schedule:") && text.contains("[invalid_schedule]"),
        "{text}"
    );

    let out = env.run(&["--workflows", w, "schedules", "run", "hourly"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (schedule, fire): (Option<String>, Option<i64>) = env
        .db()
        .query_row(
            "SELECT schedule_id, fire_time FROM export_jobs WHERE id = ?",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (schedule.as_deref(), fire),
        (Some("hourly"), None),
        "a manual run has no fire time"
    );
    assert_eq!(
        env.run(&["--workflows", w, "schedules", "run", "nope"])
            .status
            .code(),
        Some(2)
    );
    let out = env.run(&["--workflows", w, "schedules", "list"]);
    assert!(
        String::from_utf8(out.stdout).unwrap().contains("manual at"),
        "the manual run shows as the last run"
    );

    let srv = env.serve(&[
        ("AUDIT_EXPORT_SCHEDULES_DIR", w),
        ("AUDIT_EXPORT_JOBS_MAX_PARALLEL_JOBS", "0"),
    ]);
    let admin = env.user("acme", "ada@acme.example", "admin");
    let compliance = env.user("acme", "cy@acme.example", "compliance");
    let viewer = env.user("acme", "vi@acme.example", "viewer");
    let other = env.user("globex", "gus@globex.example", "admin");
    let list = req(
        &srv.addr,
        "GET",
        "/api/v1/schedules",
        Some(&compliance),
        None,
    );
    assert_eq!(list.status, 200);
    let v = list.json();
    assert_eq!(v["data"][0]["name"], "hourly");
    assert_eq!(v["data"][0]["next_fires"].as_array().unwrap().len(), 3);
    assert_eq!(v["data"][0]["last_run"]["manual"], true);
    assert_eq!(
        v["invalid"],
        Value::Array(vec![]),
        "invalid files are for admins"
    );
    assert_eq!(
        req(&srv.addr, "GET", "/api/v1/schedules", Some(&viewer), None).status,
        403
    );
    let admin_view = req(&srv.addr, "GET", "/api/v1/schedules", Some(&admin), None).json();
    assert_eq!(admin_view["invalid"][0]["code"], "invalid_schedule");
    assert_eq!(
        req(&srv.addr, "GET", "/api/v1/schedules", Some(&other), None).json()["data"],
        Value::Array(vec![])
    );
    for (token, status) in [(&compliance, 403), (&other, 404)] {
        let r = req(
            &srv.addr,
            "POST",
            "/api/v1/schedules/hourly/run",
            Some(token),
            None,
        );
        assert_eq!(r.status, status);
    }
    // The manual run from the CLI is still in progress for the same period:
    // a duplicate, named.
    let r = req(
        &srv.addr,
        "POST",
        "/api/v1/schedules/hourly/run",
        Some(&admin),
        None,
    );
    assert_eq!((r.status, r.code().as_str()), (409, "duplicate_export"));
    write(
        &wf,
        "hourly.toml",
        &HOURLY.replace("previous_hour", "last_24_hours"),
    );
    let r = req(
        &srv.addr,
        "POST",
        "/api/v1/schedules/reload",
        Some(&admin),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"][0]["range"], "last_24_hours");
    let r = req(
        &srv.addr,
        "POST",
        "/api/v1/schedules/hourly/run",
        Some(&admin),
        None,
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["schedule"]["manual"], true);
    assert_eq!(
        req(
            &srv.addr,
            "POST",
            "/api/v1/schedules/reload",
            Some(&compliance),
            None
        )
        .status,
        403
    );
    let metrics = String::from_utf8(req(&srv.addr, "GET", "/metrics", None, None).body).unwrap();
    assert!(
        metrics
            .contains("audit_export_schedule_runs_total{schedule=\"hourly\",outcome=\"fired\"} 2"),
        "{metrics}"
    );
}

/// The shipped monthly example, end to end: the clock reaches its fire, the
/// job completes, the compliance mailbox receives the link, the link gives
/// exactly August's events, the archive copy outlives the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipped_example_fires_mails_its_link_and_keeps_an_archive() {
    let env = Env::new();
    let data = data_dir(&env);
    let Some(smtp) = common::smtp::start_smtp(common::smtp::free_port(), &env.path("maildir"))
    else {
        return;
    };
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let clock = Clock::manual(at("2025-08-31T12:00:00Z"));
    let e = engine(&data, &shipped, &clock, |c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = Some(smtp.port);
        c.smtp.security = audit_export::notify::SmtpSecurity::None;
    });
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = e
        .start(
            audit_export::RunOptions {
                http_listen: Some("127.0.0.1:0".into()),
            },
            shutdown.clone(),
        )
        .unwrap();
    let addr = running.http_addr().unwrap().to_string();
    assert_eq!(
        e.schedules().list().len(),
        2,
        "{:?}",
        e.schedules().problems()
    );
    // Let the first pass see both schedules, then move to 07:00 New York
    // on September 1st (11:00 UTC).
    let db = env.db();
    let seen = || count(&db, "SELECT count(*) FROM schedule_state");
    for _ in 0..1000 {
        if seen() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen(), 2);
    clock.set_ms(at("2025-09-01T11:00:00Z"));
    let job_of = |name: &str| -> Option<String> {
        db.query_row(
            "SELECT id FROM export_jobs WHERE schedule_id = ?",
            [name],
            |r| r.get(0),
        )
        .ok()
    };
    let mut id = None;
    for _ in 0..1000 {
        id = job_of("monthly-compliance");
        if id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = id.expect("the monthly schedule fired");
    let job = e.wait_for_job(&id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    // The daily example fired too (its 06:00 Paris fire was due), once.
    assert!(job_of("daily-security-events").is_some());

    let mails = common::smtp::wait_mails(&smtp.maildir, 2, 30);
    let mail = mails
        .iter()
        .find(|m| m.contains("To: compliance@acme.example"))
        .expect("the compliance mail");
    assert!(mail.contains(&id), "{mail}");
    let link = common::smtp::link_in(mail);
    let path = &link[link.find("/download/").unwrap()..];
    let dl = req(&addr, "GET", path, None, None);
    assert_eq!(dl.status, 200);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(dl.body.clone())).unwrap();
    let mut jsonl = String::new();
    zip.by_index(0).unwrap().read_to_string(&mut jsonl).unwrap();
    let got: Vec<i64> = jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    // August in New York: [08-01T04:00Z, 09-01T04:00Z).
    let want: Vec<i64> = db
        .prepare(
            "SELECT id FROM audit_logs WHERE organization_id = 'acme' AND occurred_at >= ?1 AND occurred_at < ?2 \
             ORDER BY occurred_at, id",
        )
        .unwrap()
        .query_map(
            [at("2025-08-01T04:00:00Z"), at("2025-09-01T04:00:00Z")],
            |r| r.get(0),
        )
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!want.is_empty());
    assert_eq!(got, want, "the link gives exactly the period's events");
    // Its manifest names the schedule as requester, the period and the rows.
    let mut text = String::new();
    zip.by_name("manifest.json")
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(manifest["requester"], "schedule:monthly-compliance");
    assert_eq!(manifest["job_id"], id.as_str());
    assert_eq!(manifest["record_count"], want.len());
    assert_eq!(manifest["first"]["id"], want[0]);
    assert_eq!(manifest["last"]["id"], *want.last().unwrap());
    assert_eq!(manifest["filters"]["from"], "2025-08-01T04:00:00.000Z");
    assert_eq!(
        manifest["filters"]["to_exclusive"],
        "2025-09-01T04:00:00.000Z"
    );
    assert_eq!(manifest["options"]["timezone"], "America/New_York");

    // The archive copy: the stored zip under the template's key.
    let archive = data.join("exports/archive/acme/monthly-compliance/2025-08.jsonl.zip");
    assert_eq!(std::fs::read(&archive).unwrap(), dl.body);
    // The archive copy verifies against its manifest and the engine's key.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_audit-export"))
        .arg("--data-dir")
        .arg(&data)
        .arg("verify")
        .arg(&archive)
        .env_remove("AUDIT_EXPORT_DATA_DIR")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.starts_with("VALID"), "{said}");
    // Copied beside the unfinished files, then renamed: none is left.
    let partial = std::fs::read_dir(data.join("exports/.partial"))
        .unwrap()
        .count();
    assert_eq!(partial, 0, "a work file of the archive copy was left");
    // A day later the clean-up removes the job and its file, not the archive.
    let stored = e.local_path(&job).unwrap();
    let counts =
        audit_export::jobs::cleanup::cleanup_once(&e.service().runner, at("2025-09-02T12:00:00Z"))
            .await;
    assert!(counts.deleted_completed >= 1);
    assert!(!stored.exists(), "the job's file was cleaned up");
    assert!(archive.exists(), "the archive copy survives the clean-up");
    shutdown.cancel();
    running.wait().await;
}
