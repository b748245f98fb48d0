//! API errors: one type, mapped once from every layer's errors to an HTTP
//! status and a stable JSON code: `{"error":{"code","message"}}`.

use serde_json::{json, Value};

use crate::filters::FilterError;
use crate::jobs::JobError;

/// An error answered by the HTTP API (and as a tool error by MCP): a status
/// and a stable code, rendered by [`ApiError::body`].
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code, e.g. `400`, `404`, `507`.
    pub status: u16,
    /// Stable machine-readable code, e.g. `invalid_format`, `not_found`.
    pub code: &'static str,
    /// One-line explanation for people.
    pub message: String,
    /// Extra fields merged into the error object (e.g. the existing job).
    pub extra: Option<Box<Value>>,
}

impl ApiError {
    /// An error with no extra fields.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }
    /// Adds fields merged into the error object (e.g. `{"field": "mode"}`).
    pub fn with(mut self, extra: Value) -> ApiError {
        self.extra = Some(Box::new(extra));
        self
    }
    /// A `400 Bad Request` with the given code, e.g. `invalid_mode`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }
    /// A `404 not_found` for a missing (or not visible) resource.
    pub fn not_found() -> ApiError {
        ApiError::new(404, "not_found", "no such resource")
    }
    /// A `403 forbidden`, e.g. a viewer asking to export.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "forbidden", message)
    }
    /// The disk of the database or of the work files is full.
    pub fn insufficient_storage() -> ApiError {
        tracing::error!("disk full: answering 507");
        ApiError::new(
            507,
            "insufficient_storage",
            "the server's disk is full; nothing was changed — retry once space is freed",
        )
    }
    /// A `500 internal_error`; the cause is logged, never sent to the client.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "internal error answering a request");
        ApiError::new(500, "internal_error", "internal error; see the server log")
    }

    /// The JSON body: `{"error": {"code", "message", ...extra}}`.
    pub fn body(&self) -> Value {
        let mut err = json!({"code": self.code, "message": self.message});
        if let (Some(extra), Value::Object(obj)) = (&self.extra, &mut err) {
            let Value::Object(extra) = extra.as_ref() else {
                return json!({ "error": err });
            };
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        json!({ "error": err })
    }
}

impl From<FilterError> for ApiError {
    fn from(e: FilterError) -> Self {
        ApiError::bad_request(e.code.as_str(), e.message).with(json!({"field": e.code.field()}))
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        match &e {
            JobError::DuplicateExport {
                id,
                created_at,
                created_at_text,
            } => ApiError::new(409, "duplicate_export", e.to_string()).with(
                json!({"job_id": id, "created_at": created_at_text, "created_at_ms": created_at}),
            ),
            JobError::TooManyExports { limit } => {
                ApiError::new(429, "too_many_exports", e.to_string()).with(json!({"limit": limit}))
            }
            JobError::NotFound(_) => ApiError::not_found(),
            JobError::NotInProgress(_) => ApiError::new(409, "not_in_progress", e.to_string()),
            // The job ended between the lookup and the change (a race).
            JobError::InvalidTransition(_) | JobError::LeaseLost(_) => {
                ApiError::new(409, "not_in_progress", "the job is no longer in progress")
            }
            _ => match e {
                JobError::Db(db) => db.into(),
                other => ApiError::internal(other),
            },
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        if crate::db::is_disk_full(&e) {
            return ApiError::insufficient_storage();
        }
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            if f.code == rusqlite::ErrorCode::DatabaseBusy
                || f.code == rusqlite::ErrorCode::DatabaseLocked
            {
                return ApiError::new(503, "busy", "the database is busy; retry shortly");
            }
        }
        ApiError::internal(e)
    }
}

impl From<crate::service::ServiceError> for ApiError {
    fn from(e: crate::service::ServiceError) -> Self {
        use crate::service::ServiceError as S;
        match e {
            S::Filter(e) => e.into(),
            S::Job(e) => e.into(),
            S::Invalid {
                code,
                field,
                message,
            } => ApiError::bad_request(code, message).with(json!({ "field": field })),
            S::UnverifiedRecipient(m) => ApiError::new(422, "unverified_recipient", m),
            S::Forbidden(m) => ApiError::forbidden(m),
            S::NotFound => ApiError::not_found(),
            e @ S::IdempotencyConflict(_) => {
                ApiError::new(409, "idempotency_conflict", e.to_string())
            }
            S::Db(e) => e.into(),
            S::Open(e) => ApiError::internal(e),
        }
    }
}

impl From<crate::users::UserError> for ApiError {
    fn from(e: crate::users::UserError) -> Self {
        match e {
            crate::users::UserError::Db(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}
