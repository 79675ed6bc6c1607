//! `CallSession`: the one task that owns a call's state.
//!
//! The socket reader hands raw frames in over a bounded channel; the session turns them into
//! neutral [`CallInput`]s with the carrier codec, decodes the caller's audio once ([`Ears`]),
//! and routes each input to the call's [`CallEngine`] and to the [`Observers`]. What the engine
//! answers goes through [`EngineIo`] into [`Playout`], which paces it out through the
//! [`Outbox`] to the socket writer. The session owns the generation counter (in `Playout`),
//! limits and call end; it knows neither how the engine answers nor what Twilio's JSON looks
//! like. Nothing else touches call state, so there are no locks on the per-frame path; the
//! session never reads or writes the socket itself and never blocks.
//!
//! Bad input never ends a call unless Twilio would end it too: every problem is counted in
//! `voxbridge_protocol_errors_total{reason}` and logged once per reason per call.

mod input;
mod io;
mod pump;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Span, warn};

pub use io::EngineIo;
use io::Responses;

use super::ears::Ears;
use super::events::CallEvent;
use super::live::Control;
use super::observers::Observers;
use super::outbox::{Outbox, Outgoing};
use super::playout::Playout;
use super::services::CallServices;
use super::summary::{CallSummary, EndReason};
use crate::config::Config;
use crate::engine::{CallEngine, EngineEvent};
use crate::metrics::Metrics;
use crate::quality::notify::QualityOutlets;
use crate::twilio::codec::MediaStreamsCodec;

pub use crate::metrics::STREAM_TOKENS_REFUSED;

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

/// Longest the engine's providers get to wind down after the call ended (Deepgram's own
/// `CloseStream` wait is shorter).
const ENGINE_WIND_DOWN: Duration = Duration::from_secs(2);

enum Flow {
    Continue,
    End(EndReason),
}

/// The call's clock and the limits judged against it.
struct Limits {
    started: Instant,
    last_inbound: Instant,
    idle_timeout: Duration,
    max_duration: Duration,
    /// `start` must arrive this long after the upgrade.
    start_timeout: Duration,
}

pub struct CallSession {
    config: Arc<Config>,
    services: Arc<CallServices>,
    limits: Limits,
    codec: MediaStreamsCodec,
    ears: Ears,
    playout: Playout,
    outbox: Outbox,
    responses: Responses,
    /// The engine answering, from `start` on.
    engine: Option<CallEngine>,
    /// Requests from the API (hang up, transfer), from `start` on.
    control: Option<mpsc::Receiver<Control>>,
    observers: Observers,
    span: Span,
}

/// An [`EngineIo`] over the session's fields (a macro, so the borrows stay disjoint).
macro_rules! engine_io {
    ($s:ident, $now:expr) => {
        $crate::call::session::EngineIo {
            now: $now,
            playout: &mut $s.playout,
            outbox: &mut $s.outbox,
            responses: &mut $s.responses,
            observers: &mut $s.observers,
            span: &$s.span,
        }
    };
}
pub(crate) use engine_io;

