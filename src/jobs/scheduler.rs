//! The scheduler: claims runnable jobs (up to `max_parallel_jobs`) and
//! drives each through its steps, applying every outcome as a fenced
//! transition followed by its effects. It wakes when a job is enqueued or
//! restarted, when a job finishes, and every poll interval (on the
//! engine's clock).
//!
//! Shutdown is passed in: running steps see it at their next page,
//! checkpoint, and release their lease so another process can resume them
//! at once. A job whose lease is lost is dropped without touching anything.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::runner::Runner;
use super::state::{JobEvent, JobState};
use super::steps::spool::{SpoolOutcome, SpoolStep};
use super::steps::{upload, StepError};
use super::store::{self, ErrorInfo, Fence, Lease, Outcome, Patch, SpoolTotals};
use super::{Job, JobError};

/// Runs the loop until `shutdown` is cancelled; then stops steps at their
/// next page and waits for them to release their leases.
pub async fn run(runner: Arc<Runner>, shutdown: CancellationToken) {
    let mut running: JoinSet<()> = JoinSet::new();
    let poll = Duration::from_millis(runner.cfg.poll_interval_ms.max(10));
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let free = runner.cfg.max_parallel_jobs.saturating_sub(running.len());
        if free > 0 {
            match claim(&runner, free).await {
                Ok(claimed) => {
                    for (job, lease) in claimed {
                        let span = tracing::info_span!(
                            "job",
                            job_id = %job.id,
                            org = %job.organization_id,
                            attempt = job.attempt,
                            step = step_name(job.state),
                        );
                        let (r, s) = (runner.clone(), shutdown.clone());
                        running.spawn(run_job(r, job, lease, s).instrument(span));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming jobs failed; will retry"),
            }
        }
        tokio::select! {
            _ = runner.wake.notified() => {}
            _ = runner.clock.sleep(poll) => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = shutdown.cancelled() => {}
        }
    }
    while running.join_next().await.is_some() {}
}

/// Rebuilds of a manifest whose chain moved before the step gives up (and
/// retries later with backoff).
const MAX_CHAIN_RETRIES: usize = 8;

/// The step a state runs, as logs name it.
fn step_name(state: JobState) -> &'static str {
    match state {
        JobState::Exporting => "export",
        _ => "upload",
    }
}

async fn claim(runner: &Arc<Runner>, free: usize) -> Result<Vec<(Job, Lease)>, JobError> {
    let (owner, lease_ms, now) = (runner.owner.clone(), runner.lease_ms(), runner.now_ms());
    runner
        .on_db(move |conn| store::claim(conn, &owner, free, lease_ms, now))
        .await
}

/// Drives one claimed job as far as it goes, logging the end.
pub async fn run_job(runner: Arc<Runner>, job: Job, lease: Lease, shutdown: CancellationToken) {
    let driver = Driver {
        conn: match runner.connect() {
            Ok(c) => Arc::new(Mutex::new(c)),
            Err(e) => {
                tracing::error!(error = %e, "cannot open the database; the job resumes when its lease expires");
                return;
            }
        },
        runner,
        lease,
        shutdown,
    };
    match driver.drive(job).await {
        Ok(state) => tracing::info!(%state, "job step finished"),
        Err(JobError::LeaseLost(_)) => {
            tracing::warn!("lease lost; another worker owns the job now")
        }
        Err(e) => {
            tracing::error!(error = %e, "job run failed; it will be retried when its lease expires")
        }
    }
}

/// One claimed job: the connection its writes go through, its lease.
struct Driver {
    runner: Arc<Runner>,
    conn: Arc<Mutex<Connection>>,
    lease: Lease,
    shutdown: CancellationToken,
}

