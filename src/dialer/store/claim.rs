//! Dispatch claims: one transaction picks the next due contact of a running campaign and
//! records the attempt before any call is placed. The first statement writes the campaign row,
//! which locks it (Postgres: until commit, so instances sharing the database claim one at a
//! time per campaign and see each other's counts; SQLite: takes the write lock up front), then
//! the campaign's pacing (calls per second, concurrent calls) is checked against the database,
//! the contact is picked (`FOR UPDATE SKIP LOCKED` on Postgres), the do-not-call list and the
//! calling window are checked, and the contact moves to `dialing`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::rows::us;
use super::{DialerStore, new_id};
use crate::dialer::model::{CampaignSpec, Outcome};
use crate::dialer::window::{Window, zone};
use crate::store::{Backend, StoreError};

/// A contact claimed for dialling; its attempt row exists (status `dialing`).
#[derive(Debug, Clone)]
pub struct Dial {
    pub attempt_id: String,
    pub campaign_id: String,
    pub contact_id: String,
    pub number: u32,
    pub phone: String,
    pub variables: BTreeMap<String, String>,
    pub spec: CampaignSpec,
}

/// What a claim found.
#[derive(Debug)]
pub enum Claim {
    /// Nothing to dial now: not running, at its concurrency cap, or no contact due.
    Idle,
    /// Calls-per-second pacing: the next dial is allowed after this long.
    Wait(Duration),
    /// A contact was set aside (do-not-call) or deferred (outside its calling window).
    Skipped,
    Dial(Box<Dial>),
}

impl DialerStore {
    /// Claim the next contact of `campaign_id` for `instance`, at `now`.
    pub async fn claim(
        &self,
        campaign_id: &str,
        instance: &str,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        self.timed(self.claim_inner(campaign_id, instance, now))
            .await
    }

