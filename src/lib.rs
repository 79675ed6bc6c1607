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
pub mod dialer;
pub mod engine;
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
