//! Server events of the OpenAI Realtime protocol, typed: GA and beta names map to the same
//! variants (`response.output_audio.delta` = `response.audio.delta`, …), audio deltas arrive
//! decoded (μ-law bytes for Playout), and event types this client does not act on are
//! tolerated as [`ServerEvent::Other`]. Also the accepted session (with the μ-law check) and
//! the classification of `error` events and failed responses into [`ProviderError`]s.
//!
//! Pure: no I/O, no state.

mod raw;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

pub use raw::parse;

use crate::provider::ProviderError;

/// A server `error` (or a failed response's `status_details.error`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ApiError {
    /// `invalid_request_error`, `server_error`, `tokens`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub param: Option<String>,
    /// The client event it answers, when known.
    #[serde(default)]
    pub event_id: Option<String>,
}

impl ApiError {
    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    /// The session hit its maximum duration (a new session can carry on).
    pub fn is_session_expired(&self) -> bool {
        self.code() == "session_expired"
    }

    /// Races that are not failures: cancelling when nothing is active, or asking for a
    /// response while one is in flight (retry after `response.done`).
    pub fn is_benign(&self) -> bool {
        matches!(
            self.code(),
            "response_cancel_not_active" | "conversation_already_has_active_response"
        )
    }

    /// What this error means for the call, if it means the conversation cannot go on:
    /// bad key → unauthorized; rate limit or quota → rate limited; server error → server.
    /// Other request errors (a refused truncate, a bad event) leave the session usable: `None`.
    pub fn failure(&self) -> Option<ProviderError> {
        let code = self.code();
        let message: String = self.message.chars().take(200).collect();
        if code == "invalid_api_key" {
            return Some(ProviderError::Unauthorized {
                status: 401,
                message,
            });
        }
        if code.contains("rate_limit") || code == "insufficient_quota" {
            return Some(ProviderError::RateLimited(message));
        }
        if self.kind == "server_error" {
            return Some(ProviderError::Server {
                status: 500,
                message,
            });
        }
        None
    }
}

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    Completed,
    Cancelled,
    Incomplete,
    Failed,
    Other,
}

/// What an output item is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKind {
    Message,
    FunctionCall { name: String, call_id: String },
    Other,
}

/// One rate limit of `rate_limits.updated`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RateLimit {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub limit: f64,
    #[serde(default)]
    pub remaining: f64,
    #[serde(default)]
    pub reset_seconds: f64,
}

/// The session the server accepted (`session.created` / `session.updated`).
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedSession {
    pub id: String,
    /// The formats as the server states them: `audio/pcmu`, `audio/pcm@24000`, `g711_ulaw`, …
    pub input_format: String,
    pub output_format: String,
    /// The whole session object, as sent.
    pub raw: Value,
}

impl AcceptedSession {
    /// Read either shape (GA nests the formats under `audio`; beta has them flat).
    pub fn from_value(raw: Value) -> Self {
        let ga = |format: &Value| match (format["type"].as_str(), format["rate"].as_u64()) {
            (Some(t), Some(rate)) => format!("{t}@{rate}"),
            (Some(t), None) => t.to_string(),
            _ => String::new(),
        };
        let (input_format, output_format) = if raw["audio"].is_object() {
            (
                ga(&raw["audio"]["input"]["format"]),
                ga(&raw["audio"]["output"]["format"]),
            )
        } else {
            let flat = |k: &str| raw[k].as_str().unwrap_or_default().to_string();
            (flat("input_audio_format"), flat("output_audio_format"))
        };
        Self {
            id: raw["id"].as_str().unwrap_or_default().to_string(),
            input_format,
            output_format,
            raw,
        }
    }

    /// Both directions are G.711 μ-law (`audio/pcmu` or `g711_ulaw`).
    pub fn is_mulaw(&self) -> bool {
        let mulaw = |f: &str| f == "audio/pcmu" || f == "g711_ulaw";
        mulaw(&self.input_format) && mulaw(&self.output_format)
    }
}

/// A server event, typed; both interfaces' names give the same variant.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    SessionCreated(AcceptedSession),
    SessionUpdated(AcceptedSession),
    SpeechStarted {
        audio_start_ms: u64,
        item_id: String,
    },
    SpeechStopped {
        audio_end_ms: u64,
        item_id: String,
    },
    Committed {
        item_id: String,
    },
    ResponseCreated {
        response_id: String,
    },
    OutputItemAdded {
        response_id: String,
        item_id: String,
        kind: ItemKind,
    },
    /// Decoded audio in the session's output format (μ-law once the handshake passed).
    AudioDelta {
        response_id: String,
        item_id: String,
        audio: Bytes,
    },
    AudioDone {
        response_id: String,
        item_id: String,
    },
    TranscriptDelta {
        response_id: String,
        item_id: String,
        delta: String,
    },
    TranscriptDone {
        response_id: String,
        item_id: String,
        transcript: String,
    },
    /// The arguments are complete: time to act (name from the `function_call` item).
    FunctionCallDone {
        response_id: String,
        item_id: String,
        call_id: String,
        arguments: String,
    },
    /// What the caller said (when input transcription is on; may arrive late).
    InputTranscript {
        item_id: String,
        transcript: String,
    },
    Truncated {
        item_id: String,
        audio_end_ms: u64,
    },
    ResponseDone {
        response_id: String,
        status: ResponseStatus,
        /// `status_details.reason` (`turn_detected`, `client_cancelled`, …).
        reason: Option<String>,
        /// `status_details.error` of a failed response.
        error: Option<ApiError>,
    },
    RateLimits(Vec<RateLimit>),
    Error(ApiError),
    /// An event this client does not act on (its `type`).
    Other(String),
    /// Never parsed from the wire: the connection's last event, when it ended other than by
    /// this side closing it.
    Closed(Closed),
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// Classified: close 3000 → unauthorized, a drop or other close → disconnected, …
    pub error: ProviderError,
    /// A `session_expired` error came first: open a new session carrying the transcript.
    pub session_expired: bool,
}

impl ServerEvent {
    /// What this event means for the call, if the conversation cannot go on (see
    /// [`ApiError::failure`]); a failed response without a known cause is a server error.
    pub fn failure(&self) -> Option<ProviderError> {
        match self {
            ServerEvent::Error(e) => e.failure(),
            ServerEvent::ResponseDone {
                status: ResponseStatus::Failed,
                error,
                ..
            } => Some(match error.as_ref().and_then(ApiError::failure) {
                Some(f) => f,
                None => ProviderError::Server {
                    status: 500,
                    message: error
                        .as_ref()
                        .map(|e| e.message.clone())
                        .unwrap_or_default(),
                },
            }),
            _ => None,
        }
    }
}
