//! Storage against a real S3-compatible server (moto) on loopback: a job's
//! upload and a read-back through opendal's S3 service, plus a multipart
//! upload. Needs `moto_server` (pip install 'moto[server]'); under CI=true
//! a missing server fails the test instead of skipping it.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use audit_export::filters::FilterInput;
use audit_export::format::Format;
use audit_export::jobs::{Compress, JobState};
use audit_export::storage::{Storage, StorageConfig, StorageKind};
use audit_export::users::Requester;
use audit_export::{Config, Engine, ExportRequest};
use tokio_util::sync::CancellationToken;

struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Option<Moto> {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spawned = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("moto_server is required in CI (pip install 'moto[server]'): {e}");
            }
            eprintln!(
                "SKIPPED: moto_server not installed ({e}); run scripts/test.sh to install it"
            );
            return None;
        }
    };
    let moto = Moto { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(moto)
}

/// Creates a bucket with a plain HTTP PUT (moto accepts unsigned requests).
fn create_bucket(port: u16, bucket: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200"),
        "bucket creation failed: {resp}"
    );
}

fn s3_config(port: u16) -> StorageConfig {
    StorageConfig {
        kind: StorageKind::S3,
        root: Some("/exports".into()),
        bucket: Some("audit-exports".into()),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        retry_secs: Some(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_upload_to_s3_and_read_back() {
    let Some(moto) = start_moto() else { return };
    create_bucket(moto.port, "audit-exports");
    let env = common::Env::new();
    env.ingest_fixtures();
    let storage = Storage::from_config(&s3_config(moto.port), &env.data_dir()).unwrap();

    // A multipart upload (3 chunks of 8 MiB) round-trips.
    let big = env.path("big.bin");
    let data: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &data).unwrap();
    let put = storage.put_file("t/big.bin", &big, u64::MAX).await.unwrap();
    assert_eq!(put.size, data.len() as u64);
    assert!(storage.read("t/big.bin").await.unwrap() == data);

    // The jobs run in an engine opened through the library's entry point.
    let mut cfg = Config {
        storage: s3_config(moto.port),
        ..Config::default()
    };
    cfg.jobs.poll_interval_ms = 20;
    let engine = Engine::open(env.data_dir(), cfg).unwrap();
    let mut ids = Vec::new();
    for (org, compress) in [("acme", Compress::Never), ("globex", Compress::Always)] {
        let filters = FilterInput {
            organization: Some(org.into()),
            from: Some("2025-07-01".into()),
            to: Some("2026-01-31".into()),
            ..Default::default()
        };
        let req = ExportRequest {
            compress: Some(compress),
            ..ExportRequest::new(Requester::System("s3-test".into()), filters, Format::Csv)
        };
        ids.push((org, engine.request_export(req).unwrap().id));
    }
    let shutdown = CancellationToken::new();
    let running = engine.start(Default::default(), shutdown.clone()).unwrap();
    for (_, id) in &ids {
        let job = engine
            .wait_for_job(id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(job.state, JobState::Completed, "S3 job did not complete");
    }
    shutdown.cancel();
    running.wait().await;

    for (org, id) in ids {
        let job = engine.job(&id).unwrap();
        let file = job.file.unwrap();
        assert!(
            file.key.starts_with(&format!("{org}/{id}/")),
            "{}",
            file.key
        );
        let stored = storage.read(&file.key).await.unwrap();
        assert_eq!(stored.len() as u64, file.size);
        let digest = ring::digest::digest(&ring::digest::SHA256, &stored);
        assert_eq!(audit_export::util::hex(digest.as_ref()), file.sha256);
        let content = if file.compressed {
            let mut zip = zip::ZipArchive::new(std::io::Cursor::new(stored)).unwrap();
            let mut entry = zip.by_index(0).unwrap();
            let mut v = Vec::new();
            entry.read_to_end(&mut v).unwrap();
            v
        } else {
            stored
        };
        let sync = env.export_stdout(org, "2025-07-01", "2026-01-31", "csv", &[]);
        assert!(
            content == sync,
            "{org}: stored file differs from the sync export"
        );
    }
}

/// A TCP relay in front of moto that can play an outage: while down, new
/// connections are refused and open ones are cut; moto itself keeps its
/// state (multipart uploads included), as a real S3 would.
struct Relay {
    port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    fn start(target: u16) -> Relay {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let down = std::sync::Arc::new(AtomicBool::new(false));
        let d = down.clone();
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            let open: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>> = Default::default();
            loop {
                if d.load(Ordering::SeqCst) {
                    // Down: no listener (connections refused), open ones cut.
                    listener = None;
                    for s in open.lock().unwrap().drain(..) {
                        let _ = s.shutdown(std::net::Shutdown::Both);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                let l = listener.get_or_insert_with(|| {
                    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
                    l.set_nonblocking(true).unwrap();
                    l
                });
                match l.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        open.lock().unwrap().push(client.try_clone().unwrap());
                        open.lock().unwrap().push(server.try_clone().unwrap());
                        for (mut from, mut to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut from, &mut to);
                                let _ = to.shutdown(std::net::Shutdown::Write);
                            });
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Relay { port, down }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_fails_at_once_naming_the_setting_and_a_cut_upload_leaves_nothing() {
    let Some(moto) = start_moto() else { return };
    create_bucket(moto.port, "audit-exports");
    let env = common::Env::new();
    let src = env.path("f.bin");
    std::fs::write(&src, vec![7u8; 9 * 1024 * 1024]).unwrap();
    // No such bucket: no retry, a reason naming [storage] bucket.
    let cfg = StorageConfig {
        bucket: Some("no-such-bucket".into()),
        retry_secs: Some(120),
        ..s3_config(moto.port)
    };
    let st = Storage::from_config(&cfg, &env.data_dir()).unwrap();
    let t = Instant::now();
    let err = st.put_file("a/b.bin", &src, u64::MAX).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(!err.retryable(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("no-such-bucket") && msg.contains("[storage] bucket"),
        "{msg}"
    );
    // A multipart upload cut after its first part: aborted, nothing at the key.
    let st = Storage::from_config(&s3_config(moto.port), &env.data_dir())
        .unwrap()
        .with_mid_write_fault(std::sync::Arc::new(|_, written| {
            (written >= 8 * 1024 * 1024).then(|| "cut".to_string())
        }));
    assert!(st.put_file("a/cut.bin", &src, u64::MAX).await.is_err());
    let plain = Storage::from_config(&s3_config(moto.port), &env.data_dir()).unwrap();
    assert!(!plain.exists("a/cut.bin").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_for_a_minute_mid_upload_the_job_still_completes_byte_identical() {
    let Some(moto) = start_moto() else { return };
    create_bucket(moto.port, "audit-exports");
    let relay = std::sync::Arc::new(Relay::start(moto.port));
    let env = common::Env::new();
    // About 20 MB of CSV: a multipart upload of three parts.
    env.expect(
        &["seed", "--rows", "60000", "--orgs", "1", "--seed", "3"],
        0,
    );
    let storage_cfg = StorageConfig {
        retry_secs: Some(90),
        ..s3_config(relay.port)
    };
    let outage = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    let (r, o) = (relay.clone(), outage.clone());
    // The outage starts right after the first part is sent.
    let storage = Storage::from_config(&storage_cfg, &env.data_dir())
        .unwrap()
        .with_mid_write_fault(std::sync::Arc::new(move |_, written| {
            let mut started = o.lock().unwrap();
            if started.is_none() && written >= 8 * 1024 * 1024 {
                *started = Some(Instant::now());
                r.set_down(true);
            }
            None
        }));
    let mut cfg = Config {
        storage: storage_cfg,
        ..Config::default()
    };
    cfg.jobs.poll_interval_ms = 50;
    cfg.jobs.compress = Compress::Never;
    cfg.jobs.retry_base_ms = 10_000;
    let engine = Engine::builder(env.data_dir(), cfg)
        .storage(storage)
        .open()
        .unwrap();
    let filters = FilterInput {
        organization: Some("org_1".into()),
        from: Some("2025-01-01".into()),
        to: Some("2025-12-31".into()),
        ..Default::default()
    };
    let id = engine
        .request_export(ExportRequest::new(
            Requester::System("s3-test".into()),
            filters,
            Format::Csv,
        ))
        .unwrap()
        .id;
    let shutdown = CancellationToken::new();
    let running = engine.start(Default::default(), shutdown.clone()).unwrap();
    // S3 comes back a minute after it went down.
    let (r, o) = (relay.clone(), outage.clone());
    let back = std::thread::spawn(move || loop {
        if let Some(t) = *o.lock().unwrap() {
            if t.elapsed() >= Duration::from_secs(60) {
                r.set_down(false);
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    });
    let job = engine
        .wait_for_job(&id, Duration::from_secs(400))
        .await
        .unwrap();
    back.join().unwrap();
    assert!(
        outage.lock().unwrap().is_some(),
        "the outage never happened"
    );
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    // Ridden out by the storage's own retries, within the first attempt.
    assert_eq!(job.attempt, 1, "{job:?}");
    shutdown.cancel();
    running.wait().await;
    let file = job.file.unwrap();
    let plain = Storage::from_config(&s3_config(moto.port), &env.data_dir()).unwrap();
    let stored = plain.read(&file.key).await.unwrap();
    let sync = env.export_stdout("org_1", "2025-01-01", "2025-12-31", "csv", &[]);
    assert!(
        stored.len() > 16 * 1024 * 1024,
        "{} bytes: not a multipart upload",
        stored.len()
    );
    assert!(
        stored == sync,
        "the stored file differs from the sync export"
    );
}
