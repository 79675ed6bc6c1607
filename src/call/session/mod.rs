//! `CallSession`: the one task that owns a call's state.
//!
//! The socket reader hands raw frames in over a bounded channel; the session parses them,
//! decodes the caller's audio, feeds the quality meter, the turn detector and the STT, asks the
//! [`Conversation`] for a response at the end of each turn, paces the response out through
//! [`Playout`], and hands outbound messages to the socket writer through the [`Outbox`]. Nothing else touches call state, so there are no locks
//! on the per-frame path. The session never reads or writes the socket itself and never blocks.
//!
//! Bad input never ends a call unless Twilio would end it too: every problem is counted in
//! `voxbridge_protocol_errors_total{reason}` and logged once per reason per call.

mod dialog;
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Span, debug, info, warn};

use super::conversation::Conversation;
use super::outbox::{Outbox, Outgoing};
use super::playout::{MarkOutcome, Playout, PlayoutAction};
use super::services::CallServices;
use super::summary::{CallSummary, EndReason, MAX_DTMF_DIGITS};
use super::turn::{TurnDetector, TurnEvent, Utterance, frame_dbfs};
use crate::audio::mulaw;
use crate::config::{Config, QualityConfig, TurnSource};
use crate::metrics::Metrics;
use crate::provider::CallIds;
use crate::quality::alerts::{AlertEvent, LiveAlerts};
use crate::quality::meter::QualityMeter;
use crate::quality::notify::QualityOutlets;
use crate::stt::SttStream;
use crate::twilio::signature::check_stream_token;

/// Streams refused for a bad per-stream token, by reason.
pub const STREAM_TOKENS_REFUSED: &str = "voxbridge_stream_tokens_refused_total";
use crate::twilio::messages::{
    ErrorReason, InboundEvent, OutboundMessage, ProtocolError, decode_payload, parse_inbound,
};

/// What the socket reader saw.
#[derive(Debug)]
pub enum Inbound {
    Text(Utf8Bytes),
    Binary,
    /// A message over the size cap; the socket cannot continue.
    TooLarge,
    /// The socket ended; `abrupt` when there was no close handshake.
    Closed {
        abrupt: bool,
    },
}

enum Flow {
    Continue,
    End(EndReason),
}

/// Audio kept before the voice onset and after the last voiced frame of an utterance.
const UTTERANCE_LEAD_MS: u32 = 20;
const UTTERANCE_TAIL_MS: u32 = 60;
/// DTMF digits pressed within this long of each other form one turn.
const DTMF_TURN_GAP: Duration = Duration::from_millis(700);

pub struct CallSession {
    services: Arc<CallServices>,
    metrics: Metrics,
    idle_timeout: Duration,
    max_duration: Duration,
    last_inbound: Instant,
    quality: QualityConfig,
    meter: QualityMeter,
    alerts: LiveAlerts,
    alert_events: Vec<AlertEvent>,
    outlets: QualityOutlets,
    window_secs: u64,
    max_payload: usize,
    started: Instant,
    stream_sid: Option<String>,
    turn: TurnDetector,
    utterance: Utterance,
    playout: Playout,
    outbox: Outbox,
    /// The agent conversation, from `start` on.
    conv: Option<Conversation>,
    /// Live transcription, from `start` on, when an STT provider is configured.
    stt: Option<SttStream>,
    stt_cancel: CancellationToken,
    turn_source: TurnSource,
    /// Final transcripts of the caller's current turn.
    transcript: String,
    /// When the caller's last voiced frame arrived.
    last_voiced_at: Option<Instant>,
    /// Digits of a DTMF turn being gathered, and when it is complete.
    dtmf_pending: String,
    dtmf_deadline: Option<Instant>,
    /// Playout id of the response whose first frame is awaited (latency).
    latency_pending: Option<u64>,
    summary: CallSummary,
    logged_reasons: u32,
    payload: Vec<u8>,
    pcm: Vec<i16>,
    span: Span,
}

