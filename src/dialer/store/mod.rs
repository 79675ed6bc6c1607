//! Campaign state in the database (the same SQLite file or Postgres database as the call
//! records; tables from `migrations/*/20260201000001_campaigns.sql`): campaigns, contacts,
//! attempts and the do-not-call list. Everything the dialer decides is written here first,
//! so a restarted instance (or a second one on the same Postgres) carries on from it.
//!
//! This module owns the SQL text. It never calls Twilio and never retries; the dispatcher
//! does both.

pub mod campaigns;
pub mod claim;
mod dnc;
mod rows;
mod settle;
mod stale;

use std::time::Duration;

use sqlx::AnyPool;

pub use claim::Claim;
pub use settle::{Finished, OpenAttempt};
pub use stale::StaleClaim;

use crate::store::{Backend, StoreError};

/// The campaign tables on the record store's pool.
#[derive(Clone)]
pub struct DialerStore {
    pool: AnyPool,
    backend: Backend,
    timeout: Duration,
}

impl DialerStore {
    /// On `pool` (already migrated by [`crate::store::SqlStore::open`]).
    pub fn new(pool: AnyPool, backend: Backend) -> Self {
        Self {
            pool,
            backend,
            timeout: Duration::from_secs(10),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Bound one database operation in time.
    async fn timed<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Timeout(self.timeout.as_millis() as u64)),
        }
    }
}

/// A new id: `prefix` + 24 hex digits (time-ordered, unique across processes).
pub fn new_id(prefix: &str) -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::new()
        .chain_update(n.to_le_bytes())
        .chain_update(nanos.to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .finalize();
    let mut out = format!("{prefix}{:012x}", (nanos / 1000) as u64 & 0xffff_ffff_ffff);
    for b in &digest[..6] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}
