//! OpenAI Realtime speech-to-speech, the protocol side (shared/reference/providers.md §5):
//! settings ([`config`]), the wire format for the GA and beta interfaces ([`wire`]), the
//! WebSocket client with its checked handshake and one task per connection ([`client`]), and
//! sockets opened as early as the TwiML webhook ([`preconnect`]).
//!
//! The engine that drives a call with it (Playout, barge-in, truncation at what was heard,
//! tools, apology) sits on top; this module knows nothing of Twilio, Playout or the call
//! session, and never decides what to do about a failure — it classifies it.

pub mod client;
pub mod config;
pub mod connection;
pub mod preconnect;
pub mod wire;

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
