//! Speech-to-text: the [`SpeechToText`] trait the call session uses, and one file per provider.
//!
//! A provider runs its own task per call: the session pushes the caller's 8 kHz μ-law frames
//! into [`SttStream::audio`] (bounded; see its doc) and reads [`SttEvent`]s. Reconnecting,
//! keep-alives and replaying audio after a reconnect are the provider's job, not the session's.
//! Dropping the audio sender ends the stream gracefully (the provider flushes and closes); the
//! engine may tell the provider that audio up to a point is settled ([`Settled`]) so that a
//! reconnect does not replay it.

pub mod deepgram;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::provider::{CallIds, ProviderError};

/// Frames of caller audio the session may queue for the provider task (5 s of 20 ms frames).
/// When full, the session drops the frame and counts it; the provider's own replay buffer
/// covers reconnects, this covers only a stalled task.
pub const AUDIO_QUEUE: usize = 250;

/// What the recogniser tells the session.
#[derive(Debug, Clone, PartialEq)]
pub enum SttEvent {
    /// The provider heard speech begin (barge-in trigger).
    SpeechStarted,
    /// A transcript. Interim results may be revised; finals may be empty. `speech_final`
    /// marks the provider's endpoint: the caller's turn is over.
    Transcript {
        text: String,
        is_final: bool,
        speech_final: bool,
    },
    /// No more words for `utterance_end_ms`: end of turn even if no endpoint came.
    UtteranceEnd,
    /// A failure; the provider is reconnecting (`reconnecting`) or has given up.
    Error {
        error: ProviderError,
        reconnecting: bool,
    },
    /// Reconnected after an error; buffered audio was replayed.
    Reconnected,
    /// A problem the stream survived (a malformed message, skipped); already counted in
    /// `voxbridge_provider_errors_total`.
    Warning(ProviderError),
}

/// One call's live transcription.
#[derive(Debug)]
pub struct SttStream {
    pub audio: mpsc::Sender<Bytes>,
    pub events: mpsc::Receiver<SttEvent>,
    /// Where the engine has settled the caller's audio (see [`Settled`]).
    pub settled: Settled,
}

/// How much of the caller's audio (bytes sent on [`SttStream::audio`], from the first) the
/// engine has dealt with — answered a turn covering it — so that a reconnect need not replay
/// it. Only ever moves forward; one atomic, read by the provider only when it reconnects.
#[derive(Debug, Clone, Default)]
pub struct Settled(Arc<AtomicU64>);

impl Settled {
    /// Audio up to byte offset `offset` needs no replay.
    pub fn settle(&self, offset: u64) {
        self.0.fetch_max(offset, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A streaming recogniser.
pub trait SpeechToText: Send + Sync + 'static {
    /// Provider name for logs and the `provider` metric label.
    fn name(&self) -> &'static str;
    /// Start transcribing one call. Cancelling `cancel` ends the stream at once.
    fn start(&self, call: CallIds, cancel: CancellationToken) -> SttStream;
}