impl CallSession {
    pub fn new(
        config: &Config,
        services: Arc<CallServices>,
        metrics: Metrics,
        outlets: QualityOutlets,
        writer: mpsc::Sender<Outgoing>,
    ) -> Self {
        let turn = &config.turn;
        let started = Instant::now();
        let window_secs = config.alerts.window_secs;
        Self {
            turn_source: services.turn_source,
            services,
            idle_timeout: Duration::from_secs(config.limits.idle_timeout_secs),
            max_duration: Duration::from_secs(config.limits.max_call_secs),
            last_inbound: started,
            metrics,
            quality: config.quality.clone(),
            meter: QualityMeter::new(&config.quality, window_secs, started),
            alerts: LiveAlerts::new(&config.quality, window_secs),
            alert_events: Vec::new(),
            outlets,
            window_secs,
            max_payload: config.limits.max_media_payload_bytes,
            started,
            stream_sid: None,
            turn: TurnDetector::new(turn),
            utterance: Utterance::new(turn.pre_roll_ms, config.limits.max_utterance_ms),
            playout: Playout::new(config.playout.lead_ms, config.playout.chunk_ms),
            outbox: Outbox::new(writer),
            conv: None,
            stt: None,
            stt_cancel: CancellationToken::new(),
            transcript: String::new(),
            last_voiced_at: None,
            dtmf_pending: String::new(),
            dtmf_deadline: None,
            latency_pending: None,
            summary: CallSummary::new(SystemTime::now()),
            logged_reasons: 0,
            payload: Vec::with_capacity(1024),
            pcm: Vec::with_capacity(1024),
            span: tracing::info_span!(
                "call",
                call_sid = tracing::field::Empty,
                stream_sid = tracing::field::Empty
            ),
        }
    }

