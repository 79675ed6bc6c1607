//! The session's outbound half: due playout chunks and marks into the outbox, the outbox into
//! the writer queue (encoded by the carrier codec), turn latency on a response's first frame,
//! and the engine's actions once their responses have played. Adds behaviour to
//! [`CallSession`]; owns no state of its own.

use std::time::Instant;

use tracing::{debug, info, warn};

use super::{CallSession, Flow};
use crate::agent::CallAction;
use crate::call::events::CallEvent;
use crate::call::frames::CallOutput;
use crate::call::live::Control;
use crate::call::playout::PlayoutAction;
use crate::call::summary::EndReason;

impl CallSession {
    /// Move due playout actions into the outbox and the outbox into the writer queue; then
    /// carry out actions whose responses are over.
    pub(super) fn pump(&mut self) -> Flow {
        if self.codec.stream_sid().is_none() {
            return Flow::Continue;
        }
        let now = Instant::now();
        let mut first_frame = false;
        if self.outbox.is_empty() {
            while let Some(action) = self.playout.poll(now) {
                match action {
                    PlayoutAction::Media(chunk) => {
                        let pending = self.responses.latency_pending;
                        let current = self.playout.current();
                        first_frame |= pending.is_some() && pending == current;
                        let play_at = self.playout.last_play_at();
                        if let (Some(id), Some(at)) = (current, play_at) {
                            self.responses.started(id, at);
                        }
                        self.outbox.push_audio(chunk, play_at);
                    }
                    PlayoutAction::Mark(name) => self.outbox.push(CallOutput::Mark(name)),
                }
            }
        }
        if first_frame {
            self.first_frame_sent(now);
        }
        let observers = &mut self.observers;
        let flushed = self.outbox.flush(&self.codec, |mulaw, play_at| {
            observers.emit(CallEvent::AudioSent {
                mulaw,
                play_at: play_at.unwrap_or(now),
            })
        });
        let underruns = self.playout.take_underruns();
        if underruns > 0 {
            self.observers.emit(CallEvent::Underruns(underruns));
        }
        if flushed.new_stall {
            self.observers.emit(CallEvent::Backpressure);
            debug!(parent: &self.span, "writer queue full; holding playout");
        }
        for action in self.responses.take_due(&self.playout) {
            if let Flow::End(reason) = self.carry_out(action) {
                return Flow::End(reason);
            }
        }
        Flow::Continue
    }

    /// The first frame of the awaited response just went out: record the turn's latency.
    fn first_frame_sent(&mut self, now: Instant) {
        let Some(id) = self.responses.latency_pending.take() else {
            return;
        };
        let Some(engine) = &mut self.engine else {
            return;
        };
        let providers = engine.providers();
        let Some(timing) = engine.timing(id) else {
            return;
        };
        let latency = timing.finish(now);
        self.observers.emit(CallEvent::Latency {
            response: id,
            latency: &latency,
            providers,
        });
    }

    /// A request from the API or the console.
    pub(super) fn on_control(&mut self, request: Option<Control>) -> Flow {
        match request {
            Some(Control::Hangup) => {
                info!(parent: &self.span, "hung up by an operator");
                self.hang_up_through_twilio();
                self.outbox.close(1000, "hung up by operator");
                Flow::End(EndReason::OperatorHangup)
            }
            Some(Control::Transfer { to }) => self.carry_out(CallAction::Transfer { to }),
            None => {
                self.control = None;
                Flow::Continue
            }
        }
    }

    /// End the call at Twilio too (the stream closing ends `<Connect>` anyway).
    fn hang_up_through_twilio(&self) {
        let Some(twilio) = self.services.twilio.clone() else {
            return;
        };
        let call_sid = self.observers.summary.call_sid.clone().unwrap_or_default();
        let span = self.span.clone();
        tokio::spawn(async move {
            if let Err(e) = twilio.hang_up(&call_sid).await {
                warn!(parent: &span, error = %e, "hanging up through Twilio REST failed");
            }
        });
    }

    /// Carry out what the engine asked for, now that its response has played.
    fn carry_out(&mut self, action: CallAction) -> Flow {
        self.observers.emit(CallEvent::Action(&action));
        let call_sid = self.observers.summary.call_sid.clone().unwrap_or_default();
        let twilio = self.services.twilio.clone();
        match action {
            CallAction::EndCall => {
                info!(parent: &self.span, "agent ended the call");
                self.hang_up_through_twilio();
                // Closing the stream ends <Connect>; without REST access that ends the call.
                self.outbox.close(1000, "call ended by agent");
                Flow::End(EndReason::AgentHangup)
            }
            CallAction::Transfer { to } => {
                match twilio {
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
                }
                Flow::Continue
            }
        }
    }
}
