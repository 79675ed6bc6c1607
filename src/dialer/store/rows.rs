//! Row decoding for the campaign tables and time conversions (microseconds since the epoch).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::dialer::model::{Attempt, Campaign, CampaignState, Contact, ContactState, Outcome};
use crate::store::StoreError;

pub fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_us(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or_default()
}

fn corrupt(what: &str, id: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        call_sid: format!("{what} {id}"),
        message: e.to_string(),
    }
}

pub const CAMPAIGN_COLUMNS: &str = "id, state, spec, created_at_us, updated_at_us";

pub fn campaign(row: &AnyRow) -> Result<Campaign, StoreError> {
    let id: String = row.try_get("id")?;
    let state: String = row.try_get("state")?;
    let spec: String = row.try_get("spec")?;
    Ok(Campaign {
        state: CampaignState::parse(&state).ok_or_else(|| corrupt("campaign", &id, &state))?,
        spec: serde_json::from_str(&spec).map_err(|e| corrupt("campaign", &id, e))?,
        created_at: from_us(row.try_get("created_at_us")?),
        updated_at: from_us(row.try_get("updated_at_us")?),
        id,
    })
}

pub const CONTACT_COLUMNS: &str =
    "id, line, phone, name, timezone, variables, state, attempts, next_at_us, outcome";

pub fn contact(row: &AnyRow) -> Result<Contact, StoreError> {
    let id: String = row.try_get("id")?;
    let state: String = row.try_get("state")?;
    let variables: String = row.try_get("variables")?;
    let outcome: Option<String> = row.try_get("outcome")?;
    let state = ContactState::parse(&state).ok_or_else(|| corrupt("contact", &id, &state))?;
    let next: i64 = row.try_get("next_at_us")?;
    Ok(Contact {
        line: row.try_get::<i64, _>("line")? as u32,
        phone: row.try_get("phone")?,
        name: row.try_get("name")?,
        timezone: row.try_get("timezone")?,
        variables: serde_json::from_str::<BTreeMap<String, String>>(&variables)
            .map_err(|e| corrupt("contact", &id, e))?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        next_attempt_at: (state == ContactState::Pending).then(|| from_us(next)),
        outcome: outcome.as_deref().and_then(Outcome::parse),
        state,
        history: Vec::new(),
        id,
    })
}

pub const ATTEMPT_COLUMNS: &str = "a.id, a.contact_id, a.number, a.call_sid, a.status, \
    a.answered_by, a.started_at_us, a.ended_at_us, a.duration_ms, a.outcome, a.error, \
    c.outcome AS agent_outcome";

pub fn attempt(row: &AnyRow) -> Result<Attempt, StoreError> {
    let call_sid: Option<String> = row.try_get("call_sid")?;
    let outcome: Option<String> = row.try_get("outcome")?;
    Ok(Attempt {
        id: row.try_get("id")?,
        number: row.try_get::<i64, _>("number")? as u32,
        record: call_sid.as_ref().map(|s| format!("/api/calls/{s}")),
        call_sid,
        status: row.try_get("status")?,
        answered_by: row.try_get("answered_by")?,
        started_at: from_us(row.try_get("started_at_us")?),
        ended_at: row.try_get::<Option<i64>, _>("ended_at_us")?.map(from_us),
        duration_ms: row
            .try_get::<Option<i64>, _>("duration_ms")?
            .map(|d| d.max(0) as u64),
        outcome: outcome.as_deref().and_then(Outcome::parse),
        agent_outcome: row.try_get("agent_outcome")?,
        error: row.try_get("error")?,
    })
}
