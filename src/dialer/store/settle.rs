//! What happens after a dial: Twilio's status and AMD callbacks applied to the attempt, the
//! attempt's outcome, and the contact's next step by the campaign's retry policy. Every write
//! is conditional on the row still being open, so a repeated or late callback (or a second
//! instance reconciling the same call) changes nothing.

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use super::DialerStore;
use super::claim::set_done;
use super::rows::{from_us, us};
use crate::dialer::model::{CampaignSpec, OPTED_OUT, Outcome};
use crate::store::StoreError;

/// An attempt whose call has not ended (for reconciliation and the AMD callback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAttempt {
    pub attempt_id: String,
    pub call_sid: String,
    pub campaign_id: Option<String>,
    pub started_at: DateTime<Utc>,
}

/// An attempt that just ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub attempt_id: String,
    pub campaign_id: Option<String>,
    pub outcome: Outcome,
}

/// The outcome of a call that ended with Twilio status `status`.
pub fn outcome_of(status: &str, answered_by: Option<&str>, hint: Option<&str>) -> Outcome {
    match status {
        "completed" if hint == Some(Outcome::VoicemailLeft.as_str()) => Outcome::VoicemailLeft,
        "completed" if answered_by.is_some_and(|a| a.starts_with("machine") || a == "fax") => {
            Outcome::Machine
        }
        "completed" => Outcome::Answered,
        "busy" => Outcome::Busy,
        "no-answer" => Outcome::NoAnswer,
        "canceled" => Outcome::Cancelled,
        _ => Outcome::Failed,
    }
}

impl DialerStore {
    /// The attempt of `call_sid` if its call has not ended.
    pub async fn open_attempt(&self, call_sid: &str) -> Result<Option<OpenAttempt>, StoreError> {
        self.timed(async {
            let row = sqlx::query(
                "SELECT id, call_sid, campaign_id, started_at_us FROM attempts \
                 WHERE call_sid = $1 AND ended_at_us IS NULL",
            )
            .bind(call_sid.to_owned())
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(open_row).transpose()
        })
        .await
    }

