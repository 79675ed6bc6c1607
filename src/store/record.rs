//! What one call's record holds: identity, parties, context, times, outcome, quality and the
//! recording's location. The per-call event lists (turns, DTMF, actions, …) are in
//! [`super::events`].
//!
//! Plain serde data, shared by the store, the REST API (which serves it as JSON) and whoever
//! builds records (the call session, the dialer). No I/O, no clocks.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::events::CallEvents;
use crate::quality::report::{Band, QualityReport, Reason};

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// Where the call is in its life (Twilio's call statuses, in snake case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

impl CallStatus {
    pub const ALL: [CallStatus; 9] = [
        CallStatus::Queued,
        CallStatus::Initiated,
        CallStatus::Ringing,
        CallStatus::InProgress,
        CallStatus::Completed,
        CallStatus::Busy,
        CallStatus::NoAnswer,
        CallStatus::Failed,
        CallStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Initiated => "initiated",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in_progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::NoAnswer => "no_answer",
            CallStatus::Failed => "failed",
            CallStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Twilio's spelling (`in-progress`, `no-answer`, …).
    pub fn from_twilio(s: &str) -> Option<Self> {
        Self::parse(&s.replace('-', "_"))
    }

    /// Progress order: a status never replaces one of a higher rank (late or duplicate
    /// callbacks cannot move a finished call back to `ringing`). Final statuses share the top.
    pub fn rank(self) -> i64 {
        match self {
            CallStatus::Queued => 0,
            CallStatus::Initiated => 1,
            CallStatus::Ringing => 2,
            CallStatus::InProgress => 3,
            _ => 4,
        }
    }

    pub fn is_final(self) -> bool {
        self.rank() == 4
    }
}

/// What the call was for and who answered it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordContext {
    /// The agent profile that answered (or dialled).
    pub agent_profile: Option<String>,
    /// The engine that ran the conversation (`echo`, `cascade`, `realtime`).
    pub engine: Option<String>,
    /// The campaign that dialled the call, if any.
    pub campaign_id: Option<String>,
    pub contact_id: Option<String>,
    /// The `<Parameter>`s of the TwiML stream (or the dialer's variables).
    pub custom_parameters: BTreeMap<String, String>,
}

/// When things happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallTimes {
    /// When the record began: the media stream's start (inbound) or the dial (outbound).
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<u64>,
}

/// The call's quality verdict and the full per-call report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallQuality {
    pub band: Band,
    pub reasons: Vec<Reason>,
    /// Estimated MOS (E-model, 1–4.5).
    pub mos: f64,
    /// The whole per-call quality report (transport, signal, outbound, E-model), as produced
    /// at call end.
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
}

impl CallQuality {
    pub fn from_report(report: &QualityReport) -> Self {
        Self {
            band: report.band,
            reasons: report.reasons.clone(),
            mos: finite_or(report.emodel.mos, 1.0),
            // Serialising plain data cannot fail; non-finite floats become null.
            report: serde_json::to_value(report).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// Where the call's recording is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Recording {
    /// A file path (relative to the server's working directory, or absolute).
    pub location: String,
    /// `audio/ogg` (Opus) or `audio/wav`.
    pub content_type: String,
}

/// One call, as kept in the store and served by `GET /api/calls/{call_sid}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallRecord {
    pub call_sid: String,
    pub stream_sid: Option<String>,
    pub direction: Direction,
    pub status: CallStatus,
    pub from: Option<String>,
    pub to: Option<String>,
    pub context: RecordContext,
    pub times: CallTimes,
    /// Why the call ended (the session's end reason, e.g. `stop`, `agent_hangup`).
    pub end_reason: Option<String>,
    /// The agent's verdict on the call (`set_outcome`, e.g. `interested`), if it gave one.
    pub outcome: Option<String>,
    pub quality: Option<CallQuality>,
    pub recording: Option<Recording>,
    pub events: CallEvents,
}

impl CallRecord {
    /// A new record with nothing but its id, direction and start.
    pub fn new(
        call_sid: impl Into<String>,
        direction: Direction,
        started_at: DateTime<Utc>,
    ) -> Self {
        Self {
            call_sid: call_sid.into(),
            stream_sid: None,
            direction,
            status: match direction {
                Direction::Inbound => CallStatus::InProgress,
                Direction::Outbound => CallStatus::Queued,
            },
            from: None,
            to: None,
            context: RecordContext::default(),
            times: CallTimes {
                started_at,
                answered_at: None,
                ended_at: None,
                duration_ms: None,
            },
            end_reason: None,
            outcome: None,
            quality: None,
            recording: None,
            events: CallEvents::default(),
        }
    }

    /// Non-finite figures (NaN, ∞) replaced, so the record survives a JSON round trip.
    pub fn sanitize(&mut self) {
        if let Some(q) = &mut self.quality {
            q.mos = finite_or(q.mos, 1.0);
        }
        self.events.sanitize();
    }
}

/// A status change of a call in progress (outbound calls, from Twilio's callbacks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallProgress {
    pub call_sid: String,
    pub status: CallStatus,
    pub at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<u64>,
    pub end_reason: Option<String>,
}

impl CallProgress {
    pub fn new(call_sid: impl Into<String>, status: CallStatus, at: DateTime<Utc>) -> Self {
        Self {
            call_sid: call_sid.into(),
            status,
            at,
            answered_at: None,
            ended_at: None,
            duration_ms: None,
            end_reason: None,
        }
    }
}

pub(crate) fn finite_or(x: f64, fallback: f64) -> f64 {
    if x.is_finite() { x } else { fallback }
}
