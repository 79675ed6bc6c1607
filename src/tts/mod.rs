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
    /// A provider failed, or sent something unusable: one event per failure, already counted
    /// in `voxbridge_provider_errors_total` (listeners count failures by these). The response
    /// may go on (the next provider, the skipped message, the [`TtsEvent::Apology`]) or end
    /// with `Failed`.
    Warning {
        provider: &'static str,
        error: ProviderError,
    },
    /// No provider is left: this pre-rendered apology clip is played instead of the rest of the
    /// text (then `Done`). What the caller hears from here on is the apology, not the reply.
    Apology(Bytes),
    /// All text was spoken.
    Done,
    /// The response failed; no more events follow. The failure itself was reported just
    /// before as a [`TtsEvent::Warning`] (the one event that counts it).
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
