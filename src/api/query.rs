//! Parsing request input: the call list's query string and the `{call_sid}` path segment.
//!
//! Every failure is a 400 problem naming the parameter. The [`ListQuery`] struct exists to
//! describe the parameters in the OpenAPI document (constraints there match the checks here);
//! parsing is done by hand so unknown and repeated parameters are refused by name.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::problem::Problem;
use crate::quality::report::{Band, Reason};
use crate::store::filter::{CallFilter, Cursor, DEFAULT_PAGE, MAX_PAGE};
use crate::store::record::{CallStatus, Direction};

/// A call id as it may appear in a path: 1–64 of `A-Z a-z 0-9 _ -`.
pub const CALL_SID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// Filters and paging of `GET /api/calls`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListQuery {
    /// Calls that started at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Calls that started before this time (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
    pub direction: Option<Direction>,
    pub status: Option<CallStatus>,
    /// Either party's number (from or to), exactly as stored (E.164, e.g. +14155550100).
    #[param(pattern = "^[!-~]{1,128}$")]
    pub number: Option<String>,
    pub band: Option<Band>,
    /// A quality reason the call was flagged with.
    pub reason: Option<Reason>,
    /// Why the call ended (e.g. stop, agent_hangup, idle_timeout).
    #[param(pattern = "^[a-z0-9_]{1,64}$")]
    pub end_reason: Option<String>,
    /// The agent's verdict on the call (e.g. interested).
    #[param(pattern = "^[a-z0-9_]{1,64}$")]
    pub outcome: Option<String>,
    #[param(pattern = "^[!-~]{1,128}$")]
    pub agent_profile: Option<String>,
    #[param(pattern = "^[!-~]{1,128}$")]
    pub campaign_id: Option<String>,
    /// Rows per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,256}$")]
    pub cursor: Option<String>,
}

/// What a list request asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRequest {
    pub filter: CallFilter,
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

/// Parse the raw query string of `GET /api/calls`.
pub fn parse_list(raw: Option<&str>) -> Result<ListRequest, Problem> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| Problem::bad_parameter("query", format!("not a valid query string: {e}")))?;
    let mut req = ListRequest {
        filter: CallFilter::default(),
        limit: DEFAULT_PAGE,
        cursor: None,
    };
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in &pairs {
        if seen.contains(&key.as_str()) {
            return Err(Problem::bad_parameter(key, "given more than once"));
        }
        seen.push(key);
        let f = &mut req.filter;
        let v = value.as_str();
        match key.as_str() {
            "since" => f.since = Some(time(key, v)?),
            "until" => f.until = Some(time(key, v)?),
            "direction" => {
                f.direction = Some(one_of(key, v, Direction::parse, "inbound, outbound")?)
            }
            "status" => f.status = Some(one_of(key, v, CallStatus::parse, &statuses())?),
            "number" => f.number = Some(text(key, v)?),
            "band" => f.band = Some(one_of(key, v, band, "good, fair, poor")?),
            "reason" => f.reason = Some(one_of(key, v, reason, &reasons())?),
            "end_reason" => f.end_reason = Some(end_reason(key, v)?),
            "outcome" => f.outcome = Some(end_reason(key, v)?),
            "agent_profile" => f.agent_profile = Some(text(key, v)?),
            "campaign_id" => f.campaign_id = Some(text(key, v)?),
            "limit" => req.limit = limit(key, v)?,
            "cursor" => {
                req.cursor = Some(Cursor::decode(v).ok_or_else(|| {
                    Problem::bad_parameter(key, "not a cursor this server handed out")
                })?)
            }
            other => {
                return Err(Problem::bad_parameter(
                    other,
                    "unknown parameter (see GET /api/openapi.json)",
                ));
            }
        }
    }
    if let (Some(a), Some(b)) = (req.filter.since, req.filter.until)
        && a > b
    {
        return Err(Problem::bad_parameter("until", "is before since"));
    }
    Ok(req)
}

