//! Store errors, and which of them are worth retrying.

/// What went wrong talking to the record store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store.url: {0}")]
    Config(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database did not answer within {0} ms")]
    Timeout(u64),
    #[error("no call record {0}")]
    NotFound(String),
    #[error("call record {call_sid} cannot be read: {message}")]
    Corrupt { call_sid: String, message: String },
    #[error("call record {call_sid} cannot be stored: {message}")]
    Invalid { call_sid: String, message: String },
}

impl StoreError {
    /// Worth retrying later: the database is unreachable, restarting, busy or overloaded.
    /// Anything else (a constraint, a bad value) will fail the same way again.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Timeout(_) => true,
            StoreError::Database(e) => sqlx_transient(e),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => sqlx_transient(e),
            _ => false,
        }
    }
}

fn sqlx_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // Postgres: 08 connection exception, 57P0x shutdown/cannot connect now,
            // 53 insufficient resources, 40001/40P01 serialisation failure/deadlock.
            // SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED (and their extended codes).
            // (Postgres codes have five characters, SQLite's at most four digits.)
            let pg = code.len() == 5;
            if pg {
                ["08", "57P0", "53"].iter().any(|p| code.starts_with(p))
                    || code == "40001"
                    || code == "40P01"
            } else {
                matches!(code.parse::<i32>(), Ok(c) if c & 0xff == 5 || c & 0xff == 6)
            }
        }
        _ => false,
    }
}
