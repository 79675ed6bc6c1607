//! Reading records: one by id, and filtered pages newest first (keyset pagination on
//! `(started_at_us, call_sid)`, so a page costs the same however deep it is).

use sqlx::AnyPool;

use super::rows::{self, Sql, text, time};
use crate::store::error::StoreError;
use crate::store::filter::{CallFilter, CallPage, Cursor, MAX_PAGE};
use crate::store::record::CallRecord;

pub async fn get(pool: &AnyPool, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
    let sql = format!(
        "SELECT {} FROM calls WHERE call_sid = $1",
        rows::RECORD_COLUMNS
    );
    let row = sqlx::query(&sql)
        .bind(call_sid.to_owned())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::record).transpose()
}

pub async fn list(
    pool: &AnyPool,
    filter: &CallFilter,
    limit: u32,
    after: Option<&Cursor>,
) -> Result<CallPage, StoreError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut sql = Sql::new(&format!(
        "SELECT {} FROM calls c WHERE 1 = 1",
        rows::BRIEF_COLUMNS
    ));
    if let Some(t) = filter.since {
        sql.push(" AND c.started_at_us >= ").bind(time(t));
    }
    if let Some(t) = filter.until {
        sql.push(" AND c.started_at_us < ").bind(time(t));
    }
    if let Some(d) = filter.direction {
        sql.push(" AND c.direction = ").bind(text(d.as_str()));
    }
    if let Some(s) = filter.status {
        sql.push(" AND c.status = ").bind(text(s.as_str()));
    }
    if let Some(n) = &filter.number {
        sql.push(" AND (c.from_number = ").bind(text(n));
        let i = sql.args.len();
        sql.push(" OR c.to_number = ").again(i).push(")");
    }
    if let Some(b) = filter.band {
        sql.push(" AND c.band = ").bind(text(b.as_str()));
    }
    if let Some(r) = filter.reason {
        sql.push(" AND EXISTS (SELECT 1 FROM call_reasons r WHERE r.call_sid = c.call_sid AND r.reason = ")
            .bind(text(r.as_str()))
            .push(")");
    }
    if let Some(e) = &filter.end_reason {
        sql.push(" AND c.end_reason = ").bind(text(e));
    }
    if let Some(o) = &filter.outcome {
        sql.push(" AND c.outcome = ").bind(text(o));
    }
    if let Some(a) = &filter.agent_profile {
        sql.push(" AND c.agent_profile = ").bind(text(a));
    }
    if let Some(id) = &filter.campaign_id {
        sql.push(" AND c.campaign_id = ").bind(text(id));
    }
    if let Some(cur) = after {
        sql.push(" AND (c.started_at_us < ")
            .bind(rows::int(cur.started_at_us));
        let i = sql.args.len();
        sql.push(" OR (c.started_at_us = ")
            .again(i)
            .push(" AND c.call_sid < ")
            .bind(text(&cur.call_sid))
            .push("))");
    }
    sql.push(" ORDER BY c.started_at_us DESC, c.call_sid DESC LIMIT ")
        .bind(rows::int(i64::from(limit) + 1));
    let found = sql.query().fetch_all(pool).await?;
    let mut calls = found
        .iter()
        .map(rows::brief)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if calls.len() > limit as usize {
        calls.truncate(limit as usize);
        calls.last().map(|last| {
            Cursor {
                started_at_us: last.times.started_at.timestamp_micros(),
                call_sid: last.call_sid.clone(),
            }
            .encode()
        })
    } else {
        None
    };
    Ok(CallPage { calls, next_cursor })
}
