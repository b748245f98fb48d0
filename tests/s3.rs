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
        let sync = env.run(&[
            "export",
            "--org",
            org,
            "--from",
            "2025-07-01",
            "--to",
            "2026-01-31",
            "--format",
            "csv",
            "--output",
            "-",
        ]);
        assert!(
            content == sync.stdout,
            "{org}: stored file differs from the sync export"
        );
    }
}
