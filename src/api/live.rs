//! Calls in progress: the two routes on the server's live-calls registry
//! ([`crate::call::live::LiveCalls`]): `GET /api/calls/live` and
//! `POST /api/calls/{call_sid}/hangup`.
//!
//! The API only reads live figures and asks for a hang-up through the call's bounded control
//! queue; it never touches a call's task.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::problem::Problem;
use super::query::{CallSid, CallSidParam};
use crate::call::live::{self as registry, Control, ControlError, LiveStats};
use crate::call::observers::record::timeline_point;
use crate::store::events::TimelinePoint;
use crate::store::record::Direction;

/// Who is talking right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Speaking {
    Nobody,
    Caller,
    Agent,
    Both,
}

/// One call in progress with its live figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveCall {
    pub call_sid: String,
    pub direction: Direction,
    pub from: Option<String>,
    pub to: Option<String>,
    pub agent_profile: Option<String>,
    /// `echo`, `cascade` or `openai_realtime`.
    pub engine: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub speaking: Speaking,
    /// The latest second's quality figures and the alerts active now.
    pub now: TimelinePoint,
}

impl LiveCall {
    fn from_stats(s: LiveStats) -> Self {
        let some = |v: String| (!v.is_empty()).then_some(v);
        let mut now = timeline_point(&s.now);
        now.alerts = s.alerts;
        Self {
            direction: Direction::parse(s.direction).unwrap_or(Direction::Inbound),
            from: some(s.from),
            to: some(s.to),
            agent_profile: some(s.profile),
            engine: s.engine.to_owned(),
            started_at: DateTime::parse_from_rfc3339(&s.started_at)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            duration_ms: s.duration_ms,
            speaking: match s.speaking {
                registry::Speaking::Nobody => Speaking::Nobody,
                registry::Speaking::Caller => Speaking::Caller,
                registry::Speaking::Agent => Speaking::Agent,
                registry::Speaking::Both => Speaking::Both,
            },
            now,
            call_sid: s.call_sid,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveCallList {
    pub calls: Vec<LiveCall>,
}

/// A hang-up was asked of a call in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HangupAccepted {
    pub call_sid: String,
    /// Always `requested`: the call ends shortly, and its record follows.
    pub hangup: String,
}

/// Calls in progress
///
/// Every call in progress with its live figures: duration, who is speaking, the latest
/// second's inbound level, jitter, loss and estimated MOS, and the alerts active now.
#[utoipa::path(
    get,
    path = "/api/calls/live",
    operation_id = "listLiveCalls",
    tag = "live",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Calls in progress", body = LiveCallList),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token configured and the client is not on loopback", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(State(state): State<Arc<ApiState>>) -> Json<LiveCallList> {
    Json(LiveCallList {
        calls: state
            .live
            .list()
            .into_iter()
            .map(LiveCall::from_stats)
            .collect(),
    })
}

/// Hang up a call in progress
///
/// Asks the call to end; the call's record is written when it has.
#[utoipa::path(
    post,
    path = "/api/calls/{call_sid}/hangup",
    operation_id = "hangupCall",
    tag = "live",
    params(CallSidParam),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Hang-up requested", body = HangupAccepted),
        (status = 400, description = "Bad call_sid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token configured and the client is not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call in progress", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The call is busy with another request; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn hangup(
    State(state): State<Arc<ApiState>>,
    CallSid(call_sid): CallSid,
) -> Result<(StatusCode, Json<HangupAccepted>), Problem> {
    match state.live.control(&call_sid, Control::Hangup) {
        Ok(()) => {}
        Err(ControlError::NotFound) => {
            return Err(Problem::not_found(format!(
                "no call {call_sid} is in progress"
            )));
        }
        Err(ControlError::Busy) => {
            return Err(Problem::conflict(format!(
                "call {call_sid} is busy with another request; try again"
            )));
        }
    }
    tracing::info!(call_sid = %call_sid, "hang-up requested through the API");
    Ok((
        StatusCode::ACCEPTED,
        Json(HangupAccepted {
            call_sid,
            hangup: "requested".into(),
        }),
    ))
}
