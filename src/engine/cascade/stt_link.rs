//! The cascade's link to its speech-to-text stream: whether it is working, the watchdog that
//! notices an STT which stays connected but says nothing while the caller speaks, restarting
//! such a stream once, and closing gracefully at call end.
//!
//! Health: `Up` from the start (optimistically) and after a reconnect; `Down` while the
//! provider reconnects after an error (the local turn detector answers turns meanwhile);
//! `Gone` once it gave up, the watchdog's restart budget is spent, or the stream ended — the
//! local detector ends turns for the rest of the call.
//!
//! It must not decide about turns (that is [`super::turns`]) and never blocks: frames go to the
//! provider with `try_send` (a full queue drops the frame, which the caller counts).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::provider::CallIds;
use crate::stt::{Settled, SpeechToText, SttEvent};

/// Voiced audio the STT may hear without saying anything (no `SpeechStarted`, no result)
/// before it is treated as failed. Deepgram sends `SpeechStarted` and an interim within about
/// a second of speech.
pub const STALL_VOICED_MS: u32 = 3000;
/// Fresh streams the watchdog may open per call before giving up on the STT.
pub const MAX_RESTARTS: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    Down,
    Gone,
}

/// What happened to one frame of caller audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    Sent,
    /// The provider's queue was full: the frame was dropped.
    Dropped,
    /// The STT has heard [`STALL_VOICED_MS`] of voice and said nothing: it is not working.
    Stalled,
    /// No stream (none configured, or gone).
    NoStream,
}

/// One open stream.
struct Stream {
    /// `None` once the engine closed it (the provider then sends `CloseStream`).
    audio: Option<mpsc::Sender<Bytes>>,
    events: mpsc::Receiver<SttEvent>,
    settled: Settled,
    cancel: CancellationToken,
    /// Bytes handed to this stream so far (the unit of `settled`).
    forwarded: u64,
}

pub struct SttLink {
    provider: Option<Arc<dyn SpeechToText>>,
    ids: CallIds,
    stream: Option<Stream>,
    /// Parent of every stream's token: cancelled when the engine goes away.
    parent: CancellationToken,
    health: Health,
    restarts: u32,
    /// Voiced audio forwarded since the STT last said anything (while up), ms.
    unanswered_voice_ms: u32,
}

impl SttLink {
    pub fn new(provider: Option<Arc<dyn SpeechToText>>, ids: CallIds) -> Self {
        let health = if provider.is_some() {
            Health::Up
        } else {
            Health::Gone
        };
        Self {
            provider,
            ids,
            stream: None,
            parent: CancellationToken::new(),
            health,
            restarts: 0,
            unanswered_voice_ms: 0,
        }
    }

    /// Whether the profile has an STT at all.
    pub fn configured(&self) -> bool {
        self.provider.is_some()
    }

    pub fn name(&self) -> &'static str {
        self.provider.as_ref().map_or("none", |p| p.name())
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// Open the stream (at the start of the call, or again after a stall).
    pub fn start(&mut self) {
        let Some(provider) = &self.provider else {
            return;
        };
        let cancel = self.parent.child_token();
        let s = provider.start(self.ids.clone(), cancel.clone());
        self.stream = Some(Stream {
            audio: Some(s.audio),
            events: s.events,
            settled: s.settled,
            cancel,
            forwarded: 0,
        });
        self.health = Health::Up;
        self.unanswered_voice_ms = 0;
    }

    /// Hand one frame to the provider; the watchdog counts voiced frames it does not answer.
    pub fn forward(&mut self, mulaw: &[u8], voiced: bool, frame_ms: u32) -> Forwarded {
        let Some(stream) = &mut self.stream else {
            return Forwarded::NoStream;
        };
        let Some(audio) = &stream.audio else {
            return Forwarded::NoStream;
        };
        if audio.try_send(Bytes::copy_from_slice(mulaw)).is_err() {
            return Forwarded::Dropped;
        }
        stream.forwarded += mulaw.len() as u64;
        if voiced && self.health == Health::Up {
            self.unanswered_voice_ms += frame_ms;
            if self.unanswered_voice_ms >= STALL_VOICED_MS {
                self.unanswered_voice_ms = 0;
                return Forwarded::Stalled;
            }
        }
        Forwarded::Sent
    }

    /// The STT said something: it is alive. Errors and reconnects change its health.
    pub fn heard(&mut self, event: &SttEvent) {
        self.unanswered_voice_ms = 0;
        match event {
            SttEvent::Error {
                reconnecting: true, ..
            } => self.health = Health::Down,
            SttEvent::Reconnected => self.health = Health::Up,
            _ => {}
        }
    }

    /// The audio handed over so far has been answered: a reconnect need not replay it.
    pub fn settle(&self) {
        if let Some(s) = &self.stream {
            s.settled.settle(s.forwarded);
        }
    }

    /// The stream stalled: open a fresh one, if the budget allows (false: give up).
    pub fn restart(&mut self) -> bool {
        if self.restarts >= MAX_RESTARTS {
            return false;
        }
        self.restarts += 1;
        if let Some(old) = self.stream.take() {
            old.cancel.cancel();
        }
        self.start();
        true
    }

    /// No STT for the rest of the call.
    pub fn give_up(&mut self) {
        if let Some(old) = self.stream.take() {
            old.cancel.cancel();
        }
        self.health = Health::Gone;
    }

    /// The call is ending: stop sending audio, so the provider closes gracefully (Deepgram:
    /// `CloseStream`, the last results, close 1000). Its last events still arrive.
    pub fn close(&mut self) {
        if let Some(s) = &mut self.stream {
            s.audio = None;
        }
    }

    /// The stream's events ended (after [`SttLink::close`], or because the provider stopped).
    pub fn ended(&mut self) {
        self.stream = None;
        self.health = Health::Gone;
    }

    /// No stream is left whose last events could still arrive.
    pub fn is_finished(&self) -> bool {
        self.stream.is_none()
    }

    /// The next event of the stream (pending forever without one).
    pub async fn next(&mut self) -> Option<SttEvent> {
        match &mut self.stream {
            Some(s) => s.events.recv().await,
            None => std::future::pending().await,
        }
    }
}

impl Drop for SttLink {
    fn drop(&mut self) {
        self.parent.cancel();
    }
}
