//! [`RecordWriter`]: how calls (and the dialer) write records without ever waiting for the
//! database.
//!
//! `submit*` never blocks and never awaits: the write goes on a bounded queue (`store.queue`)
//! to one background task that applies writes in submission order. When the queue is full the
//! write is held in an in-memory overflow beside it (counted in `voxbridge_store_queue_full_total`)
//! and still applied in order. A failed write is retried with exponential backoff
//! (`store.retry_initial_ms` doubling up to `store.retry_max_ms`) and kept until it succeeds.
//! Everything held — queued, overflow, retrying — is bounded by `store.max_pending`; a write
//! beyond that, one submitted after shutdown, one the database rejects for good (after
//! [`REJECT_AFTER`] attempts), or one still unwritten at the shutdown deadline is dropped:
//! counted in `voxbridge_store_records_dropped_total{reason}` and logged with its call_sid.
//!
//! This module must not be awaited by a call; only [`RecordWriter::flush`] and
//! [`RecordWriter::shutdown`] wait, and both are bounded.

mod worker;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{counter, gauge};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::error;

use super::CallStore;
use super::metrics::{DropReason, STORE_DROPPED, STORE_PENDING, STORE_QUEUE_FULL};
use super::record::{CallProgress, CallRecord, Recording};
use crate::config::StoreConfig;

/// Attempts before a write the database rejects for a non-transient reason is dropped.
pub const REJECT_AFTER: u32 = 3;

/// One write waiting to be applied.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// A finished call's record ([`CallStore::upsert`]).
    Record(Box<CallRecord>),
    /// An outbound call being dialled ([`CallStore::create_outbound`]).
    Outbound(Box<CallRecord>),
    /// A status change ([`CallStore::update_progress`]).
    Progress(CallProgress),
    /// The recording's location ([`CallStore::set_recording`]).
    Recording {
        call_sid: String,
        recording: Option<Recording>,
    },
}

impl WriteOp {
    pub fn call_sid(&self) -> &str {
        match self {
            WriteOp::Record(r) | WriteOp::Outbound(r) => &r.call_sid,
            WriteOp::Progress(p) => &p.call_sid,
            WriteOp::Recording { call_sid, .. } => call_sid,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            WriteOp::Record(_) => "record",
            WriteOp::Outbound(_) => "outbound",
            WriteOp::Progress(_) => "progress",
            WriteOp::Recording { .. } => "recording",
        }
    }
}

/// Counts since the writer started (the same events as the `voxbridge_store_*` metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub written: u64,
    pub write_errors: u64,
    pub retries: u64,
    pub queue_full: u64,
    pub dropped: u64,
    pub pending: usize,
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    write_errors: AtomicU64,
    retries: AtomicU64,
    queue_full: AtomicU64,
    dropped: AtomicU64,
}

/// State the handles and the worker share.
struct Shared {
    overflow: Mutex<VecDeque<WriteOp>>,
    /// Writes submitted and not yet applied or dropped.
    pending: watch::Sender<usize>,
    /// Wakes the worker when the overflow gains a write.
    notify: Notify,
    closing: AtomicBool,
    /// Tells the worker to give up what it holds (shutdown deadline).
    abandon: CancellationToken,
    max_pending: usize,
    counters: Counters,
}

impl Shared {
    fn reserve(&self) -> bool {
        let mut reserved = false;
        self.pending.send_if_modified(|n| {
            reserved = *n < self.max_pending;
            if reserved {
                *n += 1;
            }
            reserved
        });
        if reserved {
            gauge!(STORE_PENDING).increment(1.0);
        }
        reserved
    }

    fn done(&self, k: usize) {
        self.pending.send_modify(|n| *n = n.saturating_sub(k));
        gauge!(STORE_PENDING).decrement(k as f64);
    }

    /// Count and log a write given up.
    fn dropped(&self, op: &WriteOp, reason: DropReason, detail: &str) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        counter!(STORE_DROPPED, "reason" => reason.as_str()).increment(1);
        error!(
            call_sid = op.call_sid(),
            write = op.kind(),
            reason = reason.as_str(),
            detail,
            "call record write dropped"
        );
    }
}

