//! The echo engine, voxbridge's zero-configuration default: at the end of each caller turn it
//! plays the caller's own audio back. It proves the whole media path — turn detection, pacing,
//! marks, barge-in — with no provider at all, and it is what `voxbridge load` measures.
//!
//! It holds the caller's turn gate and the utterance being spoken ([`CallerTurns`]): a reply is
//! cut by sustained speech only (there are no words to wait for), never by a cough, a click,
//! a short backchannel or our own echo. It reads no clock (the session's instants come with
//! each input) and spawns no task.

use std::time::Instant;

use tracing::debug;

use super::caller::{CallerTurns, cause_label};
use super::dtmf::DtmfTurn;
use super::{Engine, EngineInput, EngineIo};
use crate::call::events::{AudioFrame, StageProviders, TurnKind};
use crate::call::latency::TurnTiming;
use crate::config::Config;

pub use super::caller::{UTTERANCE_LEAD_MS, UTTERANCE_TAIL_MS};

pub struct EchoEngine {
    turns: CallerTurns,
    dtmf: DtmfTurn,
    /// The latest response and its timing (only one is timed at a time).
    timing: Option<(u64, TurnTiming)>,
}

impl EchoEngine {
    pub fn new(config: &Config) -> Self {
        Self {
            turns: CallerTurns::new(config, false),
            dtmf: DtmfTurn::default(),
            timing: None,
        }
    }

    fn on_audio(&mut self, f: &AudioFrame<'_>, io: &mut EngineIo<'_>) {
        let step = self.turns.on_audio(f, io.agent_state(false));
        if let Some(cause) = step.barge_in {
            let cleared = io.interrupt(cause_label(cause));
            self.timing = None;
            if let Some(&id) = cleared.ids.last() {
                io.agent_said(id, "", true);
            }
        }
        if let Some(turn) = step.ended {
            debug!(parent: io.span(), speech_ms = turn.speech_ms, "caller turn ended (vad)");
            self.answer(turn.audio, turn.speech_end, io);
        }
    }

    /// Play the caller's turn back.
    fn answer(&mut self, audio: Vec<u8>, speech_end: Instant, io: &mut EngineIo<'_>) {
        let now = io.now();
        io.turn(TurnKind::Audio);
        io.caller_said("", self.turns.take_started_at(), Some(speech_end));
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
