//! The compaction worker: one background thread that compacts finished recordings, one at a
//! time, and sweeps the directory (retention, orphans) at start and then periodically.
//!
//! Jobs arrive through a bounded queue. When it is full, [`Compactor::submit`] drops the job
//! (counted as `voxbridge_recordings_compacted_total{outcome="dropped"}`): the raw file stays
//! where it is, is served as it is (`audio/wav`), and a sweep compacts it once no call has
//! written it for five minutes. A failed compaction keeps the raw file too and is logged once.
//! The thread is a plain OS thread, never a runtime thread, so compaction cannot delay a call.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};

use super::{RECORDINGS_COMPACTED, RecordingError, RecordingStore, compact};

/// How often the worker sweeps (retention, orphans) after the sweep at start.
pub const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Failed files remembered so each is logged once (beyond this, the oldest is forgotten).
const MAX_FAILED_REMEMBERED: usize = 1024;

/// Hands finished raw recordings to the compaction thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Compactor {
    tx: SyncSender<PathBuf>,
}

/// The compaction thread; [`CompactorThread::stop`] ends it.
#[derive(Debug)]
pub struct CompactorThread {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Compactor {
    /// Start the worker with room for `queue` jobs, sweeping every `sweep_every` (and once now).
    pub fn spawn(
        store: RecordingStore,
        queue: usize,
        sweep_every: Duration,
    ) -> std::io::Result<(Self, CompactorThread)> {
        let (tx, rx) = sync_channel(queue.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("recording-compact".into())
            .spawn(move || Worker::new(store, flag).run(rx, sweep_every))?;
        Ok((Self { tx }, CompactorThread { stop, handle }))
    }

    /// Queue `raw` for compaction; false (counted) when the queue is full or the worker is gone.
    pub fn submit(&self, raw: PathBuf) -> bool {
        match self.tx.try_send(raw) {
            Ok(()) => true,
            Err(TrySendError::Full(raw) | TrySendError::Disconnected(raw)) => {
                metrics::counter!(RECORDINGS_COMPACTED, "outcome" => "dropped").increment(1);
                warn!(path = %raw.display(),
                    "compaction queue full: recording stays raw until the next sweep");
                false
            }
        }
    }
}

impl CompactorThread {
    /// Stop after the job in progress (queued jobs stay raw for the next sweep) and wait.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        // The worker wakes at least once a second to look at the flag.
        let _ = self.handle.join();
    }

    /// Wait for the worker to finish every queued job; it ends once every [`Compactor`] is
    /// dropped.
    pub fn join(self) {
        let _ = self.handle.join();
    }
}

struct Worker {
    store: RecordingStore,
    stop: Arc<AtomicBool>,
    failed: HashSet<PathBuf>,
}

impl Worker {
    fn new(store: RecordingStore, stop: Arc<AtomicBool>) -> Self {
        Self {
            store,
            stop,
            failed: HashSet::new(),
        }
    }

    fn run(mut self, rx: Receiver<PathBuf>, sweep_every: Duration) {
        let mut next_sweep = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            if Instant::now() >= next_sweep {
                self.sweep();
                next_sweep = Instant::now() + sweep_every;
            }
            let wait = next_sweep
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1));
            match rx.recv_timeout(wait) {
                Ok(raw) => self.compact(&raw),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn compact(&mut self, raw: &std::path::Path) {
        let call = raw
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(super::RAW_SUFFIX))
            .unwrap_or_default();
        match compact(&self.store, raw) {
            Ok(stats) => {
                metrics::counter!(RECORDINGS_COMPACTED, "outcome" => "ok").increment(1);
                info!(call_sid = call, path = %stats.path.display(),
                    secs = stats.duration.as_secs_f64(), raw_bytes = stats.raw_bytes,
                    bytes = stats.bytes, took_ms = stats.took.as_millis() as u64,
                    "recording compacted");
            }
            Err(RecordingError::Deleted(_)) => {
                metrics::counter!(RECORDINGS_COMPACTED, "outcome" => "deleted").increment(1);
                debug!(
                    call_sid = call,
                    "recording deleted before compaction finished"
                );
            }
            Err(RecordingError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && !raw.exists() =>
            {
                // Deleted (privacy request, retention) before its turn came.
                metrics::counter!(RECORDINGS_COMPACTED, "outcome" => "deleted").increment(1);
            }
            Err(e) => {
                metrics::counter!(RECORDINGS_COMPACTED, "outcome" => "failed").increment(1);
                if self.failed.len() >= MAX_FAILED_REMEMBERED {
                    self.failed.clear();
                }
                if self.failed.insert(raw.to_owned()) {
                    warn!(call_sid = call, error = %e, "recording compaction failed: kept raw");
                }
            }
        }
    }

    fn sweep(&mut self) {
        match self.store.sweep(SystemTime::now()) {
            Ok(report) => {
                if report.days_deleted > 0 {
                    info!(
                        days = report.days_deleted,
                        files = report.files_deleted,
                        retention_days = self.store.retention_days(),
                        "recordings past retention deleted"
                    );
                }
                for orphan in report.orphans {
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if !self.failed.contains(&orphan) {
                        self.compact(&orphan);
                    }
                }
            }
            Err(e) => warn!(error = %e, "recording sweep failed"),
        }
    }
}
