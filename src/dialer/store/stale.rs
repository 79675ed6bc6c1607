//! Claims left behind by a dead instance: attempts still `dialing` with no call id, because
//! the instance died between claiming the contact and storing Twilio's answer to the create.
//! The dispatcher asks Twilio whether such a call exists before it undoes the claim; this file
//! only reads the claims and applies what was decided.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::DialerStore;
use super::rows::{from_us, us};
use crate::dialer::model::CampaignSpec;
use crate::store::StoreError;

/// One claim with no call id, and what identifies its call at Twilio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleClaim {
    pub attempt_id: String,
    /// The contact's number (campaign attempts only).
    pub phone: Option<String>,
    /// The campaign's caller id (campaign attempts only).
    pub caller_id: Option<String>,
    pub started_at: DateTime<Utc>,
}

impl DialerStore {
    /// Attempts still `dialing` (no call id, not ended) claimed before `before`.
    pub async fn stale_claims(&self, before: DateTime<Utc>) -> Result<Vec<StaleClaim>, StoreError> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT a.id, a.started_at_us, c.phone, k.spec FROM attempts a \
                 LEFT JOIN contacts c ON c.id = a.contact_id \
                 LEFT JOIN campaigns k ON k.id = a.campaign_id \
                 WHERE a.status = 'dialing' AND a.call_sid IS NULL AND a.ended_at_us IS NULL \
                 AND a.started_at_us < $1 ORDER BY a.started_at_us LIMIT 500",
            )
            .bind(us(before))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let spec: Option<String> = r.try_get("spec")?;
                    let caller_id = spec
                        .and_then(|s| serde_json::from_str::<CampaignSpec>(&s).ok())
                        .map(|s| s.caller_id);
                    Ok(StaleClaim {
                        attempt_id: r.try_get("id")?,
                        phone: r.try_get("phone")?,
                        caller_id,
                        started_at: from_us(r.try_get("started_at_us")?),
                    })
                })
                .collect()
        })
        .await
    }

    /// Is `call_sid` some attempt's call already?
    pub async fn sid_known(&self, call_sid: &str) -> Result<bool, StoreError> {
        self.timed(async {
            Ok(sqlx::query("SELECT id FROM attempts WHERE call_sid = $1")
                .bind(call_sid.to_owned())
                .fetch_optional(&self.pool)
                .await?
                .is_some())
        })
        .await
    }

    /// No call was placed for the claim: undo it (the contact is due again at `now`, with its
    /// attempt count as before).
    pub async fn undo_claim(&self, attempt_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.throttled(attempt_id, now).await
    }
}
