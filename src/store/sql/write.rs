//! Writing records: the idempotent upsert of a finished call, the partial record of an outbound
//! call and its progress, and the recording's location.
//!
//! Merging rules when a row exists (so a partial outbound record and the session's final record
//! combine, in either order, and a repeated write changes nothing):
//! - a status replaces the stored one only if its rank is not lower ([`CallStatus::rank`]);
//! - a missing value (`NULL`) never erases a stored one; the start time is the first one seen;
//! - the stored recording location wins over the record's (only [`set_recording`] changes it);
//! - quality reasons are replaced when the record has a quality verdict.

use chrono::Utc;
use sqlx::AnyPool;

use super::rows::{Arg, Sql, int, json, opt_int, opt_text, opt_time, text, time};
use crate::store::error::StoreError;
use crate::store::record::{CallProgress, CallRecord, Recording};

const INSERT: &str = "INSERT INTO calls (call_sid, stream_sid, direction, status, status_rank, \
    from_number, to_number, agent_profile, engine, campaign_id, contact_id, started_at_us, \
    answered_at_us, ended_at_us, duration_ms, end_reason, outcome, band, mos, reasons, \
    recording_location, recording_content_type, parameters, quality_report, events, \
    updated_at_us) VALUES (";

const MERGE: &str = " ON CONFLICT (call_sid) DO UPDATE SET \
    stream_sid = COALESCE(excluded.stream_sid, calls.stream_sid), \
    status = CASE WHEN excluded.status_rank >= calls.status_rank \
        THEN excluded.status ELSE calls.status END, \
    status_rank = CASE WHEN excluded.status_rank >= calls.status_rank \
        THEN excluded.status_rank ELSE calls.status_rank END, \
    from_number = COALESCE(excluded.from_number, calls.from_number), \
    to_number = COALESCE(excluded.to_number, calls.to_number), \
    agent_profile = COALESCE(excluded.agent_profile, calls.agent_profile), \
    engine = COALESCE(excluded.engine, calls.engine), \
    campaign_id = COALESCE(excluded.campaign_id, calls.campaign_id), \
    contact_id = COALESCE(excluded.contact_id, calls.contact_id), \
    answered_at_us = COALESCE(excluded.answered_at_us, calls.answered_at_us), \
    ended_at_us = COALESCE(excluded.ended_at_us, calls.ended_at_us), \
    duration_ms = COALESCE(excluded.duration_ms, calls.duration_ms), \
    end_reason = COALESCE(excluded.end_reason, calls.end_reason), \
    outcome = COALESCE(excluded.outcome, calls.outcome), \
    band = COALESCE(excluded.band, calls.band), \
    mos = COALESCE(excluded.mos, calls.mos), \
    reasons = CASE WHEN excluded.band IS NULL THEN calls.reasons ELSE excluded.reasons END, \
    recording_content_type = CASE WHEN calls.recording_location IS NULL \
        THEN excluded.recording_content_type ELSE calls.recording_content_type END, \
    recording_location = COALESCE(calls.recording_location, excluded.recording_location), \
    parameters = CASE WHEN excluded.parameters = '{}' THEN calls.parameters \
        ELSE excluded.parameters END, \
    quality_report = COALESCE(excluded.quality_report, calls.quality_report), \
    events = excluded.events, \
    updated_at_us = excluded.updated_at_us";

/// `INSERT … VALUES (…)` for `record`, with its arguments.
fn insert(record: &CallRecord) -> Result<Sql, StoreError> {
    let sid = record.call_sid.as_str();
    if sid.is_empty() {
        return Err(StoreError::Invalid {
            call_sid: String::new(),
            message: "empty call_sid".into(),
        });
    }
    let mut record = record.clone();
    record.sanitize();
    let q = record.quality.as_ref();
    let rec = record.recording.as_ref();
    let c = &record.context;
    let t = &record.times;
    let args: Vec<Arg> = vec![
        text(sid),
        opt_text(record.stream_sid.as_deref()),
        text(record.direction.as_str()),
        text(record.status.as_str()),
        int(record.status.rank()),
        opt_text(record.from.as_deref()),
        opt_text(record.to.as_deref()),
        opt_text(c.agent_profile.as_deref()),
        opt_text(c.engine.as_deref()),
        opt_text(c.campaign_id.as_deref()),
        opt_text(c.contact_id.as_deref()),
        time(t.started_at),
        opt_time(t.answered_at),
        opt_time(t.ended_at),
        opt_int(t.duration_ms),
        opt_text(record.end_reason.as_deref()),
        opt_text(record.outcome.as_deref()),
        opt_text(q.map(|q| q.band.as_str())),
        Arg::Float(q.map(|q| q.mos)),
        json(sid, &q.map(|q| q.reasons.clone()).unwrap_or_default())?,
        opt_text(rec.map(|r| r.location.as_str())),
        opt_text(rec.map(|r| r.content_type.as_str())),
        json(sid, &c.custom_parameters)?,
        match q {
            Some(q) => json(sid, &q.report)?,
            None => Arg::Text(None),
        },
        json(sid, &record.events)?,
        time(Utc::now()),
    ];
    let mut sql = Sql::new(INSERT);
    for (i, arg) in args.into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(arg);
    }
    sql.push(")");
    Ok(sql)
}

