//! The providers a call uses — STT, agent, TTS, the apology, the Twilio REST client — built
//! once at start-up and shared by every call through an `Arc`. Holds no per-call state.

use std::sync::Arc;

use bytes::Bytes;

use crate::agent::Agent;
use crate::agent::echo::EchoAgent;
use crate::agent::openai::OpenAiAgent;
use crate::agent::scripted::ScriptedAgent;
use crate::audio::mulaw;
use crate::config::{AgentKind, Config, SttProvider, TtsProvider, TurnSource};
use crate::provider::{ProviderError, Secret};
use crate::stt::SpeechToText;
use crate::stt::deepgram::Deepgram;
use crate::tts::TextToSpeech;
use crate::tts::elevenlabs_http::ElevenLabsHttp;
use crate::tts::elevenlabs_ws::ElevenLabsWs;
use crate::tts::espeak::Espeak;
use crate::tts::fallback::FallbackTts;
use crate::tts::openai::OpenAiTts;
use crate::twilio::rest::TwilioRest;

pub struct CallServices {
    pub stt: Option<Arc<dyn SpeechToText>>,
    pub agent: Arc<dyn Agent>,
    pub tts: Option<Arc<dyn TextToSpeech>>,
    /// Said through the TTS when the agent fails before saying anything.
    pub apology_text: String,
    /// Played when every TTS fails too (pre-rendered at start-up), if available.
    pub apology_audio: Option<Bytes>,
    /// What ends the caller's turn (`auto` resolved).
    pub turn_source: TurnSource,
    /// Twilio REST, for the agent's `end_call` / `transfer_call` (with credentials only).
    pub twilio: Option<Arc<TwilioRest>>,
    /// `TWILIO_AUTH_TOKEN`: signature validation is on whenever this is set.
    pub auth_token: Option<Secret>,
    /// Key of the per-stream tokens (when `security.stream_token` is on).
    pub stream_token_secret: Option<Secret>,
}

impl CallServices {
    /// The zero-configuration default: echo agent, local VAD, no speech providers.
    pub fn echo() -> Self {
        Self {
            stt: None,
            agent: Arc::new(EchoAgent::default()),
            tts: None,
            apology_text: String::new(),
            apology_audio: None,
            turn_source: TurnSource::Vad,
            twilio: None,
            auth_token: None,
            stream_token_secret: None,
        }
    }
}

/// A configured provider that cannot be built (a missing key, a bad flow file, …).
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("{what} needs the environment variable {var}")]
    MissingKey {
        what: &'static str,
        var: &'static str,
    },
    #[error("agent.flow_file: {0}")]
    Flow(String),
    #[error("{0}")]
    Security(&'static str),
    #[error("{what}: {error}")]
    Provider {
        what: &'static str,
        error: ProviderError,
    },
}

