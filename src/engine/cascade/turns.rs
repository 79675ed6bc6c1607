//! The cascade's turn-taking: deciding when the caller's turn is over (local VAD, or the STT's
//! endpointing and UtteranceEnd), barge-in, and what the STT and the providers report. State
//! lives in [`Cascade`]; this file only adds behaviour to it.

use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::Cascade;
use super::conversation::{ConvEvent, Outcome};
use crate::agent::CallerTurn;
use crate::call::events::{AudioFrame, TurnKind};
use crate::call::latency::TurnTiming;
use crate::config::TurnSource;
use crate::engine::EngineIo;
use crate::engine::echo::{UTTERANCE_LEAD_MS, UTTERANCE_TAIL_MS};
use crate::engine::turn::TurnEvent;
use crate::stt::SttEvent;

impl Cascade {
    pub(super) fn on_audio(&mut self, f: &AudioFrame<'_>, io: &mut EngineIo<'_>) {
        self.forward_to_stt(f.mulaw, io);
        if f.voiced {
            self.last_voiced_at = Some(f.at);
        }
        let frame_ms = (f.mulaw.len() / 8) as u32;
        let event = self.turn.push(f.voiced, frame_ms, f.at);
        if event == Some(TurnEvent::SpeechStarted) {
            self.utterance.start();
            self.speech_started_at = Some(f.at);
            self.caller_started_speaking("vad", io);
        }
        self.utterance.push(f.mulaw, f.voiced);
        match event {
            Some(TurnEvent::TurnEnded {
                speech_ms,
                speech_end,
            }) => {
                let audio = self.utterance.finish(UTTERANCE_LEAD_MS, UTTERANCE_TAIL_MS);
                debug!(parent: io.span(), speech_ms, "caller turn ended (vad)");
                if self.turn_source == TurnSource::Vad {
                    self.vad_turn_end(audio, speech_end, io);
                }
            }
            Some(TurnEvent::Discarded) => self.utterance.discard(),
            _ => {}
        }
    }

    /// Hand the frame to the STT (dropped and counted if its queue is full).
    fn forward_to_stt(&mut self, mulaw: &[u8], io: &mut EngineIo<'_>) {
        let Some(stt) = &self.stt else { return };
        if stt.audio.try_send(Bytes::copy_from_slice(mulaw)).is_err() {
            io.stt_frame_dropped();
        }
    }

    /// The caller began to speak (`source`: "vad" or "stt"): barge in on anything we say.
    fn caller_started_speaking(&mut self, source: &'static str, io: &mut EngineIo<'_>) {
        if !(io.is_playing() || self.conv.is_generating()) {
            return;
        }
        let cleared = io.interrupt(source);
        self.conv.interrupted(&cleared, io);
    }

    /// The caller's turn is over: ask the agent.
    pub(super) fn end_turn(
        &mut self,
        turn: CallerTurn,
        speech_end: Option<Instant>,
        io: &mut EngineIo<'_>,
    ) {
        if self.conv.is_generating() {
            // A new turn overtook a reply still being produced: drop that reply.
            let cleared = io.abandon();
            self.conv.interrupted(&cleared, io);
        }
        let kind = match &turn {
            CallerTurn::Speech(text) => {
                info!(parent: io.span(), transcript = %text, "caller turn");
                io.caller_said(text, self.speech_started_at.take(), speech_end);
                TurnKind::Speech
            }
            CallerTurn::Dtmf(digits) => {
                info!(parent: io.span(), digits = %digits, "caller turn (dtmf)");
                TurnKind::Dtmf
            }
            CallerTurn::Audio(_) => {
                io.caller_said("", self.speech_started_at.take(), speech_end);
                TurnKind::Audio
            }
        };
        io.turn(kind);
        let timing = TurnTiming::new(speech_end, io.now());
        self.conv.respond(turn, io, timing);
    }

    /// The local VAD ended the caller's turn: the transcript is the turn when an STT runs,
    /// the audio itself when none is configured. With the STT gone, the caller is told.
    fn vad_turn_end(&mut self, audio: Vec<u8>, speech_end: Instant, io: &mut EngineIo<'_>) {
        if self.services.stt.is_none() {
            self.end_turn(CallerTurn::Audio(audio.into()), Some(speech_end), io);
            return;
        }
        let text = std::mem::take(&mut self.transcript);
        if !text.trim().is_empty() {
            self.end_turn(CallerTurn::Speech(text), Some(speech_end), io);
        } else if self.stt.is_none() {
            let apology = self.services.apology_text.clone();
            let timing = TurnTiming::new(Some(speech_end), io.now());
            if self.conv.say(apology, io, timing).is_some() {
                io.turn(TurnKind::Unrecognised);
            }
        }
    }

    pub(super) fn on_stt(&mut self, event: Option<SttEvent>, io: &mut EngineIo<'_>) {
        match event {
            Some(SttEvent::SpeechStarted) => self.caller_started_speaking("stt", io),
            Some(SttEvent::Transcript {
                text,
                is_final,
                speech_final,
            }) => {
                if is_final && !text.trim().is_empty() {
                    if !self.transcript.is_empty() {
                        self.transcript.push(' ');
                    }
                    self.transcript.push_str(text.trim());
                }
                if speech_final {
                    self.stt_turn_end(io);
                }
            }
            Some(SttEvent::UtteranceEnd) => self.stt_turn_end(io),
            Some(SttEvent::Error {
                error,
                reconnecting,
            }) => {
                let provider = self.stt_name();
                warn!(parent: io.span(), provider, %error, reconnecting, "speech-to-text failed");
                io.provider_failed(provider, &error.to_string());
                if !reconnecting {
                    self.give_up_stt(io);
                }
            }
            Some(SttEvent::Reconnected) => {
                info!(parent: io.span(), provider = self.stt_name(), "speech-to-text reconnected");
                io.stt_reconnected();
            }
            None => self.give_up_stt(io),
        }
    }

    /// The STT is gone for good: the local VAD ends turns from now on.
    fn give_up_stt(&mut self, io: &mut EngineIo<'_>) {
        if self.stt.take().is_some() && self.turn_source == TurnSource::Stt {
            warn!(parent: io.span(), "speech-to-text unavailable: turns now end by the local VAD");
            self.turn_source = TurnSource::Vad;
        }
    }

    /// STT endpoint or utterance end: the turn is over if there are words.
    fn stt_turn_end(&mut self, io: &mut EngineIo<'_>) {
        if self.turn_source != TurnSource::Stt || self.transcript.trim().is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.transcript);
        self.end_turn(CallerTurn::Speech(text), self.last_voiced_at, io);
    }

    pub(super) fn on_conversation(&mut self, event: ConvEvent, io: &mut EngineIo<'_>) {
        match self.conv.handle(event, io) {
            Outcome::Nothing => {}
            Outcome::ProviderFailed { provider, error } => {
                warn!(parent: io.span(), provider, %error, "provider failed; falling back");
                io.provider_failed(provider, &error);
            }
        }
    }
}
