//! Per-client request rate limit: a token bucket per address (IPv6 per /64), `per_minute`
//! requests a minute with bursts up to the same number.
//!
//! Built to survive a flood: buckets live in [`SHARDS`] independently locked maps, so requests
//! from different clients rarely touch the same lock and no lock is global. Memory is bounded:
//! at most [`MAX_TRACKED`] buckets in all; a full shard makes room by evicting, among a few
//! sampled buckets, the one closest to full (a full bucket carries no information, so a flood
//! of fresh addresses pushes out other fresh addresses, not the ones being limited). No
//! request ever sweeps a map. A poisoned shard lock is recovered, not bypassed: bucket updates
//! are single field writes that leave no broken state behind a panic, so the data stays
//! valid and limiting goes on (it never fails open, and never locks everyone out).
//! This module only counts; answering 429 is the middleware's job.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::client_ip::account_key;

/// Independently locked maps.
pub const SHARDS: usize = 64;
/// Buckets kept in all (about 3 MiB at most).
pub const MAX_TRACKED: usize = 65_536;
/// Buckets looked at to choose one to evict.
const EVICTION_SAMPLE: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f32,
    at: Instant,
}

/// See the module documentation.
pub struct RateLimiter {
    per_minute: u32,
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<IpAddr, Bucket>>]>,
}

impl RateLimiter {
    /// `per_minute = 0`: no limit.
    pub fn new(per_minute: u32) -> Self {
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(HashMap::with_capacity(0)))
            .collect();
        Self {
            per_minute,
            hasher: RandomState::new(),
            shards,
        }
    }

    /// Take one token for `ip` at `now`; false when its bucket is empty.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let key = account_key(ip);
        let cap = self.per_minute as f32;
        let rate = cap / 60.0;
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        let mut buckets = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = buckets.get_mut(&key) {
            b.tokens = refilled(b, now, rate, cap);
            b.at = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                return true;
            }
            return false;
        }
        if buckets.len() >= MAX_TRACKED / SHARDS {
            evict_one(&mut buckets, now, rate, cap);
        }
        buckets.insert(
            key,
            Bucket {
                tokens: cap - 1.0,
                at: now,
            },
        );
        true
    }

    /// Buckets held now (for tests and diagnostics).
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

fn refilled(b: &Bucket, now: Instant, rate: f32, cap: f32) -> f32 {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f32();
    (b.tokens + elapsed * rate).min(cap)
}

/// Remove the fullest of a few buckets (ties: the least recently used).
fn evict_one(buckets: &mut HashMap<IpAddr, Bucket>, now: Instant, rate: f32, cap: f32) {
    let victim = buckets
        .iter()
        .take(EVICTION_SAMPLE)
        .max_by(|(_, a), (_, b)| {
            let (ta, tb) = (refilled(a, now, rate, cap), refilled(b, now, rate, cap));
            ta.total_cmp(&tb).then(b.at.cmp(&a.at))
        })
        .map(|(ip, _)| *ip);
    if let Some(ip) = victim {
        buckets.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn token_bucket_refills() {
        let r = RateLimiter::new(60);
        let ip = v4(127, 0, 0, 1);
        let t0 = Instant::now();
        assert!((0..60).all(|_| r.admit(ip, t0)));
        assert!(!r.admit(ip, t0));
        assert!(r.admit(ip, t0 + Duration::from_secs(1)));
        assert!(!r.admit(ip, t0 + Duration::from_secs(1)));
        assert!(r.admit(v4(10, 0, 0, 1), t0));
        assert!(RateLimiter::new(0).admit(ip, t0));
    }

    #[test]
    fn ipv6_is_limited_per_64() {
        let r = RateLimiter::new(3);
        let t0 = Instant::now();
        let host = |n: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, n));
        assert!((1..=3).all(|n| r.admit(host(n), t0)));
        assert!(!r.admit(host(99), t0), "a new address in the same /64");
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert!(r.admit(other, t0));
    }

    /// A flood of 100,000 distinct random addresses: memory stays bounded, and the client
    /// being limited stays limited (fresh buckets are evicted before drained ones).
    #[test]
    fn flood_of_distinct_addresses_is_bounded() {
        let r = RateLimiter::new(600);
        let t0 = Instant::now();
        let abuser = v4(198, 51, 100, 1);
        while r.admit(abuser, t0) {}
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut admitted = 0;
        for i in 0..100_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ip = if i % 4 == 0 {
                IpAddr::V6(Ipv6Addr::from(u128::from(x) << 64 | u128::from(i)))
            } else {
                IpAddr::V4(Ipv4Addr::from(x as u32))
            };
            admitted += usize::from(r.admit(ip, t0 + Duration::from_micros(u64::from(i))));
        }
        assert!(
            admitted >= 99_990,
            "fresh addresses have full buckets: {admitted}"
        );
        let tracked = r.tracked();
        assert!(tracked <= MAX_TRACKED, "{tracked} buckets");
        assert!(tracked >= MAX_TRACKED / 2, "the table is used: {tracked}");
        assert!(
            !r.admit(abuser, t0 + Duration::from_millis(50)),
            "the flood reset the limited client's bucket"
        );
    }

    /// Many threads on one address: exactly the budget gets through (no lost updates).
    #[test]
    fn concurrent_admission_is_exact() {
        let r = Arc::new(RateLimiter::new(600));
        let t0 = Instant::now();
        let admitted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (r, admitted) = (Arc::clone(&r), Arc::clone(&admitted));
                std::thread::spawn(move || {
                    for i in 0..500u16 {
                        if r.admit(v4(127, 0, 0, 1), t0) {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                        r.admit(v4(10, t, (i % 256) as u8, (i / 256) as u8), t0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 600);
    }

    /// A panic while a shard is locked poisons it; limiting carries on with the data intact.
    #[test]
    fn poisoned_shard_still_limits() {
        let r = Arc::new(RateLimiter::new(5));
        let t0 = Instant::now();
        let ip = v4(192, 0, 2, 1);
        assert!((0..5).all(|_| r.admit(ip, t0)));
        let shard = r.hasher.hash_one(account_key(ip)) as usize % SHARDS;
        let r2 = Arc::clone(&r);
        let _ = std::thread::spawn(move || {
            let _guard = r2.shards[shard].lock().unwrap();
            panic!("poison the shard");
        })
        .join();
        assert!(r.shards[shard].is_poisoned());
        assert!(!r.admit(ip, t0), "a poisoned shard let the client through");
        assert!(r.admit(ip, t0 + Duration::from_secs(12)));
    }
}
