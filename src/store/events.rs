//! What happened during one call, in order: turns (who said what, when, how fast), DTMF,
//! actions, provider errors, live alerts, and a per-second quality timeline for charts.
//!
//! Offsets (`*_ms`, `t_s`) count from the start of the call's media stream. Plain serde data;
//! producers should keep the lists within the `MAX_*` caps (a record is held in memory until
//! it is written).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::record::finite_or;
use crate::call::latency::TurnLatency;
use crate::quality::alerts::AlertState;
use crate::quality::report::Reason;

/// Most turns a producer should keep per call.
pub const MAX_TURNS: usize = 2000;
/// Most timeline points (seconds) a producer should keep per call: four hours.
pub const MAX_TIMELINE_POINTS: usize = 4 * 3600;

/// Who spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Caller,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Caller => "caller",
            Role::Agent => "agent",
        }
    }
}

/// One turn's latency by stage, ms (as [`TurnLatency`]; absent where a stage did not apply).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StageLatency {
    pub stt_ms: Option<f64>,
    pub agent_ms: Option<f64>,
    pub tts_ms: Option<f64>,
    /// voxbridge's own added latency.
    pub server_ms: Option<f64>,
    pub total_ms: Option<f64>,
}

impl From<TurnLatency> for StageLatency {
    fn from(l: TurnLatency) -> Self {
        Self {
            stt_ms: l.stt_ms,
            agent_ms: l.agent_ms,
            tts_ms: l.tts_ms,
            server_ms: l.server_ms,
            total_ms: l.total_ms,
        }
    }
}

/// One utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Turn {
    pub role: Role,
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// For agent turns: how long the reply took, by stage.
    pub latency: Option<StageLatency>,
    /// The caller barged in before the agent finished.
    pub interrupted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DtmfEvent {
    /// One key: 0-9, *, #, A-D.
    pub digit: String,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Hangup,
    Transfer,
}

/// A call action the agent (or an operator) took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActionEvent {
    pub action: ActionKind,
    /// Where a transfer went.
    pub target: Option<String>,
    pub at_ms: u64,
}

/// A speech or LLM provider failure during the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderErrorEvent {
    pub provider: String,
    /// `connect`, `timeout`, `rate_limited`, … (as `voxbridge_provider_errors_total`).
    pub kind: String,
    pub at_ms: u64,
}

/// A live quality alert raised or cleared.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertRecord {
    pub condition: Reason,
    pub state: AlertState,
    /// The window's figure (MOS, ms or percent, by condition).
    pub value: f64,
    pub threshold: f64,
    pub at_ms: u64,
}

/// One second of the call's inbound quality (also the live figures of a call in progress).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelinePoint {
    /// Seconds since the stream started.
    pub t_s: u32,
    /// Inbound level; absent when the second had no audio.
    pub level_dbfs: Option<f64>,
    pub jitter_ms: f64,
    pub loss_pct: f64,
    pub mos: Option<f64>,
    /// Alerts active during this second.
    pub alerts: Vec<Reason>,
}

/// Everything that happened during the call, in time order within each list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct CallEvents {
    pub turns: Vec<Turn>,
    pub dtmf: Vec<DtmfEvent>,
    pub actions: Vec<ActionEvent>,
    pub provider_errors: Vec<ProviderErrorEvent>,
    pub alerts: Vec<AlertRecord>,
    pub timeline: Vec<TimelinePoint>,
}

impl CallEvents {
    pub(crate) fn sanitize(&mut self) {
        let opt = |x: &mut Option<f64>| {
            if x.is_some_and(|v| !v.is_finite()) {
                *x = None;
            }
        };
        for turn in &mut self.turns {
            if let Some(l) = &mut turn.latency {
                for x in [
                    &mut l.stt_ms,
                    &mut l.agent_ms,
                    &mut l.tts_ms,
                    &mut l.server_ms,
                    &mut l.total_ms,
                ] {
                    opt(x);
                }
            }
        }
        for alert in &mut self.alerts {
            alert.value = finite_or(alert.value, 0.0);
            alert.threshold = finite_or(alert.threshold, 0.0);
        }
        for p in &mut self.timeline {
            opt(&mut p.level_dbfs);
            opt(&mut p.mos);
            p.jitter_ms = finite_or(p.jitter_ms, 0.0);
            p.loss_pct = finite_or(p.loss_pct, 0.0);
        }
    }
}

/// What was said, for `GET /api/calls/{call_sid}/transcript`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Transcript {
    pub call_sid: String,
    pub turns: Vec<Turn>,
}

impl Transcript {
    /// One line per turn: `[01:02.3] caller: text` (`(interrupted)` appended where it was).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for t in &self.turns {
            let s = t.start_ms / 1000;
            let tenths = (t.start_ms % 1000) / 100;
            out.push_str(&format!(
                "[{:02}:{:02}.{}] {}: {}",
                s / 60,
                s % 60,
                tenths,
                t.role.as_str(),
                t.text.replace(['\r', '\n'], " ")
            ));
            if t.interrupted {
                out.push_str(" (interrupted)");
            }
            out.push('\n');
        }
        out
    }
}
