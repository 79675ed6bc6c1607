//! What one call did, gathered by its session and published when it ends.
//!
//! The summary is logged as one structured line and handed to subscribers (tests today, the
//! per-call quality report later). It holds per-call detail that must never become a metric
//! label. It is plain data: no clocks, no I/O.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::call::events::{CallEvent, Role, TurnKind};
use crate::call::latency::TurnLatency;
use crate::quality::notify::rfc3339;
use crate::quality::report::{QualityReport, Reason};
use crate::twilio::messages::ErrorReason;

/// Why a call's session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Twilio sent `stop`.
    Stop,
    /// The socket closed cleanly without a `stop`.
    Closed,
    /// The socket dropped without a close handshake.
    AbruptDisconnect,
    /// A message over `limits.max_message_bytes` arrived; we closed with 1009.
    MessageTooLarge,
    /// The server shut down before the call ended.
    ServerShutdown,
    /// The agent ended the call (`end_call`).
    AgentHangup,
    /// No inbound message for `limits.idle_timeout_secs`.
    IdleTimeout,
    /// The call reached `limits.max_call_secs`.
    MaxDuration,
    /// The stream's token was missing, forged or expired (closed 1008).
    TokenRejected,
    /// Hung up through the API or the console.
    OperatorHangup,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Stop => "stop",
            EndReason::Closed => "closed",
            EndReason::AbruptDisconnect => "abrupt_disconnect",
            EndReason::MessageTooLarge => "message_too_large",
            EndReason::ServerShutdown => "server_shutdown",
            EndReason::AgentHangup => "agent_hangup",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::MaxDuration => "max_duration",
            EndReason::TokenRejected => "token_rejected",
            EndReason::OperatorHangup => "operator_hangup",
        }
    }
}

/// Per-call figures, published at call end.
#[derive(Debug, Clone, Serialize)]
pub struct CallSummary {
    pub call_sid: Option<String>,
    pub stream_sid: Option<String>,
    /// The agent profile and engine that answered.
    pub agent: Option<AgentUsed>,
    pub custom_parameters: BTreeMap<String, String>,
    #[serde(serialize_with = "as_rfc3339")]
    pub started_at: SystemTime,
    pub duration_ms: u64,
    pub end_reason: EndReason,
    pub media_frames_received: u64,
    pub media_frames_sent: u64,
    pub turns: u64,
    /// Turns with speech but no recognised words (answered with a reprompt or the apology).
    pub turns_unrecognised: u64,
    pub responses_played: u64,
    pub responses_interrupted: u64,
    pub barge_ins: u64,
    pub marks_received: u64,
    pub marks_ignored: u64,
    pub dtmf_digits: String,
    /// End of caller speech to first reply frame sent, per response, in ms.
    pub response_latencies_ms: Vec<u64>,
    pub protocol_errors: BTreeMap<&'static str, u64>,
    /// Latency by stage for each reply (STT, agent, TTS, server).
    pub turn_latencies: Vec<TurnLatency>,
    /// Call actions the agent took (`end_call`, `transfer_call +1…`).
    pub actions: Vec<String>,
    /// Provider failures seen by this call (each also counted by provider and kind).
    pub provider_failures: u64,
    pub stt_reconnects: u64,
    /// Caller frames the STT queue could not take.
    pub stt_frames_dropped: u64,
    /// Live quality alerts raised during the call.
    pub alerts_raised: Vec<Reason>,
    /// The agent's verdict on the call (`interested`, `callback_requested`, …), if it gave one.
    pub outcome: Option<String>,
    /// What both sides said, in order (at most [`MAX_TRANSCRIPT_LINES`] lines).
    pub transcript: Vec<TranscriptLine>,
    /// The quality verdict, filled in when the call ends.
    pub quality: Option<QualityReport>,
    /// The call's monotonic start, for offsets.
    #[serde(skip)]
    clock: Instant,
}

/// The agent profile and engine a call got.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentUsed {
    pub profile: String,
    pub engine: &'static str,
}

/// One line of the call's transcript.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TranscriptLine {
    pub role: Role,
    /// The words (empty when the turn was audio only, e.g. the echo engine without STT).
    pub text: String,
    /// Cut short by the caller (only what they heard is kept).
    pub interrupted: bool,
    /// When it was spoken or heard, ms from the start of the call.
    pub start_ms: Option<u64>,
    pub end_ms: u64,
}

/// Most transcript lines kept in the summary (the record store keeps every turn).
pub const MAX_TRANSCRIPT_LINES: usize = 64;