impl CallSession {
    pub fn new(
        config: Arc<Config>,
        services: Arc<CallServices>,
        metrics: Metrics,
        outlets: QualityOutlets,
        writer: mpsc::Sender<Outgoing>,
    ) -> Self {
        let started = Instant::now();
        let span = tracing::info_span!(
            "call",
            call_sid = tracing::field::Empty,
            stream_sid = tracing::field::Empty
        );
        let mut observers = Observers::new(&config, metrics, outlets, started, span.clone());
        observers.record_to(services.records.clone(), started);
        let observers = observers.with_recordings(services.recordings.clone(), started);
        Self {
            limits: Limits {
                started,
                last_inbound: started,
                idle_timeout: Duration::from_secs(config.limits.idle_timeout_secs),
                max_duration: Duration::from_secs(config.limits.max_call_secs),
                start_timeout: Duration::from_secs(config.limits.start_timeout_secs),
            },
            codec: MediaStreamsCodec::new(config.limits.max_media_payload_bytes),
            ears: Ears::new(&config.turn, &config.vad),
            playout: Playout::new(config.playout.lead_ms, config.playout.chunk_ms),
            outbox: Outbox::new(writer),
            responses: Responses::default(),
            engine: None,
            control: None,
            observers,
            span,
            config,
            services,
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
            let engine_deadline = self.engine.as_ref().and_then(CallEngine::deadline);
            let flow = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Flow::End(EndReason::ServerShutdown),
                msg = inbound.recv() => match msg {
                    Some(msg) => {
                        self.limits.last_inbound = Instant::now();
                        self.on_inbound(msg)
                    }
                    None => Flow::End(EndReason::AbruptDisconnect),
                },
                _ = limits.tick() => self.check_limits(),
                ev = next_engine_event(&mut self.engine) => {
                    self.on_engine_event(ev);
                    Flow::Continue
                }
                req = next_control(&mut self.control) => self.on_control(req),
                _ = self.outbox.writable(), if !self.outbox.is_empty() => Flow::Continue,
                _ = sleep_until(deadline), if deadline.is_some() && self.outbox.is_empty() => {
                    Flow::Continue
                }
                _ = sleep_until(engine_deadline), if engine_deadline.is_some() => {
                    self.on_engine_deadline();
                    Flow::Continue
                }
            };
            let flow = match flow {
                Flow::Continue => self.pump(),
                end => {
                    self.pump();
                    end
                }
            };
            if let Flow::End(reason) = flow {
                break reason;
            }
        };
        // Nothing more is read from the caller (the reader then waits for the peer's close).
        drop(inbound);
        self.finish(end).await
    }

    /// Once a second: the live figures; end streams that never started, and calls that went
    /// quiet or ran too long.
    fn check_limits(&mut self) -> Flow {
        let started = self.codec.stream_sid().is_some();
        if started {
            self.observers.tick(Instant::now());
        }
        let l = &self.limits;
        if !started && l.started.elapsed() >= l.start_timeout {
            // Messages other than `start` (or none) keep no stream open past this, whatever
            // they do to the idle clock.
            warn!(parent: &self.span, start_timeout_secs = l.start_timeout.as_secs(), "no start: closing the stream");
            crate::metrics::call_refused("start_timeout");
            self.outbox.close(1008, "start timeout");
            return Flow::End(EndReason::StartTimeout);
        }
        if l.last_inbound.elapsed() >= l.idle_timeout {
            warn!(parent: &self.span, idle_secs = l.idle_timeout.as_secs(), "no media: closing idle stream");
            self.outbox.close(1000, "idle timeout");
            return Flow::End(EndReason::IdleTimeout);
        }
        if l.started.elapsed() >= l.max_duration {
            warn!(parent: &self.span, max_secs = l.max_duration.as_secs(), "maximum call duration reached");
            self.outbox.close(1000, "maximum call duration");
            return Flow::End(EndReason::MaxDuration);
        }
        Flow::Continue
    }

    fn on_engine_event(&mut self, event: EngineEvent) {
        let Some(engine) = &mut self.engine else {
            return;
        };
        let mut io = engine_io!(self, Instant::now());
        engine.on_event(event, &mut io);
    }

    fn on_engine_deadline(&mut self) {
        let Some(engine) = &mut self.engine else {
            return;
        };
        let mut io = engine_io!(self, Instant::now());
        engine.on_deadline(&mut io);
    }

    /// Wind the call down and produce its summary and report: what was playing is cut off,
    /// the socket is closed, and the engine's providers get at most [`ENGINE_WIND_DOWN`] to
    /// close gracefully (their last events still reach the record).
    async fn finish(mut self, end: EndReason) -> CallSummary {
        let now = Instant::now();
        if self.playout.is_active() {
            // Cut off by the call's end: the engine learns what the caller heard of it.
            let cleared = self.playout.clear(now);
            self.observers
                .emit(CallEvent::Abandoned(cleared.ids.len() as u64));
            if let Some(engine) = &mut self.engine {
                let mut io = engine_io!(self, now);
                engine.on_input(crate::engine::EngineInput::Cleared(&cleared), &mut io);
            }
        }
        if let Some(engine) = &mut self.engine {
            let mut io = engine_io!(self, now);
            engine.finish(&mut io);
        }
        if end == EndReason::ServerShutdown {
            self.outbox.close(1001, "server shutting down");
        } else {
            // A no-op when a close was already asked for (the writer stops at the first).
            self.outbox.close(1000, "stream ended");
        }
        let duration_ms = self.limits.started.elapsed().as_millis() as u64;
        self.wind_down().await;
        self.observers.finish(end, duration_ms)
    }

    /// Let the engine's providers finish (bounded), handling what they still report.
    async fn wind_down(&mut self) {
        let until = tokio::time::Instant::now() + ENGINE_WIND_DOWN;
        while let Some(engine) = &mut self.engine
            && !engine.finished()
        {
            let event = tokio::select! {
                ev = engine.next_event() => ev,
                _ = tokio::time::sleep_until(until) => return,
            };
            let mut io = engine_io!(self, Instant::now());
            engine.on_event(event, &mut io);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn next_control(control: &mut Option<mpsc::Receiver<Control>>) -> Option<Control> {
    match control {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_engine_event(engine: &mut Option<CallEngine>) -> EngineEvent {
    match engine {
        Some(engine) => engine.next_event().await,
        None => std::future::pending().await,
    }
}