impl CallServices {
    /// Build the providers `config` asks for; secrets come from `env` (the process
    /// environment in production). The apology is pre-rendered with espeak-ng when available.
    pub async fn from_config(
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ServicesError> {
        let key = |what: &'static str, var: &'static str| {
            env(var)
                .filter(|v| !v.is_empty())
                .map(Secret::new)
                .ok_or(ServicesError::MissingKey { what, var })
        };
        let stt: Option<Arc<dyn SpeechToText>> = match config.stt.provider {
            SttProvider::None => None,
            SttProvider::Deepgram => {
                let api_key = key("stt.provider = \"deepgram\"", "DEEPGRAM_API_KEY")?;
                Some(Arc::new(Deepgram::new(&config.stt, api_key)))
            }
        };
        let agent: Arc<dyn Agent> = match config.agent.kind {
            AgentKind::Echo => Arc::new(EchoAgent {
                greeting: Some(config.agent.greeting.clone()).filter(|g| !g.trim().is_empty()),
            }),
            AgentKind::Openai => {
                let api_key = key("agent.kind = \"openai\"", "OPENAI_API_KEY")?;
                let fallback = if config.agent.fallback_base_url.is_empty() {
                    None
                } else {
                    let fallback_key = env("AGENT_FALLBACK_API_KEY")
                        .filter(|v| !v.is_empty())
                        .map(Secret::new)
                        .unwrap_or_else(|| api_key.clone());
                    let model = if config.agent.fallback_model.is_empty() {
                        config.agent.model.clone()
                    } else {
                        config.agent.fallback_model.clone()
                    };
                    Some((config.agent.fallback_base_url.clone(), model, fallback_key))
                };
                let agent =
                    OpenAiAgent::new(&config.agent, api_key, fallback).map_err(|error| {
                        ServicesError::Provider {
                            what: "agent",
                            error,
                        }
                    })?;
                Arc::new(agent)
            }
            AgentKind::Scripted => {
                let agent = if config.agent.flow_file.is_empty() {
                    ScriptedAgent::demo()
                } else {
                    ScriptedAgent::from_file(&config.agent.flow_file)
                        .map_err(|e| ServicesError::Flow(e.to_string()))?
                };
                Arc::new(agent)
            }
        };
        let espeak = Espeak::new(&config.tts);
        let apology_audio = if config.agent.apology.trim().is_empty() {
            None
        } else {
            match espeak.render(&config.agent.apology).await {
                Ok(audio) => Some(audio),
                Err(e) => {
                    tracing::warn!(error = %e, "apology not pre-rendered (espeak-ng unavailable); \
                        a failed reply will be a short tone instead");
                    Some(apology_tone())
                }
            }
        };
        let build =
            |provider: TtsProvider| -> Result<Option<Arc<dyn TextToSpeech>>, ServicesError> {
                Ok(match provider {
                    TtsProvider::None => None,
                    TtsProvider::ElevenlabsWs => Some(Arc::new(ElevenLabsWs::new(
                        &config.tts,
                        key("tts elevenlabs_ws", "ELEVENLABS_API_KEY")?,
                    ))),
                    TtsProvider::ElevenlabsHttp => Some(Arc::new(ElevenLabsHttp::new(
                        &config.tts,
                        key("tts elevenlabs_http", "ELEVENLABS_API_KEY")?,
                    ))),
                    TtsProvider::Openai => Some(Arc::new(OpenAiTts::new(
                        &config.tts,
                        key("tts openai", "OPENAI_API_KEY")?,
                    ))),
                    TtsProvider::Espeak => Some(Arc::new(Espeak::new(&config.tts))),
                })
            };
        let tts = match build(config.tts.provider)? {
            None => None,
            Some(primary) => {
                let secondary = match config.tts.fallback_provider() {
                    Some(p) => build(p)?,
                    None => None,
                };
                let tts: Arc<dyn TextToSpeech> =
                    Arc::new(FallbackTts::new(primary, secondary, apology_audio.clone()));
                Some(tts)
            }
        };
        let twilio = match (env("TWILIO_ACCOUNT_SID"), env("TWILIO_AUTH_TOKEN")) {
            (Some(sid), Some(token)) if !sid.is_empty() && !token.is_empty() => Some(Arc::new(
                TwilioRest::new(&config.twilio.api_base_url, &sid, Secret::new(token)).map_err(
                    |error| ServicesError::Provider {
                        what: "twilio",
                        error,
                    },
                )?,
            )),
            _ => None,
        };
        let auth_token = env("TWILIO_AUTH_TOKEN")
            .filter(|v| !v.is_empty())
            .map(Secret::new);
        let sec = &config.security;
        if sec.production && sec.validate_signatures && auth_token.is_none() {
            return Err(ServicesError::Security(
                "security.production is on but TWILIO_AUTH_TOKEN is not set: refusing to start \
                 (set the token, or switch validation off with security.validate_signatures = false)",
            ));
        }
        let stream_token_secret = if sec.stream_token {
            let secret = env("VOXBRIDGE_STREAM_TOKEN_SECRET")
                .filter(|v| !v.is_empty())
                .map(Secret::new)
                .or_else(|| auth_token.clone());
            if secret.is_none() {
                return Err(ServicesError::Security(
                    "security.stream_token needs VOXBRIDGE_STREAM_TOKEN_SECRET or TWILIO_AUTH_TOKEN",
                ));
            }
            secret
        } else {
            None
        };
        Ok(Self {
            auth_token,
            stream_token_secret,
            stt,
            agent,
            tts,
            apology_text: config.agent.apology.clone(),
            apology_audio,
            turn_source: config.turn_source(),
            twilio,
        })
    }
}

/// Half a second of a soft 440 Hz tone: the last resort when no voice is available at all.
fn apology_tone() -> Bytes {
    (0..4000)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let s = (2.0 * std::f32::consts::PI * 440.0 * t).sin() * 6000.0;
            mulaw::encode(s as i16)
        })
        .collect::<Vec<u8>>()
        .into()
}
