//! The OpenAI Realtime protocol as the client writes it (shared/reference/providers.md §5): the
//! `session.update` for the GA and the beta shape, the function tools, and typed client events
//! serialised to JSON text. Server events are parsed in [`server`].
//!
//! Caller audio is never re-encoded: [`Base64Audio`] carries Twilio's base64 μ-law payload as
//! it arrived and is written into the JSON as is. Pure: no I/O, no state.

pub mod server;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use serde_json::{Value, json};

use super::config::{ApiShape, RealtimeConfig, TurnDetection};

/// The header (and value) that selects the beta interface.
pub const BETA_HEADER: (&str, &str) = ("OpenAI-Beta", "realtime=v1");

/// The function tools the model may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Hang up after the goodbye (`reason`).
    EndCall,
    /// Transfer the caller to `to` (E.164).
    TransferCall,
    /// Record the call's outcome (`outcome`), e.g. for a campaign.
    SetOutcome,
    /// The person asked never to be called again: outcome `opted_out` (the dialer puts the
    /// number on the do-not-call list), and the call ends after the goodbye.
    OptOut,
}

impl Tool {
    pub const ALL: [Tool; 4] = [
        Tool::EndCall,
        Tool::TransferCall,
        Tool::SetOutcome,
        Tool::OptOut,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tool::EndCall => "end_call",
            Tool::TransferCall => "transfer_call",
            Tool::SetOutcome => "set_outcome",
            Tool::OptOut => "opt_out",
        }
    }

    pub fn from_name(name: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The Realtime tool definition (flat: `type`, `name`, `description`, `parameters`).
    pub fn schema(self) -> Value {
        let (description, properties, required): (&str, Value, Vec<&str>) = match self {
            Tool::EndCall => (
                "End the phone call. Say goodbye first; the line is hung up after it has played.",
                json!({"reason": {"type": "string", "description": "Why the call ends."}}),
                vec![],
            ),
            Tool::TransferCall => (
                "Transfer the caller to a human at the given phone number.",
                json!({"to": {"type": "string", "pattern": "^\\+[1-9][0-9]{6,14}$",
                    "description": "The number to transfer to, in E.164 format, e.g. +14155550100."}}),
                vec!["to"],
            ),
            Tool::SetOutcome => (
                "Record the outcome of the call, e.g. interested, not_interested, callback.",
                json!({"outcome": {"type": "string", "description": "The call's outcome."}}),
                vec!["outcome"],
            ),
            Tool::OptOut => (
                "The person asks not to be called again: confirm briefly and say goodbye; their \
                 number is put on the do-not-call list and the call ends after the goodbye.",
                json!({}),
                vec![],
            ),
        };
        json!({"type": "function", "name": self.name(), "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required,
                "additionalProperties": false}})
    }
}

/// What one call's session asks for, on top of the `[realtime]` settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionSpec {
    /// The agent profile's system prompt.
    pub instructions: String,
    pub tools: Vec<Tool>,
    /// The agent profile's voice (`realtime.voice` when None).
    pub voice: Option<String>,
}

/// The `session.update` event for `cfg.api`: μ-law both ways, the configured turn detection,
/// voice, instructions, tools and (when configured) input transcription.
pub fn session_update(cfg: &RealtimeConfig, spec: &SessionSpec) -> String {
    let voice = spec.voice.as_deref().unwrap_or(&cfg.voice);
    let mut turn = match cfg.turn_detection {
        TurnDetection::ServerVad => json!({"type": "server_vad",
            "threshold": cfg.vad_threshold, "prefix_padding_ms": cfg.prefix_padding_ms,
            "silence_duration_ms": cfg.silence_duration_ms}),
        TurnDetection::SemanticVad => json!({"type": "semantic_vad",
            "eagerness": cfg.eagerness.as_str()}),
    };
    turn["create_response"] = json!(true);
    turn["interrupt_response"] = json!(cfg.interrupt_response);
    let tools: Vec<Value> = spec.tools.iter().map(|t| t.schema()).collect();
    let transcription =
        (!cfg.transcription_model.is_empty()).then(|| json!({"model": cfg.transcription_model}));
    let session = match cfg.api {
        ApiShape::Ga => {
            let mut input = json!({"format": {"type": "audio/pcmu"}, "turn_detection": turn});
            if let Some(t) = transcription {
                input["transcription"] = t;
            }
            json!({"type": "realtime", "model": cfg.model, "output_modalities": ["audio"],
                "instructions": spec.instructions,
                "audio": {"input": input,
                    "output": {"format": {"type": "audio/pcmu"}, "voice": voice}},
                "tools": tools, "tool_choice": "auto"})
        }
        ApiShape::Beta => {
            let mut s = json!({"modalities": ["text", "audio"],
                "instructions": spec.instructions, "voice": voice,
                "input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw",
                "turn_detection": turn, "tools": tools, "tool_choice": "auto"});
            if let Some(t) = transcription {
                s["input_audio_transcription"] = t;
            }
            s
        }
    };
    json!({"type": "session.update", "session": session}).to_string()
}

