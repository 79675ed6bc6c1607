//! The echo engine, voxbridge's zero-configuration default: at the end of each caller turn it
//! plays the caller's own audio back. It proves the whole media path — turn detection, pacing,
//! marks, barge-in — with no provider at all, and it is what `voxbridge load` measures.
//!
//! It holds the local turn detector and the utterance being spoken; it reads no clock (the
//! session's instants come with each input) and spawns no task.

use std::time::Instant;

use tracing::debug;

use super::dtmf::DtmfTurn;
use super::turn::{TurnDetector, TurnEvent, Utterance};
use super::{Engine, EngineInput, EngineIo};
use crate::call::events::{AudioFrame, StageProviders, TurnKind};
use crate::call::latency::TurnTiming;
use crate::config::Config;

/// Audio kept before the voice onset and after the last voiced frame of an utterance.
pub const UTTERANCE_LEAD_MS: u32 = 20;
pub const UTTERANCE_TAIL_MS: u32 = 60;

pub struct EchoEngine {
    turn: TurnDetector,
    utterance: Utterance,
    dtmf: DtmfTurn,
    /// The latest response and its timing (only one is timed at a time).
    timing: Option<(u64, TurnTiming)>,
    /// When the caller's current utterance began.
    speech_started_at: Option<Instant>,
}

impl EchoEngine {
    pub fn new(config: &Config) -> Self {
        Self {
            turn: TurnDetector::new(&config.turn),
            utterance: Utterance::new(config.turn.pre_roll_ms, config.limits.max_utterance_ms),
            dtmf: DtmfTurn::default(),
            timing: None,
            speech_started_at: None,
        }
    }

    fn on_audio(&mut self, f: &AudioFrame<'_>, io: &mut EngineIo<'_>) {
        let frame_ms = (f.mulaw.len() / 8) as u32;
        let event = self.turn.push(f.voiced, frame_ms, f.at);
        if event == Some(TurnEvent::SpeechStarted) {
            self.utterance.start();
            self.speech_started_at = Some(f.at);
            if io.is_playing() {
                let cleared = io.interrupt("vad");
                self.timing = None;
                if let Some(&id) = cleared.ids.last() {
                    io.agent_said(id, "", true);
                }
            }
        }
        self.utterance.push(f.mulaw, f.voiced);
        match event {
            Some(TurnEvent::TurnEnded {
                speech_ms,
                speech_end,
            }) => {
                let audio = self.utterance.finish(UTTERANCE_LEAD_MS, UTTERANCE_TAIL_MS);
                debug!(parent: io.span(), speech_ms, "caller turn ended (vad)");
                self.answer(audio, speech_end, io);
            }
            Some(TurnEvent::Discarded) => self.utterance.discard(),
            _ => {}
        }
    }

    /// Play the caller's turn back.
    fn answer(&mut self, audio: Vec<u8>, speech_end: Instant, io: &mut EngineIo<'_>) {
        let now = io.now();
        io.turn(TurnKind::Audio);
        io.caller_said("", self.speech_started_at.take(), Some(speech_end));
        let id = io.begin_response();
        let mut timing = TurnTiming::new(Some(speech_end), now);
        timing.agent_first = Some(now);
        timing.tts_first_audio = Some(now);
        io.audio(id, &audio);
        io.end_response(id);
        self.timing = Some((id, timing));
    }
}

impl Engine for EchoEngine {
    type Event = ();

    fn name(&self) -> &'static str {
        "echo"
    }

    fn providers(&self) -> StageProviders {
        StageProviders {
            stt: "none",
            agent: "echo",
            tts: "none",
        }
    }

    fn start(&mut self, _io: &mut EngineIo<'_>) {}

    fn on_input(&mut self, input: EngineInput<'_>, io: &mut EngineIo<'_>) {
        match input {
            EngineInput::Audio(f) => self.on_audio(f, io),
            EngineInput::Dtmf(key) => self.dtmf.press(key, io.now()),
            EngineInput::Played(id) => io.agent_said(id, "", false),
            EngineInput::Cleared(cleared) => {
                if let Some(&id) = cleared.ids.last() {
                    io.agent_said(id, "", true);
                }
            }
        }
    }

    async fn next_event(&mut self) {
        std::future::pending().await
    }

    fn on_event(&mut self, _event: (), _io: &mut EngineIo<'_>) {}

    fn deadline(&self) -> Option<Instant> {
        self.dtmf.deadline()
    }

    /// The keys stopped coming: a DTMF turn. Echo has no voice to read digits back with, so
    /// the turn is counted and not answered.
    fn on_deadline(&mut self, io: &mut EngineIo<'_>) {
        if let Some(digits) = self.dtmf.take() {
            tracing::info!(parent: io.span(), digits = %digits, "caller turn (dtmf)");
            io.turn(TurnKind::Dtmf);
        }
    }

    fn timing(&mut self, id: u64) -> Option<&mut TurnTiming> {
        self.timing
            .as_mut()
            .filter(|(t, _)| *t == id)
            .map(|(_, timing)| timing)
    }

    fn finish(&mut self, _io: &mut EngineIo<'_>) {}
}
