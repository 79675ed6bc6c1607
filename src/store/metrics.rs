//! The record writer's metrics: names, help texts, and the fixed label values. Registered with
//! the others by [`crate::metrics::install`]. No per-call labels.

use metrics::{describe_counter, describe_gauge};

pub const STORE_WRITES: &str = "voxbridge_store_writes_total";
pub const STORE_RETRIES: &str = "voxbridge_store_write_retries_total";
pub const STORE_QUEUE_FULL: &str = "voxbridge_store_queue_full_total";
pub const STORE_PENDING: &str = "voxbridge_store_pending_records";
pub const STORE_DROPPED: &str = "voxbridge_store_records_dropped_total";

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

pub fn describe() {
    describe_counter!(
        STORE_WRITES,
        "Call record write attempts by outcome (ok, error)."
    );
    describe_counter!(
        STORE_RETRIES,
        "Call record writes retried after a failure (database unreachable, busy, timed out)."
    );
    describe_counter!(
        STORE_QUEUE_FULL,
        "Call records that found the writer queue full (held in memory beside it, not lost)."
    );
    describe_gauge!(
        STORE_PENDING,
        "Call records submitted and not yet written (queued, overflow, retrying)."
    );
    describe_counter!(
        STORE_DROPPED,
        "Call records given up, by reason (backlog_full, closed, rejected, shutdown); each is logged with its call_sid."
    );
}
