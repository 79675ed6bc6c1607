//! What the fake Realtime server's JSON looks like in each interface (GA and beta,
//! shared/reference/providers.md §5): event names that differ, the default session objects,
//! checking and merging a `session.update`, reading the settings the fake acts on out of the
//! accepted session.
//!
//! Pure: no sockets, no timing, no connection state.

use serde_json::{Value, json};

use super::events::ApiError;
use super::vad::{InputCoding, VadSettings};

/// Which interface a connection speaks (beta: the client sent `OpenAI-Beta: realtime=v1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Ga,
    Beta,
}

impl Api {
    pub fn audio_delta(self) -> &'static str {
        match self {
            Api::Ga => "response.output_audio.delta",
            Api::Beta => "response.audio.delta",
        }
    }

    pub fn audio_done(self) -> &'static str {
        match self {
            Api::Ga => "response.output_audio.done",
            Api::Beta => "response.audio.done",
        }
    }

    pub fn transcript_delta(self) -> &'static str {
        match self {
            Api::Ga => "response.output_audio_transcript.delta",
            Api::Beta => "response.audio_transcript.delta",
        }
    }

    pub fn transcript_done(self) -> &'static str {
        match self {
            Api::Ga => "response.output_audio_transcript.done",
            Api::Beta => "response.audio_transcript.done",
        }
    }

    /// An item entered the conversation (GA: `added`, beta: `created`).
    pub fn item_added(self) -> &'static str {
        match self {
            Api::Ga => "conversation.item.added",
            Api::Beta => "conversation.item.created",
        }
    }

    /// The content part type of spoken output.
    pub fn audio_part(self) -> &'static str {
        match self {
            Api::Ga => "output_audio",
            Api::Beta => "audio",
        }
    }
}

/// What a connection acts on, read from its accepted session.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub input: InputCoding,
    pub output: InputCoding,
    /// `None`: turn detection off (manual `input_audio_buffer.commit`).
    pub turn: Option<TurnSettings>,
    pub transcription: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnSettings {
    pub vad: VadSettings,
    pub create_response: bool,
    pub interrupt_response: bool,
}

/// The session every connection starts with (what `session.created` shows).
pub fn default_session(api: Api, id: &str, model: &str, expires_at: u64) -> Value {
    let turn = json!({"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
        "silence_duration_ms": 200, "idle_timeout_ms": null, "create_response": true,
        "interrupt_response": true});
    let instructions = "You are a helpful, witty, and friendly AI.";
    match api {
        Api::Ga => json!({
            "type": "realtime", "object": "realtime.session", "id": id, "model": model,
            "output_modalities": ["audio"], "instructions": instructions, "tools": [],
            "tool_choice": "auto", "max_output_tokens": "inf", "tracing": null, "prompt": null,
            "expires_at": expires_at, "include": null,
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": null,
                    "noise_reduction": null, "turn_detection": turn},
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin",
                    "speed": 1.0},
            },
        }),
        Api::Beta => json!({
            "id": id, "object": "realtime.session", "model": model, "expires_at": expires_at,
            "modalities": ["text", "audio"], "instructions": instructions, "voice": "alloy",
            "input_audio_format": "pcm16", "output_audio_format": "pcm16",
            "input_audio_transcription": null, "turn_detection": turn, "tools": [],
            "tool_choice": "auto", "temperature": 0.8, "max_response_output_tokens": "inf",
        }),
    }
}

const GA_KEYS: &[&str] = &[
    "type",
    "model",
    "output_modalities",
    "instructions",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "tracing",
    "prompt",
    "audio",
    "include",
    "truncation",
];
const BETA_KEYS: &[&str] = &[
    "model",
    "modalities",
    "instructions",
    "voice",
    "input_audio_format",
    "output_audio_format",
    "input_audio_transcription",
    "input_audio_noise_reduction",
    "turn_detection",
    "tools",
    "tool_choice",
    "temperature",
    "max_response_output_tokens",
    "speed",
    "tracing",
];
/// Keys the server owns; an update cannot change them.
const READ_ONLY: &[&str] = &["id", "object", "expires_at"];

