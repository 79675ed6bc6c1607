//! Call history: the filter form (time, direction, number, band, reason, campaign, status) and
//! one cursor page of the store's list, newest first.
//!
//! The form's values go through the API's own query parser ([`parse_list`]) after empty fields
//! are dropped and browser `datetime-local` values are read as UTC; a bad value renders the page
//! with the parser's message (400), never a 5xx.

use std::sync::Arc;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDateTime;

use crate::api::query::parse_list;
use crate::console::ConsoleState;
use crate::console::auth::Operator;
use crate::console::view::{self, Nav, html};
use crate::quality::report::{Band, Reason};
#[allow(unused_imports)]
use crate::store::CallStore as _;
use crate::store::filter::CallBrief;

/// One history row, as text.
pub struct Row {
    pub call_sid: String,
    pub started: String,
    pub direction: &'static str,
    pub from: String,
    pub to: String,
    pub duration: String,
    pub status: &'static str,
    pub end_reason: String,
    pub band: String,
    pub mos: String,
    pub reasons: String,
    pub campaign: String,
}

impl Row {
    fn of(b: &CallBrief) -> Self {
        Self {
            call_sid: b.call_sid.clone(),
            started: view::time(b.times.started_at),
            direction: b.direction.as_str(),
            from: view::or_dash(b.from.as_deref()),
            to: view::or_dash(b.to.as_deref()),
            duration: b.times.duration_ms.map_or("—".into(), view::duration),
            status: b.status.as_str(),
            end_reason: view::or_dash(b.end_reason.as_deref()),
            band: b.band.map_or("—".into(), |b| b.as_str().to_owned()),
            mos: b.mos.map_or("—".into(), |m| format!("{m:.2}")),
            reasons: b
                .reasons
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            campaign: view::or_dash(b.context.campaign_id.as_deref()),
        }
    }
}

/// The form's current values (to show them back).
#[derive(Default)]
pub struct Filters {
    pub since: String,
    pub until: String,
    pub direction: String,
    pub number: String,
    pub band: String,
    pub reason: String,
    pub campaign_id: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "console/calls.html")]
struct CallsPage {
    nav: Nav,
    f: Filters,
    bands: Vec<&'static str>,
    reasons: Vec<&'static str>,
    statuses: Vec<&'static str>,
    rows: Vec<Row>,
    error: String,
    /// The query string of the next page, when there is one.
    next: String,
}

/// The form's non-empty fields, with `datetime-local` values as RFC 3339 UTC.
pub fn normalize(raw: &str) -> Result<(Vec<(String, String)>, Filters), String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw).map_err(|e| format!("not a valid query string: {e}"))?;
    let mut f = Filters::default();
    let mut out = Vec::new();
    for (k, v) in pairs {
        let v = v.trim().to_owned();
        if v.is_empty() {
            continue;
        }
        let slot = match k.as_str() {
            "since" => Some(&mut f.since),
            "until" => Some(&mut f.until),
            "direction" => Some(&mut f.direction),
            "number" => Some(&mut f.number),
            "band" => Some(&mut f.band),
            "reason" => Some(&mut f.reason),
            "campaign_id" => Some(&mut f.campaign_id),
            "status" => Some(&mut f.status),
            _ => None,
        };
        if let Some(slot) = slot {
            *slot = v.clone();
        }
        let v = if matches!(k.as_str(), "since" | "until") {
            local_as_utc(&v).unwrap_or(v)
        } else {
            v
        };
        out.push((k, v));
    }
    Ok((out, f))
}

/// `2024-05-01T10:00` (what a `datetime-local` input sends) as `2024-05-01T10:00:00Z`.
fn local_as_utc(v: &str) -> Option<String> {
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|fmt| NaiveDateTime::parse_from_str(v, fmt).ok())
        .map(|t| t.and_utc().to_rfc3339())
}

/// `GET /console/calls`.
pub async fn list(
    State(state): State<Arc<ConsoleState>>,
    op: Operator,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut page = CallsPage {
        nav: Nav::new("calls", &op.csrf),
        f: Filters::default(),
        bands: Band::ALL.map(Band::as_str).to_vec(),
        reasons: Reason::ALL.map(Reason::as_str).to_vec(),
        statuses: crate::store::record::CallStatus::ALL
            .map(|s| s.as_str())
            .to_vec(),
        rows: Vec::new(),
        error: String::new(),
        next: String::new(),
    };
    let (pairs, filters) = match normalize(raw.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(e) => {
            page.error = e;
            return html(StatusCode::BAD_REQUEST, &page);
        }
    };
    page.f = filters;
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let req = match parse_list(Some(&query)) {
        Ok(r) => r,
        Err(p) => {
            crate::console::auth::refuse("bad_input", &p.detail);
            page.error = p.detail;
            return html(StatusCode::BAD_REQUEST, &page);
        }
    };
    let store = match state.api.store.as_ref() {
        Some(s) => s,
        None => {
            page.error = "Call records are off (store.url is empty).".into();
            return html(StatusCode::SERVICE_UNAVAILABLE, &page);
        }
    };
    match store
        .list(&req.filter, req.limit, req.cursor.as_ref())
        .await
    {
        Ok(list) => {
            page.rows = list.calls.iter().map(Row::of).collect();
            if let Some(cursor) = list.next_cursor {
                let mut next: Vec<(String, String)> =
                    pairs.into_iter().filter(|(k, _)| k != "cursor").collect();
                next.push(("cursor".into(), cursor));
                page.next = serde_urlencoded::to_string(&next).unwrap_or_default();
            }
            html(StatusCode::OK, &page)
        }
        Err(e) => {
            let p = crate::api::Problem::from(e);
            page.error = p.detail;
            html(
                StatusCode::from_u16(p.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                &page,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_become_api_query() {
        let (pairs, f) =
            normalize("since=2024-05-01T10%3A00&until=&direction=inbound&band=&campaign_id=CP1")
                .unwrap();
        assert_eq!(f.direction, "inbound");
        assert_eq!(f.since, "2024-05-01T10:00");
        let q = serde_urlencoded::to_string(&pairs).unwrap();
        let req = parse_list(Some(&q)).unwrap();
        assert_eq!(req.filter.campaign_id.as_deref(), Some("CP1"));
        assert!(req.filter.since.is_some());
        assert!(req.filter.until.is_none());
        let (pairs, _) = normalize("band=awful").unwrap();
        let q = serde_urlencoded::to_string(&pairs).unwrap();
        assert_eq!(
            parse_list(Some(&q)).unwrap_err().parameter.as_deref(),
            Some("band")
        );
    }
}
