//! Call records: what every call did, kept in a database (SQLite embedded, or Postgres shared by
//! several instances) and served by the REST API.
//!
//! - [`CallRecord`] (and [`events`]) — the plain data of one call.
//! - [`CallStore`] — the storage trait; [`SqlStore`] implements it for both backends, picked by
//!   `store.url` ([`open`]).
//! - [`RecordWriter`] — the only way calls write: a bounded queue in front of the store, so a
//!   call never waits for the database; failures are retried with backoff and counted.
//!
//! This module must not touch a call's hot path: nothing here is called per frame, and nothing
//! a call does may await the database.

pub mod error;
pub mod events;
pub mod filter;
pub mod metrics;
pub mod record;
pub mod recordings;
mod sql;
pub mod writer;

use std::sync::Arc;

use async_trait::async_trait;

pub use error::StoreError;
pub use events::{CallEvents, Transcript, Turn};
pub use filter::{CallBrief, CallFilter, CallPage, Cursor};
pub use record::{CallProgress, CallRecord, CallStatus, Direction, Recording};
pub use sql::{SqlStore, redact};
pub use writer::{RecordWriter, WriterStats};

use crate::config::StoreConfig;

/// Which database a store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Where call records live. Every operation is idempotent (safe to retry).
#[async_trait]
pub trait CallStore: Send + Sync {
    fn backend(&self) -> Backend;

    /// The database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Write a call's record, creating it or merging into what is stored (by `call_sid`; see
    /// the merge rules in `sql/write.rs`: a status never goes back, known values are not erased
    /// by missing ones, the stored recording location wins). Writing the same record twice
    /// leaves the store as after once.
    async fn upsert(&self, record: &CallRecord) -> Result<(), StoreError>;

    /// Create the partial record of an outbound call being dialled, unless the call is known.
    /// True if created.
    async fn create_outbound(&self, record: &CallRecord) -> Result<bool, StoreError>;

    /// A status change of a known call. True if applied, false if the stored status is further
    /// along (a late or duplicate callback); `NotFound` for an unknown call.
    async fn update_progress(&self, progress: &CallProgress) -> Result<bool, StoreError>;

    /// Set, or with `None` clear, where the call's recording is. `NotFound` for an unknown call.
    async fn set_recording(
        &self,
        call_sid: &str,
        recording: Option<&Recording>,
    ) -> Result<(), StoreError>;

    async fn get(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError>;

    /// Calls matching `filter`, newest first, at most `limit` (capped at
    /// [`filter::MAX_PAGE`]), starting after `after`.
    async fn list(
        &self,
        filter: &CallFilter,
        limit: u32,
        after: Option<&Cursor>,
    ) -> Result<CallPage, StoreError>;
}

/// Open the store `cfg.url` names (`None` when records are off: `store.url = ""`).
pub async fn open(cfg: &StoreConfig) -> Result<Option<Arc<dyn CallStore>>, StoreError> {
    if cfg.url.is_empty() {
        tracing::info!("call records are off (store.url is empty)");
        return Ok(None);
    }
    let store = SqlStore::open(cfg).await?;
    Ok(Some(Arc::new(store)))
}