/// Base64 text that is safe to write into JSON as is (checked once, never re-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base64Audio(Bytes);

/// The audio text was not base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audio payload is not base64 ({0} bytes)")]
pub struct NotBase64(pub usize);

impl Base64Audio {
    /// Twilio's `media.payload` text as received (standard alphabet, padded).
    pub fn new(text: Bytes) -> Result<Self, NotBase64> {
        let alphabet = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/');
        let pad = text.iter().rev().take_while(|b| **b == b'=').count();
        let body = &text[..text.len() - pad];
        if text.is_empty() || !text.len().is_multiple_of(4) || pad > 2 || !body.iter().all(alphabet)
        {
            return Err(NotBase64(text.len()));
        }
        Ok(Self(text))
    }

    /// Raw μ-law bytes, base64-encoded here (when the codec has already decoded them).
    pub fn from_mulaw(audio: &[u8]) -> Self {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode(audio);
        Self(Bytes::from(text))
    }

    pub fn as_str(&self) -> &str {
        // Checked (or produced) as ASCII base64 on construction.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Decoded length in bytes (= ms × 8 for μ-law).
    pub fn decoded_len(&self) -> usize {
        let pad = self.0.iter().rev().take_while(|b| **b == b'=').count();
        self.0.len() / 4 * 3 - pad
    }
}

/// Who said a message carried into a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// An event the client sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `input_audio_buffer.append` (no ack).
    AppendAudio(Base64Audio),
    /// `input_audio_buffer.commit` (manual turns only).
    Commit,
    /// `input_audio_buffer.clear`.
    ClearAudio,
    /// `response.create`, optionally with instructions for this response only (a greeting).
    CreateResponse { instructions: Option<String> },
    /// `response.cancel` (harmless when nothing is active: `response_cancel_not_active`).
    CancelResponse,
    /// `conversation.item.truncate` of an assistant audio item at what the caller heard.
    Truncate { item_id: String, audio_end_ms: u64 },
    /// `conversation.item.create` of a `function_call_output` (JSON text).
    FunctionOutput { call_id: String, output: String },
    /// `conversation.item.create` of a text message (e.g. the transcript so far in a new
    /// session).
    Message { role: Role, text: String },
    /// `session.update` as built by [`session_update`].
    SessionUpdate(String),
}

impl ClientEvent {
    /// The JSON text for the interface `api`.
    pub fn to_json(&self, api: ApiShape) -> String {
        match self {
            ClientEvent::AppendAudio(audio) => {
                const HEAD: &str = r#"{"type":"input_audio_buffer.append","audio":""#;
                let mut s = String::with_capacity(HEAD.len() + audio.0.len() + 2);
                s.push_str(HEAD);
                s.push_str(audio.as_str());
                s.push_str("\"}");
                s
            }
            ClientEvent::Commit => r#"{"type":"input_audio_buffer.commit"}"#.to_string(),
            ClientEvent::ClearAudio => r#"{"type":"input_audio_buffer.clear"}"#.to_string(),
            ClientEvent::CreateResponse { instructions: None } => {
                r#"{"type":"response.create"}"#.to_string()
            }
            ClientEvent::CreateResponse {
                instructions: Some(text),
            } => json!({"type": "response.create", "response": {"instructions": text}}).to_string(),
            ClientEvent::CancelResponse => r#"{"type":"response.cancel"}"#.to_string(),
            ClientEvent::Truncate {
                item_id,
                audio_end_ms,
            } => json!({"type": "conversation.item.truncate", "item_id": item_id,
                "content_index": 0, "audio_end_ms": audio_end_ms})
            .to_string(),
            ClientEvent::FunctionOutput { call_id, output } => json!({
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": output}})
            .to_string(),
            ClientEvent::Message { role, text } => {
                let (role, part) = match (role, api) {
                    (Role::User, _) => ("user", "input_text"),
                    (Role::Assistant, ApiShape::Ga) => ("assistant", "output_text"),
                    (Role::Assistant, ApiShape::Beta) => ("assistant", "text"),
                };
                json!({"type": "conversation.item.create", "item": {"type": "message",
                    "role": role, "content": [{"type": part, "text": text}]}})
                .to_string()
            }
            ClientEvent::SessionUpdate(text) => text.clone(),
        }
    }

    /// The event's `type`, for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientEvent::AppendAudio(_) => "input_audio_buffer.append",
            ClientEvent::Commit => "input_audio_buffer.commit",
            ClientEvent::ClearAudio => "input_audio_buffer.clear",
            ClientEvent::CreateResponse { .. } => "response.create",
            ClientEvent::CancelResponse => "response.cancel",
            ClientEvent::Truncate { .. } => "conversation.item.truncate",
            ClientEvent::FunctionOutput { .. } | ClientEvent::Message { .. } => {
                "conversation.item.create"
            }
            ClientEvent::SessionUpdate(_) => "session.update",
        }
    }
}
