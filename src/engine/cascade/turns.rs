//! The cascade's turn-taking: when the caller's turn is over, and what answers it.
//!
//! The local turn detector (VAD) runs from the first frame, always; the STT's endpointing and
//! `UtteranceEnd` run beside it. The rules:
//! - with `turn.source = "stt"`, an STT endpoint with words ends the turn at once;
//! - when the local detector ends a turn the STT has not answered: with the STT down or gone,
//!   the turn is answered now — its words if any were finalised, else the apology; with the
//!   STT up, it gets [`stt_grace`] to give its words, after which the words so far answer the
//!   turn, or, if there are none, a reprompt does (an *unrecognised* turn: speech with no
//!   words, counted in `voxbridge_turns_unrecognised_total`);
//! - an STT that finalised the speech as empty gets the reprompt as soon as the detector
//!   agrees the turn is over;
//! - speech shorter than [`UNRECOGNISED_MIN_SPEECH_MS`] with no words is a cough, not a turn.
//!
//! Answering a turn settles the audio so far (a reconnecting STT does not replay it, so the
//! turn is never answered twice). State lives in [`Cascade`] and [`Heard`]; this file only adds
//! behaviour.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::Cascade;
use super::conversation::{ConvEvent, Outcome};
use super::stt_link::{Forwarded, Health};
use crate::agent::CallerTurn;
use crate::call::events::{AudioFrame, TurnKind};
use crate::call::latency::TurnTiming;
use crate::config::{Config, TurnSource};
use crate::engine::EngineIo;
use crate::engine::echo::{UTTERANCE_LEAD_MS, UTTERANCE_TAIL_MS};
use crate::engine::turn::TurnEvent;
use crate::provider::{ProviderError, count_error};
use crate::stt::SttEvent;

/// Speech with no words shorter than this gets no reprompt.
pub const UNRECOGNISED_MIN_SPEECH_MS: u32 = 400;

/// How long the STT may take, after the local detector ended a turn, to give its words: its
/// `UtteranceEnd` is due `utterance_end_ms` after the last word, some of which the detector
/// already waited, plus a margin for the network.
pub fn stt_grace(config: &Config) -> Duration {
    let wait = config
        .stt
        .utterance_end_ms
        .saturating_sub(config.turn.end_of_turn_ms);
    Duration::from_millis(u64::from(wait) + 800)
}

/// The caller's current turn, as heard so far.
#[derive(Debug, Default)]
pub struct Heard {
    /// Final transcripts not yet answered.
    transcript: String,
    /// When the caller's last voiced frame arrived.
    last_voiced_at: Option<Instant>,
    /// The utterance the detector is tracking has been answered.
    answered: bool,
    /// The STT finalised the utterance with no words.
    stt_empty: bool,
    /// The detector ended the turn; the STT may still give its words until then.
    waiting: Option<Waiting>,
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    speech_end: Instant,
    speech_ms: u32,
    until: Instant,
}

impl Heard {
    pub fn waiting_until(&self) -> Option<Instant> {
        self.waiting.map(|w| w.until)
    }

    /// Words heard but never answered go to the transcript (the call is ending).
    pub fn flush_transcript(&mut self, io: &mut EngineIo<'_>) {
        self.waiting = None;
        let text = std::mem::take(&mut self.transcript);
        if !text.trim().is_empty() {
            io.caller_said(&text, None, None);
        }
    }
}

impl Cascade {
    pub(super) fn on_audio(&mut self, f: &AudioFrame<'_>, io: &mut EngineIo<'_>) {
        let frame_ms = (f.mulaw.len() / 8) as u32;
        match self.stt.forward(f.mulaw, f.voiced, frame_ms) {
            Forwarded::Sent | Forwarded::NoStream => {}
            Forwarded::Dropped => io.stt_frame_dropped(),
            Forwarded::Stalled => self.stt_stalled(io),
        }
        if f.voiced {
            self.heard.last_voiced_at = Some(f.at);
        }
        let event = self.turn.push(f.voiced, frame_ms, f.at);
        if event == Some(TurnEvent::SpeechStarted) {
            self.utterance.start();
            self.speech_started_at = Some(f.at);
            self.heard.answered = false;
            self.heard.stt_empty = false;
            self.heard.waiting = None; // the caller goes on: the turn is not over
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
                self.vad_turn_end(audio, speech_ms, speech_end, io);
            }
            Some(TurnEvent::Discarded) => self.utterance.discard(),
            _ => {}
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
        self.overtake(io);
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
        self.answered();
        let timing = TurnTiming::new(speech_end, io.now());
        self.conv.respond(turn, io, timing);
    }

    /// A new turn overtook a reply still being produced: drop that reply.
    fn overtake(&mut self, io: &mut EngineIo<'_>) {
        if self.conv.is_generating() {
            let cleared = io.abandon();
            self.conv.interrupted(&cleared, io);
        }
    }

    /// The turn is answered: forget its state; its audio needs no replay.
    fn answered(&mut self) {
        self.heard.answered = true;
        self.heard.waiting = None;
        self.heard.stt_empty = false;
        self.stt.settle();
    }

    /// Answer with the words heard so far.
    fn answer_words(&mut self, speech_end: Option<Instant>, io: &mut EngineIo<'_>) {
        let text = std::mem::take(&mut self.heard.transcript);
        self.end_turn(CallerTurn::Speech(text), speech_end, io);
    }

    /// The caller spoke but no words came: a reprompt (the apology while the STT is down).
    fn unrecognised(&mut self, speech_end: Instant, io: &mut EngineIo<'_>) {
        let stt_up = self.stt.health() == Health::Up;
        let text = if stt_up {
            self.services.reprompt_text.clone()
        } else {
            self.services.apology_text.clone()
        };
        info!(parent: io.span(), stt_up, "caller spoke, no words recognised: reprompting");
        self.overtake(io);
        self.answered();
        let timing = TurnTiming::new(Some(speech_end), io.now());
        if self.conv.say(text, io, timing).is_some() {
            io.turn(TurnKind::Unrecognised);
        }
    }

