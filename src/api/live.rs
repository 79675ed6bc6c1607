//! Calls in progress: the [`LiveCalls`] seam the server's live-calls registry implements, and
//! the two routes on it (`GET /api/calls/live`, `POST /api/calls/{call_sid}/hangup`).
//!
//! The API only reads live figures and asks for a hang-up; it never touches a call's task.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::problem::Problem;
use super::query::{CallSid, CallSidParam};
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
    pub stream_sid: Option<String>,
    pub direction: Direction,
    pub from: Option<String>,
    pub to: Option<String>,
    pub agent_profile: Option<String>,
    pub campaign_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub speaking: Speaking,
    /// The latest second's quality figures and the alerts active now.
    pub now: TimelinePoint,
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

/// The registry of calls in progress, as the API sees it.
#[async_trait]
pub trait LiveCalls: Send + Sync {
    /// Every call in progress, with its latest figures (cheap: no I/O).
    fn list(&self) -> Vec<LiveCall>;

    /// Ask the call to hang up. False if no such call is in progress.
    async fn hangup(&self, call_sid: &str) -> bool;
}

/// For a server without a live-calls registry: no call is ever in progress.
#[derive(Debug, Default)]
pub struct NoLiveCalls;

#[async_trait]
impl LiveCalls for NoLiveCalls {
    fn list(&self) -> Vec<LiveCall> {
        Vec::new()
    }

    async fn hangup(&self, _call_sid: &str) -> bool {
        false
    }
}

/// Calls in progress
///
/// Every call in progress with its live figures: duration, who is speaking, the latest
/// second's inbound level, jitter, loss and estimated MOS, and the alerts active now.
#[utoipa::path(
    get,
    path = "/api/calls/live",
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
        calls: state.live.list(),
    })
}

/// Hang up a call in progress
///
/// Asks the call to end; the call's record is written when it has.
#[utoipa::path(
    post,
    path = "/api/calls/{call_sid}/hangup",
    tag = "live",
    params(CallSidParam),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Hang-up requested", body = HangupAccepted),
        (status = 400, description = "Bad call_sid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token configured and the client is not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call in progress", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn hangup(
    State(state): State<Arc<ApiState>>,
    CallSid(call_sid): CallSid,
) -> Result<(StatusCode, Json<HangupAccepted>), Problem> {
    if !state.live.hangup(&call_sid).await {
        return Err(Problem::not_found(format!(
            "no call {call_sid} is in progress"
        )));
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
