//! [`EngineIo`]: everything an engine may do to its call, and nothing else. It is the session's
//! half of the engine seam: responses (generations) go into the session's [`Playout`], a
//! barge-in clears it and tells Twilio, actions wait for their response to finish, and every
//! fact lands in the call-event stream for the observers.
//!
//! [`Responses`] is the session's bookkeeping of what it owes engines: the response whose first
//! frame is awaited (latency) and the actions waiting for a response to end.

use std::time::Instant;

use tracing::{Span, info};

use crate::agent::CallAction;
use crate::call::events::{CallEvent, Role, TurnKind};
use crate::call::frames::CallOutput;
use crate::call::observers::Observers;
use crate::call::outbox::Outbox;
use crate::call::playout::{Cleared, Playout};

/// Most actions that may wait for their responses (an agent asks for one or two per call).
const MAX_PENDING_ACTIONS: usize = 8;

/// Responses whose start is remembered (for transcript offsets).
const STARTS_REMEMBERED: usize = 8;

#[derive(Debug, Default)]
pub struct Responses {
    /// The response whose first frame is awaited (turn latency).
    pub latency_pending: Option<u64>,
    /// Actions waiting for a response (and everything before it) to finish playing.
    waiting: Vec<(u64, CallAction)>,
    /// When the caller began hearing recent responses.
    starts: std::collections::VecDeque<(u64, Instant)>,
}

impl Responses {
    /// The first chunk of response `id` plays from `at` (later chunks are ignored).
    pub fn started(&mut self, id: u64, at: Instant) {
        if self.starts.iter().any(|(x, _)| *x == id) {
            return;
        }
        if self.starts.len() == STARTS_REMEMBERED {
            self.starts.pop_front();
        }
        self.starts.push_back((id, at));
    }

    fn start_of(&self, id: u64) -> Option<Instant> {
        self.starts.iter().find(|(x, _)| *x == id).map(|(_, t)| *t)
    }

    /// Actions whose responses are over: due now (in order), or dropped with them when the
    /// caller barged in over them.
    pub fn take_due(&mut self, playout: &Playout) -> Vec<CallAction> {
        if self.waiting.is_empty() {
            return Vec::new();
        }
        let mut due = Vec::new();
        self.waiting.retain(|(id, action)| {
            if !playout.settled_through(*id) {
                return true;
            }
            if !playout.was_cleared(*id) {
                due.push(action.clone());
            }
            false
        });
        due
    }
}

/// An engine's handle on its call, for the duration of one engine call.
pub struct EngineIo<'s> {
    pub(super) now: Instant,
    pub(super) playout: &'s mut Playout,
    pub(super) outbox: &'s mut Outbox,
    pub(super) responses: &'s mut Responses,
    pub(super) observers: &'s mut Observers,
    pub(super) span: &'s Span,
}

impl EngineIo<'_> {
    /// The instant the input being handled arrived (engines read no clock of their own).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The call's span, for log lines with `call_sid` / `stream_sid`.
    pub fn span(&self) -> &Span {
        self.span
    }

    /// Open a new response (generation) behind any in progress; its first frame is the end of
    /// the turn's latency.
    pub fn begin_response(&mut self) -> u64 {
        let id = self.playout.begin();
        self.responses.latency_pending = Some(id);
        id
    }

    /// Audio of response `id` (ignored once it was cleared or ended).
    pub fn audio(&mut self, id: u64, mulaw: &[u8]) {
        self.playout.append(id, mulaw);
    }

    /// Response `id` is complete: its tail and its mark may go.
    pub fn end_response(&mut self, id: u64) {
        self.playout.finish(id);
    }

    /// Something is being sent or still playing at the caller.
    pub fn is_playing(&self) -> bool {
        self.playout.is_active()
    }

    /// How much of response `id` the caller has heard so far, in ms (0 unless it is the one
    /// sent from most recently).
    pub fn heard_ms(&self, id: u64) -> u64 {
        (self.playout.heard_bytes(id, self.now) / 8) as u64
    }

    /// Barge-in: the caller spoke over us. Everything queued and buffered is dropped, the
    /// carrier is told to clear, and the engine learns what the caller heard.
    pub fn interrupt(&mut self, source: &'static str) -> Cleared {
        let cleared = self.playout.clear(self.now);
        self.outbox.drop_media();
        self.outbox.push(CallOutput::Clear);
        self.responses.latency_pending = None;
        info!(parent: self.span, source, responses = ?cleared.ids,
            heard_ms = cleared.heard_bytes / 8, "barge-in: caller spoke, clearing");
        self.observers.emit(CallEvent::BargeIn {
            cleared: &cleared,
            source,
        });
        cleared
    }

    /// Drop what is queued without a barge-in (a new turn overtook a reply being produced).
    pub fn abandon(&mut self) -> Cleared {
        let cleared = self.playout.clear(self.now);
        self.observers
            .emit(CallEvent::Abandoned(cleared.ids.len() as u64));
        cleared
    }

    /// Carry out `action` once response `id` — and everything before it — has finished
    /// playing; at once if nothing of it is left to play (it produced no audio). Dropped if
    /// the caller barges in over it.
    pub fn after_played(&mut self, id: u64, action: CallAction) {
        if self.responses.waiting.len() < MAX_PENDING_ACTIONS {
            self.responses.waiting.push((id, action));
        }
    }

    /// What the caller said this turn (`text` empty when nothing transcribes it), spoken
    /// from `start` to `end`.
    pub fn caller_said(&mut self, text: &str, start: Option<Instant>, end: Option<Instant>) {
        self.observers.emit(CallEvent::Transcript {
            role: Role::Caller,
            text,
            interrupted: false,
            start,
            end: end.unwrap_or(self.now),
            response: None,
        });
    }

    /// What the caller heard of response `id` (all of it, or up to a barge-in), ending now.
    pub fn agent_said(&mut self, id: u64, text: &str, interrupted: bool) {
        let start = self.responses.start_of(id);
        self.observers.emit(CallEvent::Transcript {
            role: Role::Agent,
            text,
            interrupted,
            start,
            end: self.now,
            response: Some(id),
        });
    }

    /// A caller turn is being answered.
    pub fn turn(&mut self, kind: TurnKind) {
        self.observers.emit(CallEvent::Turn(kind));
    }

    /// A provider failed (already counted by provider and kind where it failed).
    pub fn provider_failed(&mut self, provider: &'static str, error: &str) {
        self.observers
            .emit(CallEvent::ProviderFailed { provider, error });
    }

    /// The agent recorded the call's outcome (e.g. `interested`), for the record.
    pub fn outcome(&mut self, outcome: &str) {
        self.observers.emit(CallEvent::Outcome(outcome));
    }

    pub fn stt_reconnected(&mut self) {
        self.observers.emit(CallEvent::SttReconnected);
    }

    pub fn stt_frame_dropped(&mut self) {
        self.observers.emit(CallEvent::SttFrameDropped);
    }
}
