//! Parsing server events: the wire names of both interfaces (serde tags and aliases) into
//! the typed [`ServerEvent`]s of the parent module. Pure.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::{AcceptedSession, ApiError, ItemKind, RateLimit, ResponseStatus, ServerEvent};
use crate::provider::ProviderError;

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Raw {
    #[serde(rename = "session.created")]
    SessionCreated { session: Value },
    #[serde(rename = "session.updated")]
    SessionUpdated { session: Value },
    #[serde(rename = "input_audio_buffer.speech_started")]
    SpeechStarted {
        #[serde(default)]
        audio_start_ms: u64,
        item_id: String,
    },
    #[serde(rename = "input_audio_buffer.speech_stopped")]
    SpeechStopped {
        #[serde(default)]
        audio_end_ms: u64,
        item_id: String,
    },
    #[serde(rename = "input_audio_buffer.committed")]
    Committed { item_id: String },
    #[serde(rename = "response.created")]
    ResponseCreated { response: ResponseRef },
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded { response_id: String, item: ItemRef },
    #[serde(rename = "response.output_audio.delta", alias = "response.audio.delta")]
    AudioDelta {
        response_id: String,
        item_id: String,
        delta: String,
    },
    #[serde(rename = "response.output_audio.done", alias = "response.audio.done")]
    AudioDone {
        response_id: String,
        item_id: String,
    },
    #[serde(
        rename = "response.output_audio_transcript.delta",
        alias = "response.audio_transcript.delta"
    )]
    TranscriptDelta {
        response_id: String,
        item_id: String,
        delta: String,
    },
    #[serde(
        rename = "response.output_audio_transcript.done",
        alias = "response.audio_transcript.done"
    )]
    TranscriptDone {
        response_id: String,
        item_id: String,
        #[serde(default)]
        transcript: String,
    },
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallDone {
        response_id: String,
        item_id: String,
        call_id: String,
        arguments: String,
    },
    #[serde(rename = "conversation.item.input_audio_transcription.completed")]
    InputTranscript {
        item_id: String,
        #[serde(default)]
        transcript: String,
    },
    #[serde(rename = "conversation.item.truncated")]
    Truncated { item_id: String, audio_end_ms: u64 },
    #[serde(rename = "response.done")]
    ResponseDone { response: ResponseRef },
    #[serde(rename = "rate_limits.updated")]
    RateLimits { rate_limits: Vec<RateLimit> },
    #[serde(rename = "error")]
    Error { error: ApiError },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct ResponseRef {
    id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    status_details: Option<StatusDetails>,
}

#[derive(Deserialize)]
struct StatusDetails {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ItemRef {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
}

#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

/// Parse one server message (JSON text).
pub fn parse(text: &str) -> Result<ServerEvent, ProviderError> {
    let malformed = |e: &dyn std::fmt::Display| {
        let head: String = text.chars().take(80).collect();
        ProviderError::Malformed(format!("{e}: {head}"))
    };
    let raw: Raw = serde_json::from_str(text).map_err(|e| malformed(&e))?;
    Ok(match raw {
        Raw::SessionCreated { session } => {
            ServerEvent::SessionCreated(AcceptedSession::from_value(session))
        }
        Raw::SessionUpdated { session } => {
            ServerEvent::SessionUpdated(AcceptedSession::from_value(session))
        }
        Raw::SpeechStarted {
            audio_start_ms,
            item_id,
        } => ServerEvent::SpeechStarted {
            audio_start_ms,
            item_id,
        },
        Raw::SpeechStopped {
            audio_end_ms,
            item_id,
        } => ServerEvent::SpeechStopped {
            audio_end_ms,
            item_id,
        },
        Raw::Committed { item_id } => ServerEvent::Committed { item_id },
        Raw::ResponseCreated { response } => ServerEvent::ResponseCreated {
            response_id: response.id,
        },
        Raw::OutputItemAdded { response_id, item } => ServerEvent::OutputItemAdded {
            response_id,
            item_id: item.id,
            kind: match (item.kind.as_str(), item.name, item.call_id) {
                ("message", _, _) => ItemKind::Message,
                ("function_call", Some(name), Some(call_id)) => {
                    ItemKind::FunctionCall { name, call_id }
                }
                _ => ItemKind::Other,
            },
        },
        Raw::AudioDelta {
            response_id,
            item_id,
            delta,
        } => ServerEvent::AudioDelta {
            response_id,
            item_id,
            audio: Bytes::from(
                STANDARD
                    .decode(delta.as_bytes())
                    .map_err(|e| malformed(&e))?,
            ),
        },
        Raw::AudioDone {
            response_id,
            item_id,
        } => ServerEvent::AudioDone {
            response_id,
            item_id,
        },
        Raw::TranscriptDelta {
            response_id,
            item_id,
            delta,
        } => ServerEvent::TranscriptDelta {
            response_id,
            item_id,
            delta,
        },
        Raw::TranscriptDone {
            response_id,
            item_id,
            transcript,
        } => ServerEvent::TranscriptDone {
            response_id,
            item_id,
            transcript,
        },
        Raw::FunctionCallDone {
            response_id,
            item_id,
            call_id,
            arguments,
        } => ServerEvent::FunctionCallDone {
            response_id,
            item_id,
            call_id,
            arguments,
        },
        Raw::InputTranscript {
            item_id,
            transcript,
        } => ServerEvent::InputTranscript {
            item_id,
            transcript,
        },
        Raw::Truncated {
            item_id,
            audio_end_ms,
        } => ServerEvent::Truncated {
            item_id,
            audio_end_ms,
        },
        Raw::ResponseDone { response } => {
            let details = response.status_details;
            let (reason, error) = details.map_or((None, None), |d| (d.reason, d.error));
            ServerEvent::ResponseDone {
                response_id: response.id,
                status: match response.status.as_str() {
                    "completed" => ResponseStatus::Completed,
                    "cancelled" => ResponseStatus::Cancelled,
                    "incomplete" => ResponseStatus::Incomplete,
                    "failed" => ResponseStatus::Failed,
                    _ => ResponseStatus::Other,
                },
                reason,
                error,
            }
        }
        Raw::RateLimits { rate_limits } => ServerEvent::RateLimits(rate_limits),
        Raw::Error { error } => ServerEvent::Error(error),
        Raw::Other => {
            let t: TypeOnly = serde_json::from_str(text).map_err(|e| malformed(&e))?;
            ServerEvent::Other(t.kind.into_owned())
        }
    })
}
