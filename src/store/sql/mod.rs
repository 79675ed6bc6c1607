//! The SQL record store: one implementation over sqlx's `Any` driver for both SQLite and
//! Postgres. Queries are built at run time (no database at build time) with `$N` placeholders,
//! which both backends accept; the schema differs only in column type names, so each dialect
//! has its own embedded migrations (`migrations/sqlite`, `migrations/postgres`), run on open.
//!
//! This module owns SQL text and row mapping. It never retries (the [`RecordWriter`] does) and
//! never blocks a call (calls only ever reach it through the writer's queue).
//!
//! [`RecordWriter`]: super::RecordWriter

mod read;
mod rows;
mod write;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use tokio::sync::Mutex;
use tracing::info;

use super::error::StoreError;
use super::filter::{CallFilter, CallPage, Cursor};
use super::record::{CallProgress, CallRecord, Recording};
use super::{Backend, CallStore};
use crate::config::StoreConfig;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Serialises migrations within this process (SQLite has no migration lock of its own; Postgres
/// takes an advisory lock, which covers other processes).
static MIGRATING: Mutex<()> = Mutex::const_new(());

/// A [`CallStore`] on SQLite or Postgres.
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    timeout: Duration,
}

impl SqlStore {
    /// Connect to `cfg.url`, create the SQLite file (and its directory) if missing, and run the
    /// migrations.
    pub async fn open(cfg: &StoreConfig) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = prepare_url(&cfg.url)?;
        let timeout = Duration::from_millis(cfg.write_timeout_ms);
        let options =
            AnyConnectOptions::from_str(&url).map_err(|e| StoreError::Config(e.to_string()))?;
        let sqlite = backend == Backend::Sqlite;
        let pool = AnyPoolOptions::new()
            .max_connections(cfg.max_connections)
            .acquire_timeout(timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if sqlite {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA busy_timeout = 5000",
                            "PRAGMA foreign_keys = ON",
                        ] {
                            conn.execute(pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let store = Self {
            pool,
            backend,
            timeout,
        };
        store.migrate().await?;
        info!(backend = backend.as_str(), url = %redact(&cfg.url), "call record store ready");
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let _one_at_a_time = MIGRATING.lock().await;
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        match migrator.run(&self.pool).await {
            Ok(()) => Ok(()),
            // Another process migrated the same SQLite file at the same moment: the second
            // attempt sees its work.
            Err(_) if self.backend == Backend::Sqlite => Ok(migrator.run(&self.pool).await?),
            Err(e) => Err(e.into()),
        }
    }

    /// The connection pool (the campaign tables share it: `crate::dialer::DialerStore`).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Close the pool (waits for connections in use to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Bound one database operation in time.
    async fn timed<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(self.timeout.as_millis() as u64)),
        }
    }
}

#[async_trait]
impl CallStore for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed(async {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    async fn upsert(&self, record: &CallRecord) -> Result<(), StoreError> {
        self.timed(write::upsert(&self.pool, record)).await
    }

    async fn create_outbound(&self, record: &CallRecord) -> Result<bool, StoreError> {
        self.timed(write::create_if_absent(&self.pool, record))
            .await
    }

    async fn update_progress(&self, progress: &CallProgress) -> Result<bool, StoreError> {
        self.timed(write::update_progress(&self.pool, progress))
            .await
    }

    async fn set_recording(
        &self,
        call_sid: &str,
        recording: Option<&Recording>,
    ) -> Result<(), StoreError> {
        self.timed(write::set_recording(&self.pool, call_sid, recording))
            .await
    }

    async fn get(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        self.timed(read::get(&self.pool, call_sid)).await
    }

    async fn list(
        &self,
        filter: &CallFilter,
        limit: u32,
        after: Option<&Cursor>,
    ) -> Result<CallPage, StoreError> {
        self.timed(read::list(&self.pool, filter, limit, after))
            .await
    }
}

/// The backend a URL names, and the URL sqlx should open (SQLite: created if missing).
fn prepare_url(url: &str) -> Result<(Backend, String), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err(StoreError::Config(format!(
            "{}: expected sqlite://PATH or postgres://…",
            redact(url)
        )));
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(StoreError::Config("sqlite URL without a file path".into()));
    }
    if path != ":memory:" {
        let path = PathBuf::from(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
    }
    let url = if query.contains("mode=") {
        url.to_owned()
    } else if query.is_empty() {
        format!("sqlite://{path}?mode=rwc")
    } else {
        format!("sqlite://{path}?{query}&mode=rwc")
    };
    Ok((Backend::Sqlite, url))
}

/// The URL with any password replaced, for logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (b, u) = prepare_url("sqlite::memory:").unwrap();
        assert_eq!(
            (b, u.as_str()),
            (Backend::Sqlite, "sqlite://:memory:?mode=rwc")
        );
        let (b, u) = prepare_url("postgres://u:p@h/db").unwrap();
        assert_eq!((b, u.as_str()), (Backend::Postgres, "postgres://u:p@h/db"));
        assert!(prepare_url("mysql://h/db").is_err());
        assert!(prepare_url("sqlite://").is_err());
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        let dir = std::env::temp_dir().join(format!("vb-url-{}", std::process::id()));
        let url = format!("sqlite://{}/sub/x.db?cache=shared", dir.display());
        let (_, u) = prepare_url(&url).unwrap();
        assert!(u.ends_with("x.db?cache=shared&mode=rwc"), "{u}");
        assert!(dir.join("sub").is_dir());
        let _ = std::fs::remove_dir_all(dir);
    }
}
