//! Counts the calls in progress so shutdown can wait for them, and lets subscribers see each
//! call's summary when it ends. Holds no per-call state beyond a count.

use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use crate::call::summary::CallSummary;
use crate::metrics::Metrics;

/// How many finished-call summaries a slow subscriber may lag behind before missing some.
const SUMMARY_BACKLOG: usize = 1024;

#[derive(Debug)]
pub struct CallRegistry {
    active: watch::Sender<usize>,
    summaries: broadcast::Sender<Arc<CallSummary>>,
}

impl Default for CallRegistry {
    fn default() -> Self {
        Self {
            active: watch::Sender::new(0),
            summaries: broadcast::Sender::new(SUMMARY_BACKLOG),
        }
    }
}

impl CallRegistry {
    /// Register a call; the returned guard unregisters it when dropped (even on panic).
    pub fn enter(self: &Arc<Self>, metrics: &Metrics) -> CallGuard {
        self.active.send_modify(|n| *n += 1);
        metrics.active_calls.increment(1.0);
        metrics.calls.increment(1);
        CallGuard {
            registry: Arc::clone(self),
            metrics: metrics.clone(),
        }
    }

    pub fn active(&self) -> usize {
        *self.active.borrow()
    }

    /// Resolves when no call is active.
    pub async fn idle(&self) {
        let mut rx = self.active.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    pub fn publish(&self, summary: CallSummary) {
        // No subscriber is normal in production; the summary is already logged.
        let _ = self.summaries.send(Arc::new(summary));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CallSummary>> {
        self.summaries.subscribe()
    }
}

/// Keeps a call counted as active while alive.
pub struct CallGuard {
    registry: Arc<CallRegistry>,
    metrics: Metrics,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.registry
            .active
            .send_modify(|n| *n = n.saturating_sub(1));
        self.metrics.active_calls.decrement(1.0);
    }
}
