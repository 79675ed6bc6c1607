//! Text-to-speech: the [`TextToSpeech`] trait the call session uses, one file per provider,
//! and [`fallback`] (second provider, then a local apology).
//!
//! A provider speaks one *response* at a time: text arrives in pieces (sentences or clauses,
//! as the agent produces them) and ends when the sender is dropped; audio goes back as
//! 8 kHz μ-law the moment it arrives — no waiting for the whole reply. Cancelling the token
//! (barge-in) must stop the provider's work promptly: close the socket, drop the request.

mod common;
pub mod elevenlabs_http;
pub mod elevenlabs_ws;
pub mod espeak;
pub mod fallback;
pub mod openai;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::provider::ProviderError;

/// Audio events buffered between a provider task and the session.
pub const EVENT_QUEUE: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum TtsEvent {
    /// Raw 8 kHz μ-law audio, any length.
    Audio(Bytes),
    /// All text was spoken.
    Done,
    /// The provider failed; no more events follow.
    Failed(ProviderError),
}

pub trait TextToSpeech: Send + Sync + 'static {
    /// Provider name for logs and the `provider` metric label.
    fn name(&self) -> &'static str;
    /// Speak one response: text pieces in, audio out (see the module doc).
    fn speak(
        &self,
        text: mpsc::Receiver<String>,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<TtsEvent>;
}
