//! The writer's background task: takes writes in submission order (queue, then overflow),
//! applies the oldest, and on failure keeps it and retries with backoff while still taking new
//! writes in. It ends when every handle is gone and nothing is held, or when told to abandon.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use metrics::counter;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{REJECT_AFTER, Shared, WriteOp};
use crate::store::metrics::{DropReason, OUTCOME_ERROR, OUTCOME_OK, STORE_RETRIES, STORE_WRITES};
use crate::store::{CallStore, StoreError};

/// Exponential backoff between retries.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}

struct Held {
    op: WriteOp,
    attempts: u32,
}

pub async fn run(
    store: Arc<dyn CallStore>,
    mut rx: mpsc::Receiver<WriteOp>,
    shared: Arc<Shared>,
    mut backoff: Backoff,
    op_timeout: Duration,
) {
    let mut held: VecDeque<Held> = VecDeque::new();
    let mut outage = false;
    loop {
        intake(&mut rx, &shared, &mut held);
        if shared.abandon.is_cancelled() {
            abandon(&mut rx, &shared, held);
            return;
        }
        let Some(head) = held.front_mut() else {
            tokio::select! {
                _ = shared.abandon.cancelled() => {}
                op = rx.recv() => match op {
                    Some(op) => held.push_back(Held { op, attempts: 0 }),
                    None if overflow_empty(&shared) => return,
                    None => {}
                },
                _ = shared.notify.notified() => {}
            }
            continue;
        };
        let result = match tokio::time::timeout(op_timeout, apply(&*store, &head.op)).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Timeout(op_timeout.as_millis() as u64)),
        };
        match result {
            Ok(()) => {
                held.pop_front();
                // Counted before it stops being pending, so whoever waited for the flush sees it.
                shared.counters.written.fetch_add(1, Ordering::Relaxed);
                counter!(STORE_WRITES, "outcome" => OUTCOME_OK).increment(1);
                shared.done(1);
                backoff.reset();
                if std::mem::take(&mut outage) {
                    info!(
                        pending = *shared.pending.borrow(),
                        "call record store is back"
                    );
                }
            }
            Err(e) => {
                shared.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                counter!(STORE_WRITES, "outcome" => OUTCOME_ERROR).increment(1);
                head.attempts += 1;
                if !e.is_transient() && head.attempts >= REJECT_AFTER {
                    if let Some(gone) = held.pop_front() {
                        shared.dropped(&gone.op, DropReason::Rejected, &e.to_string());
                        shared.done(1);
                    }
                    continue;
                }
                let wait = backoff.step();
                shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                counter!(STORE_RETRIES).increment(1);
                outage = true;
                warn!(
                    call_sid = head.op.call_sid(),
                    write = head.op.kind(),
                    attempt = head.attempts,
                    retry_in_ms = wait.as_millis() as u64,
                    pending = *shared.pending.borrow(),
                    error = %e,
                    "call record write failed; keeping it and retrying"
                );
                wait_taking_writes(Instant::now() + wait, &mut rx, &shared, &mut held).await;
            }
        }
    }
}

async fn apply(store: &dyn CallStore, op: &WriteOp) -> Result<(), StoreError> {
    match op {
        WriteOp::Record(r) => store.upsert(r).await,
        WriteOp::Outbound(r) => store.create_outbound(r).await.map(drop),
        // A stale status (false) is a successful no-op.
        WriteOp::Progress(p) => store.update_progress(p).await.map(drop),
        WriteOp::Recording {
            call_sid,
            recording,
        } => store.set_recording(call_sid, recording.as_ref()).await,
    }
}

/// Move everything waiting into `held`: the queue first (it is older), then the overflow.
fn intake(rx: &mut mpsc::Receiver<WriteOp>, shared: &Shared, held: &mut VecDeque<Held>) {
    while let Ok(op) = rx.try_recv() {
        held.push_back(Held { op, attempts: 0 });
    }
    let mut overflow = match shared.overflow.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    held.extend(overflow.drain(..).map(|op| Held { op, attempts: 0 }));
}

fn overflow_empty(shared: &Shared) -> bool {
    match shared.overflow.lock() {
        Ok(guard) => guard.is_empty(),
        Err(poisoned) => poisoned.into_inner().is_empty(),
    }
}

/// Sleep until `until` (or abandon), still taking new writes so the queue keeps draining.
async fn wait_taking_writes(
    until: Instant,
    rx: &mut mpsc::Receiver<WriteOp>,
    shared: &Shared,
    held: &mut VecDeque<Held>,
) {
    let mut open = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return,
            _ = shared.abandon.cancelled() => return,
            op = rx.recv(), if open => match op {
                Some(op) => held.push_back(Held { op, attempts: 0 }),
                None => open = false,
            },
            _ = shared.notify.notified() => intake(rx, shared, held),
        }
    }
}

/// Give up everything held or waiting, counting and logging each.
fn abandon(rx: &mut mpsc::Receiver<WriteOp>, shared: &Shared, mut held: VecDeque<Held>) {
    rx.close();
    intake(rx, shared, &mut held);
    let n = held.len();
    for h in held {
        shared.dropped(
            &h.op,
            DropReason::Shutdown,
            "not written before the shutdown deadline",
        );
    }
    shared.done(n);
}
