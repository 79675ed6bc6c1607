//! The session's conversational half: starting the agent and STT at `start`, deciding when the
//! caller's turn is over (VAD or STT endpointing), barge-in, DTMF turns, provider events,
//! per-turn latency and the agent's call actions. State lives in [`CallSession`]; this file
//! only adds behaviour to it.

use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::{CallSession, Flow};
use crate::agent::{CallAction, CallerTurn};
use crate::call::conversation::{ConvEvent, Conversation, Outcome};
use crate::call::latency::TurnTiming;
use crate::call::summary::{EndReason, MAX_LATENCIES};
use crate::config::TurnSource;
use crate::provider::CallIds;
use crate::stt::SttEvent;
use crate::twilio::messages::OutboundMessage;

impl CallSession {
    /// `start` arrived: open the conversation (and greet), and the live transcription.
    pub(super) fn begin_conversation(&mut self, ids: CallIds) {
        let services = &self.services;
        let agent = services.agent.start_call(&ids);
        let mut conv = Conversation::new(
            agent,
            services.agent.name(),
            services.tts.clone(),
            services.apology_text.clone(),
            services.apology_audio.clone(),
        );
        if let Some(stt) = &services.stt {
            self.stt = Some(stt.start(ids, self.stt_cancel.child_token()));
        }
        conv.greet(&mut self.playout, Instant::now());
        self.latency_pending = self.playout.current();
        self.conv = Some(conv);
    }

    /// Hand the current frame to the STT (dropped and counted if its queue is full).
    pub(super) fn forward_to_stt(&mut self) {
        let Some(stt) = &self.stt else { return };
        if stt
            .audio
            .try_send(Bytes::copy_from_slice(&self.payload))
            .is_err()
        {
            self.summary.stt_frames_dropped += 1;
        }
    }

    /// The caller began to speak (`source`: "vad" or "stt"): barge in on anything we say.
    pub(super) fn caller_started_speaking(&mut self, source: &'static str) {
        let generating = self.conv.as_ref().is_some_and(Conversation::is_generating);
        if !(self.playout.is_active() || generating) {
            return;
        }
        let cleared = self.playout.clear(Instant::now());
        if let Some(conv) = &mut self.conv {
            conv.interrupted(&cleared);
        }
        self.outbox.drop_media();
        self.outbox.push(OutboundMessage::Clear);
        self.latency_pending = None;
        let n = cleared.ids.len() as u64;
        self.metrics.barge_ins.increment(1);
        self.metrics.responses_interrupted.increment(n);
        self.summary.barge_ins += 1;
        self.summary.responses_interrupted += n;
        info!(parent: &self.span, source, responses = ?cleared.ids,
            heard_ms = cleared.heard_bytes / 8, "barge-in: caller spoke, clearing");
    }

    /// The caller's turn is over: ask the agent.
    pub(super) fn end_turn(&mut self, turn: CallerTurn, speech_end: Option<Instant>, now: Instant) {
        let span = self.span.clone();
        let Some(conv) = &mut self.conv else { return };
        if conv.is_generating() {
            // A new turn overtook a reply still being produced: drop that reply.
            let cleared = self.playout.clear(now);
            self.metrics
                .responses_abandoned
                .increment(cleared.ids.len() as u64);
            conv.interrupted(&cleared);
        }
        self.summary.turns += 1;
        let kind = match &turn {
            CallerTurn::Speech(text) => {
                info!(parent: &span, transcript = %text, "caller turn");
                "speech"
            }
            CallerTurn::Dtmf(digits) => {
                info!(parent: &span, digits = %digits, "caller turn (dtmf)");
                "dtmf"
            }
            CallerTurn::Audio(_) => "audio",
        };
        debug!(parent: &span, kind, "asking the agent");
        let id = conv.respond(turn, &mut self.playout, TurnTiming::new(speech_end, now));
        self.latency_pending = Some(id);
    }

    /// The local VAD ended the caller's turn: the transcript is the turn when an STT runs,
    /// the audio itself when none is configured. With the STT gone, the caller is told.
    pub(super) fn vad_turn_end(&mut self, audio: Vec<u8>, speech_end: Instant, now: Instant) {
        if self.services.stt.is_none() {
            self.end_turn(CallerTurn::Audio(audio.into()), Some(speech_end), now);
            return;
        }
        let text = std::mem::take(&mut self.transcript);
        if !text.trim().is_empty() {
            self.end_turn(CallerTurn::Speech(text), Some(speech_end), now);
        } else if self.stt.is_none() {
            let apology = self.services.apology_text.clone();
            if let Some(conv) = &mut self.conv {
                let timing = TurnTiming::new(Some(speech_end), now);
                self.latency_pending = conv.say(apology, &mut self.playout, timing);
                self.summary.turns += 1;
            }
        }
    }

