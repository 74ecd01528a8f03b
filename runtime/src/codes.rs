//! Result codes: AgentFlow's framework codes, the seed documents' codes, and Cella's own.
//!
//! The README's codes table lists the same numbers; keep the two in step.

/// Success.
pub const SUCCESS: i32 = 0;
/// Invalid input, used by tools.
pub const INVALID_INPUT: i32 = 4000;
/// A business failure, used by tools.
pub const BUSINESS_FAILURE: i32 = 4001;
/// A malformed request: missing field, unknown or ambiguous tool, unknown resource type.
pub const INVALID_REQUEST_FORMAT: i32 = 4002;
/// A required parameter is missing.
pub const MISSING_REQUIRED_FIELD: i32 = 4003;
/// A parameter has the wrong type.
pub const INVALID_PARAMETER_TYPE: i32 = 4004;
/// Nothing found.
pub const NO_RESULTS_FOUND: i32 = 4006;
/// The session could not be initialised, was ended by a fault, or does not exist.
pub const RESOURCE_NOT_INITIALIZED: i32 = 4007;
/// A generic execution error (seed code).
pub const EXECUTION_ERROR: i32 = 5000;
/// An unexpected error in the runtime.
pub const UNEXPECTED_ERROR: i32 = 5005;
/// The call ran past its deadline.
pub const TIMEOUT_ERROR: i32 = 5006;
/// Every action of a batch failed.
pub const ALL_REQUESTS_FAILED: i32 = 5009;
/// Some actions of a batch failed.
pub const PARTIAL_FAILURE: i32 = 5010;

/// Cella: the guest trapped (an `unreachable`, a failed assertion, a stack overflow...). The
/// instance is discarded and its session ended.
pub const GUEST_TRAPPED: i32 = 7001;
/// Cella: the guest tried to grow its memory past the per-instance limit.
pub const MEMORY_LIMIT: i32 = 7002;
/// Cella: the guest used up its fuel (instruction budget) for the call.
pub const FUEL_EXHAUSTED: i32 = 7003;
/// Cella: the server holds as many live instances as it is configured for.
pub const CAPACITY_EXHAUSTED: i32 = 7004;
/// Cella: the guest broke the backend contract (bad JSON, a tool missing from its manifest).
pub const CONTRACT_VIOLATION: i32 = 7005;
/// Cella: the server is shutting down.
pub const SHUTTING_DOWN: i32 = 7006;
/// Cella: no API key, or an unknown one (HTTP 401).
pub const UNAUTHENTICATED: i32 = 7007;
/// Cella: the key is valid but may not do this (HTTP 403): another tenant's resource, an
/// admin route without the admin key.
pub const FORBIDDEN: i32 = 7008;
/// Cella: a tenant quota is reached (HTTP 429): live sessions, calls per minute.
pub const QUOTA_EXCEEDED: i32 = 7009;
