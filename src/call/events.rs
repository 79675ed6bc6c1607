//! The call-event stream: everything that happens on a call, as the session saw it, for the
//! observers that only read it (quality meter, summary, metrics, recorder, live stats, record).
//!
//! The session emits each event once, in order; observers never change the call and never
//! block. Events borrow what they describe (no allocation to emit one), so the per-frame
//! events cost a few field copies.

use std::time::Instant;

use crate::agent::CallAction;
use crate::call::context::CallContext;
use crate::call::frames::DtmfKey;
use crate::call::latency::TurnLatency;
use crate::call::playout::Cleared;
use crate::call::summary::EndReason;
use crate::twilio::messages::ErrorReason;

/// One decoded frame of caller audio, with what the session's ears made of it.
#[derive(Debug, Clone, Copy)]
pub struct AudioFrame<'a> {
    /// When it arrived.
    pub at: Instant,
    /// The carrier's frame number (gaps are loss) and clock (ms since stream start).
    pub chunk: u64,
    pub timestamp_ms: u64,
    /// 8 kHz μ-law, as received.
    pub mulaw: &'a [u8],
    /// The same decoded to linear PCM.
    pub pcm: &'a [i16],
    /// The wire's base64 text of `mulaw` (for engines that forward it as is).
    pub payload_b64: &'a str,
    pub level_dbfs: f32,
    /// The speech detector's verdict for this frame.
    pub voiced: bool,
    /// A response was being played to the caller when it arrived.
    pub playing: bool,
}

/// Who said a line of the transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Caller,
    Agent,
}

/// What kind of caller turn is being answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnKind {
    Speech,
    Dtmf,
    Audio,
    /// Speech with no words recognised, or no STT to recognise it.
    Unrecognised,
}

/// The providers behind a turn's latency stages (labels of `voxbridge_turn_stage_seconds`).
#[derive(Debug, Clone, Copy)]
pub struct StageProviders {
    pub stt: &'static str,
    pub agent: &'static str,
    pub tts: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub enum CallEvent<'a> {
    /// The stream started and its context is known.
    Started(&'a CallContext),
    /// A media message for this stream arrived (counted even if its payload is unusable).
    MediaReceived,
    AudioIn(&'a AudioFrame<'a>),
    /// One chunk went to the writer; the caller hears it at `play_at`.
    AudioSent {
        mulaw: &'a [u8],
        play_at: Instant,
    },
    /// Playout fell behind real time this many times.
    Underruns(u64),
    /// The writer's queue was full (a slow client): playout holds.
    Backpressure,
    Dtmf(DtmfKey),
    MarkReceived,
    ResponsePlayed(u64),
    /// The mark of a cleared response came back (proves nothing).
    MarkIgnored(u64),
    /// The caller spoke over a response: it was cleared.
    BargeIn {
        cleared: &'a Cleared,
        source: &'static str,
    },
    /// Responses dropped without a barge-in (a new turn overtook them, or the call ended).
    Abandoned(u64),
    /// A caller turn is being answered.
    Turn(TurnKind),
    /// A line of what was said: the caller's words (empty when there is no STT), or what the
    /// caller heard of a response. `start`/`end`: when it was spoken / heard.
    Transcript {
        role: Role,
        text: &'a str,
        interrupted: bool,
        start: Option<Instant>,
        end: Instant,
        /// The response it belongs to (agent lines).
        response: Option<u64>,
    },
    /// The first frame of response `response` went out: the turn's latency by stage.
    Latency {
        response: u64,
        latency: &'a TurnLatency,
        providers: StageProviders,
    },
    Action(&'a CallAction),
    ProtocolError {
        reason: ErrorReason,
        detail: &'a str,
    },
    ProviderFailed {
        provider: &'static str,
        error: &'a str,
    },
    /// The agent's verdict on the call (`set_outcome`, a flow's outcome state).
    Outcome(&'a str),
    SttReconnected,
    SttFrameDropped,
    Ended(EndReason),
}
