//! The Realtime engine's reactions to the model: responses streamed into generations, the
//! caller's turns as the model's detector reports them, barge-in with truncation at what was
//! heard, function calls, and errors. Adds behaviour to [`RealtimeEngine`]; owns no state.

use tracing::{debug, info, warn};

use super::PROVIDER;
use super::config::TurnDetection;
use super::engine::{RealtimeEngine, Reply};
use super::wire::server::{ItemKind, ResponseStatus, ServerEvent};
use super::wire::{ClientEvent, Role, Tool};
use crate::agent::CallAction;
use crate::agent::outcome_label;
use crate::call::events::TurnKind;
use crate::call::latency::TurnTiming;
use crate::call::playout::Cleared;
use crate::dialer::model::OPTED_OUT;
use crate::engine::EngineIo;
use crate::engine::cascade::conversation::heard_prefix;

impl RealtimeEngine {
    pub(super) fn on_server(&mut self, event: ServerEvent, io: &mut EngineIo<'_>) {
        match event {
            ServerEvent::SpeechStarted { audio_start_ms, .. } => {
                self.caller.speech_start = self.at_audio_ms(audio_start_ms).or(Some(io.now()));
                if io.is_playing() {
                    let cleared = io.interrupt("realtime");
                    self.interrupted(&cleared, io);
                } else if self.reply.is_some() {
                    // Nothing reached the caller yet: just stop the response.
                    self.interrupted(&Cleared::default(), io);
                }
            }
            ServerEvent::SpeechStopped { audio_end_ms, .. } => {
                // `audio_end_ms` includes the silence that ended the turn (server VAD).
                let cfg = self.setup.client.config();
                let silence = match cfg.turn_detection {
                    TurnDetection::ServerVad => u64::from(cfg.silence_duration_ms),
                    TurnDetection::SemanticVad => 0,
                };
                let spoke_until = audio_end_ms.saturating_sub(silence);
                self.caller.speech_end = self.at_audio_ms(spoke_until).or(Some(io.now()));
                self.caller.turn_end = Some(io.now());
            }
            ServerEvent::InputTranscript { transcript, .. } => {
                io.caller_said(
                    &transcript,
                    self.caller.speech_start,
                    self.caller.speech_end,
                );
                self.remember(Role::User, &transcript);
            }
            ServerEvent::ResponseCreated { response_id } => self.begin_reply(response_id, io),
            ServerEvent::OutputItemAdded {
                kind: ItemKind::FunctionCall { name, call_id },
                ..
            } if self.calls.len() < 16 => self.calls.push((call_id, name)),
            ServerEvent::AudioDelta {
                response_id,
                item_id,
                audio,
            } => self.audio(&response_id, item_id, &audio, io),
            ServerEvent::TranscriptDelta {
                response_id, delta, ..
            } => {
                if let Some(r) = self.reply.as_mut().filter(|r| r.response_id == response_id) {
                    r.text.push_str(&delta);
                }
            }
            ServerEvent::TranscriptDone {
                response_id,
                transcript,
                ..
            } => {
                if let Some(r) = self.reply.as_mut().filter(|r| r.response_id == response_id) {
                    r.text = transcript;
                }
            }
            ServerEvent::FunctionCallDone {
                call_id, arguments, ..
            } => self.function_call(&call_id, &arguments, io),
            ServerEvent::ResponseDone {
                response_id,
                status,
                error,
                ..
            } => {
                if status == ResponseStatus::Failed {
                    let message = error
                        .as_ref()
                        .map_or("response failed", |e| e.message.as_str());
                    warn!(parent: io.span(), provider = PROVIDER, code = error.as_ref().map(|e| e.code()),
                        message, "realtime response failed");
                    if error.as_ref().and_then(|e| e.failure()).is_some() {
                        io.provider_failed(PROVIDER, message);
                        self.apologise_and_end(io);
                        return;
                    }
                }
                self.end_reply(&response_id, io);
            }
            ServerEvent::Error(e) => {
                if e.code() == "conversation_already_has_active_response" {
                    // Ask again once the active response is done.
                    self.want_response = true;
                } else if let Some(failure) = e.failure() {
                    io.provider_failed(PROVIDER, &failure.to_string());
                    self.apologise_and_end(io);
                } else if !e.is_benign() && !e.is_session_expired() {
                    debug!(parent: io.span(), code = e.code(), "realtime error event (session goes on)");
                }
            }
            ServerEvent::Closed(closed) => {
                if closed.session_expired {
                    info!(parent: io.span(), "realtime session expired: opening a new one");
                    self.reply = None;
                    self.renew();
                } else {
                    io.provider_failed(PROVIDER, &closed.error.to_string());
                    self.apologise_and_end(io);
                }
            }
            ServerEvent::RateLimits(limits)
                if limits
                    .iter()
                    .any(|l| l.name == "requests" && l.remaining <= 0.0) =>
            {
                debug!(parent: io.span(), "realtime request budget exhausted");
            }
            _ => {}
        }
    }

    /// An instant on the call's clock for a position in the audio sent to the model.
    fn at_audio_ms(&self, ms: u64) -> Option<std::time::Instant> {
        self.caller
            .audio_t0
            .map(|t0| t0 + std::time::Duration::from_millis(ms))
    }

