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

use metrics::{describe_counter, describe_gauge, describe_histogram};

/// The `provider` label of `voxbridge_provider_errors_total`.
pub const PROVIDER: &str = "openai_realtime";

pub const AUDIO_DROPPED: &str = "voxbridge_realtime_audio_dropped_total";
pub const AUDIO_DROPPED_HELP: &str =
    "Caller audio frames not forwarded to the Realtime socket because its send queue was full.";
pub const CONNECT_SECONDS: &str = "voxbridge_realtime_connect_seconds";
pub const CONNECT_SECONDS_HELP: &str =
    "Time to open a Realtime socket and complete its session handshake.";

/// Register this module's metric descriptions (HELP texts) with the global recorder.
pub fn describe_metrics() {
    describe_counter!(AUDIO_DROPPED, AUDIO_DROPPED_HELP);
    describe_histogram!(
        CONNECT_SECONDS,
        metrics::Unit::Seconds,
        CONNECT_SECONDS_HELP
    );
    describe_counter!(preconnect::PRECONNECTS, preconnect::PRECONNECTS_HELP);
    describe_gauge!(
        preconnect::PRECONNECT_PENDING,
        preconnect::PRECONNECT_PENDING_HELP
    );
}
