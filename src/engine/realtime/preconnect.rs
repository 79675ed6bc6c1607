//! Realtime sockets opened ahead of the media stream: when the TwiML webhook answers a call,
//! [`Preconnect::start`] connects and hand-shakes a session keyed by the CallSid, so the
//! caller's first turn does not pay the connection time; when the stream starts,
//! [`Preconnect::take`] hands it over (ready, or still connecting).
//!
//! Bounded: at most `max` entries (more are refused and counted: the stream connects itself);
//! an entry not claimed within the TTL is closed and counted as expired. It holds no call
//! state beyond the pending socket and never blocks: the lock is held only to insert or remove.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{counter, gauge};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::client::{ConnectError, Connection, RealtimeClient};
use super::wire::SessionSpec;
use crate::provider::{CallIds, ProviderError};

pub use crate::metrics::REALTIME_PRECONNECT_PENDING as PRECONNECT_PENDING;
pub use crate::metrics::REALTIME_PRECONNECTS as PRECONNECTS;

type Handshake = Result<Connection, ConnectError>;

/// Why a preconnect was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("preconnect registry is full")]
    Full,
    #[error("a preconnect for this call is already pending")]
    AlreadyPending,
}

/// The registry; cheap to clone and share (webhook handler and media stream).
#[derive(Clone)]
pub struct Preconnect {
    inner: Arc<Inner>,
}

struct Inner {
    client: RealtimeClient,
    max: usize,
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    next_id: AtomicU64,
}

struct Entry {
    id: u64,
    rx: oneshot::Receiver<Handshake>,
    claimed: CancellationToken,
}

/// A claimed preconnect: the connection, once its handshake is over.
pub struct Pending {
    rx: oneshot::Receiver<Handshake>,
}

impl Pending {
    /// Wait for the handshake (bounded by the client's timeouts).
    pub async fn connection(self) -> Handshake {
        self.rx.await.unwrap_or_else(|_| {
            Err(ProviderError::Disconnected("preconnect task ended".into()).into())
        })
    }
}

impl Preconnect {
    /// At most `max` pending sessions, each closed if not claimed within `ttl`.
    pub fn new(client: RealtimeClient, max: usize, ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                max,
                ttl,
                entries: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// Start connecting `spec`'s session for `call_sid` (returns at once).
    pub fn start(&self, call_sid: &str, spec: SessionSpec) -> Result<(), Refused> {
        let inner = &self.inner;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let claimed = CancellationToken::new();
        {
            let Ok(mut entries) = inner.entries.lock() else {
                return Err(Refused::Full);
            };
            if entries.contains_key(call_sid) {
                return Err(Refused::AlreadyPending);
            }
            if entries.len() >= inner.max {
                counter!(PRECONNECTS, "outcome" => "refused").increment(1);
                return Err(Refused::Full);
            }
            let entry = Entry {
                id,
                rx,
                claimed: claimed.clone(),
            };
            entries.insert(call_sid.to_string(), entry);
            gauge!(PRECONNECT_PENDING).set(entries.len() as f64);
        }
        counter!(PRECONNECTS, "outcome" => "started").increment(1);
        let deadline = Instant::now() + inner.ttl;
        let task = Task {
            inner: self.inner.clone(),
            call_sid: call_sid.to_string(),
            id,
            spec,
            tx,
            claimed,
            deadline,
        };
        tokio::spawn(task.run());
        Ok(())
    }

    /// Claim `call_sid`'s session, if one was started and has not expired.
    pub fn take(&self, call_sid: &str) -> Option<Pending> {
        let entry = {
            let mut entries = self.inner.entries.lock().ok()?;
            let entry = entries.remove(call_sid)?;
            gauge!(PRECONNECT_PENDING).set(entries.len() as f64);
            entry
        };
        entry.claimed.cancel();
        counter!(PRECONNECTS, "outcome" => "claimed").increment(1);
        Some(Pending { rx: entry.rx })
    }

    /// Sessions pending (connecting or ready, not claimed).
    pub fn len(&self) -> usize {
        self.inner.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// Remove entry `id` of `call_sid` if it is still unclaimed (dropping its receiver closes
    /// a ready connection); true if it was.
    fn expire(&self, call_sid: &str, id: u64) -> bool {
        let Ok(mut entries) = self.entries.lock() else {
            return false;
        };
        if entries.get(call_sid).is_none_or(|e| e.id != id) {
            return false;
        }
        let entry = entries.remove(call_sid);
        gauge!(PRECONNECT_PENDING).set(entries.len() as f64);
        drop(entries);
        drop(entry);
        counter!(PRECONNECTS, "outcome" => "expired").increment(1);
        debug!(call_sid, "realtime preconnect expired unclaimed");
        true
    }
}

/// One preconnect: connect, hand the result over, expire it if nobody claims it in time.
struct Task {
    inner: Arc<Inner>,
    call_sid: String,
    id: u64,
    spec: SessionSpec,
    tx: oneshot::Sender<Handshake>,
    claimed: CancellationToken,
    deadline: Instant,
}

impl Task {
    async fn run(self) {
        let call = CallIds {
            call_sid: self.call_sid.clone(),
            stream_sid: String::new(),
        };
        let connect = self.inner.client.connect(&self.spec, &call);
        tokio::pin!(connect);
        let mut timer_done = false;
        let result = loop {
            tokio::select! {
                r = &mut connect => break r,
                _ = sleep_until(self.deadline), if !timer_done => {
                    timer_done = true;
                    if self.inner.expire(&self.call_sid, self.id) {
                        return; // dropping `connect` abandons the handshake
                    }
                    // Claimed meanwhile: keep connecting for the claimer.
                }
            }
        };
        if result.is_err() {
            counter!(PRECONNECTS, "outcome" => "failed").increment(1);
        }
        let _ = self.tx.send(result);
        if !timer_done {
            tokio::select! {
                _ = sleep_until(self.deadline) => {
                    self.inner.expire(&self.call_sid, self.id);
                }
                _ = self.claimed.cancelled() => {}
            }
        }
    }
}