    /// Open attempts with a call id that started before `before`, oldest first (at most 200).
    pub async fn open_attempts(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<OpenAttempt>, StoreError> {
        self.timed(async {
            let found = sqlx::query(
                "SELECT id, call_sid, campaign_id, started_at_us FROM attempts \
                 WHERE ended_at_us IS NULL AND call_sid IS NOT NULL AND started_at_us < $1 \
                 ORDER BY started_at_us LIMIT 200",
            )
            .bind(us(before))
            .fetch_all(&self.pool)
            .await?;
            found.iter().map(open_row).collect()
        })
        .await
    }

    /// A non-final status of an open attempt. True if applied.
    pub async fn call_progress(&self, call_sid: &str, status: &str) -> Result<bool, StoreError> {
        self.timed(async {
            let r = sqlx::query(
                "UPDATE attempts SET status = $1 WHERE call_sid = $2 AND ended_at_us IS NULL",
            )
            .bind(status.to_owned())
            .bind(call_sid.to_owned())
            .execute(&self.pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
        .await
    }

    /// The AMD verdict (and, when a voicemail message was started, that outcome).
    pub async fn answered_by(
        &self,
        call_sid: &str,
        answered_by: &str,
        outcome: Option<Outcome>,
    ) -> Result<bool, StoreError> {
        self.timed(async {
            let r = sqlx::query(
                "UPDATE attempts SET answered_by = $1, outcome = COALESCE($2, outcome) \
                 WHERE call_sid = $3 AND ended_at_us IS NULL",
            )
            .bind(answered_by.to_owned())
            .bind(outcome.map(|o| o.as_str().to_owned()))
            .bind(call_sid.to_owned())
            .execute(&self.pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
        .await
    }

    /// The call of an open attempt ended with `status` (Twilio's word). Decides the attempt's
    /// outcome and the contact's next step; `None` if the attempt was not open (duplicate,
    /// late, or unknown call).
    pub async fn call_ended(
        &self,
        call_sid: &str,
        status: &str,
        duration_ms: Option<u64>,
        settle: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Finished>, StoreError> {
        self.timed(async {
            let mut tx = self.pool.begin().await?;
            let r = sqlx::query(
                "UPDATE attempts SET status = $1, ended_at_us = $2, duration_ms = $3 \
                 WHERE call_sid = $4 AND ended_at_us IS NULL",
            )
            .bind(status.to_owned())
            .bind(us(now))
            .bind(duration_ms.map(|d| d as i64))
            .bind(call_sid.to_owned())
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() == 0 {
                return Ok(None);
            }
            let row = sqlx::query(
                "SELECT id, campaign_id, contact_id, answered_by, outcome FROM attempts WHERE call_sid = $1",
            )
            .bind(call_sid.to_owned())
            .fetch_one(&mut *tx)
            .await?;
            let attempt_id: String = row.try_get("id")?;
            let campaign_id: Option<String> = row.try_get("campaign_id")?;
            let contact_id: Option<String> = row.try_get("contact_id")?;
            let answered_by: Option<String> = row.try_get("answered_by")?;
            let hint: Option<String> = row.try_get("outcome")?;
            let outcome = outcome_of(status, answered_by.as_deref(), hint.as_deref());
            sqlx::query("UPDATE attempts SET outcome = $1 WHERE id = $2")
                .bind(outcome.as_str())
                .bind(attempt_id.clone())
                .execute(&mut *tx)
                .await?;
            if let (Some(contact), Some(campaign)) = (&contact_id, &campaign_id) {
                if outcome == Outcome::Answered {
                    sqlx::query(
                        "UPDATE contacts SET state = 'settling', next_at_us = $1, updated_at_us = $2 \
                         WHERE id = $3 AND state = 'dialing'",
                    )
                    .bind(us(now + settle))
                    .bind(us(now))
                    .bind(contact.clone())
                    .execute(&mut *tx)
                    .await?;
                } else {
                    conclude(&mut tx, campaign, contact, outcome, now).await?;
                }
            }
            tx.commit().await?;
            Ok(Some(Finished {
                attempt_id,
                campaign_id,
                outcome,
            }))
        })
        .await
    }

    /// The attempt failed before Twilio took the call (refused, unreachable).
    pub async fn dial_failed(
        &self,
        attempt_id: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.timed(async {
            let mut tx = self.pool.begin().await?;
            let r = sqlx::query(
                "UPDATE attempts SET status = 'failed', ended_at_us = $1, outcome = 'failed', \
                 error = $2 WHERE id = $3 AND ended_at_us IS NULL",
            )
            .bind(us(now))
            .bind(error.chars().take(500).collect::<String>())
            .bind(attempt_id.to_owned())
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() == 1 {
                let row = sqlx::query("SELECT campaign_id, contact_id FROM attempts WHERE id = $1")
                    .bind(attempt_id.to_owned())
                    .fetch_one(&mut *tx)
                    .await?;
                let campaign: Option<String> = row.try_get("campaign_id")?;
                let contact: Option<String> = row.try_get("contact_id")?;
                if let (Some(campaign), Some(contact)) = (campaign, contact) {
                    conclude(&mut tx, &campaign, &contact, Outcome::Failed, now).await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Contacts whose answered call has settled: the agent's verdict is read from the call
    /// record; `opted_out` puts the number on the do-not-call list. How many were finished.
    pub async fn settle_due(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.timed(async {
            let found = sqlx::query(
                "SELECT ct.id, ct.phone, ct.last_call_sid, c.outcome FROM contacts ct \
                 LEFT JOIN calls c ON c.call_sid = ct.last_call_sid \
                 WHERE ct.state = 'settling' AND ct.next_at_us <= $1 LIMIT 200",
            )
            .bind(us(now))
            .fetch_all(&self.pool)
            .await?;
            let mut done = 0;
            for row in &found {
                let id: String = row.try_get("id")?;
                let phone: String = row.try_get("phone")?;
                let sid: Option<String> = row.try_get("last_call_sid")?;
                let agent: Option<String> = row.try_get("outcome")?;
                let opted_out = agent.as_deref() == Some(OPTED_OUT);
                let outcome = if opted_out {
                    Outcome::OptedOut
                } else {
                    Outcome::Answered
                };
                let mut tx = self.pool.begin().await?;
                let r = sqlx::query(
                    "UPDATE contacts SET state = 'done', outcome = $1, updated_at_us = $2 \
                     WHERE id = $3 AND state = 'settling'",
                )
                .bind(outcome.as_str())
                .bind(us(now))
                .bind(id.clone())
                .execute(&mut *tx)
                .await?;
                if r.rows_affected() == 1 && opted_out {
                    sqlx::query("UPDATE attempts SET outcome = 'opted_out' WHERE call_sid = $1")
                        .bind(sid)
                        .execute(&mut *tx)
                        .await?;
                    super::dnc::insert(&mut tx, &phone, "opt_out", now).await?;
                }
                tx.commit().await?;
                done += r.rows_affected() as usize;
            }
            Ok(done)
        })
        .await
    }

    /// Pending contacts of `campaign_id` set aside with `outcome` (cancelled, or past the end).
    pub async fn expire_pending(
        &self,
        campaign_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.timed(async {
            let r = sqlx::query(
                "UPDATE contacts SET state = 'done', updated_at_us = $1, outcome = \
                 CASE WHEN (SELECT state FROM campaigns WHERE id = $2) = 'cancelled' \
                 THEN 'cancelled' ELSE 'expired' END \
                 WHERE campaign_id = $2 AND state = 'pending'",
            )
            .bind(us(now))
            .bind(campaign_id.to_owned())
            .execute(&self.pool)
            .await?;
            Ok(r.rows_affected())
        })
        .await
    }

    /// Past their end date: pending contacts expire. Running campaigns with every contact done
    /// become `completed`. Returns the ids of campaigns completed now.
    pub async fn sweep_campaigns(&self, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        self.timed(async {
            sqlx::query(
                "UPDATE contacts SET state = 'done', outcome = 'expired', updated_at_us = $1 \
                 WHERE state = 'pending' AND campaign_id IN (SELECT id FROM campaigns \
                 WHERE end_at_us IS NOT NULL AND end_at_us <= $1 AND state IN ('running', 'paused'))",
            )
            .bind(us(now))
            .execute(&self.pool)
            .await?;
            let found = sqlx::query(
                "SELECT id FROM campaigns WHERE state = 'running' AND NOT EXISTS \
                 (SELECT 1 FROM contacts WHERE contacts.campaign_id = campaigns.id \
                 AND contacts.state <> 'done')",
            )
            .fetch_all(&self.pool)
            .await?;
            let mut completed = Vec::new();
            for row in &found {
                let id: String = row.try_get("id")?;
                let r = sqlx::query(
                    "UPDATE campaigns SET state = 'completed', updated_at_us = $1 \
                     WHERE id = $2 AND state = 'running' AND NOT EXISTS (SELECT 1 FROM contacts \
                     WHERE contacts.campaign_id = $2 AND contacts.state <> 'done')",
                )
                .bind(us(now))
                .bind(id.clone())
                .execute(&self.pool)
                .await?;
                if r.rows_affected() == 1 {
                    completed.push(id);
                }
            }
            Ok(completed)
        })
        .await
    }
}

/// After an unsuccessful attempt: due again after the policy's delay while attempts remain
/// (and the campaign goes on), else done with `outcome`.
async fn conclude(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    campaign_id: &str,
    contact_id: &str,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let row = sqlx::query(
        "SELECT c.spec, c.state, ct.attempts FROM campaigns c JOIN contacts ct ON ct.campaign_id = c.id \
         WHERE ct.id = $1 AND c.id = $2",
    )
    .bind(contact_id.to_owned())
    .bind(campaign_id.to_owned())
    .fetch_one(&mut **tx)
    .await?;
    let spec: String = row.try_get("spec")?;
    let state: String = row.try_get("state")?;
    let attempts: i64 = row.try_get("attempts")?;
    let spec: Option<CampaignSpec> = serde_json::from_str(&spec).ok();
    let rule = spec.and_then(|s| s.retry.for_outcome(outcome));
    let goes_on = matches!(state.as_str(), "running" | "paused" | "draft");
    match rule {
        Some(r) if goes_on && attempts < i64::from(r.max_attempts) => {
            let at = now + Duration::seconds(r.delay_secs.min(i64::MAX as u64 / 2) as i64);
            sqlx::query(
                "UPDATE contacts SET state = 'pending', outcome = $1, next_at_us = $2, \
                 updated_at_us = $3 WHERE id = $4",
            )
            .bind(outcome.as_str())
            .bind(us(at))
            .bind(us(now))
            .bind(contact_id.to_owned())
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
        _ => set_done(tx, contact_id, outcome, now).await,
    }
}

fn open_row(row: &sqlx::any::AnyRow) -> Result<OpenAttempt, StoreError> {
    Ok(OpenAttempt {
        attempt_id: row.try_get("id")?,
        call_sid: row.try_get("call_sid")?,
        campaign_id: row.try_get("campaign_id")?,
        started_at: from_us(row.try_get("started_at_us")?),
    })
}
