//! What the fake Twilio saw and did, for assertions: every REST request, every call's status
//! changes with the number of calls up at that moment, every callback delivered and how the
//! receiver answered, and one record per finished call (with the media leg's [`SimReport`] and,
//! for a voicemail box, what it recorded after the beep).
//!
//! Plain data plus a few summaries; nothing here drives behaviour.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::fakes::Observed;
use crate::sim::SimReport;

/// One REST request, as received and answered (recorded when answered).
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// When it arrived.
    pub at: Instant,
    pub method: &'static str,
    /// Path after `/2010-04-01/Accounts/{AccountSid}` (`/Calls.json`, `/Calls/CA….json`).
    pub path: String,
    pub params: Vec<(String, String)>,
    /// The HTTP status answered.
    pub status: u16,
    /// Twilio's error code when refused.
    pub error_code: Option<i64>,
    /// The call created, fetched or updated.
    pub call_sid: Option<String>,
}

impl SeenRequest {
    /// A create-call request (`POST …/Calls.json`).
    pub fn is_create(&self) -> bool {
        self.method == "POST" && self.path == "/Calls.json"
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A call changed status.
#[derive(Debug, Clone)]
pub struct LifecycleEvent {
    pub at: Instant,
    pub call_sid: String,
    pub to: String,
    /// Twilio's status name (`queued`, `initiated`, `ringing`, `in-progress`, or a final one).
    pub status: &'static str,
    /// Calls dialled and not yet over (initiated, ringing or in progress) after this change.
    pub active: usize,
}

/// Which callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackKind {
    /// `StatusCallback` (call progress).
    Status,
    /// `AsyncAmdStatusCallback`.
    Amd,
    /// The TwiML fetch from `Url` (or a `<Redirect>`).
    Voice,
    /// `<Stream statusCallback>`.
    Stream,
}

/// One request the fake made to the application, and its answer.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub at: Instant,
    pub call_sid: String,
    pub kind: CallbackKind,
    pub url: String,
    pub params: Vec<(String, String)>,
    /// The `X-Twilio-Signature` sent.
    pub signature: String,
    /// The HTTP status answered, or why there was none.
    pub response: Result<u16, String>,
}

impl Delivered {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// When things happened to a call.
#[derive(Debug, Clone, Copy)]
pub struct CallTimes {
    pub created: Instant,
    pub dialed: Option<Instant>,
    pub answered: Option<Instant>,
    pub ended: Instant,
}

/// The media leg of a call.
#[derive(Debug, Clone)]
pub struct StreamLeg {
    /// The URL connected to (after any `wss` → `ws` rewrite).
    pub url: String,
    pub stream_sid: String,
    /// The `<Parameter>`s, sent as `start.customParameters`.
    pub custom_parameters: Vec<(String, String)>,
    /// What the simulated callee said and heard (`None` if the stream never opened).
    pub report: Option<Arc<SimReport>>,
    pub error: Option<String>,
}

/// What a voicemail box recorded.
#[derive(Debug, Clone)]
pub struct Voicemail {
    /// Where in the stream the beep ended (ms from the stream's start; 0 when AMD consumed
    /// the greeting before the stream opened).
    pub beep_end_ms: u64,
    /// Voiced audio heard from the agent before the beep ended (talking over the greeting).
    pub voiced_before_beep_ms: u64,
    /// Everything heard after the beep (8 kHz μ-law).
    pub message: Bytes,
    /// How much of it was voiced.
    pub message_voiced_ms: u64,
}

/// Who or what ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// The callee hung up (script done), was busy, did not answer, or the call failed.
    Callee,
    /// A REST update (`Status=completed|canceled`).
    Api,
    /// The TwiML ran out (e.g. the server closed the stream) or said `<Hangup/>`.
    Twiml,
    /// The call reached its `TimeLimit`.
    TimeLimit,
    /// The TwiML could not be fetched or parsed (Twilio's "application error").
    AppError,
}

/// One finished call.
#[derive(Debug, Clone)]
pub struct EndedCall {
    pub call_sid: String,
    pub to: String,
    pub from: String,
    /// Which dial of this `To` it was, from 1.
    pub attempt: usize,
    /// The scripted behaviour (`human`, `machine`, `busy`, `no_answer`, `fail`).
    pub callee: &'static str,
    /// The final `CallStatus`.
    pub status: &'static str,
    pub answered_by: Option<&'static str>,
    pub times: CallTimes,
    pub stream: Option<StreamLeg>,
    pub voicemail: Option<Voicemail>,
    /// The TwiML verbs run, described (`Stream:…`, `Dial:+1…`, `Hangup`, `Error:…`).
    pub verbs: Vec<String>,
    pub ended_by: EndedBy,
}

impl EndedCall {
    /// The number a `<Dial>` transferred the call to, if any.
    pub fn transferred_to(&self) -> Option<&str> {
        self.verbs.iter().find_map(|v| v.strip_prefix("Dial:"))
    }

    /// Seconds from answer to end, as `CallDuration` reports them.
    pub fn duration_secs(&self) -> u64 {
        self.times.answered.map_or(0, |a| {
            self.times.ended.saturating_duration_since(a).as_secs()
        })
    }
}

/// Everything observed, shared with the running fake.
#[derive(Debug, Clone, Default)]
pub struct TwilioObserved {
    pub requests: Observed<SeenRequest>,
    pub lifecycle: Observed<LifecycleEvent>,
    pub callbacks: Observed<Delivered>,
    pub calls: Observed<EndedCall>,
}

impl TwilioObserved {
    /// The create-call requests, in arrival order.
    pub fn creates(&self) -> Vec<SeenRequest> {
        self.requests
            .snapshot()
            .into_iter()
            .filter(SeenRequest::is_create)
            .collect()
    }

    /// When each call was dialled (left the queue), in order.
    pub fn dial_times(&self) -> Vec<Instant> {
        self.lifecycle
            .snapshot()
            .into_iter()
            .filter(|e| e.status == "initiated")
            .map(|e| e.at)
            .collect()
    }

    /// The most dials that fell in any `window` (e.g. 1 s: the observed peak CPS).
    pub fn max_dials_per(&self, window: Duration) -> usize {
        let times = self.dial_times();
        let mut best = 0;
        for (i, t) in times.iter().enumerate() {
            let n = times[i..]
                .iter()
                .take_while(|u| u.saturating_duration_since(*t) < window)
                .count();
            best = best.max(n);
        }
        best
    }

    /// The most calls up at once.
    pub fn max_active(&self) -> usize {
        self.lifecycle
            .snapshot()
            .iter()
            .map(|e| e.active)
            .max()
            .unwrap_or(0)
    }

    /// Finished calls to `to`, in the order they ended.
    pub fn calls_to(&self, to: &str) -> Vec<EndedCall> {
        self.calls
            .snapshot()
            .into_iter()
            .filter(|c| c.to == to)
            .collect()
    }

    /// Callbacks of one kind for one call, in delivery order.
    pub fn callbacks_for(&self, call_sid: &str, kind: CallbackKind) -> Vec<Delivered> {
        self.callbacks
            .snapshot()
            .into_iter()
            .filter(|d| d.call_sid == call_sid && d.kind == kind)
            .collect()
    }
}
