//! Concurrent-connection caps, checked at accept time: `limits.max_connections` in all and
//! `limits.max_connections_per_ip` per client address (IPv6 per /64; 0 = no per-address cap).
//!
//! A connection holds a [`ConnSlot`] for as long as its socket lives — media streams included,
//! since the slot travels inside the socket through the WebSocket upgrade — and gives it back on
//! drop. The per-address counts live in sharded maps that only hold addresses with an open
//! connection, so their size is bounded by the global cap. A poisoned shard is recovered (the
//! counts are plain integers, always consistent). This module counts; it never closes anything.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::client_ip::account_key;

const SHARDS: usize = 32;

/// Why a connection was not let in (the `voxbridge_requests_refused_total` reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnRefusal {
    /// `limits.max_connections` reached.
    Global,
    /// `limits.max_connections_per_ip` reached for this address.
    PerIp,
}

impl ConnRefusal {
    pub fn reason(self) -> &'static str {
        match self {
            ConnRefusal::Global => "too_many_connections",
            ConnRefusal::PerIp => "too_many_connections_per_ip",
        }
    }
}

/// See the module documentation.
pub struct ConnLimits {
    max: usize,
    per_ip: usize,
    open: AtomicUsize,
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<IpAddr, usize>>]>,
}

impl ConnLimits {
    pub fn new(max: usize, per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            per_ip,
            open: AtomicUsize::new(0),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    /// Count a new connection from `ip`; `per_ip_exempt` for trusted proxies (whose
    /// connections carry many clients).
    pub fn try_open(
        self: &Arc<Self>,
        ip: IpAddr,
        per_ip_exempt: bool,
    ) -> Result<ConnSlot, ConnRefusal> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(ConnRefusal::Global);
        }
        let key = (self.per_ip > 0 && !per_ip_exempt).then(|| account_key(ip));
        if let Some(key) = key {
            let mut counts = self.shard(key);
            let n = counts.entry(key).or_insert(0);
            if *n >= self.per_ip {
                drop(counts);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(ConnRefusal::PerIp);
            }
            *n += 1;
        }
        Ok(ConnSlot {
            limits: Arc::clone(self),
            key,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Open connections from `ip`'s address (or its /64), when capped per address.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let key = account_key(ip);
        self.shard(key).get(&key).copied().unwrap_or(0)
    }

    /// Addresses with an open, capped connection (the map's size).
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    fn shard(&self, key: IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.shards[self.hasher.hash_one(key) as usize % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One open connection; dropping it gives the place back.
pub struct ConnSlot {
    limits: Arc<ConnLimits>,
    key: Option<IpAddr>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut counts = self.limits.shard(key);
            if let Some(n) = counts.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(&key);
                }
            }
        }
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_ip_and_global_caps() {
        let limits = ConnLimits::new(5, 2);
        let a = ip("192.0.2.1");
        let s1 = limits.try_open(a, false).unwrap();
        let _s2 = limits.try_open(a, false).unwrap();
        assert_eq!(limits.try_open(a, false).err(), Some(ConnRefusal::PerIp));
        // A trusted proxy is not capped per address, only in all.
        let _p1 = limits.try_open(a, true).unwrap();
        let _b = limits.try_open(ip("192.0.2.2"), false).unwrap();
        let _c = limits.try_open(ip("192.0.2.3"), false).unwrap();
        assert_eq!(limits.open(), 5);
        assert_eq!(
            limits.try_open(ip("192.0.2.4"), false).err(),
            Some(ConnRefusal::Global)
        );
        assert_eq!(limits.open(), 5, "a refusal takes no place");
        drop(s1);
        assert_eq!(limits.open_from(a), 1);
        let _s3 = limits.try_open(a, false).unwrap();
        assert_eq!(limits.open_from(a), 2);
    }

    #[test]
    fn map_holds_only_open_addresses() {
        let limits = ConnLimits::new(100_000, 3);
        let slots: Vec<ConnSlot> = (0..10_000u32)
            .map(|i| {
                let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0A00_0000 + i));
                limits.try_open(addr, false).unwrap()
            })
            .collect();
        assert_eq!(limits.tracked(), 10_000);
        drop(slots);
        assert_eq!(limits.tracked(), 0);
        assert_eq!(limits.open(), 0);
        // No per-address cap: nothing tracked at all.
        let uncapped = ConnLimits::new(10, 0);
        let _s: Vec<_> = (0..10)
            .map(|_| uncapped.try_open(ip("192.0.2.9"), false).unwrap())
            .collect();
        assert_eq!(uncapped.tracked(), 0);
        assert_eq!(
            uncapped.try_open(ip("192.0.2.9"), false).err(),
            Some(ConnRefusal::Global)
        );
    }
}
