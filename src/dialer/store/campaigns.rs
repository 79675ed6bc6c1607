//! Campaign rows: create, read, list, state changes, contacts (add, list with attempts) and
//! progress counts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::rows::{self, ATTEMPT_COLUMNS, CAMPAIGN_COLUMNS, CONTACT_COLUMNS, us};
use super::{DialerStore, new_id};
use crate::dialer::contacts::{NewContact, RowError};
use crate::dialer::model::{
    Campaign, CampaignProgress, CampaignSpec, CampaignState, Contact, ContactState,
};
use crate::store::StoreError;

/// Why a state change was refused.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error("no campaign {0}")]
    NotFound(String),
    #[error("a {from} campaign cannot become {to}")]
    Refused {
        from: &'static str,
        to: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DialerStore {
    pub async fn create_campaign(
        &self,
        spec: &CampaignSpec,
        now: DateTime<Utc>,
    ) -> Result<Campaign, StoreError> {
        let id = new_id("CP");
        let json = serde_json::to_string(spec).map_err(|e| StoreError::Invalid {
            call_sid: id.clone(),
            message: e.to_string(),
        })?;
        self.timed(async {
            sqlx::query(
                "INSERT INTO campaigns (id, name, state, spec, max_concurrent, cps, end_at_us, \
                 created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(id.clone())
            .bind(spec.name.clone())
            .bind(CampaignState::Draft.as_str())
            .bind(json)
            .bind(i64::from(spec.max_concurrent))
            .bind(spec.cps)
            .bind(spec.end_at.map(us))
            .bind(us(now))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await?;
        Ok(Campaign {
            id,
            state: CampaignState::Draft,
            spec: spec.clone(),
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn campaign(&self, id: &str) -> Result<Option<Campaign>, StoreError> {
        self.timed(async {
            let q = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1");
            let row = sqlx::query(&q)
                .bind(id.to_owned())
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(rows::campaign).transpose()
        })
        .await
    }

    /// Campaigns, newest first (at most 500); only those in `state` when given.
    pub async fn campaigns(
        &self,
        state: Option<CampaignState>,
    ) -> Result<Vec<Campaign>, StoreError> {
        self.timed(async {
            let q = format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE ($1 = '' OR state = $1) \
                 ORDER BY created_at_us DESC, id DESC LIMIT 500"
            );
            let found = sqlx::query(&q)
                .bind(state.map_or("", CampaignState::as_str))
                .fetch_all(&self.pool)
                .await?;
            found.iter().map(rows::campaign).collect()
        })
        .await
    }

    /// Move a campaign to `to`, if its current state allows it.
    pub async fn set_state(
        &self,
        id: &str,
        to: CampaignState,
        now: DateTime<Utc>,
    ) -> Result<Campaign, TransitionError> {
        let from: Vec<&str> = CampaignState::ALL
            .into_iter()
            .filter(|s| s.may_become(to))
            .map(CampaignState::as_str)
            .collect();
        let list = from
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let q = format!(
            "UPDATE campaigns SET state = $1, updated_at_us = $2 WHERE id = $3 AND state IN ({list})"
        );
        let changed = self
            .timed(async {
                let r = sqlx::query(&q)
                    .bind(to.as_str())
                    .bind(us(now))
                    .bind(id.to_owned())
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() == 1)
            })
            .await?;
        let Some(campaign) = self.campaign(id).await? else {
            return Err(TransitionError::NotFound(id.to_owned()));
        };
        if !changed && campaign.state != to {
            return Err(TransitionError::Refused {
                from: campaign.state.as_str(),
                to: to.as_str(),
            });
        }
        if to == CampaignState::Cancelled {
            self.expire_pending(id, now).await?;
        }
        Ok(campaign)
    }

    /// Add contacts (pending, due now); a phone already in the campaign is rejected.
    pub async fn add_contacts(
        &self,
        campaign_id: &str,
        contacts: &[NewContact],
        now: DateTime<Utc>,
    ) -> Result<(u64, Vec<RowError>), StoreError> {
        let mut added = 0;
        let mut rejected = Vec::new();
        let mut tx = self.pool.begin().await?;
        for c in contacts {
            let vars = serde_json::to_string(&c.variables).unwrap_or_else(|_| "{}".into());
            let r = sqlx::query(
                "INSERT INTO contacts (id, campaign_id, line, phone, name, timezone, variables, \
                 state, attempts, next_at_us, updated_at_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8) \
                 ON CONFLICT (campaign_id, phone) DO NOTHING",
            )
            .bind(new_id("CT"))
            .bind(campaign_id.to_owned())
            .bind(i64::from(c.line))
            .bind(c.phone.clone())
            .bind(c.name.clone())
            .bind(c.timezone.clone())
            .bind(vars)
            .bind(us(now))
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() == 1 {
                added += 1;
            } else {
                rejected.push(RowError {
                    line: c.line,
                    error: format!("phone {} is already in the campaign", c.phone),
                });
            }
        }
        tx.commit().await?;
        Ok((added, rejected))
    }

    /// Contacts in upload order with their attempts, `limit` from `offset`.
    pub async fn contacts(
        &self,
        campaign_id: &str,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Contact>, StoreError> {
        self.timed(async {
            let q = format!(
                "SELECT {CONTACT_COLUMNS} FROM contacts WHERE campaign_id = $1 \
                 ORDER BY line, id LIMIT $2 OFFSET $3"
            );
            let found = sqlx::query(&q)
                .bind(campaign_id.to_owned())
                .bind(i64::from(limit))
                .bind(offset as i64)
                .fetch_all(&self.pool)
                .await?;
            let mut contacts: Vec<Contact> =
                found.iter().map(rows::contact).collect::<Result<_, _>>()?;
            let q = format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts a LEFT JOIN calls c ON c.call_sid = a.call_sid \
                 WHERE a.campaign_id = $1 ORDER BY a.contact_id, a.number"
            );
            let attempts = sqlx::query(&q)
                .bind(campaign_id.to_owned())
                .fetch_all(&self.pool)
                .await?;
            let mut by_contact: BTreeMap<String, Vec<_>> = BTreeMap::new();
            for row in &attempts {
                let contact: Option<String> = row.try_get("contact_id")?;
                by_contact
                    .entry(contact.unwrap_or_default())
                    .or_default()
                    .push(rows::attempt(row)?);
            }
            for c in &mut contacts {
                c.history = by_contact.remove(&c.id).unwrap_or_default();
            }
            Ok(contacts)
        })
        .await
    }

    pub async fn progress(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CampaignProgress>, StoreError> {
        let Some(campaign) = self.campaign(id).await? else {
            return Ok(None);
        };
        self.timed(async {
            let mut by_state = BTreeMap::new();
            let mut by_outcome = BTreeMap::new();
            let mut contacts = 0;
            let found = sqlx::query(
                "SELECT state, outcome, COUNT(*) AS n FROM contacts WHERE campaign_id = $1 \
                 GROUP BY state, outcome",
            )
            .bind(id.to_owned())
            .fetch_all(&self.pool)
            .await?;
            for row in &found {
                let state: String = row.try_get("state")?;
                let outcome: Option<String> = row.try_get("outcome")?;
                let n = row.try_get::<i64, _>("n")?.max(0) as u64;
                contacts += n;
                *by_state.entry(state.clone()).or_insert(0) += n;
                if let (Some(o), true) = (outcome, state == ContactState::Done.as_str()) {
                    *by_outcome.entry(o).or_insert(0) += n;
                }
            }
            let count = |sql: &'static str, since: i64| {
                let id = id.to_owned();
                async move {
                    let row = sqlx::query(sql)
                        .bind(id)
                        .bind(since)
                        .fetch_one(&self.pool)
                        .await?;
                    Ok::<u64, StoreError>(row.try_get::<i64, _>("n")?.max(0) as u64)
                }
            };
            let in_progress = count(
                "SELECT COUNT(*) AS n FROM attempts WHERE campaign_id = $1 AND ended_at_us IS NULL \
                 AND started_at_us >= $2",
                0,
            )
            .await?;
            let recent = count(
                "SELECT COUNT(*) AS n FROM attempts WHERE campaign_id = $1 AND started_at_us >= $2",
                us(now) - 60_000_000,
            )
            .await?;
            let attempts = count(
                "SELECT COUNT(*) AS n FROM attempts WHERE campaign_id = $1 AND started_at_us >= $2",
                0,
            )
            .await?;
            Ok(Some(CampaignProgress {
                campaign,
                contacts,
                by_state,
                by_outcome,
                in_progress,
                dial_rate: recent as f64 / 60.0,
                attempts,
            }))
        })
        .await
    }
}