    async fn claim_inner(
        &self,
        campaign_id: &str,
        instance: &str,
        now: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let id = campaign_id.to_owned();
        let mut tx = self.pool.begin().await?;
        let locked = sqlx::query(
            "UPDATE campaigns SET last_dial_at_us = last_dial_at_us WHERE id = $1 AND state = 'running'",
        )
        .bind(id.clone())
        .execute(&mut *tx)
        .await?;
        if locked.rows_affected() == 0 {
            return Ok(Claim::Idle);
        }
        let row = sqlx::query("SELECT spec, last_dial_at_us FROM campaigns WHERE id = $1")
            .bind(id.clone())
            .fetch_one(&mut *tx)
            .await?;
        let spec: String = row.try_get("spec")?;
        let spec: CampaignSpec = serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt {
            call_sid: format!("campaign {id}"),
            message: e.to_string(),
        })?;
        let last: i64 = row.try_get("last_dial_at_us")?;
        let gap_us = (1e6 / spec.cps.max(0.001)).ceil() as i64;
        let wait = last + gap_us - us(now);
        if wait > 0 {
            return Ok(Claim::Wait(Duration::from_micros(wait as u64)));
        }
        let dialing: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM contacts WHERE campaign_id = $1 AND state = 'dialing'",
        )
        .bind(id.clone())
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if dialing >= i64::from(spec.max_concurrent) {
            return Ok(Claim::Idle);
        }
        let mut pick = String::from(
            "SELECT id, phone, timezone, variables, attempts FROM contacts WHERE campaign_id = $1 \
             AND state = 'pending' AND next_at_us <= $2 ORDER BY next_at_us, line LIMIT 1",
        );
        if self.backend == Backend::Postgres {
            pick.push_str(" FOR UPDATE SKIP LOCKED");
        }
        let Some(row) = sqlx::query(&pick)
            .bind(id.clone())
            .bind(us(now))
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Claim::Idle);
        };
        let contact_id: String = row.try_get("id")?;
        let phone: String = row.try_get("phone")?;
        let tz_name: Option<String> = row.try_get("timezone")?;
        let variables: String = row.try_get("variables")?;
        let attempts: i64 = row.try_get("attempts")?;
        let on_dnc = sqlx::query("SELECT phone FROM dnc WHERE phone = $1")
            .bind(phone.clone())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if on_dnc {
            set_done(&mut tx, &contact_id, Outcome::DoNotCall, now).await?;
            tx.commit().await?;
            return Ok(Claim::Skipped);
        }
        let tz = tz_name
            .as_deref()
            .and_then(zone)
            .or_else(|| zone(&spec.timezone))
            .unwrap_or(chrono_tz::UTC);
        let open = Window::parse(&spec.window)
            .ok()
            .and_then(|w| w.next_open(tz, now));
        if open != Some(now) {
            match open.filter(|t| spec.end_at.is_none_or(|end| *t < end)) {
                Some(t) => {
                    sqlx::query(
                        "UPDATE contacts SET next_at_us = $1, updated_at_us = $2 WHERE id = $3",
                    )
                    .bind(us(t))
                    .bind(us(now))
                    .bind(contact_id.clone())
                    .execute(&mut *tx)
                    .await?;
                }
                None => set_done(&mut tx, &contact_id, Outcome::Expired, now).await?,
            }
            tx.commit().await?;
            return Ok(Claim::Skipped);
        }
        let number = attempts + 1;
        let attempt_id = new_id("AT");
        sqlx::query(
            "UPDATE contacts SET state = 'dialing', attempts = $1, updated_at_us = $2 WHERE id = $3",
        )
        .bind(number)
        .bind(us(now))
        .bind(contact_id.clone())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO attempts (id, campaign_id, contact_id, number, instance, status, \
             started_at_us) VALUES ($1, $2, $3, $4, $5, 'dialing', $6)",
        )
        .bind(attempt_id.clone())
        .bind(id.clone())
        .bind(contact_id.clone())
        .bind(number)
        .bind(instance.to_owned())
        .bind(us(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE campaigns SET last_dial_at_us = $1 WHERE id = $2")
            .bind(us(now))
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Claim::Dial(Box::new(Dial {
            attempt_id,
            campaign_id: id,
            contact_id,
            number: number as u32,
            phone,
            variables: serde_json::from_str(&variables).unwrap_or_default(),
            spec,
        })))
    }

    /// The attempt row of a single call (no campaign), before it is placed.
    pub async fn single_attempt(
        &self,
        instance: &str,
        now: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        let id = new_id("AT");
        self.timed(async {
            sqlx::query(
                "INSERT INTO attempts (id, number, instance, status, started_at_us) \
                 VALUES ($1, 1, $2, 'dialing', $3)",
            )
            .bind(id.clone())
            .bind(instance.to_owned())
            .bind(us(now))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await?;
        Ok(id)
    }

    /// Twilio accepted the attempt's call (only while the attempt waits for its call id).
    pub async fn dialed(&self, attempt_id: &str, call_sid: &str) -> Result<(), StoreError> {
        self.timed(async {
            let mut tx = self.pool.begin().await?;
            let tied = sqlx::query(
                "UPDATE attempts SET call_sid = $1, status = 'queued' WHERE id = $2 AND status = 'dialing'",
            )
            .bind(call_sid.to_owned())
            .bind(attempt_id.to_owned())
            .execute(&mut *tx)
            .await?;
            if tied.rows_affected() == 0 {
                // Tied already (or ended): a callback naming its attempt changes nothing.
                return Ok(());
            }
            sqlx::query(
                "UPDATE contacts SET last_call_sid = $1 WHERE id = \
                 (SELECT contact_id FROM attempts WHERE id = $2)",
            )
            .bind(call_sid.to_owned())
            .bind(attempt_id.to_owned())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Twilio said "too many requests": the attempt did not happen; the contact is due again
    /// at `retry_at` with its attempt count as before.
    pub async fn throttled(
        &self,
        attempt_id: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.timed(async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "UPDATE contacts SET state = 'pending', attempts = attempts - 1, next_at_us = $1 \
                 WHERE id = (SELECT contact_id FROM attempts WHERE id = $2) AND state = 'dialing'",
            )
            .bind(us(retry_at))
            .bind(attempt_id.to_owned())
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM attempts WHERE id = $1 AND call_sid IS NULL")
                .bind(attempt_id.to_owned())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}

pub(super) async fn set_done(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    contact_id: &str,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE contacts SET state = 'done', outcome = $1, updated_at_us = $2 WHERE id = $3",
    )
    .bind(outcome.as_str())
    .bind(us(now))
    .bind(contact_id.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl DialerStore {
    /// Attempts of `instance` whose call has not ended (this instance's outbound calls).
    pub async fn open_count(&self, instance: &str) -> Result<u64, StoreError> {
        self.timed(async {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM attempts WHERE instance = $1 AND ended_at_us IS NULL",
            )
            .bind(instance.to_owned())
            .fetch_one(&self.pool)
            .await?;
            Ok(row.try_get::<i64, _>("n")?.max(0) as u64)
        })
        .await
    }
}
