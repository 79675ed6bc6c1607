//! The cascade engine: speech-to-text → agent → text-to-speech, with the local turn detector.
//!
//! It decides when the caller's turn is over, barges in when the caller speaks over a reply,
//! gathers DTMF turns, and hands each turn to its [`Conversation`] (agent + TTS), whose audio
//! goes out through [`EngineIo`]. The local turn detector runs from the first frame whatever
//! the STT does, so a turn is never lost to an STT fault: the turn-taking rules are in
//! [`turns`], the STT's health and watchdog in [`stt_link`]. Provider work runs in the
//! providers' own tasks; this engine only reacts to their events and never blocks.

pub mod conversation;
mod stt_link;
mod turns;

use std::sync::Arc;
use std::time::{Duration, Instant};

use self::conversation::{ConvEvent, Conversation};
use self::stt_link::SttLink;
use self::turns::Heard;
use super::dtmf::DtmfTurn;
use super::turn::{TurnDetector, Utterance};
use super::{Engine, EngineInput, EngineIo};
use crate::call::context::CallContext;
use crate::call::events::StageProviders;
use crate::call::latency::TurnTiming;
use crate::call::services::AgentServices;
use crate::config::{Config, TurnSource};
use crate::provider::CallIds;
use crate::stt::SttEvent;

/// What the cascade's provider tasks produced.
#[derive(Debug)]
pub enum CascadeEvent {
    Conv(ConvEvent),
    Stt(Option<SttEvent>),
}

pub struct Cascade {
    services: Arc<AgentServices>,
    turn: TurnDetector,
    utterance: Utterance,
    conv: Conversation,
    stt: SttLink,
    turn_source: TurnSource,
    /// The caller's current turn as heard so far.
    heard: Heard,
    /// How long the STT may take to give a turn's words after the local detector ended it.
    stt_grace: Duration,
    dtmf: DtmfTurn,
    /// When the caller's current utterance began (by the local detector).
    speech_started_at: Option<Instant>,
    /// The call is ending: no more answers, only the STT's last words are collected.
    finishing: bool,
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
            stt: SttLink::new(services.stt.clone(), ids),
            turn_source: services.turn_source,
            heard: Heard::default(),
            stt_grace: turns::stt_grace(config),
            dtmf: DtmfTurn::default(),
            speech_started_at: None,
            finishing: false,
            services,
        }
    }
}

impl Engine for Cascade {
    type Event = CascadeEvent;

    fn name(&self) -> &'static str {
        "cascade"
    }

    fn providers(&self) -> StageProviders {
        StageProviders {
            stt: self.stt.name(),
            agent: self.conv.agent_name(),
            tts: self.conv.tts_name(),
        }
    }

    /// Open the live transcription, and greet.
    fn start(&mut self, io: &mut EngineIo<'_>) {
        self.stt.start();
        let now = io.now();
        self.conv.greet(io, now);
    }

    fn on_input(&mut self, input: EngineInput<'_>, io: &mut EngineIo<'_>) {
        match input {
            EngineInput::Audio(frame) if !self.finishing => self.on_audio(frame, io),
            EngineInput::Audio(_) => {}
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
            ev = stt.next() => CascadeEvent::Stt(ev),
        }
    }

    fn on_event(&mut self, event: CascadeEvent, io: &mut EngineIo<'_>) {
        match event {
            CascadeEvent::Conv(ev) => self.on_conversation(ev, io),
            CascadeEvent::Stt(ev) => self.on_stt(ev, io),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        if self.finishing {
            return None;
        }
        let waiting = self.heard.waiting_until();
        match (self.dtmf.deadline(), waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_deadline(&mut self, io: &mut EngineIo<'_>) {
        let now = io.now();
        if self.dtmf.deadline().is_some_and(|at| at <= now)
            && let Some(digits) = self.dtmf.take()
        {
            self.end_turn(crate::agent::CallerTurn::Dtmf(digits), None, io);
        }
        if self.heard.waiting_until().is_some_and(|at| at <= now) {
            self.stt_grace_over(io);
        }
    }

    fn timing(&mut self, id: u64) -> Option<&mut TurnTiming> {
        self.conv.timing_mut(id)
    }

    /// Stop answering; close the STT gracefully (its last words still reach the transcript
    /// while the session waits, bounded, for [`Engine::finished`]).
    fn finish(&mut self, io: &mut EngineIo<'_>) {
        self.finishing = true;
        self.conv.abandon();
        self.heard.flush_transcript(io);
        self.stt.close();
    }

    fn finished(&self) -> bool {
        self.stt.is_finished()
    }
}
