//! `CallContext`: who a call is, built once when its stream starts — ids, direction, numbers,
//! the agent profile and engine chosen for it, and the stream's parameters (which become the
//! agent's variables).
//!
//! How the profile is chosen lives in [`crate::engine::profiles`]; this is plain data, shared
//! read-only with the engine and the observers. It holds no secrets and no providers.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

/// Which way the call was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// How the caller is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// Plays each caller turn back (local turn detection, no providers).
    Echo,
    /// Speech-to-text → agent → text-to-speech.
    Cascade,
    /// OpenAI Realtime speech-to-speech.
    OpenaiRealtime,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Echo => "echo",
            EngineKind::Cascade => "cascade",
            EngineKind::OpenaiRealtime => "openai_realtime",
        }
    }
}

/// One call's identity and set-up.
#[derive(Debug, Clone, Serialize)]
pub struct CallContext {
    pub call_sid: String,
    pub stream_sid: String,
    pub direction: Direction,
    /// The caller's and the called number, as the carrier gave them (may be empty).
    pub from: String,
    pub to: String,
    /// The agent profile answering, and its engine.
    pub profile: String,
    pub engine: EngineKind,
    /// Every stream parameter, as sent (the agent's variables; `token` removed).
    pub parameters: BTreeMap<String, String>,
    #[serde(skip)]
    pub started_at: SystemTime,
}

impl CallContext {
    /// A stream parameter, if present and not empty.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}
