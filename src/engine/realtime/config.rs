//! The `[realtime]` configuration section: where the OpenAI Realtime socket goes, which model
//! and voice, which interface shape (GA or beta), the model's turn detection, input
//! transcription, timeouts and how long a pre-opened socket waits to be claimed.
//!
//! It only reads and checks settings (errors name the key); the API key comes from the
//! environment (`OPENAI_API_KEY`) where the client is built, never from here.

use serde::Deserialize;

use crate::config::ConfigError;

/// Where the key is read from.
pub const API_KEY_ENV: &str = "OPENAI_API_KEY";

/// Which interface shape the session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiShape {
    /// The GA interface (`type: "realtime"`, nested `audio.input/output`, `audio/pcmu`).
    Ga,
    /// The beta interface (`OpenAI-Beta: realtime=v1`, flat session, `g711_ulaw`).
    Beta,
}

/// Who decides when the caller has finished speaking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnDetection {
    /// Energy VAD: `vad_threshold`, `prefix_padding_ms`, `silence_duration_ms`.
    ServerVad,
    /// The model judges the end of the turn: `eagerness`.
    SemanticVad,
}

/// How soon `semantic_vad` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Eagerness {
    Low,
    Medium,
    High,
    Auto,
}

impl Eagerness {
    pub fn as_str(self) -> &'static str {
        match self {
            Eagerness::Low => "low",
            Eagerness::Medium => "medium",
            Eagerness::High => "high",
            Eagerness::Auto => "auto",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealtimeConfig {
    /// `wss://api.openai.com/v1/realtime` (`?model=` is added).
    pub base_url: String,
    pub model: String,
    pub voice: String,
    pub api: ApiShape,
    pub turn_detection: TurnDetection,
    /// `server_vad` activation threshold, 0..1.
    pub vad_threshold: f64,
    pub prefix_padding_ms: u32,
    pub silence_duration_ms: u32,
    pub eagerness: Eagerness,
    /// The provider's VAD cancels the response in flight when the caller starts speaking.
    pub interrupt_response: bool,
    /// Connect and session handshake, each.
    pub connect_timeout_ms: u64,
    /// Input transcription model (e.g. `gpt-4o-mini-transcribe`); empty: off.
    pub transcription_model: String,
    /// A socket opened at the webhook and not claimed by a stream within this long is closed.
    pub preconnect_ttl_ms: u64,
}

impl RealtimeConfig {
    /// Check values the types do not already guarantee.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: format!("realtime.{key}"),
                message: message.to_owned(),
            })
        };
        let url = &self.base_url;
        if !(url.starts_with("ws://") || url.starts_with("wss://")) || url.contains('?') {
            return invalid("base_url", "must be a ws:// or wss:// URL without a query");
        }
        if self.model.trim().is_empty() {
            return invalid("model", "must not be empty");
        }
        if self.voice.trim().is_empty() {
            return invalid("voice", "must not be empty");
        }
        if !(0.0..=1.0).contains(&self.vad_threshold) {
            return invalid("vad_threshold", "must be between 0 and 1");
        }
        if self.prefix_padding_ms > 5000 {
            return invalid("prefix_padding_ms", "must be at most 5000 ms");
        }
        if !(100..=10000).contains(&self.silence_duration_ms) {
            return invalid("silence_duration_ms", "must be between 100 and 10000 ms");
        }
        if !(100..=60000).contains(&self.connect_timeout_ms) {
            return invalid("connect_timeout_ms", "must be between 100 and 60000 ms");
        }
        if self.preconnect_ttl_ms > 120_000 {
            return invalid(
                "preconnect_ttl_ms",
                "must be at most 120000 ms (0: do not pre-open)",
            );
        }
        if self.transcription_model.contains(char::is_whitespace) {
            return invalid("transcription_model", "a model name, or empty for none");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn defaults_and_errors_name_the_key() {
        let c = Config::default().realtime;
        assert_eq!(c.base_url, "wss://api.openai.com/v1/realtime");
        assert_eq!(
            (c.model.as_str(), c.voice.as_str()),
            ("gpt-realtime", "alloy")
        );
        assert_eq!(
            (c.api, c.turn_detection),
            (ApiShape::Ga, TurnDetection::ServerVad)
        );
        assert!(c.interrupt_response);
        let c = Config::from_toml_str(
            "[realtime]\napi = \"beta\"\nturn_detection = \"semantic_vad\"\neagerness = \"low\"",
        )
        .unwrap();
        assert_eq!(c.realtime.api, ApiShape::Beta);
        assert_eq!(c.realtime.eagerness, Eagerness::Low);
        for (toml, key) in [
            ("api = \"v2\"", "realtime.api"),
            ("vad_threshold = 1.5", "realtime.vad_threshold"),
            (
                "base_url = \"https://api.openai.com/v1/realtime\"",
                "realtime.base_url",
            ),
            ("silence_duration_ms = 10", "realtime.silence_duration_ms"),
            ("turn_detection = \"local\"", "realtime.turn_detection"),
            ("model = \" \"", "realtime.model"),
            ("colour = \"blue\"", "realtime.colour"),
        ] {
            let e = Config::from_toml_str(&format!("[realtime]\n{toml}")).unwrap_err();
            assert!(e.to_string().contains(key), "{toml}: {e}");
        }
    }
}
