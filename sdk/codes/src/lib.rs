//! Result codes: AgentFlow's framework and tool codes, which the seed documents use, and
//! Cella's own (7xxx).
//!
//! One list for the host runtime (`cella_runtime::codes`) and the Rust guest SDK
//! (`cella_guest::codes`). The codes table in docs/codes.md lists the same numbers; keep the two in
//! step. The Python, JavaScript and C guest SDKs carry the codes their tools use.
#![no_std]

/// Success.
pub const SUCCESS: i32 = 0;

/// The input is invalid in a way no more specific code says (tools).
pub const INVALID_INPUT: i32 = 4000;
/// The request was understood but the operation failed for a business reason (tools).
pub const BUSINESS_FAILURE: i32 = 4001;
/// A malformed request: missing field, unknown or ambiguous tool, unknown resource type.
pub const INVALID_REQUEST_FORMAT: i32 = 4002;
/// A required parameter is missing.
pub const MISSING_REQUIRED_FIELD: i32 = 4003;
/// A parameter has the wrong type or value.
pub const INVALID_PARAMETER_TYPE: i32 = 4004;
/// A URL parameter is malformed (tools).
pub const INVALID_URL_FORMAT: i32 = 4005;
/// Nothing found: a missing key, no search results.
pub const NO_RESULTS_FOUND: i32 = 4006;
/// The session could not be initialised, was ended by a fault, or does not exist.
pub const RESOURCE_NOT_INITIALIZED: i32 = 4007;

/// A generic execution error (the seeds' code; tools).
pub const EXECUTION_ERROR: i32 = 5000;
/// An API key the tool needs is not configured (tools).
pub const API_KEY_NOT_CONFIGURED: i32 = 5002;
/// A request to an outside API failed (tools).
pub const API_REQUEST_FAILED: i32 = 5003;
/// An outside API's answer could not be parsed (tools).
pub const API_RESPONSE_PARSE_ERROR: i32 = 5004;
/// An unexpected error in the runtime.
pub const UNEXPECTED_ERROR: i32 = 5005;
/// The call ran past its deadline.
pub const TIMEOUT_ERROR: i32 = 5006;
/// Crawling failed (tools).
pub const CRAWLING_ERROR: i32 = 5007;
/// Summarisation failed (tools).
pub const SUMMARIZATION_ERROR: i32 = 5008;
/// Every action of a batch failed.
pub const ALL_REQUESTS_FAILED: i32 = 5009;
/// Some actions of a batch failed.
pub const PARTIAL_FAILURE: i32 = 5010;
/// The backend is not initialised (tools).
pub const BACKEND_NOT_INITIALIZED: i32 = 5011;
/// Something the tool depends on failed (tools).
pub const DEPENDENCY_FAILURE: i32 = 5012;
/// An internal error of the backend: the guest SDKs answer an unexpected exception with it.
pub const INTERNAL_ERROR: i32 = 5013;

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
/// Cella: no snapshot of that id belongs to the caller's tenant (HTTP 404).
pub const SNAPSHOT_NOT_FOUND: i32 = 7010;
/// Cella: the snapshot cannot be restored: its content fails its checksum, or it was taken
/// from another version of the component, its configuration or the engine (HTTP 409).
pub const SNAPSHOT_INVALID: i32 = 7011;
/// Cella: the session cannot be snapshotted now: it holds open files or streams between calls,
/// its backend has no warm image, or it is not live (HTTP 409).
pub const SNAPSHOT_REFUSED: i32 = 7012;

