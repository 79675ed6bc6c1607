//! Engines: the one seam for every way of answering a call.
//!
//! The [`CallSession`](crate::call::session::CallSession) hands an engine the caller's side of
//! the call as neutral inputs — audio frames, DTMF keys, "response N has played" — and the
//! engine answers through [`EngineIo`]: audio for a response (a *generation*), the end of a
//! response, an interrupt (barge-in: the session clears what is buffered and says what the
//! caller heard), an action after a response (hang up, transfer), transcript lines. Engines
//! never see a carrier's wire format and never touch sockets; the session never knows how an
//! engine decides what to say.
//!
//! - [`echo`]: plays each caller turn back (local turn detection, no providers).
//! - [`cascade`]: speech-to-text → agent → text-to-speech with the local turn detector.
//! - [`realtime`]: OpenAI Realtime speech-to-speech over one provider socket.
//!
//! An engine's own asynchronous sources (provider tasks) surface through
//! [`Engine::next_event`], which the session polls in its `select!` loop; [`CallEngine`]
//! dispatches statically so polling allocates nothing.

pub mod cascade;
pub mod dtmf;
pub mod echo;
pub mod profiles;
pub mod realtime;
pub mod turn;

use std::future::Future;
use std::time::Instant;

use crate::call::events::{AudioFrame, StageProviders};
use crate::call::frames::DtmfKey;
use crate::call::latency::TurnTiming;
use crate::call::playout::Cleared;
pub use crate::call::session::EngineIo;

/// What the caller's side did, for the engine.
#[derive(Debug, Clone, Copy)]
pub enum EngineInput<'a> {
    /// One 20 ms frame of caller audio (with the session's voice-activity verdict).
    Audio(&'a AudioFrame<'a>),
    Dtmf(DtmfKey),
    /// Response (generation) `id` finished playing to the caller.
    Played(u64),
    /// The session cleared what was playing (not at the engine's request): what was heard.
    Cleared(&'a Cleared),
}

/// One way of answering a call. One value per call, owned by its session.
pub trait Engine: Send {
    /// What the engine's own tasks produce (see [`Engine::next_event`]).
    type Event: Send;

    /// Name for logs and the call record.
    fn name(&self) -> &'static str;
    /// The providers behind its latency stages (metric labels).
    fn providers(&self) -> StageProviders;
    /// The stream started: greet, open provider streams.
    fn start(&mut self, io: &mut EngineIo<'_>);
    fn on_input(&mut self, input: EngineInput<'_>, io: &mut EngineIo<'_>);
    /// The next thing the engine's provider tasks produced (pending forever when idle).
    fn next_event(&mut self) -> impl Future<Output = Self::Event> + Send;
    fn on_event(&mut self, event: Self::Event, io: &mut EngineIo<'_>);
    /// When the engine next wants [`Engine::on_deadline`] (e.g. a DTMF turn's end).
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn on_deadline(&mut self, _io: &mut EngineIo<'_>) {}
    /// The timing of response `id`, whose first frame just went out (for turn latency).
    fn timing(&mut self, id: u64) -> Option<&mut TurnTiming>;
    /// The call is ending: stop provider work (gracefully where the protocol asks for it).
    fn finish(&mut self, io: &mut EngineIo<'_>);
    /// After [`Engine::finish`]: nothing more will come from the engine's providers. Until
    /// then the session keeps handing it [`Engine::next_event`]s, for a bounded time (a
    /// graceful close, e.g. Deepgram's `CloseStream`, delivers the caller's last words).
    fn finished(&self) -> bool {
        true
    }
}

/// The engine a call got, dispatched without boxing futures. (Echo, the engine of the large
/// load runs, stays inline: one allocation less per call.)
#[allow(clippy::large_enum_variant)]
pub enum CallEngine {
    Echo(echo::EchoEngine),
    Cascade(Box<cascade::Cascade>),
    Realtime(Box<realtime::RealtimeEngine>),
}

/// An event from whichever engine the call has.
pub enum EngineEvent {
    Cascade(cascade::CascadeEvent),
    Realtime(realtime::RealtimeEvent),
}

macro_rules! each {
    ($self:ident, $e:ident => $body:expr) => {
        match $self {
            CallEngine::Echo($e) => $body,
            CallEngine::Cascade($e) => $body,
            CallEngine::Realtime($e) => $body,
        }
    };
}

impl CallEngine {
    pub fn name(&self) -> &'static str {
        each!(self, e => e.name())
    }

    pub fn providers(&self) -> StageProviders {
        each!(self, e => e.providers())
    }

    pub fn start(&mut self, io: &mut EngineIo<'_>) {
        each!(self, e => e.start(io))
    }

    pub fn on_input(&mut self, input: EngineInput<'_>, io: &mut EngineIo<'_>) {
        each!(self, e => e.on_input(input, io))
    }

    pub async fn next_event(&mut self) -> EngineEvent {
        match self {
            CallEngine::Echo(_) => std::future::pending().await,
            CallEngine::Cascade(e) => EngineEvent::Cascade(e.next_event().await),
            CallEngine::Realtime(e) => EngineEvent::Realtime(e.next_event().await),
        }
    }

    pub fn on_event(&mut self, event: EngineEvent, io: &mut EngineIo<'_>) {
        match (self, event) {
            (CallEngine::Cascade(e), EngineEvent::Cascade(ev)) => e.on_event(ev, io),
            (CallEngine::Realtime(e), EngineEvent::Realtime(ev)) => e.on_event(ev, io),
            // An event always comes from the engine it is handed back to.
            _ => {}
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        each!(self, e => e.deadline())
    }

    pub fn on_deadline(&mut self, io: &mut EngineIo<'_>) {
        each!(self, e => e.on_deadline(io))
    }

    pub fn timing(&mut self, id: u64) -> Option<&mut TurnTiming> {
        each!(self, e => e.timing(id))
    }

    pub fn finish(&mut self, io: &mut EngineIo<'_>) {
        each!(self, e => e.finish(io))
    }

    pub fn finished(&self) -> bool {
        each!(self, e => e.finished())
    }
}

/// The engine for a call with this context and profile.
pub fn build(
    config: &crate::config::Config,
    services: std::sync::Arc<crate::call::services::AgentServices>,
    ctx: &crate::call::context::CallContext,
    preconnect: Option<&realtime::preconnect::Preconnect>,
) -> CallEngine {
    use crate::call::context::EngineKind;
    match (services.engine, services.realtime.clone()) {
        (EngineKind::Echo, _) => CallEngine::Echo(echo::EchoEngine::new(config)),
        (EngineKind::OpenaiRealtime, Some(setup)) => {
            let preconnected = preconnect.and_then(|p| p.take(&ctx.call_sid));
            CallEngine::Realtime(Box::new(realtime::RealtimeEngine::new(
                services,
                setup,
                ctx,
                preconnected,
            )))
        }
        _ => CallEngine::Cascade(Box::new(cascade::Cascade::new(config, services, ctx))),
    }
}
