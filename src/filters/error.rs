//! Filter errors: a stable machine code per mistake (shared by the CLI, the
//! HTTP API and MCP) with the field it is about, and a one-line message.

crate::util::text_enum! {
    /// The stable code of a filter error (shared by CLI, HTTP and MCP),
    /// e.g. `range_too_long`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum FilterErrorCode ("filter error code") {
        /// No organization was given.
        OrganizationRequired = "organization_required",
        /// The organization is too long or has control characters.
        InvalidOrganization = "invalid_organization",
        /// No start (`from`) was given.
        FromRequired = "from_required",
        /// No end (`to`) was given.
        ToRequired = "to_required",
        /// `from` is neither a date (YYYY-MM-DD) nor an RFC 3339 instant.
        InvalidFrom = "invalid_from",
        /// `to` is neither a date (YYYY-MM-DD) nor an RFC 3339 instant.
        InvalidTo = "invalid_to",
        /// `to` is not after `from`.
        RangeReversed = "range_reversed",
        /// The range is longer than the configured maximum (days).
        RangeTooLong = "range_too_long",
        /// An actor value is empty, too long or has control characters.
        InvalidActor = "invalid_actor",
        /// An action is empty, too long, or has a `*` that is not a trailing wildcard.
        InvalidAction = "invalid_action",
        /// A stream is not 1-64 characters of `a-z`, `0-9`, `_`, `.`, `-`.
        InvalidStream = "invalid_stream",
        /// `target_type` is empty, too long or has control characters.
        InvalidTargetType = "invalid_target_type",
        /// `target_id` is empty, too long or has control characters.
        InvalidTargetId = "invalid_target_id",
        /// `target_id` was given without `target_type`.
        TargetIdWithoutType = "target_id_without_type",
        /// `q` is too long or has control characters (code `invalid_q`).
        InvalidQuery = "invalid_q",
        /// A list filter has more than [`MAX_LIST_VALUES`](crate::filters::MAX_LIST_VALUES) values.
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
    /// Stable machine code; [`FilterErrorCode::field`] names the field.
    pub code: FilterErrorCode,
    /// One-line explanation for people, naming the value at fault.
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