/// Check a `session.update`'s `session` and merge it into `current`, returning the new session
/// (or the error the real service would send, leaving the session as it was).
pub fn merge_session(api: Api, current: &Value, update: &Value) -> Result<Value, ApiError> {
    let Some(update) = update.as_object() else {
        return Err(ApiError::invalid(
            Some("invalid_type"),
            "Invalid type for 'session': expected an object.",
        )
        .param("session"));
    };
    let known = match api {
        Api::Ga => GA_KEYS,
        Api::Beta => BETA_KEYS,
    };
    if let Some(key) = update.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            Some("unknown_parameter"),
            format!("Unknown parameter: 'session.{key}'."),
        ));
    }
    if api == Api::Ga {
        match update.get("type").and_then(Value::as_str) {
            Some("realtime") => {}
            Some(other) => {
                return Err(ApiError::invalid(
                    Some("invalid_value"),
                    format!("Invalid value: '{other}'. Supported values are: 'realtime' and 'transcription'."),
                )
                .param("session.type"));
            }
            None => {
                return Err(ApiError::invalid(
                    Some("missing_required_parameter"),
                    "Missing required parameter: 'session.type'.",
                )
                .param("session.type"));
            }
        }
    }
    let mut merged = current.clone();
    deep_merge(&mut merged, &Value::Object(update.clone()));
    for key in READ_ONLY {
        merged[*key] = current[*key].clone();
    }
    settings(api, &merged)?;
    Ok(merged)
}

