//! Seeing and changing jobs on a requester's behalf: a user sees their
//! organization's jobs only (another organization's job does not exist for
//! them), and only their own unless they are an admin; system requesters
//! see every job. Also the one view of a job that answers show (HTTP, MCP).

use rusqlite::Connection;
use serde_json::{json, Value};

use super::{Service, ServiceError};
use crate::jobs::store::{self, Request};
use crate::jobs::Job;
use crate::links::Link;
use crate::time::format_rfc3339_ms;
use crate::users::{Requester, Role};

impl Service {
    /// Job `id` as `who` may see it.
    pub fn visible_job(
        &self,
        conn: &Connection,
        who: &Requester,
        id: &str,
    ) -> Result<Job, ServiceError> {
        let job = match store::get(conn, id) {
            Err(crate::jobs::JobError::NotFound(_)) => return Err(ServiceError::NotFound),
            other => other?,
        };
        if let Requester::User(u) = who {
            if job.organization_id != u.organization_id
                || (u.role != Role::Admin && job.requester != u.requester())
            {
                return Err(ServiceError::NotFound);
            }
        }
        Ok(job)
    }

    /// Job `id` (as `who` sees it) once it has left the in-progress states,
    /// or as it stands when `timeout` has passed. Polls a connection of its
    /// own, so it may run on any task.
    pub async fn wait_for_job(
        &self,
        who: &Requester,
        id: &str,
        timeout: std::time::Duration,
    ) -> Result<Job, ServiceError> {
        let conn = self.connect()?;
        // Real time, not the engine clock: this is a caller's patience, not
        // a business rule.
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.visible_job(&conn, who, id)?;
            if !job.state.in_progress() || tokio::time::Instant::now() >= deadline {
                return Ok(job);
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// The jobs `who` may see, newest first (a system requester: every
    /// organization's, or `org`'s).
    pub fn list_jobs(
        &self,
        conn: &Connection,
        who: &Requester,
        org: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Job>, ServiceError> {
        Ok(match who {
            Requester::User(u) => {
                let mine = (u.role != Role::Admin).then(|| u.requester());
                store::list(conn, Some(&u.organization_id), mine.as_deref(), limit)?
            }
            Requester::System(_) => store::list(conn, org, None, limit)?,
        })
    }

    /// A user's cancel or restart: allowed to export, the job visible to
    /// them, then applied at once (effects included) or flagged for the
    /// worker running it.
    fn request(
        &self,
        conn: &mut Connection,
        who: &Requester,
        id: &str,
        cancel: bool,
    ) -> Result<Request, ServiceError> {
        if let Requester::User(u) = who {
            if !u.role.can_export() {
                return Err(ServiceError::Forbidden(format!(
                    "role {} may view audit logs but not export them",
                    u.role
                )));
            }
        }
        let job = self.visible_job(conn, who, id)?;
        let now = self.now_ms();
        let req = if cancel {
            store::request_cancel(conn, &job.id, now)?
        } else {
            store::request_restart(conn, &job.id, now)?
        };
        match &req {
            Request::Applied(out) => self.runner.apply_local_effects(out),
            // A restart flagged for a running worker: the job may be
            // claimable sooner than the next poll.
            Request::Flagged(_) if !cancel => self.runner.wake.notify_one(),
            Request::Flagged(_) => {}
        }
        Ok(req)
    }

    /// Cancels job `id`: at once if no worker runs it, else at the worker's
    /// next batch.
    pub fn cancel(
        &self,
        conn: &mut Connection,
        who: &Requester,
        id: &str,
    ) -> Result<Request, ServiceError> {
        self.request(conn, who, id, true)
    }

    /// Restarts job `id` from scratch: at once if no worker runs it, else
    /// at the worker's next batch.
    pub fn restart(
        &self,
        conn: &mut Connection,
        who: &Requester,
        id: &str,
    ) -> Result<Request, ServiceError> {
        self.request(conn, who, id, false)
    }

    /// The signed link to a completed job's file.
    pub fn download_link(&self, job: &Job) -> Option<Link> {
        let (file, done) = (job.file.as_ref()?, job.completed_at?);
        Some(self.links.for_file(&job.id, &file.key, done))
    }

    /// Where a completed job's file is on local disk (`fs` storage only).
    pub fn local_path(&self, job: &Job) -> Option<std::path::PathBuf> {
        let file = job.file.as_ref()?;
        self.runner.storage.local_path(&file.key)
    }

    /// A job as the API shows it.
    pub fn job_view(&self, j: &Job) -> Value {
        let mut v = json!({
            "id": j.id,
            "state": j.state.as_str(),
            "format": j.format.as_str(),
            "filters": j.filters_value(),
            "requester": j.requester,
            "recipients": j.recipients,
            // What sets it apart from another export of the same filters.
            "options": {
                "csv": (j.format == crate::format::Format::Csv).then(|| json!({
                    "profile": j.options.csv.profile.as_str(),
                    "fields": j.options.csv.fields.map(|f| f.names()),
                    "bom": j.options.csv.bom,
                    "formula_guard": j.options.csv.formula_guard,
                })),
                "timezone": j.options.timezone,
                "redact": j.options.redact.0,
                "compress": j.compress.as_str(),
            },
            // Known before completion, so a client can say "the link will
            // work for 24 hours" while the job runs.
            "link_ttl_seconds": self.cfg.link_secs(),
            "progress": {"exported": j.exported_count, "estimated": j.estimated_count},
            "attempt": j.attempt,
            "max_attempts": j.max_attempts,
            "record_count": j.record_count,
            "created_at": format_rfc3339_ms(j.created_at),
            "updated_at": format_rfc3339_ms(j.updated_at),
            "completed_at": j.completed_at.map(format_rfc3339_ms),
            "cancel_requested": j.cancel_requested,
            "restart_requested": j.restart_requested,
            "error": j.error_code.as_ref().map(|c| json!({"code": c, "message": j.error_message})),
            "file": Value::Null,
            "download_url": Value::Null,
            "expires_at": Value::Null,
        });
        if let Some(name) = &j.schedule_id {
            v["schedule"] = json!({
                "name": name,
                "fire_time": j.fire_time.map(format_rfc3339_ms),
                "manual": j.fire_time.is_none(),
            });
        }
        if let (Some(f), Some(link), Some(done)) = (&j.file, self.download_link(j), j.completed_at)
        {
            v["file"] = json!({"name": f.name, "size": f.size, "sha256": f.sha256, "compressed": f.compressed});
            v["download_url"] = json!(link.url);
            v["expires_at"] = json!(link.expires_at());
            // The signed manifest: inside the zip, or its own link.
            v["manifest"] = if f.compressed {
                json!({"in_zip": crate::manifest::verify::IN_ZIP, "url": null})
            } else {
                json!({"in_zip": null, "url": self.links.for_manifest(&j.id, &f.key, done).url})
            };
        }
        v
    }
}
