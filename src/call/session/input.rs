//! The session's inbound half: socket frames → the carrier codec → [`CallInput`] → the engine
//! and the observers. The stream's start (token check, context, engine) lives here too. Adds
//! behaviour to [`CallSession`]; owns no state of its own.

use std::time::{Instant, SystemTime};

use tracing::{debug, info, warn};

use super::{CallSession, Flow, Inbound, engine_io};
use crate::call::events::{AudioFrame, CallEvent};
use crate::call::frames::{AudioPacket, CallInput, StreamStart};
use crate::call::playout::MarkOutcome;
use crate::call::summary::EndReason;
use crate::engine::{self, EngineInput};
use crate::metrics::STREAM_TOKENS_REFUSED;
use crate::twilio::codec::Refused;
use crate::twilio::messages::ErrorReason;
use crate::twilio::signature::check_stream_token;

impl CallSession {
    pub(super) fn on_inbound(&mut self, msg: Inbound) -> Flow {
        match msg {
            Inbound::Text(text) => self.on_text(text.as_str()),
            Inbound::Binary => {
                self.protocol_error(ErrorReason::BinaryFrame, "binary frame (Twilio sends text)");
                Flow::Continue
            }
            Inbound::TooLarge => {
                self.protocol_error(ErrorReason::MessageTooLarge, "message over the size cap");
                self.outbox.close(1009, "message too large");
                Flow::End(EndReason::MessageTooLarge)
            }
            Inbound::Closed { abrupt: true } => {
                self.protocol_error(ErrorReason::AbruptDisconnect, "socket dropped without stop");
                Flow::End(EndReason::AbruptDisconnect)
            }
            Inbound::Closed { abrupt: false } => Flow::End(EndReason::Closed),
        }
    }

    fn on_text(&mut self, text: &str) -> Flow {
        let input = match self.codec.decode(text, &mut self.ears.payload) {
            Ok(input) => input,
            Err(refused) => {
                self.refused(&refused);
                return Flow::Continue;
            }
        };
        let now = Instant::now();
        match input {
            CallInput::Connected => debug!(parent: &self.span, "twilio connected"),
            CallInput::Start(start) => return self.on_start(start),
            CallInput::Audio(packet) => self.on_audio(packet, now),
            CallInput::Dtmf(key) => {
                info!(parent: &self.span, digit = %key, "dtmf");
                self.observers.emit(CallEvent::Dtmf(key));
                self.give_engine(EngineInput::Dtmf(key), now);
            }
            CallInput::MarkPlayed(name) => self.on_mark(&name, now),
            CallInput::Stop => {
                info!(parent: &self.span, "stream stopped by twilio");
                return Flow::End(EndReason::Stop);
            }
        }
        Flow::Continue
    }

    /// The stream began: check its token, find its profile, start its engine.
    fn on_start(&mut self, start: StreamStart) -> Flow {
        self.span.record("call_sid", start.call_sid.as_str());
        self.span.record("stream_sid", start.stream_sid.as_str());
        if !start.mulaw_8k {
            warn!(parent: &self.span, format = %start.format,
                "unexpected media format; treating audio as 8 kHz μ-law");
        }
        let (ctx, profile) = self.services.profiles.context(&start);
        info!(parent: &self.span, parameters = ?ctx.parameters, profile = %ctx.profile,
            engine = ctx.engine.as_str(), "stream started");
        self.observers.emit(CallEvent::Started(&ctx));
        if let Some(secret) = &self.services.stream_token_secret {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let token = start.parameters.get("token").map(String::as_str);
            if let Err(e) = check_stream_token(secret.expose(), &start.call_sid, token, now) {
                ::metrics::counter!(STREAM_TOKENS_REFUSED, "reason" => e.as_str()).increment(1);
                warn!(parent: &self.span, reason = e.as_str(), "stream token refused: closing 1008");
                self.outbox.close(1008, "invalid stream token");
                return Flow::End(EndReason::TokenRejected);
            }
        }
        let mut entry = self.services.live.register(&ctx);
        self.control = entry.take_control();
        self.observers.live.attach(entry);
        let preconnect = self.services.preconnect.as_ref();
        let mut engine = engine::build(&self.config, profile, &ctx, preconnect);
        let mut io = engine_io!(self, Instant::now());
        engine.start(&mut io);
        self.engine = Some(engine);
        Flow::Continue
    }

    /// One frame of caller audio, already base64-decoded into the ears' buffer.
    fn on_audio(&mut self, packet: AudioPacket<'_>, now: Instant) {
        self.observers.emit(CallEvent::MediaReceived);
        let heard = self.ears.listen();
        let (mulaw, pcm) = self.ears.frame();
        let frame = AudioFrame {
            at: now,
            chunk: packet.chunk,
            timestamp_ms: packet.timestamp_ms,
            mulaw,
            pcm,
            payload_b64: packet.payload_b64,
            level_dbfs: heard.level_dbfs,
            voiced: heard.voiced,
            playing: self.playout.is_active(),
        };
        self.observers.emit(CallEvent::AudioIn(&frame));
        if let Some(engine) = &mut self.engine {
            let mut io = engine_io!(self, now);
            engine.on_input(EngineInput::Audio(&frame), &mut io);
        }
    }

    fn on_mark(&mut self, name: &str, now: Instant) {
        self.observers.emit(CallEvent::MarkReceived);
        match self.playout.on_mark(name) {
            MarkOutcome::Played(id) => {
                debug!(parent: &self.span, response = id, "response played");
                self.observers.emit(CallEvent::ResponsePlayed(id));
                self.give_engine(EngineInput::Played(id), now);
            }
            MarkOutcome::Ignored(id) => {
                self.observers.emit(CallEvent::MarkIgnored(id));
                debug!(parent: &self.span, response = id, "mark of a cleared response ignored");
            }
            MarkOutcome::Unknown => debug!(parent: &self.span, mark = name, "unknown mark"),
        }
    }

    fn give_engine(&mut self, input: EngineInput<'_>, now: Instant) {
        if let Some(engine) = &mut self.engine {
            let mut io = engine_io!(self, now);
            engine.on_input(input, &mut io);
        }
    }

    fn refused(&mut self, refused: &Refused) {
        if matches!(
            refused.reason,
            ErrorReason::InvalidBase64 | ErrorReason::EmptyPayload | ErrorReason::OversizedPayload
        ) {
            // A media message for this stream arrived, even if its payload is unusable.
            self.observers.emit(CallEvent::MediaReceived);
        }
        self.observers.emit(CallEvent::ProtocolError {
            reason: refused.reason,
            detail: &refused.detail,
        });
    }

    pub(super) fn protocol_error(&mut self, reason: ErrorReason, detail: &str) {
        self.observers
            .emit(CallEvent::ProtocolError { reason, detail });
    }
}
