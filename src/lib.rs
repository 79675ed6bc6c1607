//! voxbridge — a real-time voice media server for Twilio Media Streams.
//!
//! Twilio streams each call's audio to [`server`] over a WebSocket; a [`call::session`] per call
//! decodes it ([`audio`]) and hands it to the call's [`engine`] (echo, a cascade of STT →
//! [`agent`] → TTS, or a speech-to-speech model), and paces the answer back. [`sim`] is a faithful simulated Twilio leg used by the CLI, tests and benches.

pub mod agent;
pub mod api;
pub mod audio;
pub mod call;
pub mod config;
pub mod console;
pub mod dialer;
pub mod engine;
/// Test and demo infrastructure, compiled only with the `fakes` feature (on by default) or in
/// unit tests: a production build (`--no-default-features`) carries none of it.
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod logging;
pub mod metrics;
pub mod process_metrics;
pub mod provider;
pub mod quality;
pub mod server;
pub mod sim;
pub mod store;
pub mod stt;
pub mod tts;
pub mod twilio;
