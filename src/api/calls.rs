//! Call records: list, one record, and its transcript (JSON or plain text).

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::problem::Problem;
use super::query::{CallSid, CallSidParam, ListQuery, parse_list};
use crate::store::events::Transcript;
use crate::store::filter::CallPage;
use crate::store::record::CallRecord;

/// List call records
///
/// Newest first. All filters must hold. Page with `limit` and the `next_cursor` of the
/// previous page; a bad, unknown or repeated parameter is a 400 naming it.
#[utoipa::path(
    get,
    path = "/api/calls",
    operation_id = "listCalls",
    tag = "calls",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of calls", body = CallPage),
        (status = 400, description = "A bad query parameter (named in `parameter`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token configured and the client is not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Call records are off, or the database is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<CallPage>, Problem> {
    let req = parse_list(raw.as_deref())?;
    let store = state.store()?;
    let page = store
        .list(&req.filter, req.limit, req.cursor.as_ref())
        .await?;
    Ok(Json(page))
}

/// One call record
///
/// The whole record: parties, context, times, outcome, quality report, turns, DTMF, actions,
/// provider errors, alerts, the per-second quality timeline and the recording's location.
#[utoipa::path(
    get,
    path = "/api/calls/{call_sid}",
    operation_id = "getCall",
    tag = "calls",
    params(CallSidParam),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The call's record", body = CallRecord),
        (status = 400, description = "Bad call_sid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token configured and the client is not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Call records are off, or the database is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<Arc<ApiState>>,
    CallSid(call_sid): CallSid,
) -> Result<Json<CallRecord>, Problem> {
    Ok(Json(state.record(&call_sid).await?))
}

/// A call's transcript
///
/// Every turn in order with its offsets, latencies and whether it was interrupted; with
/// `Accept: text/plain`, one line per turn (`[mm:ss.t] caller: …`).
#[utoipa::path(
    get,
    path = "/api/calls/{call_sid}/transcript",
    operation_id = "getTranscript",
    tag = "calls",
    params(CallSidParam),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The transcript", content(
            (Transcript = "application/json"),
            (String = "text/plain"),
        )),
        (status = 400, description = "Bad call_sid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token configured and the client is not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Call records are off, or the database is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn transcript(
    State(state): State<Arc<ApiState>>,
    CallSid(call_sid): CallSid,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let record = state.record(&call_sid).await?;
    let transcript = Transcript {
        call_sid: record.call_sid,
        turns: record.events.turns,
    };
    if prefers_text(&headers) {
        let mut res = transcript.to_text().into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return Ok(res);
    }
    Ok(Json(transcript).into_response())
}

/// Whether `Accept` ranks `text/plain` above `application/json` (JSON wins ties and absence).
pub fn prefers_text(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut text = 0.0_f32;
    let mut json = 0.0_f32;
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "text/plain" => text = text.max(q),
            "application/json" | "application/*" | "*/*" => json = json.max(q),
            _ => {}
        }
    }
    text > json
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn negotiation() {
        assert!(!prefers_text(&HeaderMap::new()));
        assert!(prefers_text(&accept("text/plain")));
        assert!(!prefers_text(&accept("application/json")));
        assert!(!prefers_text(&accept("text/plain, application/json")));
        assert!(prefers_text(&accept("application/json;q=0.5, text/plain")));
        assert!(prefers_text(&accept("text/plain, */*;q=0.1")));
        assert!(!prefers_text(&accept("*/*")));
    }
}