/// A cheap, cloneable handle to the background record writer.
#[derive(Clone)]
pub struct RecordWriter {
    tx: mpsc::Sender<WriteOp>,
    shared: Arc<Shared>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl RecordWriter {
    /// Start the writer task for `store` (call inside a Tokio runtime).
    pub fn start(store: Arc<dyn CallStore>, cfg: &StoreConfig) -> Self {
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let shared = Arc::new(Shared {
            overflow: Mutex::new(VecDeque::new()),
            pending: watch::Sender::new(0),
            notify: Notify::new(),
            closing: AtomicBool::new(false),
            abandon: CancellationToken::new(),
            max_pending: cfg.max_pending.max(1),
            counters: Counters::default(),
        });
        let backoff = worker::Backoff::new(
            Duration::from_millis(cfg.retry_initial_ms.max(1)),
            Duration::from_millis(cfg.retry_max_ms.max(cfg.retry_initial_ms.max(1))),
        );
        // The store bounds each operation itself; this is a backstop for other stores.
        let op_timeout = Duration::from_millis(cfg.write_timeout_ms.saturating_mul(2).max(200));
        let task = tokio::spawn(worker::run(
            store,
            rx,
            Arc::clone(&shared),
            backoff,
            op_timeout,
        ));
        Self {
            tx,
            shared,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// A finished call's record. Never blocks.
    pub fn submit(&self, record: CallRecord) {
        self.enqueue(WriteOp::Record(Box::new(record)));
    }

    /// The partial record of an outbound call being dialled. Never blocks.
    pub fn submit_outbound(&self, record: CallRecord) {
        self.enqueue(WriteOp::Outbound(Box::new(record)));
    }

    /// A status change of a call. Never blocks.
    pub fn submit_progress(&self, progress: CallProgress) {
        self.enqueue(WriteOp::Progress(progress));
    }

    /// Where a call's recording is now (`None`: it was deleted). Never blocks.
    pub fn submit_recording(&self, call_sid: impl Into<String>, recording: Option<Recording>) {
        self.enqueue(WriteOp::Recording {
            call_sid: call_sid.into(),
            recording,
        });
    }

    pub fn enqueue(&self, op: WriteOp) {
        let shared = &self.shared;
        if shared.closing.load(Ordering::Acquire) {
            shared.dropped(&op, DropReason::Closed, "submitted after shutdown");
            return;
        }
        if !shared.reserve() {
            shared.dropped(
                &op,
                DropReason::BacklogFull,
                "store.max_pending records held",
            );
            return;
        }
        let mut overflow = match shared.overflow.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Once writes overflow, later ones follow them there, so order is kept.
        let spilled = if overflow.is_empty() {
            match self.tx.try_send(op) {
                Ok(()) => None,
                Err(mpsc::error::TrySendError::Full(op)) => Some(op),
                Err(mpsc::error::TrySendError::Closed(op)) => {
                    drop(overflow);
                    shared.dropped(&op, DropReason::Closed, "writer task has ended");
                    shared.done(1);
                    return;
                }
            }
        } else {
            Some(op)
        };
        if let Some(op) = spilled {
            overflow.push_back(op);
            drop(overflow);
            shared.counters.queue_full.fetch_add(1, Ordering::Relaxed);
            counter!(STORE_QUEUE_FULL).increment(1);
            shared.notify.notify_one();
        }
    }

    /// Writes submitted and not yet applied (or dropped).
    pub fn pending(&self) -> usize {
        *self.shared.pending.borrow()
    }

    pub fn stats(&self) -> WriterStats {
        let c = &self.shared.counters;
        WriterStats {
            written: c.written.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            queue_full: c.queue_full.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            pending: self.pending(),
        }
    }

    /// Wait up to `within` for every write submitted so far to be applied. True if none is
    /// left.
    pub async fn flush(&self, within: Duration) -> bool {
        let mut rx = self.shared.pending.subscribe();
        tokio::time::timeout(within, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Refuse new writes, wait up to `within` for the pending ones, then give up the rest
    /// (each counted and logged) and stop the task. Returns how many were given up.
    pub async fn shutdown(&self, within: Duration) -> u64 {
        self.shared.closing.store(true, Ordering::Release);
        let before = self.shared.counters.dropped.load(Ordering::Relaxed);
        self.flush(within).await;
        self.shared.abandon.cancel();
        let task = match self.task.lock() {
            Ok(mut t) => t.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        self.shared.counters.dropped.load(Ordering::Relaxed) - before
    }
}
