//! A fake OpenAI Realtime server (`GET /v1/realtime?model=…` WebSocket) speaking
//! shared/reference/providers.md §5, GA by default and the beta shape when the client sends
//! `OpenAI-Beta: realtime=v1`, so the production client in [`crate::engine::realtime`] runs
//! against it unchanged.
//!
//! Per connection: `session.created` first; `session.update` checked and merged, answered by
//! `session.updated`; server VAD on the appended audio ([`vad`]) with `speech_started` /
//! `speech_stopped` / `committed`; responses streamed faster than real time ([`response`]) with
//! spoken text from a [`Script`] (cycled per connection) or function calls; interruption,
//! `response.cancel`, truncate validation, function-call round trips and the errors the real
//! service sends. [`RealtimeFault`]s, one per connection, make it misbehave. Everything it
//! saw is in [`RealtimeObserved`]. It must only ever listen on 127.0.0.1.

mod conn;
mod events;
mod http;
mod items;
mod respond;
mod response;
mod session;
pub mod shapes;
#[cfg(test)]
mod tests;
pub mod vad;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;

use super::{FakeServer, Fault, Observed};
use shapes::Api;

/// A function call the model makes instead of (or after) speaking.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    /// JSON text, streamed in fragments.
    pub arguments: String,
}

/// One caller turn of the script.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// What the fake "heard" (the input transcription, when transcription is configured).
    pub heard: String,
    /// What the model says (before the function call, if there is one; may be empty).
    pub say: String,
    pub call: Option<ToolCall>,
    /// What the model says in the response after the client returned the call's output.
    pub after_call: String,
}

impl Turn {
    /// A turn answered by speech.
    pub fn say(heard: &str, say: &str) -> Self {
        Self {
            heard: heard.into(),
            say: say.into(),
            call: None,
            after_call: String::new(),
        }
    }

    /// A turn answered by `say` (may be empty), then a call; `after_call` is spoken once the
    /// client has sent the function output and asked for a response.
    pub fn call(heard: &str, say: &str, name: &str, arguments: &str, after_call: &str) -> Self {
        Self {
            heard: heard.into(),
            say: say.into(),
            call: Some(ToolCall {
                name: name.into(),
                arguments: arguments.into(),
            }),
            after_call: after_call.into(),
        }
    }
}

/// What the fake says: a greeting (the reply to a `response.create` with nothing to answer)
/// and the caller turns, cycled per connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub greeting: String,
    pub turns: Vec<Turn>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            greeting: "Hello, thanks for calling. How can I help you today?".into(),
            turns: vec![
                Turn::say(
                    "I would like to check the status of my order",
                    "Sure. Your order shipped yesterday and should arrive tomorrow.",
                ),
                Turn::call(
                    "Thank you, goodbye",
                    "",
                    "end_call",
                    r#"{"reason":"caller said goodbye"}"#,
                    "You're welcome. Goodbye!",
                ),
            ],
        }
    }
}

/// How fast responses stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// From `response.created` to the first audio delta.
    pub first_audio: Duration,
    /// Audio per delta, ms.
    pub chunk_ms: u64,
    /// Deltas arrive this many times faster than real time (the real service runs ahead).
    pub speed: f64,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            first_audio: Duration::from_millis(150),
            chunk_ms: 100,
            speed: 2.0,
        }
    }
}

/// Misbehaviour for one connection.
#[derive(Debug, Clone, PartialEq)]
pub enum RealtimeFault {
    /// Refuse the upgrade with this status and OpenAI's error JSON (401, 403, 429, 5xx).
    Refuse(u16),
    /// Upgrade, then close 3000 `invalid_request_error.invalid_api_key` (what a bad key gets).
    InvalidKeyClose,
    /// Drop the TCP connection (no close frame) after sending this many messages.
    DisconnectAfter(usize),
    /// Drop the TCP connection after this many audio deltas of the first response.
    DropMidResponse(usize),
    /// After this long: `error` `session_expired`, then close 1001.
    SessionExpiresAfter(Duration),
    /// Every response fails: `rate_limits.updated` with nothing remaining, then `response.done`
    /// `failed` with a `rate_limit_exceeded` error in its status details.
    RateLimited,
    /// Send one broken JSON message after `session.created`, then carry on.
    Malformed,
    /// Keep the 24 kHz PCM formats whatever `session.update` asks for (μ-law "not taken").
    IgnoreAudioFormat,
    /// Say nothing at all for this long after the upgrade.
    Stall(Duration),
}

impl From<Fault> for RealtimeFault {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Status(s) => RealtimeFault::Refuse(s),
            Fault::DisconnectAfter(n) => RealtimeFault::DisconnectAfter(n),
            // The Realtime API ends a broken session by closing it: the same as a drop here.
            Fault::ErrorAfter(n) => RealtimeFault::DisconnectAfter(n),
            Fault::Malformed => RealtimeFault::Malformed,
            Fault::Stall(d) => RealtimeFault::Stall(d),
        }
    }
}

/// A queue of faults, one consumed per connection attempt; empty = behave.
#[derive(Debug, Clone, Default)]
pub struct RealtimeFaults(Arc<Mutex<VecDeque<RealtimeFault>>>);