/// Most digits kept per call (a keypad menu needs a handful).
pub const MAX_DTMF_DIGITS: usize = 64;
/// Most latencies kept per call.
/// (Allocated up front, so a long call's memory does not grow turn by turn; the latency
/// histograms see every turn.)
pub const MAX_LATENCIES: usize = 32;

impl CallSummary {
    /// A call that started at `started_at` (wall clock) = `clock` (monotonic).
    pub fn new(started_at: SystemTime, clock: Instant) -> Self {
        Self {
            clock,
            call_sid: None,
            stream_sid: None,
            agent: None,
            custom_parameters: BTreeMap::new(),
            started_at,
            duration_ms: 0,
            end_reason: EndReason::Closed,
            media_frames_received: 0,
            media_frames_sent: 0,
            turns: 0,
            turns_unrecognised: 0,
            responses_played: 0,
            responses_interrupted: 0,
            barge_ins: 0,
            marks_received: 0,
            marks_ignored: 0,
            dtmf_digits: String::new(),
            response_latencies_ms: Vec::with_capacity(MAX_LATENCIES),
            protocol_errors: BTreeMap::new(),
            turn_latencies: Vec::with_capacity(MAX_LATENCIES),
            actions: Vec::new(),
            provider_failures: 0,
            stt_reconnects: 0,
            stt_frames_dropped: 0,
            alerts_raised: Vec::new(),
            outcome: None,
            transcript: Vec::new(),
            quality: None,
        }
    }

    /// Fold one call event into the summary.
    pub fn on_event(&mut self, event: &CallEvent<'_>) {
        match event {
            CallEvent::Started(ctx) => {
                self.call_sid = Some(ctx.call_sid.clone());
                self.stream_sid = Some(ctx.stream_sid.clone());
                self.custom_parameters = ctx.parameters.clone();
                self.agent = Some(AgentUsed {
                    profile: ctx.profile.clone(),
                    engine: ctx.engine.as_str(),
                });
            }
            CallEvent::MediaReceived => self.media_frames_received += 1,
            CallEvent::AudioSent { .. } => self.media_frames_sent += 1,
            CallEvent::Dtmf(key) if self.dtmf_digits.len() < MAX_DTMF_DIGITS => {
                self.dtmf_digits.push(key.as_char());
            }
            CallEvent::MarkReceived => self.marks_received += 1,
            CallEvent::ResponsePlayed(_) => self.responses_played += 1,
            CallEvent::MarkIgnored(_) => self.marks_ignored += 1,
            CallEvent::BargeIn { cleared, .. } => {
                self.barge_ins += 1;
                self.responses_interrupted += cleared.ids.len() as u64;
            }
            CallEvent::Turn(kind) => {
                self.turns += 1;
                if *kind == TurnKind::Unrecognised {
                    self.turns_unrecognised += 1;
                }
            }
            CallEvent::Transcript {
                role,
                text,
                interrupted,
                start,
                end,
                ..
            } if self.transcript.len() < MAX_TRANSCRIPT_LINES => {
                let offset =
                    |t: Instant| t.saturating_duration_since(self.clock).as_millis() as u64;
                self.transcript.push(TranscriptLine {
                    role: *role,
                    text: (*text).to_owned(),
                    interrupted: *interrupted,
                    start_ms: start.map(offset),
                    end_ms: offset(*end),
                });
            }
            CallEvent::Latency { latency, .. } => {
                if let Some(total) = latency.total_ms
                    && self.response_latencies_ms.len() < MAX_LATENCIES
                {
                    self.response_latencies_ms.push(total as u64);
                }
                if self.turn_latencies.len() < MAX_LATENCIES {
                    self.turn_latencies.push(**latency);
                }
            }
            CallEvent::Action(action) => self.actions.push(match action {
                crate::agent::CallAction::EndCall => "end_call".to_owned(),
                crate::agent::CallAction::Transfer { to } => format!("transfer_call {to}"),
            }),
            CallEvent::ProtocolError { reason, .. } => self.count_error(*reason),
            CallEvent::ProviderFailed { .. } => self.provider_failures += 1,
            CallEvent::Outcome(outcome) => {
                self.outcome = Some(outcome.chars().take(64).collect());
            }
            CallEvent::SttReconnected => self.stt_reconnects += 1,
            CallEvent::SttFrameDropped => self.stt_frames_dropped += 1,
            CallEvent::Ended(reason) => self.end_reason = *reason,
            _ => {}
        }
    }

    pub fn count_error(&mut self, reason: ErrorReason) {
        *self.protocol_errors.entry(reason.as_str()).or_default() += 1;
    }

    pub fn errors(&self, reason: ErrorReason) -> u64 {
        self.protocol_errors
            .get(reason.as_str())
            .copied()
            .unwrap_or(0)
    }
}

fn as_rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}
