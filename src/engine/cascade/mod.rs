//! The cascade engine: speech-to-text → agent → text-to-speech, with the local turn detector.
//!
//! It decides when the caller's turn is over (local VAD, or the STT's endpointing), barges in
//! when the caller speaks over a reply, gathers DTMF turns, and hands each turn to its
//! [`Conversation`] (agent + TTS), whose audio goes out through [`EngineIo`]. The turn-taking
//! half lives in [`turns`]. Provider work runs in the providers' own tasks; this engine only
//! reacts to their events and never blocks.

pub mod conversation;
mod turns;

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use self::conversation::{ConvEvent, Conversation};
use super::dtmf::DtmfTurn;
use super::turn::{TurnDetector, Utterance};
use super::{Engine, EngineInput, EngineIo};
use crate::call::context::CallContext;
use crate::call::events::StageProviders;
use crate::call::latency::TurnTiming;
use crate::call::services::AgentServices;
use crate::config::{Config, TurnSource};
use crate::provider::CallIds;
use crate::stt::{SttEvent, SttStream};

/// What the cascade's provider tasks produced.
#[derive(Debug)]
pub enum CascadeEvent {
    Conv(ConvEvent),
    Stt(Option<SttEvent>),
}

pub struct Cascade {
    services: Arc<AgentServices>,
    ids: CallIds,
    turn: TurnDetector,
    utterance: Utterance,
    conv: Conversation,
    /// Live transcription, when an STT provider is configured (None once it gave up).
    stt: Option<SttStream>,
    stt_cancel: CancellationToken,
    turn_source: TurnSource,
    /// Final transcripts of the caller's current turn.
    transcript: String,
    /// When the caller's last voiced frame arrived.
    last_voiced_at: Option<Instant>,
    dtmf: DtmfTurn,
    /// When the caller's current utterance began (by the local detector).
    speech_started_at: Option<Instant>,
}

impl Cascade {
    pub fn new(config: &Config, services: Arc<AgentServices>, ctx: &CallContext) -> Self {
        let ids = CallIds {
            call_sid: ctx.call_sid.clone(),
            stream_sid: ctx.stream_sid.clone(),
        };
        let conv = Conversation::new(
            services.agent.start_call(&ids),
            services.agent.name(),
            services.tts.clone(),
            services.apology_text.clone(),
            services.apology_audio.clone(),
        );
        Self {
            turn: TurnDetector::new(&config.turn),
            utterance: Utterance::new(config.turn.pre_roll_ms, config.limits.max_utterance_ms),
            conv,
            stt: None,
            stt_cancel: CancellationToken::new(),
            turn_source: services.turn_source,
            transcript: String::new(),
            last_voiced_at: None,
            dtmf: DtmfTurn::default(),
            speech_started_at: None,
            ids,
            services,
        }
    }

    fn stt_name(&self) -> &'static str {
        self.services.stt.as_ref().map_or("none", |s| s.name())
    }
}

impl Engine for Cascade {
    type Event = CascadeEvent;

    fn name(&self) -> &'static str {
        "cascade"
    }

    fn providers(&self) -> StageProviders {
        StageProviders {
            stt: self.stt_name(),
            agent: self.conv.agent_name(),
            tts: self.conv.tts_name(),
        }
    }

    /// Open the live transcription, and greet.
    fn start(&mut self, io: &mut EngineIo<'_>) {
        if let Some(stt) = &self.services.stt {
            self.stt = Some(stt.start(self.ids.clone(), self.stt_cancel.child_token()));
        }
        let now = io.now();
        self.conv.greet(io, now);
    }

    fn on_input(&mut self, input: EngineInput<'_>, io: &mut EngineIo<'_>) {
        match input {
            EngineInput::Audio(frame) => self.on_audio(frame, io),
            EngineInput::Dtmf(key) => self.dtmf.press(key, io.now()),
            EngineInput::Played(id) => self.conv.played(id, io),
            EngineInput::Cleared(cleared) => self.conv.interrupted(cleared, io),
        }
    }

    async fn next_event(&mut self) -> CascadeEvent {
        let conv = &mut self.conv;
        let stt = &mut self.stt;
        tokio::select! {
            ev = conv.next() => CascadeEvent::Conv(ev),
            ev = next_stt(stt) => CascadeEvent::Stt(ev),
        }
    }

    fn on_event(&mut self, event: CascadeEvent, io: &mut EngineIo<'_>) {
        match event {
            CascadeEvent::Conv(ev) => self.on_conversation(ev, io),
            CascadeEvent::Stt(ev) => self.on_stt(ev, io),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.dtmf.deadline()
    }

    fn on_deadline(&mut self, io: &mut EngineIo<'_>) {
        if let Some(digits) = self.dtmf.take() {
            self.end_turn(crate::agent::CallerTurn::Dtmf(digits), None, io);
        }
    }

    fn timing(&mut self, id: u64) -> Option<&mut TurnTiming> {
        self.conv.timing_mut(id)
    }

    fn finish(&mut self, _io: &mut EngineIo<'_>) {
        self.stt_cancel.cancel();
        self.conv.abandon();
    }
}

async fn next_stt(stt: &mut Option<SttStream>) -> Option<SttEvent> {
    match stt {
        Some(stt) => stt.events.recv().await,
        None => std::future::pending().await,
    }
}
