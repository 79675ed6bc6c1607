//! The do-not-call list: numbers never dialled (checked in every claim).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::DialerStore;
use super::rows::{from_us, us};
use crate::dialer::model::DncEntry;
use crate::store::StoreError;

pub(super) async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    phone: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "INSERT INTO dnc (phone, reason, added_at_us) VALUES ($1, $2, $3) ON CONFLICT (phone) DO NOTHING",
    )
    .bind(phone.to_owned())
    .bind(reason.to_owned())
    .bind(us(now))
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

impl DialerStore {
    /// Put `phone` on the list. True if it was not there.
    pub async fn dnc_add(
        &self,
        phone: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.timed(async {
            let mut tx = self.pool.begin().await?;
            let added = insert(&mut tx, phone, reason, now).await?;
            tx.commit().await?;
            Ok(added)
        })
        .await
    }

    /// Take `phone` off the list. True if it was there.
    pub async fn dnc_remove(&self, phone: &str) -> Result<bool, StoreError> {
        self.timed(async {
            let r = sqlx::query("DELETE FROM dnc WHERE phone = $1")
                .bind(phone.to_owned())
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
        .await
    }

    /// The list, in number order, `limit` from `offset`.
    pub async fn dnc_list(&self, limit: u32, offset: u64) -> Result<Vec<DncEntry>, StoreError> {
        self.timed(async {
            let found = sqlx::query(
                "SELECT phone, reason, added_at_us FROM dnc ORDER BY phone LIMIT $1 OFFSET $2",
            )
            .bind(i64::from(limit))
            .bind(offset as i64)
            .fetch_all(&self.pool)
            .await?;
            found
                .iter()
                .map(|r| {
                    Ok(DncEntry {
                        phone: r.try_get("phone")?,
                        reason: r.try_get("reason")?,
                        added_at: from_us(r.try_get("added_at_us")?),
                    })
                })
                .collect()
        })
        .await
    }
}