    /// Run until the stream stops, the socket goes, or `shutdown` fires.
    pub async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        shutdown: CancellationToken,
    ) -> CallSummary {
        let mut limits = tokio::time::interval(Duration::from_secs(1));
        limits.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = loop {
            let deadline = self.playout.next_deadline(Instant::now());
            let dtmf_deadline = self.dtmf_deadline;
            let flow = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Flow::End(EndReason::ServerShutdown),
                msg = inbound.recv() => match msg {
                    Some(msg) => {
                        self.last_inbound = Instant::now();
                        self.on_inbound(msg)
                    }
                    None => Flow::End(EndReason::AbruptDisconnect),
                },
                _ = limits.tick() => self.check_limits(),
                ev = next_conv(&mut self.conv) => {
                    self.on_conversation(ev);
                    Flow::Continue
                }
                ev = next_stt(&mut self.stt) => {
                    self.on_stt(ev);
                    Flow::Continue
                }
                _ = self.outbox.writable(), if !self.outbox.is_empty() => Flow::Continue,
                _ = sleep_until(deadline), if deadline.is_some() && self.outbox.is_empty() => {
                    Flow::Continue
                }
                _ = sleep_until(dtmf_deadline), if dtmf_deadline.is_some() => {
                    self.dtmf_turn();
                    Flow::Continue
                }
            };
            self.pump();
            if let Flow::End(reason) = flow {
                break reason;
            }
        };
        self.finish(end)
    }

    /// Once a second: end calls that went quiet or ran too long.
    fn check_limits(&mut self) -> Flow {
        if self.last_inbound.elapsed() >= self.idle_timeout {
            warn!(parent: &self.span, idle_secs = self.idle_timeout.as_secs(), "no media: closing idle stream");
            self.outbox.close(1000, "idle timeout");
            return Flow::End(EndReason::IdleTimeout);
        }
        if self.started.elapsed() >= self.max_duration {
            warn!(parent: &self.span, max_secs = self.max_duration.as_secs(), "maximum call duration reached");
            self.outbox.close(1000, "maximum call duration");
            return Flow::End(EndReason::MaxDuration);
        }
        Flow::Continue
    }

    fn on_inbound(&mut self, msg: Inbound) -> Flow {
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
        let event = match parse_inbound(text) {
            Ok(event) => event,
            Err(e) => {
                self.protocol_error_of(&e);
                return Flow::Continue;
            }
        };
        match event {
            InboundEvent::Connected(_) => debug!(parent: &self.span, "twilio connected"),
            InboundEvent::Start(start) => {
                if self.stream_sid.is_some() {
                    self.protocol_error(ErrorReason::DuplicateStart, "second start event ignored");
                    return Flow::Continue;
                }
                self.span.record("call_sid", start.call_sid.0.as_str());
                self.span.record("stream_sid", start.stream_sid.0.as_str());
                let fmt = &start.media_format;
                if fmt.encoding != "audio/x-mulaw" || fmt.sample_rate != 8000 {
                    warn!(parent: &self.span, encoding = %fmt.encoding, sample_rate = fmt.sample_rate,
                        "unexpected media format; treating audio as 8 kHz μ-law");
                }
                info!(parent: &self.span, tracks = ?start.tracks,
                    parameters = ?start.custom_parameters, "stream started");
                self.summary.call_sid = Some(start.call_sid.0.clone());
                self.summary.stream_sid = Some(start.stream_sid.0.clone());
                self.summary.custom_parameters = start.custom_parameters.into_iter().collect();
                if let Some(secret) = &self.services.stream_token_secret {
                    let now = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let token = self
                        .summary
                        .custom_parameters
                        .get("token")
                        .map(String::as_str);
                    if let Err(e) =
                        check_stream_token(secret.expose(), &start.call_sid.0, token, now)
                    {
                        ::metrics::counter!(STREAM_TOKENS_REFUSED, "reason" => e.as_str())
                            .increment(1);
                        warn!(parent: &self.span, reason = e.as_str(), "stream token refused: closing 1008");
                        self.outbox.close(1008, "invalid stream token");
                        return Flow::End(EndReason::TokenRejected);
                    }
                }
                let ids = CallIds {
                    call_sid: start.call_sid.0,
                    stream_sid: start.stream_sid.0.clone(),
                };
                self.stream_sid = Some(start.stream_sid.0);
                self.begin_conversation(ids);
            }
            InboundEvent::Media(media) => {
                let Some(sid) = self.stream_sid.as_deref() else {
                    self.protocol_error(ErrorReason::MediaBeforeStart, "media before start");
                    return Flow::Continue;
                };
                if media.stream_sid != sid {
                    self.protocol_error(ErrorReason::WrongStreamSid, "media for another stream");
                    return Flow::Continue;
                }
                self.metrics.frames_received.increment(1);
                self.summary.media_frames_received += 1;
                if let Err(reason) = decode_payload(media.payload, &mut self.payload) {
                    self.protocol_error(reason, "unusable media payload");
                    return Flow::Continue;
                }
                if self.payload.len() > self.max_payload {
                    self.protocol_error(ErrorReason::OversizedPayload, "media payload over cap");
                    return Flow::Continue;
                }
                let (chunk, timestamp) = (media.chunk, media.timestamp);
                self.on_audio(Instant::now(), chunk, timestamp);
            }
            InboundEvent::Dtmf(dtmf) => {
                // One key per event: 0-9 * # A-D. Anything else is not a keypress.
                let key = match dtmf.digit.as_bytes() {
                    [k] if b"0123456789*#ABCD".contains(k) => char::from(*k),
                    _ => {
                        self.protocol_error(
                            ErrorReason::InvalidMessage,
                            "dtmf digit is not one key",
                        );
                        return Flow::Continue;
                    }
                };
                self.metrics.dtmf.increment(1);
                info!(parent: &self.span, digit = %key, "dtmf");
                if self.summary.dtmf_digits.len() < MAX_DTMF_DIGITS {
                    self.summary.dtmf_digits.push(key);
                }
                if self.dtmf_pending.len() < MAX_DTMF_DIGITS {
                    self.dtmf_pending.push(key);
                }
                self.dtmf_deadline = Some(Instant::now() + DTMF_TURN_GAP);
            }
            InboundEvent::Mark(mark) => return self.on_mark(&mark.name),
            InboundEvent::Stop(_) => {
                info!(parent: &self.span, "stream stopped by twilio");
                return Flow::End(EndReason::Stop);
            }
        }
        Flow::Continue
    }

    /// One frame of caller audio, already base64-decoded into `self.payload`.
    fn on_audio(&mut self, now: Instant, chunk: u64, timestamp: u64) {
        self.pcm.resize(self.payload.len(), 0);
        mulaw::decode_into(&self.payload, &mut self.pcm);
        let level = frame_dbfs(&self.pcm);
        let frame_ms = (self.payload.len() / 8) as u32;
        let voiced = self.turn.is_voiced(level);
        let playing = self.playout.is_active();
        if self
            .meter
            .on_media(now, chunk, timestamp, &self.pcm, level, voiced, playing)
        {
            self.alerts.evaluate(&self.meter, &mut self.alert_events);
            self.publish_alerts();
        }
        self.forward_to_stt();
        if voiced {
            self.last_voiced_at = Some(now);
        }
        let event = self.turn.push(level, frame_ms, now);
        if event == Some(TurnEvent::SpeechStarted) {
            self.utterance.start();
            self.caller_started_speaking("vad");
        }
        self.utterance.push(&self.payload, voiced);
        match event {
            Some(TurnEvent::TurnEnded {
                speech_ms,
                speech_end,
            }) => {
                let audio = self.utterance.finish(UTTERANCE_LEAD_MS, UTTERANCE_TAIL_MS);
                debug!(parent: &self.span, speech_ms, "caller turn ended (vad)");
                if self.turn_source == TurnSource::Vad {
                    self.vad_turn_end(audio, speech_end, now);
                }
            }
            Some(TurnEvent::Discarded) => self.utterance.discard(),
            _ => {}
        }
    }

    fn on_mark(&mut self, name: &str) -> Flow {
        self.summary.marks_received += 1;
        match self.playout.on_mark(name) {
            MarkOutcome::Played(id) => {
                self.metrics.responses_played.increment(1);
                self.summary.responses_played += 1;
                debug!(parent: &self.span, response = id, "response played");
                return self.response_played(id);
            }
            MarkOutcome::Ignored(id) => {
                self.summary.marks_ignored += 1;
                debug!(parent: &self.span, response = id, "mark of a cleared response ignored");
            }
            MarkOutcome::Unknown => debug!(parent: &self.span, mark = name, "unknown mark"),
        }
        Flow::Continue
    }

    /// Move due playout actions into the outbox and the outbox into the writer queue.
    fn pump(&mut self) {
        if self.stream_sid.is_none() {
            return;
        }
        let now = Instant::now();
        let mut first_frame = false;
        if self.outbox.is_empty() {
            while let Some(action) = self.playout.poll(now) {
                match action {
                    PlayoutAction::Media(chunk) => {
                        first_frame |= self.latency_pending.is_some()
                            && self.latency_pending == self.playout.current();
                        self.outbox.push(OutboundMessage::Media { payload: chunk });
                    }
                    PlayoutAction::Mark(name) => self.outbox.push(OutboundMessage::Mark { name }),
                }
            }
        }
        if first_frame {
            self.first_frame_sent(now);
        }
        let Some(sid) = self.stream_sid.as_deref() else {
            return;
        };
        let flushed = self.outbox.flush(sid);
        self.meter.on_frames_sent(flushed.media);
        self.meter.on_underruns(self.playout.take_underruns());
        self.summary.media_frames_sent += flushed.media;
        if flushed.new_stall {
            self.metrics.outbound_backpressure.increment(1);
            debug!(parent: &self.span, "writer queue full; holding playout");
        }
    }

    fn protocol_error_of(&mut self, e: &ProtocolError) {
        let reason = e.reason();
        self.count_error(reason);
        if self.first_time(reason) {
            warn!(parent: &self.span, reason = reason.as_str(), error = %e, "bad inbound message");
        }
    }

    fn protocol_error(&mut self, reason: ErrorReason, what: &str) {
        self.count_error(reason);
        if self.first_time(reason) {
            warn!(parent: &self.span, reason = reason.as_str(), "{what}");
        }
    }

    fn count_error(&mut self, reason: ErrorReason) {
        self.metrics.protocol_error(reason);
        self.summary.count_error(reason);
    }

    /// True the first time a reason is seen on this call (log once, count always).
    fn first_time(&mut self, reason: ErrorReason) -> bool {
        let bit = 1u32 << reason.index();
        let first = self.logged_reasons & bit == 0;
        self.logged_reasons |= bit;
        first
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn next_conv(conv: &mut Option<Conversation>) -> super::conversation::ConvEvent {
    match conv {
        Some(conv) => conv.next().await,
        None => std::future::pending().await,
    }
}

async fn next_stt(stt: &mut Option<SttStream>) -> Option<crate::stt::SttEvent> {
    match stt {
        Some(stt) => stt.events.recv().await,
        None => std::future::pending().await,
    }
}