pub async fn upsert(pool: &AnyPool, record: &CallRecord) -> Result<(), StoreError> {
    let mut sql = insert(record)?;
    sql.push(MERGE);
    let mut tx = pool.begin().await?;
    sql.query().execute(&mut *tx).await?;
    if let Some(q) = &record.quality {
        sqlx::query("DELETE FROM call_reasons WHERE call_sid = $1")
            .bind(record.call_sid.clone())
            .execute(&mut *tx)
            .await?;
        for reason in &q.reasons {
            sqlx::query("INSERT INTO call_reasons (call_sid, reason) VALUES ($1, $2)")
                .bind(record.call_sid.clone())
                .bind(reason.as_str())
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Insert `record` unless its call is known already. True if it was inserted.
pub async fn create_if_absent(pool: &AnyPool, record: &CallRecord) -> Result<bool, StoreError> {
    let mut sql = insert(record)?;
    sql.push(" ON CONFLICT (call_sid) DO NOTHING");
    let mut tx = pool.begin().await?;
    let inserted = sql.query().execute(&mut *tx).await?.rows_affected() == 1;
    if let (true, Some(q)) = (inserted, &record.quality) {
        for reason in &q.reasons {
            sqlx::query("INSERT INTO call_reasons (call_sid, reason) VALUES ($1, $2)")
                .bind(record.call_sid.clone())
                .bind(reason.as_str())
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Apply a status change. True if applied, false if the stored status is further along;
/// [`StoreError::NotFound`] if there is no such call.
pub async fn update_progress(pool: &AnyPool, p: &CallProgress) -> Result<bool, StoreError> {
    let mut sql = Sql::new("UPDATE calls SET status = ");
    sql.bind(text(p.status.as_str()));
    sql.push(", status_rank = ").bind(int(p.status.rank()));
    sql.push(", answered_at_us = COALESCE(")
        .bind(opt_time(p.answered_at))
        .push(", answered_at_us)");
    sql.push(", ended_at_us = COALESCE(")
        .bind(opt_time(p.ended_at))
        .push(", ended_at_us)");
    sql.push(", duration_ms = COALESCE(")
        .bind(opt_int(p.duration_ms))
        .push(", duration_ms)");
    sql.push(", end_reason = COALESCE(")
        .bind(opt_text(p.end_reason.as_deref()))
        .push(", end_reason)");
    sql.push(", updated_at_us = ").bind(time(p.at));
    sql.push(" WHERE call_sid = ").bind(text(&p.call_sid));
    sql.push(" AND status_rank <= ").again(2);
    if sql.query().execute(pool).await?.rows_affected() == 1 {
        return Ok(true);
    }
    exists(pool, &p.call_sid).await?;
    Ok(false)
}

/// Set (or with `None`, clear) the recording's location.
pub async fn set_recording(
    pool: &AnyPool,
    call_sid: &str,
    recording: Option<&Recording>,
) -> Result<(), StoreError> {
    let mut sql = Sql::new("UPDATE calls SET recording_location = ");
    sql.bind(opt_text(recording.map(|r| r.location.as_str())));
    sql.push(", recording_content_type = ")
        .bind(opt_text(recording.map(|r| r.content_type.as_str())));
    sql.push(", updated_at_us = ").bind(time(Utc::now()));
    sql.push(" WHERE call_sid = ").bind(text(call_sid));
    if sql.query().execute(pool).await?.rows_affected() == 0 {
        return Err(StoreError::NotFound(call_sid.to_owned()));
    }
    Ok(())
}

async fn exists(pool: &AnyPool, call_sid: &str) -> Result<(), StoreError> {
    let found = sqlx::query("SELECT call_sid FROM calls WHERE call_sid = $1")
        .bind(call_sid.to_owned())
        .fetch_optional(pool)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound(call_sid.to_owned())),
    }
}