impl Driver {
    /// Runs `f` with the job's connection on the blocking pool, inside the
    /// job's span (so its log lines carry job id, attempt and step).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> T + Send + 'static,
    ) -> T {
        let (conn, span) = (self.conn.clone(), tracing::Span::current());
        tokio::task::spawn_blocking(move || {
            let _in_job = span.enter();
            f(&mut conn.lock().expect("connection lock"))
        })
        .await
        .expect("blocking task panicked")
    }

    /// Applies `event` under this lease, then its effects.
    async fn transition(&self, event: JobEvent, patch: Patch) -> Result<Outcome, JobError> {
        let (lease, now) = (self.lease.clone(), self.runner.now_ms());
        let out = self
            .blocking(move |c| {
                let id = lease.job_id.clone();
                store::apply(c, &id, Fence::Lease(&lease), event, patch, now)
            })
            .await?;
        self.runner.apply_effects(&out).await;
        Ok(out)
    }

    /// Applies a user request seen by the worker.
    async fn honour(&self, cancel: bool) -> Result<JobState, JobError> {
        let event = if cancel {
            JobEvent::Cancel
        } else {
            JobEvent::Restart
        };
        Ok(self.transition(event, Patch::default()).await?.job.state)
    }

    async fn poll_flags(&self) -> Result<store::Flags, JobError> {
        let (l, ms, now) = (
            self.lease.clone(),
            self.runner.lease_ms(),
            self.runner.now_ms(),
        );
        self.blocking(move |c| store::poll_flags(c, &l, ms, now))
            .await
    }

    async fn release(&self, state: JobState) -> Result<JobState, JobError> {
        let (l, now) = (self.lease.clone(), self.runner.now_ms());
        self.blocking(move |c| store::release(c, &l, now)).await?;
        Ok(state)
    }

    async fn drive(&self, mut job: Job) -> Result<JobState, JobError> {
        if job.cancel_requested || job.restart_requested {
            return self.honour(job.cancel_requested).await;
        }
        if job.state == JobState::Exporting {
            let (r, j, l, s) = (
                self.runner.clone(),
                job.clone(),
                self.lease.clone(),
                self.shutdown.clone(),
            );
            let outcome = self
                .blocking(move |c| {
                    SpoolStep {
                        conn: c,
                        runner: &r,
                        shutdown: &s,
                    }
                    .run(&j, &l)
                })
                .await;
            match outcome {
                Ok(SpoolOutcome::Complete {
                    records,
                    bytes,
                    first,
                    last,
                }) => {
                    let patch = Patch {
                        spool: Some(SpoolTotals {
                            records,
                            bytes,
                            first,
                            last,
                        }),
                        ..Patch::default()
                    };
                    job = self.transition(JobEvent::SpoolComplete, patch).await?.job;
                    if job.state != JobState::Uploading {
                        // A cancel or restart request arrived with the last batch.
                        return Ok(job.state);
                    }
                }
                Ok(SpoolOutcome::NoRecords) => {
                    let patch = Patch {
                        record_count: Some(0),
                        ..Patch::default()
                    };
                    return Ok(self.transition(JobEvent::NoRecords, patch).await?.job.state);
                }
                Ok(SpoolOutcome::CancelRequested) => return self.honour(true).await,
                Ok(SpoolOutcome::RestartRequested) => return self.honour(false).await,
                Ok(SpoolOutcome::Interrupted) => return self.release(job.state).await,
                Err(e) => return self.fail(&job, e).await,
            }
        }
        if self.shutdown.is_cancelled() {
            return self.release(job.state).await;
        }
        let flags = self.poll_flags().await?;
        if flags.cancel || flags.restart {
            return self.honour(flags.cancel).await;
        }
        tracing::Span::current().record("step", step_name(JobState::Uploading));
        // Another export of the organization may complete between building
        // the manifest and recording it: then the manifest is rebuilt as
        // the next link and stored again (a handful of times at most).
        for _ in 0..MAX_CHAIN_RETRIES {
            // Keep the lease alive (and watch for cancel) while storing.
            let result = tokio::select! {
                // A finished upload wins over a grace period ending with it.
                biased;
                r = upload::run(&job, &self.runner) => r,
                hb = self.heartbeat() => return match hb {
                    Ok(cancel) => self.honour(cancel).await,
                    Err(e) => Err(e),
                },
                // A storage outage can keep an upload retrying for minutes:
                // on shutdown it gets the grace period, then the process
                // goes and the next owner stores the file from the spool.
                () = self.grace_over() => {
                    tracing::warn!(grace_secs = self.runner.shutdown_grace.as_secs(), "shutting down: upload abandoned after the grace period; the job resumes from its spool");
                    return self.release(job.state).await;
                }
            };
            let up = match result {
                Ok(up) => up,
                Err(e) => return self.fail(&job, e).await,
            };
            let patch = Patch {
                record_count: Some(job.exported_count),
                file: Some(up.file),
                manifest: Some(up.manifest),
                ..Patch::default()
            };
            match self.transition(JobEvent::Stored, patch).await {
                Ok(out) => return Ok(out.job.state),
                Err(JobError::ChainMoved(org)) => {
                    tracing::info!(%org, "another export completed first; rebuilding the manifest");
                }
                Err(e) => return Err(e),
            }
        }
        self.fail(
            &job,
            StepError::retryable(
                "manifest_chain_busy",
                "the organization's manifest chain kept moving",
            ),
        )
        .await
    }

    /// Resolves once shutdown was asked and the grace period (real time,
    /// whatever the engine's clock) has passed since.
    async fn grace_over(&self) {
        self.shutdown.cancelled().await;
        tokio::time::sleep(self.runner.shutdown_grace).await;
    }

    /// Renews the lease every third of its length while a step runs;
    /// resolves with `true` for a cancel, `false` for a restart request,
    /// or the lease error. Never resolves otherwise.
    async fn heartbeat(&self) -> Result<bool, JobError> {
        let every = Duration::from_millis((self.runner.lease_ms() / 3).max(50) as u64);
        loop {
            self.runner.clock.sleep(every).await;
            let flags = self.poll_flags().await?;
            if flags.cancel || flags.restart {
                return Ok(flags.cancel);
            }
        }
    }

    /// Applies a step failure: retry with backoff, or fail for good. A lost
    /// lease is passed up untouched.
    async fn fail(&self, job: &Job, err: StepError) -> Result<JobState, JobError> {
        let (retryable, code, message) = match err {
            StepError::Job(JobError::LeaseLost(id)) => return Err(JobError::LeaseLost(id)),
            StepError::Job(e) => (true, "internal_error", e.to_string()),
            StepError::SpoolLost => {
                tracing::warn!("finished spool missing; exporting again");
                return self.honour(false).await;
            }
            StepError::Fatal { code, message } => (false, code, message),
            StepError::Retryable { code, message } => (true, code, message),
        };
        tracing::warn!(code, %message, "job step failed");
        let patch = Patch {
            error: Some(ErrorInfo::new(code, message)),
            retry_delay_ms: self.runner.backoff_ms(job.attempt),
            ..Patch::default()
        };
        Ok(self
            .transition(JobEvent::StepFailed { retryable }, patch)
            .await?
            .job
            .state)
    }
}