fn time(key: &str, v: &str) -> Result<DateTime<Utc>, Problem> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Problem::bad_parameter(key, format!("{v:?} is not an RFC 3339 time ({e})")))
}

fn one_of<T>(
    key: &str,
    v: &str,
    parse: fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<T, Problem> {
    parse(v).ok_or_else(|| Problem::bad_parameter(key, format!("{v:?} is not one of {allowed}")))
}

fn band(s: &str) -> Option<Band> {
    Band::ALL.into_iter().find(|b| b.as_str() == s)
}

fn reason(s: &str) -> Option<Reason> {
    Reason::ALL.into_iter().find(|r| r.as_str() == s)
}

fn reasons() -> String {
    Reason::ALL.map(Reason::as_str).join(", ")
}

fn statuses() -> String {
    CallStatus::ALL.map(CallStatus::as_str).join(", ")
}

fn text(key: &str, v: &str) -> Result<String, Problem> {
    let ok = (1..=128).contains(&v.len()) && v.bytes().all(|b| (b'!'..=b'~').contains(&b));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(Problem::bad_parameter(
            key,
            "must be 1 to 128 visible ASCII characters",
        ))
    }
}

fn end_reason(key: &str, v: &str) -> Result<String, Problem> {
    let ok = (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(v.to_owned())
    } else {
        Err(Problem::bad_parameter(
            key,
            "must be 1 to 64 of a-z, 0-9 and _",
        ))
    }
}

fn limit(key: &str, v: &str) -> Result<u32, Problem> {
    match v.parse::<u32>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(Problem::bad_parameter(
            key,
            format!("must be an integer from 1 to {MAX_PAGE}"),
        )),
    }
}

/// The `{call_sid}` path segment, checked against [`CALL_SID_PATTERN`].
#[derive(Debug, Clone)]
pub struct CallSid(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CallSid {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(sid) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| Problem::bad_parameter("call_sid", e.body_text()))?;
        let ok = (1..=64).contains(&sid.len())
            && sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(sid))
        } else {
            Err(Problem::bad_parameter(
                "call_sid",
                "must be 1 to 64 of A-Z, a-z, 0-9, _ and -",
            ))
        }
    }
}

/// Documents the `{call_sid}` path parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct CallSidParam {
    /// The call's id (Twilio CallSid).
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub call_sid: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(raw: &str) -> Option<String> {
        parse_list(Some(raw)).err().and_then(|p| p.parameter)
    }

    #[test]
    fn list_query() {
        let r = parse_list(Some(
            "since=2024-05-01T00:00:00Z&direction=outbound&band=poor&reason=packet_loss&limit=2&number=%2B14155550100",
        ))
        .unwrap();
        assert_eq!(r.limit, 2);
        assert_eq!(r.filter.direction, Some(Direction::Outbound));
        assert_eq!(r.filter.band, Some(Band::Poor));
        assert_eq!(r.filter.reason, Some(Reason::PacketLoss));
        assert_eq!(r.filter.number.as_deref(), Some("+14155550100"));
        assert_eq!(parse_list(None).unwrap().limit, DEFAULT_PAGE);
        assert_eq!(param_of("band=awful").as_deref(), Some("band"));
        assert_eq!(param_of("since=yesterday").as_deref(), Some("since"));
        assert_eq!(param_of("limit=0").as_deref(), Some("limit"));
        assert_eq!(param_of("limit=201").as_deref(), Some("limit"));
        assert_eq!(param_of("cursor=zzz").as_deref(), Some("cursor"));
        assert_eq!(param_of("colour=red").as_deref(), Some("colour"));
        assert_eq!(param_of("band=good&band=poor").as_deref(), Some("band"));
        assert_eq!(param_of("end_reason=Stop").as_deref(), Some("end_reason"));
        assert_eq!(param_of("number=").as_deref(), Some("number"));
        assert_eq!(
            param_of("since=2024-05-02T00:00:00Z&until=2024-05-01T00:00:00Z").as_deref(),
            Some("until")
        );
    }
}