    /// The local detector ended the caller's turn.
    fn vad_turn_end(
        &mut self,
        audio: Vec<u8>,
        speech_ms: u32,
        speech_end: Instant,
        io: &mut EngineIo<'_>,
    ) {
        if !self.stt.configured() {
            self.end_turn(CallerTurn::Audio(audio.into()), Some(speech_end), io);
            return;
        }
        if self.heard.answered {
            return; // the STT's endpoint answered it already
        }
        let words = !self.heard.transcript.trim().is_empty();
        let stt_up = self.stt.health() == Health::Up;
        if words && (!stt_up || self.turn_source == TurnSource::Vad) {
            self.answer_words(Some(speech_end), io);
        } else if !stt_up {
            self.unrecognised(speech_end, io);
        } else if self.heard.stt_empty && !words {
            if speech_ms >= UNRECOGNISED_MIN_SPEECH_MS {
                self.unrecognised(speech_end, io);
            }
        } else {
            self.heard.waiting = Some(Waiting {
                speech_end,
                speech_ms,
                until: io.now() + self.stt_grace,
            });
        }
    }

    /// The STT had its chance to give the words of a turn the detector ended.
    pub(super) fn stt_grace_over(&mut self, io: &mut EngineIo<'_>) {
        let Some(w) = self.heard.waiting.take() else {
            return;
        };
        if !self.heard.transcript.trim().is_empty() {
            self.answer_words(Some(w.speech_end), io);
        } else if w.speech_ms >= UNRECOGNISED_MIN_SPEECH_MS {
            debug!(parent: io.span(), "no words from the STT in time");
            self.unrecognised(w.speech_end, io);
        }
    }

    pub(super) fn on_stt(&mut self, event: Option<SttEvent>, io: &mut EngineIo<'_>) {
        let Some(event) = event else {
            self.stt.ended();
            if !self.finishing {
                self.stt_gone(io);
            }
            return;
        };
        self.stt.heard(&event);
        match event {
            SttEvent::SpeechStarted if !self.finishing => self.caller_started_speaking("stt", io),
            SttEvent::SpeechStarted => {}
            SttEvent::Transcript {
                text,
                is_final,
                speech_final,
            } => {
                let text = text.trim();
                if is_final && !text.is_empty() {
                    if self.finishing {
                        // The caller's last words, after the call ended: for the record.
                        io.caller_said(text, None, None);
                        return;
                    }
                    if !self.heard.transcript.is_empty() {
                        self.heard.transcript.push(' ');
                    }
                    self.heard.transcript.push_str(text);
                }
                if speech_final {
                    self.stt_turn_end(io);
                }
            }
            SttEvent::UtteranceEnd => self.stt_turn_end(io),
            SttEvent::Error {
                error,
                reconnecting,
            } => {
                let provider = self.stt.name();
                warn!(parent: io.span(), provider, %error, reconnecting, "speech-to-text failed");
                io.provider_failed(provider, &error.to_string());
                if !reconnecting {
                    self.stt.give_up();
                    self.stt_gone(io);
                } else if self.heard.waiting.is_some() {
                    self.stt_grace_over(io); // it will not give the words in time now
                }
            }
            SttEvent::Reconnected => {
                info!(parent: io.span(), provider = self.stt.name(), "speech-to-text reconnected");
                io.stt_reconnected();
            }
            SttEvent::Warning(error) => {
                debug!(parent: io.span(), provider = self.stt.name(), %error, "speech-to-text message skipped");
                io.provider_failed(self.stt.name(), &error.to_string());
            }
        }
    }

    /// The STT is gone for good: the local detector ends turns from now on.
    fn stt_gone(&mut self, io: &mut EngineIo<'_>) {
        if self.turn_source == TurnSource::Stt {
            warn!(parent: io.span(), "speech-to-text unavailable: turns now end by the local VAD");
            self.turn_source = TurnSource::Vad;
        }
        if self.heard.waiting.is_some() {
            self.stt_grace_over(io);
        }
    }

    /// The STT heard several seconds of speech and said nothing: it is not working.
    fn stt_stalled(&mut self, io: &mut EngineIo<'_>) {
        let provider = self.stt.name();
        let error = ProviderError::Timeout(format!(
            "no results for {} s of speech",
            super::stt_link::STALL_VOICED_MS / 1000
        ));
        count_error(provider, &error);
        warn!(parent: io.span(), provider, %error, "speech-to-text stalled; reconnecting");
        io.provider_failed(provider, &error.to_string());
        if self.stt.restart() {
            io.stt_reconnected();
        } else {
            self.stt.give_up();
            self.stt_gone(io);
        }
    }

    /// STT endpoint or utterance end: the turn is over if there are words; no words for
    /// speech the detector heard is an unrecognised turn.
    fn stt_turn_end(&mut self, io: &mut EngineIo<'_>) {
        if self.finishing {
            return;
        }
        if self.heard.transcript.trim().is_empty() {
            self.heard.stt_empty = true;
            if let Some(w) = self.heard.waiting.take()
                && w.speech_ms >= UNRECOGNISED_MIN_SPEECH_MS
            {
                self.unrecognised(w.speech_end, io);
            }
            return;
        }
        if self.turn_source == TurnSource::Stt || self.heard.waiting.is_some() {
            let speech_end = self
                .heard
                .waiting
                .map(|w| w.speech_end)
                .or(self.heard.last_voiced_at);
            self.answer_words(speech_end, io);
        }
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
