//! A host application embedding the engine: it opens a data directory,
//! records 20,000 events of its own, requests an asynchronous CSV export of
//! them, waits for the job, prints the stored file's path as its last line
//! on stdout, stops the engine and exits 0.
//!
//! ```sh
//! cargo run --release --example embed -- DIR
//! ```

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use audit_export::audit::NewEvent;
use audit_export::filters::FilterInput;
use audit_export::format::Format;
use audit_export::jobs::JobState;
use audit_export::users::Requester;
use audit_export::{Config, Engine, ExportRequest, RunOptions};
use tokio_util::sync::CancellationToken;

/// The appliance's own organization.
const ORG: &str = "appliance";
/// How many events it records.
const EVENTS: usize = 20_000;
/// 2026-01-01T00:00:00Z: the events are one second apart from here.
const START_MS: i64 = 1_767_225_600_000;

#[tokio::main]
async fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: embed DATA_DIR");
        return ExitCode::from(2);
    };
    match run(Path::new(&dir)).await {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("embed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Does the whole round trip on `dir`; returns the stored file's path.
pub async fn run(dir: &Path) -> Result<PathBuf, Box<dyn Error + Send + Sync>> {
    let engine = Engine::open(dir, Config::default())?;
    let shutdown = CancellationToken::new();
    let running = engine.start(RunOptions::default(), shutdown.clone())?;

    let events: Vec<NewEvent> = (0..EVENTS)
        .map(|i| NewEvent {
            organization_id: ORG.into(),
            occurred_at: START_MS + i as i64 * 1_000,
            stream: "audit".into(),
            action: if i % 10 == 0 {
                "device.config_changed".into()
            } else {
                "device.login".into()
            },
            actor_type: Some("user".into()),
            actor_id: Some(format!("operator-{}", i % 7)),
            target_type: Some("device".into()),
            target_id: Some(format!("dev-{}", i % 50)),
            details: Some(format!("{{\"seq\":{i}}}")),
            ..NewEvent::default()
        })
        .collect();
    let ids = engine.ingest(&events)?;
    println!("recorded {} events", ids.len());

    let filters = FilterInput {
        organization: Some(ORG.into()),
        from: Some("2026-01-01".into()),
        to: Some("2026-01-01".into()),
        ..FilterInput::default()
    };
    let request = ExportRequest::new(
        Requester::System("embed-example".into()),
        filters,
        Format::Csv,
    );
    let job = engine.request_export(request)?;
    println!("export job {} queued", job.id);
    let job = engine
        .wait_for_job(&job.id, Duration::from_secs(300))
        .await?;
    shutdown.cancel();
    running.wait().await;
    if job.state != JobState::Completed {
        return Err(format!(
            "job {} ended {} ({})",
            job.id,
            job.state,
            job.error_message.unwrap_or_default()
        )
        .into());
    }
    println!("exported {} records", job.record_count.unwrap_or_default());
    let path = engine
        .local_path(&job)
        .ok_or("the export is not stored on local disk")?;
    Ok(path)
}
