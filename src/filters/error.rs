//! Filter errors: a stable machine code per mistake (shared by the CLI, the
//! HTTP API and MCP) with the field it is about, and a one-line message.

crate::util::text_enum! {
    /// The stable code of a filter error (shared by CLI, HTTP and MCP),
    /// e.g. `range_too_long`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum FilterErrorCode ("filter error code") {
        OrganizationRequired = "organization_required",
        InvalidOrganization = "invalid_organization",
        FromRequired = "from_required",
        ToRequired = "to_required",
        InvalidFrom = "invalid_from",
        InvalidTo = "invalid_to",
        RangeReversed = "range_reversed",
        RangeTooLong = "range_too_long",
        InvalidActor = "invalid_actor",
        InvalidAction = "invalid_action",
        InvalidStream = "invalid_stream",
        InvalidTargetType = "invalid_target_type",
        InvalidTargetId = "invalid_target_id",
        TargetIdWithoutType = "target_id_without_type",
        InvalidQuery = "invalid_q",
        TooManyValues = "too_many_values",
    }
}

impl FilterErrorCode {
    /// The filter field the error is about (`from`, `actors`, ...), in the
    /// HTTP API's names; the CLI maps these to its flags.
    pub fn field(self) -> &'static str {
        use FilterErrorCode::*;
        match self {
            OrganizationRequired | InvalidOrganization => "organization",
            FromRequired | InvalidFrom => "from",
            ToRequired | InvalidTo | RangeReversed | RangeTooLong => "to",
            InvalidActor => "actors",
            InvalidAction => "actions",
            InvalidStream => "streams",
            InvalidTargetType => "target_type",
            InvalidTargetId | TargetIdWithoutType => "target_id",
            InvalidQuery => "q",
            TooManyValues => "filters",
        }
    }
}

/// A rejected filter: stable code plus a one-line message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    pub code: FilterErrorCode,
    pub message: String,
}

impl FilterError {
    pub(super) fn new(code: FilterErrorCode, message: impl Into<String>) -> Self {
        FilterError {
            code,
            message: message.into(),
        }
    }
}
