//! OpenAI Realtime speech-to-speech, the protocol side (shared/reference/providers.md §5):
//! settings ([`config`]), the wire format for the GA and beta interfaces ([`wire`]), the
//! WebSocket client with its checked handshake and one task per connection ([`client`]), and
//! sockets opened as early as the TwiML webhook ([`preconnect`]).
//!
//! The engine that drives a call with it ([`engine`], [`reply`]: barge-in, truncation at what
//! was heard, tools, apology) sits on top, through [`EngineIo`](crate::engine::EngineIo); the
//! protocol modules know nothing of Twilio, Playout or the call session, and never decide
//! what to do about a failure — they classify it.

pub mod client;
pub mod config;
pub mod connection;
pub mod engine;
pub mod preconnect;
mod reply;
pub mod setup;
pub mod wire;

pub use engine::{RealtimeEngine, RealtimeEvent};
pub use setup::RealtimeSetup;

#[cfg(test)]
mod tests;

/// The `provider` label of `voxbridge_provider_errors_total`.
pub const PROVIDER: &str = "openai_realtime";

pub use crate::metrics::{
    REALTIME_AUDIO_DROPPED as AUDIO_DROPPED, REALTIME_CONNECT_SECONDS as CONNECT_SECONDS,
};