    fn begin_reply(&mut self, response_id: String, io: &mut EngineIo<'_>) {
        let now = io.now();
        let timing = match self.caller.carried.take() {
            // The answer after a function call: the turn it answers began before the call.
            Some(timing) => timing,
            None => TurnTiming::new(self.caller.speech_end, self.caller.turn_end.unwrap_or(now)),
        };
        if self.caller.turn_end.is_some() {
            io.turn(TurnKind::Speech);
        }
        self.caller.turn_end = None;
        self.caller.speech_end = None;
        self.reply = Some(Reply {
            response_id,
            item_id: None,
            resp: None,
            received: 0,
            text: String::new(),
            timing,
            made_call: false,
        });
    }

    fn audio(&mut self, response_id: &str, item_id: String, audio: &[u8], io: &mut EngineIo<'_>) {
        let Some(r) = self.reply.as_mut().filter(|r| r.response_id == response_id) else {
            return; // a cancelled response's late deltas
        };
        let resp = match r.resp {
            Some(resp) => resp,
            None => {
                let resp = io.begin_response();
                let now = io.now();
                r.timing.agent_first = Some(now);
                r.timing.tts_first_text = Some(now);
                r.timing.tts_first_audio = Some(now);
                r.resp = Some(resp);
                resp
            }
        };
        r.item_id.get_or_insert(item_id);
        r.received += audio.len();
        io.audio(resp, audio);
    }

    fn end_reply(&mut self, response_id: &str, io: &mut EngineIo<'_>) {
        let Some(r) = self.reply.take_if(|r| r.response_id == response_id) else {
            return;
        };
        // A response with no audio still settles its action at once (empty generation).
        let resp = r.resp.unwrap_or_else(|| io.begin_response());
        io.end_response(resp);
        if let Some(action) = self.after_next.take_if(|_| !r.made_call) {
            io.after_played(resp, action);
        }
        self.remember(Role::Assistant, &r.text);
        if self.sent.len() < 8 {
            self.sent.push((resp, r.text));
        }
        if r.made_call && r.resp.is_none() {
            self.caller.carried = Some(r.timing);
        }
        if r.made_call || std::mem::take(&mut self.want_response) {
            self.send(ClientEvent::CreateResponse { instructions: None }, io);
        }
    }

    fn function_call(&mut self, call_id: &str, arguments: &str, io: &mut EngineIo<'_>) {
        let name = self
            .calls
            .iter()
            .find(|(id, _)| id == call_id)
            .map(|(_, n)| n.as_str())
            .unwrap_or_default();
        let args: serde_json::Value = serde_json::from_str(arguments).unwrap_or_default();
        info!(parent: io.span(), tool = name, "realtime function call");
        let output = match Tool::from_name(name) {
            Some(Tool::EndCall) => {
                self.after_next = Some(CallAction::EndCall);
                r#"{"ok":true,"note":"say goodbye; the call ends after it"}"#
            }
            Some(Tool::TransferCall) => match args["to"].as_str() {
                Some(to) if !to.is_empty() => {
                    self.after_next = Some(CallAction::Transfer { to: to.to_owned() });
                    r#"{"ok":true,"note":"tell the caller they are being transferred"}"#
                }
                _ => r#"{"ok":false,"error":"missing 'to'"}"#,
            },
            Some(Tool::SetOutcome) => match args["outcome"].as_str().and_then(outcome_label) {
                Some(outcome) => {
                    io.outcome(&outcome);
                    r#"{"ok":true}"#
                }
                None => r#"{"ok":false,"error":"'outcome' must be 1-64 letters, digits or _"}"#,
            },
            Some(Tool::OptOut) => {
                io.outcome(OPTED_OUT);
                self.after_next = Some(CallAction::EndCall);
                r#"{"ok":true,"note":"confirm they will not be called again, say goodbye; the call ends after it"}"#
            }
            None => r#"{"ok":false,"error":"unknown function"}"#,
        };
        if let Some(r) = self.reply.as_mut() {
            r.made_call = true;
        }
        self.send(
            ClientEvent::FunctionOutput {
                call_id: call_id.to_owned(),
                output: output.to_owned(),
            },
            io,
        );
    }

    /// Barge-in (ours or the session's): the model's item is cut at what the caller heard.
    pub(super) fn interrupted(&mut self, cleared: &Cleared, io: &mut EngineIo<'_>) {
        self.sent.retain(|(resp, _)| !cleared.ids.contains(resp));
        let Some(r) = self.reply.take() else {
            return;
        };
        self.send(ClientEvent::CancelResponse, io);
        let (Some(resp), Some(item_id)) = (r.resp, r.item_id.clone()) else {
            return; // no audio was sent: nothing to truncate
        };
        let heard = if cleared.ids.last() == Some(&resp) {
            cleared.heard_bytes.min(r.received)
        } else {
            0
        };
        self.send(
            ClientEvent::Truncate {
                item_id,
                audio_end_ms: (heard / 8) as u64,
            },
            io,
        );
        let said = heard_prefix(&r.text, heard, r.received);
        io.agent_said(resp, said, true);
        self.remember(Role::Assistant, said);
        info!(parent: io.span(), heard_ms = heard / 8, received_ms = r.received / 8,
            "realtime reply truncated at what the caller heard");
    }

    /// A reply finished playing: it is part of the transcript.
    pub(super) fn played(&mut self, id: u64, io: &mut EngineIo<'_>) {
        if let Some(pos) = self.sent.iter().position(|(resp, _)| *resp == id) {
            let (_, text) = self.sent.remove(pos);
            io.agent_said(id, &text, false);
        }
    }
}
