//! The Deepgram client's reconnect policy: exponential backoff with jitter, and a failure
//! budget per time window.
//!
//! - The delay before reconnect *n* of a run of failures is `BASE · 2ⁿ⁻¹`, capped at [`CAP`],
//!   then drawn uniformly from its upper half (jitter, so that many calls hit by the same
//!   outage do not reconnect in lock step).
//! - The run (the exponent) starts again only after a connection has stayed up for
//!   [`STABLE_AFTER`]: a valid message on a connection that keeps dropping proves nothing.
//! - At most `max_failures` failures may fall within [`WINDOW`]; one more and the client gives
//!   up for the rest of the call (the engine's local turn detector takes over).
//!
//! Pure bookkeeping over the instants it is given; the random source is a small xorshift
//! seeded per call (no dependency, no global state). It must not sleep or do I/O.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// First reconnect delay (before jitter).
pub const BASE: Duration = Duration::from_millis(250);
/// Longest reconnect delay.
pub const CAP: Duration = Duration::from_secs(4);
/// The window of the failure budget.
pub const WINDOW: Duration = Duration::from_secs(60);
/// A connection up this long ends a run of failures.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// One call's reconnect state.
#[derive(Debug)]
pub struct Backoff {
    max_failures: u32,
    /// When recent failures happened (within [`WINDOW`]; at most `max_failures + 1` kept).
    recent: VecDeque<Instant>,
    /// Failures in the current run (the backoff exponent).
    run: u32,
    rng: u64,
}

impl Backoff {
    /// `seed` should differ between calls (e.g. a hash of the call id and the time).
    pub fn new(max_failures: u32, seed: u64) -> Self {
        Self {
            max_failures,
            recent: VecDeque::with_capacity(max_failures as usize + 1),
            run: 0,
            rng: seed | 1,
        }
    }

    /// A connection that had been up since `connected_at` (None: it never connected) failed at
    /// `now`. Returns the delay before the next attempt, or `None` when the budget is spent.
    pub fn failed(&mut self, connected_at: Option<Instant>, now: Instant) -> Option<Duration> {
        if connected_at.is_some_and(|at| now.saturating_duration_since(at) >= STABLE_AFTER) {
            self.run = 0;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        if self.recent.len() > self.max_failures as usize {
            return None;
        }
        self.run += 1;
        let full = BASE.saturating_mul(1 << (self.run - 1).min(8)).min(CAP);
        let half = full / 2;
        let jitter = self.next() % (half.as_micros() as u64 + 1);
        Some(half + Duration::from_micros(jitter))
    }

    /// Failures within the window so far.
    pub fn recent_failures(&self) -> usize {
        self.recent.len()
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A per-call seed: the call id hashed with the current time.
pub fn seed(call_sid: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    call_sid.hash(&mut h);
    std::time::SystemTime::now().hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(100, 42);
        let t0 = Instant::now();
        let mut last_full = Duration::ZERO;
        for n in 1..=10u32 {
            let d = b.failed(None, t0).expect("within budget");
            let full = BASE.saturating_mul(1 << (n - 1).min(8)).min(CAP);
            assert!(d >= full / 2 && d <= full, "attempt {n}: {d:?} vs {full:?}");
            assert!(full >= last_full);
            last_full = full;
        }
        assert_eq!(last_full, CAP);
        // Two calls' delays differ (jitter), most of the time.
        let a: Vec<_> = (0..5)
            .map(|_| Backoff::new(9, 1).failed(None, t0))
            .collect();
        let mut other = Backoff::new(9, 2);
        let b2: Vec<_> = (0..5).map(|_| other.failed(None, t0)).collect();
        assert_ne!(a, b2);
    }

    #[test]
    fn the_budget_counts_failures_per_window_and_a_stable_connection_resets_the_run() {
        let mut b = Backoff::new(3, 7);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(b.failed(None, t0 + Duration::from_secs(i)).is_some());
        }
        // A fourth failure within the minute: give up.
        assert_eq!(b.failed(None, t0 + Duration::from_secs(5)), None);

        let mut b = Backoff::new(3, 7);
        for i in 0..3 {
            b.failed(None, t0 + Duration::from_secs(i * 30));
        }
        // The first failure has left the window: still within budget.
        assert!(b.failed(None, t0 + Duration::from_secs(95)).is_some());
        assert_eq!(b.recent_failures(), 2);
        // A connection that stayed up restarts the exponent.
        let up = t0 + Duration::from_secs(100);
        let d = b
            .failed(Some(up), up + STABLE_AFTER + Duration::from_secs(60))
            .expect("budget");
        assert!(d <= BASE, "{d:?}");
    }
}