    /// DTMF digits stopped coming: they are the caller's turn.
    pub(super) fn dtmf_turn(&mut self) {
        self.dtmf_deadline = None;
        let digits = std::mem::take(&mut self.dtmf_pending);
        if !digits.is_empty() {
            self.end_turn(CallerTurn::Dtmf(digits), None, Instant::now());
        }
    }

    pub(super) fn on_stt(&mut self, event: Option<SttEvent>) {
        let now = Instant::now();
        match event {
            Some(SttEvent::SpeechStarted) => self.caller_started_speaking("stt"),
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
                    self.stt_turn_end(now);
                }
            }
            Some(SttEvent::UtteranceEnd) => self.stt_turn_end(now),
            Some(SttEvent::Error {
                error,
                reconnecting,
            }) => {
                self.summary.provider_failures += 1;
                warn!(parent: &self.span, provider = self.stt_name(), %error, reconnecting,
                    "speech-to-text failed");
                if !reconnecting {
                    self.give_up_stt();
                }
            }
            Some(SttEvent::Reconnected) => {
                self.summary.stt_reconnects += 1;
                info!(parent: &self.span, provider = self.stt_name(), "speech-to-text reconnected");
            }
            None => self.give_up_stt(),
        }
    }

    fn stt_name(&self) -> &'static str {
        self.services.stt.as_ref().map_or("none", |s| s.name())
    }

    /// The STT is gone for good: the local VAD ends turns from now on.
    fn give_up_stt(&mut self) {
        if self.stt.take().is_some() && self.turn_source == TurnSource::Stt {
            warn!(parent: &self.span, "speech-to-text unavailable: turns now end by the local VAD");
            self.turn_source = TurnSource::Vad;
        }
    }

    /// STT endpoint or utterance end: the turn is over if there are words.
    fn stt_turn_end(&mut self, now: Instant) {
        if self.turn_source != TurnSource::Stt || self.transcript.trim().is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.transcript);
        self.end_turn(CallerTurn::Speech(text), self.last_voiced_at, now);
    }

    pub(super) fn on_conversation(&mut self, event: ConvEvent) {
        let Some(conv) = &mut self.conv else { return };
        match conv.handle(event, &mut self.playout, Instant::now()) {
            Outcome::Nothing => {}
            Outcome::ProviderFailed { provider, error } => {
                self.summary.provider_failures += 1;
                warn!(parent: &self.span, provider, %error, "provider failed; falling back");
            }
        }
    }

    /// The first frame of the awaited response just went out: record the turn's latency.
    pub(super) fn first_frame_sent(&mut self, now: Instant) {
        let Some(id) = self.latency_pending.take() else {
            return;
        };
        let stt = self.stt_name();
        let Some(conv) = &mut self.conv else { return };
        let (agent, tts) = (conv.agent_name(), conv.tts_name());
        let Some(timing) = conv.timing_mut(id) else {
            return;
        };
        let latency = timing.finish(now);
        latency.record(stt, agent, tts);
        if let Some(total) = latency.total_ms {
            self.metrics.response_latency.record(total / 1000.0);
            if self.summary.response_latencies_ms.len() < MAX_LATENCIES {
                self.summary.response_latencies_ms.push(total as u64);
            }
        }
        if self.summary.turn_latencies.len() < MAX_LATENCIES {
            self.summary.turn_latencies.push(latency);
        }
    }

    /// Response `id` finished playing; carry out what the agent asked for with it.
    pub(super) fn response_played(&mut self, id: u64) -> Flow {
        let action = self.conv.as_mut().and_then(|c| c.played(id));
        if let Some(action) = action {
            self.summary.actions.push(match &action {
                CallAction::EndCall => "end_call".to_owned(),
                CallAction::Transfer { to } => format!("transfer_call {to}"),
            });
            let call_sid = self.summary.call_sid.clone().unwrap_or_default();
            let twilio = self.services.twilio.clone();
            match action {
                CallAction::EndCall => {
                    info!(parent: &self.span, "agent ended the call");
                    if let Some(twilio) = twilio {
                        let span = self.span.clone();
                        tokio::spawn(async move {
                            if let Err(e) = twilio.hang_up(&call_sid).await {
                                warn!(parent: &span, error = %e, "hanging up through Twilio REST failed");
                            }
                        });
                    }
                    // Closing the stream ends <Connect>; without REST access that ends the call.
                    self.outbox.close(1000, "call ended by agent");
                    return Flow::End(EndReason::AgentHangup);
                }
                CallAction::Transfer { to } => match twilio {
                    Some(twilio) => {
                        info!(parent: &self.span, to = %to, "agent is transferring the call");
                        let span = self.span.clone();
                        tokio::spawn(async move {
                            if let Err(e) = twilio.transfer(&call_sid, &to).await {
                                warn!(parent: &span, error = %e, "transfer through Twilio REST failed");
                            }
                        });
                    }
                    None => warn!(parent: &self.span, to = %to,
                        "agent asked to transfer the call, but TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN are not set"),
                },
            }
        }
        Flow::Continue
    }
}
