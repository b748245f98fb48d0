//! What a job's end is announced with: the notice kind and a snapshot of
//! the job (filters, counts, file, error), written with the final
//! transition. E-mails and in-app notices are rendered from the snapshot,
//! so they read the same whenever they are sent.

use serde_json::json;

use super::Job;
use crate::jobs::JobState;
use crate::notify::{Kind, Notice};

/// The notice kind for a job in a final state.
pub fn kind(job: &Job) -> Option<Kind> {
    match job.state {
        JobState::Completed if job.file.is_none() => Some(Kind::NoResults),
        JobState::Completed => Some(Kind::Completed),
        JobState::Failed => Some(Kind::Failed),
        JobState::Expired => Some(Kind::Expired),
        JobState::Exporting | JobState::Uploading => None,
    }
}

/// The notice for a job that just reached a final state.
pub fn for_job(job: &Job) -> Option<Notice> {
    let kind = kind(job)?;
    let summary = job
        .filters()
        .map(|f| f.summary())
        .unwrap_or_else(|_| job.filters.clone());
    let payload = json!({
        "job_id": job.id,
        "organization": job.organization_id,
        "format": job.format.as_str(),
        "filters": serde_json::from_str::<serde_json::Value>(&job.filters).unwrap_or_default(),
        "summary": summary,
        "record_count": job.record_count,
        "file": job.file.as_ref().map(|f| json!({"key": f.key, "name": f.name, "size": f.size, "sha256": f.sha256, "compressed": f.compressed})),
        "completed_at": job.completed_at,
        "error": job.error_code.as_ref().map(|c| json!({"code": c, "message": job.error_message})),
    })
    .to_string();
    Some(Notice {
        kind,
        job_id: job.id.clone(),
        user_id: crate::users::user_id_of(&job.requester),
        recipients: job.recipients.clone(),
        payload,
    })
}