/// Every code of this list with its name, as the table in docs/codes.md and AgentFlow's
/// `error_codes.py` spell it, in ascending order.
pub const ALL: &[(i32, &str)] = &[
    (SUCCESS, "SUCCESS"),
    (INVALID_INPUT, "INVALID_INPUT"),
    (BUSINESS_FAILURE, "BUSINESS_FAILURE"),
    (INVALID_REQUEST_FORMAT, "INVALID_REQUEST_FORMAT"),
    (MISSING_REQUIRED_FIELD, "MISSING_REQUIRED_FIELD"),
    (INVALID_PARAMETER_TYPE, "INVALID_PARAMETER_TYPE"),
    (INVALID_URL_FORMAT, "INVALID_URL_FORMAT"),
    (NO_RESULTS_FOUND, "NO_RESULTS_FOUND"),
    (RESOURCE_NOT_INITIALIZED, "RESOURCE_NOT_INITIALIZED"),
    (EXECUTION_ERROR, "EXECUTION_ERROR"),
    (API_KEY_NOT_CONFIGURED, "API_KEY_NOT_CONFIGURED"),
    (API_REQUEST_FAILED, "API_REQUEST_FAILED"),
    (API_RESPONSE_PARSE_ERROR, "API_RESPONSE_PARSE_ERROR"),
    (UNEXPECTED_ERROR, "UNEXPECTED_ERROR"),
    (TIMEOUT_ERROR, "TIMEOUT_ERROR"),
    (CRAWLING_ERROR, "CRAWLING_ERROR"),
    (SUMMARIZATION_ERROR, "SUMMARIZATION_ERROR"),
    (ALL_REQUESTS_FAILED, "ALL_REQUESTS_FAILED"),
    (PARTIAL_FAILURE, "PARTIAL_FAILURE"),
    (BACKEND_NOT_INITIALIZED, "BACKEND_NOT_INITIALIZED"),
    (DEPENDENCY_FAILURE, "DEPENDENCY_FAILURE"),
    (INTERNAL_ERROR, "INTERNAL_ERROR"),
    (GUEST_TRAPPED, "GUEST_TRAPPED"),
    (MEMORY_LIMIT, "MEMORY_LIMIT"),
    (FUEL_EXHAUSTED, "FUEL_EXHAUSTED"),
    (CAPACITY_EXHAUSTED, "CAPACITY_EXHAUSTED"),
    (CONTRACT_VIOLATION, "CONTRACT_VIOLATION"),
    (SHUTTING_DOWN, "SHUTTING_DOWN"),
    (UNAUTHENTICATED, "UNAUTHENTICATED"),
    (FORBIDDEN, "FORBIDDEN"),
    (QUOTA_EXCEEDED, "QUOTA_EXCEEDED"),
    (SNAPSHOT_NOT_FOUND, "SNAPSHOT_NOT_FOUND"),
    (SNAPSHOT_INVALID, "SNAPSHOT_INVALID"),
    (SNAPSHOT_REFUSED, "SNAPSHOT_REFUSED"),
];

/// The name of a code, or `None` for a code not in the list (tools may return any code).
pub fn name(code: i32) -> Option<&'static str> {
    ALL.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    /// The codes table in docs/codes.md and this list say the same: every row names its code as
    /// [`super::name`] does, and every code here has a row.
    #[test]
    fn the_codes_page_lists_exactly_these_codes() {
        let page = include_str!("../../../docs/codes.md");
        let rows: Vec<(i32, &str)> = page
            .lines()
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim).skip(1);
                let code = cells.next()?.parse().ok()?;
                let name = cells.next()?;
                name.chars().all(|c| c.is_ascii_uppercase() || c == '_').then_some((code, name))
            })
            .collect();
        assert_eq!(rows, super::ALL, "codes table in docs/codes.md and cella-codes differ");
    }

    /// The Python, JavaScript and C guest SDKs spell the codes they use in their own
    /// language; every one of them agrees with this list, by name and number.
    #[test]
    fn the_other_guest_sdks_spell_the_same_codes() {
        /// Splits a line into a constant's name and value, when it defines one.
        type Split = fn(&str) -> Option<(&str, &str)>;
        let sdks: [(&str, &str, Split); 3] = [
            ("sdk/guest-python/cella_guest.py", include_str!("../../guest-python/cella_guest.py"), |line| {
                line.split_once(" = ")
            }),
            ("sdk/guest-js/cella-guest.js", include_str!("../../guest-js/cella-guest.js"), |line| {
                line.trim_start().strip_suffix(',')?.split_once(": ")
            }),
            ("sdk/guest-c/cella.h", include_str!("../../guest-c/cella.h"), |line| {
                line.strip_prefix("#define CELLA_")?.split_once(' ')
            }),
        ];
        for (path, text, split) in sdks {
            let found: Vec<(i32, &str)> = text
                .lines()
                .filter_map(split)
                .filter(|(name, _)| !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .filter_map(|(name, value)| Some((value.trim().parse().ok()?, name.trim())))
                .filter(|(code, _)| (4000..8000).contains(code))
                .collect();
            assert!(found.len() >= 7, "{path}: expected its code constants, found {found:?}");
            for (code, name) in found {
                assert_eq!(super::name(code), Some(name), "{path}: {name} = {code}");
            }
        }
    }

    #[test]
    fn codes_are_ascending_and_unique() {
        assert!(super::ALL.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(super::name(4004), Some("INVALID_PARAMETER_TYPE"));
        assert_eq!(super::name(1002), None);
    }
}
