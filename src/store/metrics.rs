//! The record writer's metric label values (the names and help texts are in
//! [`crate::metrics::CATALOGUE`]). No per-call labels.

pub use crate::metrics::{
    STORE_DROPPED, STORE_PENDING, STORE_QUEUE_FULL, STORE_RETRIES, STORE_WRITES,
};

/// `outcome` of a write attempt.
pub const OUTCOME_OK: &str = "ok";
pub const OUTCOME_ERROR: &str = "error";

/// Why a record was given up (the `reason` label of [`STORE_DROPPED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// `store.max_pending` records were already held.
    BacklogFull,
    /// Submitted after the writer was shut down.
    Closed,
    /// The database refused it for a reason retrying cannot fix.
    Rejected,
    /// Still unwritten when the shutdown deadline passed.
    Shutdown,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::BacklogFull => "backlog_full",
            DropReason::Closed => "closed",
            DropReason::Rejected => "rejected",
            DropReason::Shutdown => "shutdown",
        }
    }
}
