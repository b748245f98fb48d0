//! `GET /download/{job_id}?expires=UNIX&sig=HEX`: the signed link. Valid →
//! the file streamed from storage with Content-Length, and an
//! `audit_log.export_downloaded` event; bad or missing signature → 403;
//! expired → 410 saying when and what to do; file pruned → 410.

use std::io::Read;

use serde_json::json;

use super::error::ApiError;
use super::routes::{Ctx, Reply};
use super::util::{attachment, header};
use crate::jobs::{store, JobError};
use crate::time::format_rfc3339_ms;
use crate::users::Requester;

const CHUNK: u64 = 1 << 20;

fn bad_signature() -> ApiError {
    ApiError::forbidden("this download link is not valid (bad or missing signature)")
        .with(json!({"code_detail": "invalid_signature"}))
}

fn expired(expires: i64) -> ApiError {
    ApiError::new(
        410,
        "link_expired",
        format!(
            "this download link expired at {}; run the export again to get a new link",
            format_rfc3339_ms(expires.saturating_mul(1000))
        ),
    )
}

/// `GET /download/{id}`: the export file.
pub fn download(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    serve(ctx, false)
}

/// `GET /download/{id}/manifest`: the signed manifest beside an export
/// file that is not zipped (a zip carries its own `manifest.json`).
pub fn manifest(ctx: &mut Ctx<'_>) -> Result<Reply, ApiError> {
    serve(ctx, true)
}

fn serve(ctx: &mut Ctx<'_>, manifest: bool) -> Result<Reply, ApiError> {
    let id = ctx.id.clone().unwrap_or_default();
    // Only the exact form the server signs is accepted: a link whose bytes
    // differ in any way (`expires=0…`, `+…`, upper-case hex, a parameter
    // given twice) is not the link that was handed out.
    let (Ok(Some(expires_text)), Ok(Some(sig))) = (ctx.param("expires"), ctx.param("sig")) else {
        return Err(bad_signature());
    };
    let sig = sig.to_string();
    let Some(expires) = expires_text
        .parse::<i64>()
        .ok()
        .filter(|e| e.to_string() == expires_text)
    else {
        return Err(bad_signature());
    };
    let now_s = ctx.state.svc.now_ms().div_euclid(1000);
    let job = match store::get(ctx.conn, &id) {
        Ok(j) => j,
        // The job is gone (pruned after the download window) or never was:
        // an expired link says so, anything else is indistinguishable from
        // a forgery.
        Err(JobError::NotFound(_)) if expires < now_s => return Err(expired(expires)),
        Err(JobError::NotFound(_)) => return Err(bad_signature()),
        Err(e) => return Err(e.into()),
    };
    let Some(mut file) = job.file.clone() else {
        return Err(bad_signature());
    };
    if manifest {
        if file.compressed {
            return Err(bad_signature());
        }
        file.key.push_str(crate::manifest::verify::SUFFIX);
        file.name.push_str(crate::manifest::verify::SUFFIX);
    }
    if !ctx
        .state
        .svc
        .links
        .signer()
        .verify(&job.id, &file.key, expires, &sig)
    {
        return Err(bad_signature());
    }
    if expires < now_s {
        return Err(expired(expires));
    }
    if manifest {
        let rt = ctx.state.rt.clone();
        let bytes =
            match rt.block_on(ctx.state.storage_op().read(&file.key)) {
                Ok(b) => b.to_vec(),
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Err(ApiError::new(
                    410,
                    "file_pruned",
                    "the manifest is no longer stored; GET /api/v1/manifests keeps every manifest",
                )),
                Err(e) => return Err(ApiError::internal(e)),
            };
        return Ok(super::routes::boxed(
            tiny_http::Response::from_data(bytes)
                .with_header(header("Content-Type", "application/json"))
                .with_header(header("Content-Disposition", &attachment(&file.name))),
        ));
    }
    let op = ctx.state.storage_op();
    let rt = ctx.state.rt.clone();
    let meta = match rt.block_on(op.stat(&file.key)) {
        Ok(m) => m,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
            return Err(ApiError::new(
                410,
                "file_pruned",
                "the file is no longer stored; run the export again",
            ))
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let size = meta.content_length();
    let reader = rt
        .block_on(op.reader(&file.key))
        .map_err(ApiError::internal)?;
    // The download is itself audited, with the job's requester as actor.
    let user = match crate::users::user_id_of(&job.requester) {
        Some(uid) => crate::users::get_user(ctx.conn, uid)?,
        None => None,
    };
    let who = user.map_or_else(|| Requester::System(job.requester.clone()), Requester::User);
    let details = json!({
        "filters": job.filters_value(),
        "format": job.format.as_str(), "record_count": job.record_count, "job_id": job.id,
    });
    ctx.state.svc.audit(
        ctx.conn,
        &who,
        &ctx.client,
        crate::service::Audited {
            org: &job.organization_id,
            action: "audit_log.export_downloaded",
            target_id: &job.id,
            details: &details,
        },
    )?;
    ctx.state.metrics.download();
    let content_type = if file.compressed {
        "application/zip"
    } else {
        job.format.content_type()
    };
    let body = StorageBody {
        rt,
        reader,
        pos: 0,
        size,
        buf: Vec::new(),
        at: 0,
    };
    Ok(tiny_http::Response::new(
        tiny_http::StatusCode(200),
        vec![
            header("Content-Type", content_type),
            header("Content-Disposition", &attachment(&file.name)),
        ],
        Box::new(body) as Box<dyn Read + Send>,
        Some(size as usize),
        None,
    )
    // tiny_http switches to chunked encoding above 32 KiB by default; a
    // download announces its length so clients can show progress and
    // detect truncation.
    .with_chunked_threshold(usize::MAX))
}

/// Reads an object from storage in 1 MiB ranges, blocking on the runtime.
struct StorageBody {
    rt: tokio::runtime::Handle,
    reader: opendal::Reader,
    pos: u64,
    size: u64,
    buf: Vec<u8>,
    at: usize,
}

impl Read for StorageBody {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.buf.len() {
            if self.pos >= self.size {
                return Ok(0);
            }
            let end = (self.pos + CHUNK).min(self.size);
            let chunk = self
                .rt
                .block_on(self.reader.read(self.pos..end))
                .map_err(std::io::Error::other)?;
            self.buf = chunk.to_vec();
            self.at = 0;
            if self.buf.is_empty() {
                return Err(std::io::Error::other(
                    "storage returned less than the object's size",
                ));
            }
            self.pos += self.buf.len() as u64;
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