/// Merge objects key by key; a nested object with a `type` (a format, a turn detection) is
/// one of a union and replaces the old value whole.
fn deep_merge(base: &mut Value, update: &Value) {
    match (base, update) {
        (Value::Object(b), Value::Object(u)) => {
            for (k, v) in u {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() && v.get("type").is_none() => {
                        deep_merge(slot, v)
                    }
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, u) => *b = u.clone(),
    }
}

/// Put the formats back to the 24 kHz PCM default (the fault in which the fake "does not
/// take" μ-law).
pub fn reset_formats(api: Api, session: &mut Value) {
    match api {
        Api::Ga => {
            let pcm = json!({"type": "audio/pcm", "rate": 24000});
            session["audio"]["input"]["format"] = pcm.clone();
            session["audio"]["output"]["format"] = pcm;
        }
        Api::Beta => {
            session["input_audio_format"] = json!("pcm16");
            session["output_audio_format"] = json!("pcm16");
        }
    }
}

/// The settings the fake acts on, or the error for a value it cannot accept.
pub fn settings(api: Api, session: &Value) -> Result<Settings, ApiError> {
    let (input, output, turn, transcription) = match api {
        Api::Ga => (
            ga_format(
                &session["audio"]["input"]["format"],
                "session.audio.input.format",
            )?,
            ga_format(
                &session["audio"]["output"]["format"],
                "session.audio.output.format",
            )?,
            &session["audio"]["input"]["turn_detection"],
            &session["audio"]["input"]["transcription"],
        ),
        Api::Beta => (
            beta_format(&session["input_audio_format"], "session.input_audio_format")?,
            beta_format(
                &session["output_audio_format"],
                "session.output_audio_format",
            )?,
            &session["turn_detection"],
            &session["input_audio_transcription"],
        ),
    };
    Ok(Settings {
        input,
        output,
        turn: turn_settings(turn)?,
        transcription: transcription.is_object(),
    })
}

fn ga_format(format: &Value, param: &'static str) -> Result<InputCoding, ApiError> {
    match (format["type"].as_str(), format.get("rate").and_then(Value::as_u64)) {
        (Some("audio/pcmu"), _) => Ok(InputCoding::Mulaw8k),
        (Some("audio/pcm"), None | Some(24000)) => Ok(InputCoding::Pcm24k),
        (Some("audio/pcma"), _) => Err(unsupported(param, "audio/pcma")),
        (Some(other), _) => Err(ApiError::invalid(
            Some("invalid_value"),
            format!("Invalid value: '{other}'. Supported values are: 'audio/pcm', 'audio/pcmu', and 'audio/pcma'."),
        )
        .param(param)),
        (None, _) => Err(ApiError::invalid(
            Some("missing_required_parameter"),
            format!("Missing required parameter: '{param}.type'."),
        )
        .param(param)),
    }
}

fn beta_format(format: &Value, param: &'static str) -> Result<InputCoding, ApiError> {
    match format.as_str() {
        Some("g711_ulaw") => Ok(InputCoding::Mulaw8k),
        Some("pcm16") => Ok(InputCoding::Pcm24k),
        Some("g711_alaw") => Err(unsupported(param, "g711_alaw")),
        _ => Err(ApiError::invalid(
            Some("invalid_value"),
            format!("Invalid value: {format}. Supported values are: 'pcm16', 'g711_ulaw', and 'g711_alaw'."),
        )
        .param(param)),
    }
}

/// A real format this fake does not implement (A-law): refused loudly rather than faked.
fn unsupported(param: &'static str, what: &str) -> ApiError {
    ApiError::invalid(
        Some("invalid_value"),
        format!("The fake Realtime server does not implement {what}."),
    )
    .param(param)
}

fn turn_settings(turn: &Value) -> Result<Option<TurnSettings>, ApiError> {
    if turn.is_null() {
        return Ok(None);
    }
    let flag = |k: &str| turn.get(k).and_then(Value::as_bool).unwrap_or(true);
    let vad = match turn["type"].as_str() {
        Some("server_vad") => VadSettings {
            threshold: turn["threshold"].as_f64().unwrap_or(0.5),
            prefix_padding_ms: turn["prefix_padding_ms"].as_u64().unwrap_or(300),
            silence_duration_ms: turn["silence_duration_ms"].as_u64().unwrap_or(200),
        },
        // The model decides when the caller is done; the fake maps eagerness to a pause.
        Some("semantic_vad") => VadSettings {
            silence_duration_ms: match turn["eagerness"].as_str() {
                Some("high") => 300,
                Some("low") => 1200,
                Some("medium") | Some("auto") | None => 700,
                Some(other) => {
                    return Err(ApiError::invalid(
                        Some("invalid_value"),
                        format!("Invalid value: '{other}'. Supported values are: 'low', 'medium', 'high', and 'auto'."),
                    )
                    .param("turn_detection.eagerness"));
                }
            },
            ..VadSettings::default()
        },
        other => {
            return Err(ApiError::invalid(
                Some("invalid_value"),
                format!(
                    "Invalid value: {}. Supported values are: 'server_vad' and 'semantic_vad'.",
                    other.unwrap_or("null")
                ),
            )
            .param("turn_detection.type"));
        }
    };
    Ok(Some(TurnSettings {
        vad,
        create_response: flag("create_response"),
        interrupt_response: flag("interrupt_response"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ga_update_merges_and_is_checked() {
        let base = default_session(Api::Ga, "sess_1", "gpt-realtime", 0);
        let update = json!({"type": "realtime", "instructions": "Be brief.",
            "audio": {"input": {"format": {"type": "audio/pcmu"}},
                      "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy"}}});
        let merged = merge_session(Api::Ga, &base, &update).unwrap();
        assert_eq!(merged["instructions"], "Be brief.");
        assert_eq!(merged["audio"]["output"]["voice"], "alloy");
        assert_eq!(merged["audio"]["output"]["speed"], 1.0); // kept from the default
        let s = settings(Api::Ga, &merged).unwrap();
        assert_eq!(
            (s.input, s.output),
            (InputCoding::Mulaw8k, InputCoding::Mulaw8k)
        );
        assert!(s.turn.is_some() && !s.transcription);

        let flat = json!({"type": "realtime", "input_audio_format": "g711_ulaw"});
        let err = merge_session(Api::Ga, &base, &flat).unwrap_err();
        assert_eq!(err.code, Some("unknown_parameter"));
        let untyped = json!({"instructions": "x"});
        let err = merge_session(Api::Ga, &base, &untyped).unwrap_err();
        assert_eq!(err.code, Some("missing_required_parameter"));
    }

    #[test]
    fn beta_update_is_flat_and_reset_formats_undoes_mulaw() {
        let base = default_session(Api::Beta, "sess_1", "m", 0);
        let update = json!({"input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw",
            "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
            "input_audio_transcription": {"model": "gpt-4o-mini-transcribe"}});
        let mut merged = merge_session(Api::Beta, &base, &update).unwrap();
        let s = settings(Api::Beta, &merged).unwrap();
        assert_eq!(s.input, InputCoding::Mulaw8k);
        assert!(s.transcription);
        assert_eq!(s.turn.map(|t| t.vad.silence_duration_ms), Some(300));
        reset_formats(Api::Beta, &mut merged);
        assert_eq!(merged["output_audio_format"], "pcm16");
        let ga_shape = json!({"type": "realtime"});
        assert!(merge_session(Api::Beta, &base, &ga_shape).is_err());
    }
}