impl RealtimeFaults {
    pub fn push(&self, fault: impl Into<RealtimeFault>) {
        if let Ok(mut q) = self.0.lock() {
            q.push_back(fault.into());
        }
    }

    fn next(&self) -> Option<RealtimeFault> {
        self.0.lock().ok().and_then(|mut q| q.pop_front())
    }
}

/// A connection attempt, recorded when it arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSeen {
    /// 0, 1, 2, … in arrival order; the `conn` of every other record.
    pub conn: usize,
    pub model: Option<String>,
    pub api: Api,
    pub authorized: bool,
    /// Refused before the upgrade with this status.
    pub refused: Option<u16>,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The fake sent a close frame with this code.
    Closed(u16),
    /// The fake dropped the connection without a close frame.
    Dropped,
    /// The client closed or went away first.
    ClientGone,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EndSeen {
    pub conn: usize,
    pub ended: Ended,
    /// Decoded audio bytes appended on this connection.
    pub audio_bytes: usize,
    pub appends: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TruncateSeen {
    pub conn: usize,
    pub item_id: String,
    pub audio_end_ms: u64,
    /// Audio generated (sent) for the item when the truncate arrived, ms.
    pub generated_ms: u64,
    pub accepted: bool,
    /// Since the connection was accepted.
    pub at: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FunctionOutputSeen {
    pub conn: usize,
    pub call_id: String,
    pub output: String,
}

/// A `conversation.item.create` of a text message (e.g. a transcript carried over).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageSeen {
    pub conn: usize,
    pub role: String,
    pub text: String,
}

/// A response the fake produced and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseSeen {
    pub conn: usize,
    pub id: String,
    /// `completed`, `cancelled` or `failed`.
    pub status: String,
    /// The words it was to speak, and the function it called (if any).
    pub text: String,
    pub call: Option<String>,
}

/// Everything the fake saw, for test assertions; shared by all connections.
#[derive(Debug, Clone, Default)]
pub struct RealtimeObserved {
    pub connections: Observed<ConnectionSeen>,
    /// `(conn, type)` of every client event received, in order.
    pub client_events: Observed<(usize, String)>,
    /// `(conn, session)` of every `session.update` received, as sent.
    pub session_updates: Observed<(usize, serde_json::Value)>,
    pub truncates: Observed<TruncateSeen>,
    pub function_outputs: Observed<FunctionOutputSeen>,
    pub messages: Observed<MessageSeen>,
    pub responses: Observed<ResponseSeen>,
    pub ends: Observed<EndSeen>,
    audio_bytes: Arc<AtomicU64>,
}

impl RealtimeObserved {
    /// Decoded audio bytes appended over all connections so far (live).
    pub fn audio_bytes(&self) -> u64 {
        self.audio_bytes.load(Ordering::Relaxed)
    }

    /// The client event types received on connection `conn`, in order.
    pub fn event_types(&self, conn: usize) -> Vec<String> {
        let all = self.client_events.snapshot().into_iter();
        all.filter(|(c, _)| *c == conn).map(|(_, t)| t).collect()
    }
}

#[derive(Clone)]
struct Shared {
    api_key: Arc<str>,
    faults: RealtimeFaults,
    observed: RealtimeObserved,
    script: Arc<Mutex<Script>>,
    pacing: Arc<Mutex<Pacing>>,
    conns: Arc<AtomicUsize>,
}

/// The running fake; stops when dropped.
pub struct FakeOpenAiRealtime {
    pub server: FakeServer,
    /// Misbehaviour, one consumed per connection attempt.
    pub faults: RealtimeFaults,
    pub observed: RealtimeObserved,
    shared: Shared,
}

impl FakeOpenAiRealtime {
    /// Serve on a free 127.0.0.1 port, accepting `Authorization: Bearer {api_key}`.
    pub async fn start(api_key: &str) -> std::io::Result<Self> {
        Self::start_on(api_key, 0).await
    }

    /// Serve on 127.0.0.1:`port` (0: any free port).
    pub async fn start_on(api_key: &str, port: u16) -> std::io::Result<Self> {
        let shared = Shared {
            api_key: api_key.into(),
            faults: RealtimeFaults::default(),
            observed: RealtimeObserved::default(),
            script: Arc::new(Mutex::new(Script::default())),
            pacing: Arc::new(Mutex::new(Pacing::default())),
            conns: Arc::new(AtomicUsize::new(0)),
        };
        let router = Router::new()
            .route("/v1/realtime", get(http::realtime))
            .with_state(shared.clone());
        Ok(Self {
            server: FakeServer::start(router, port).await?,
            faults: shared.faults.clone(),
            observed: shared.observed.clone(),
            shared,
        })
    }

    /// `ws://127.0.0.1:PORT/v1/realtime`, for `realtime.base_url`.
    pub fn url(&self) -> String {
        format!("{}/v1/realtime", self.server.ws_url())
    }

    /// The script for connections opened from now on.
    pub fn set_script(&self, script: Script) {
        if let Ok(mut s) = self.shared.script.lock() {
            *s = script;
        }
    }

    /// The pacing for connections opened from now on.
    pub fn set_pacing(&self, pacing: Pacing) {
        if let Ok(mut p) = self.shared.pacing.lock() {
            *p = pacing;
        }
    }
}
