//! The providers calls use, built once at start-up and shared by every call through an `Arc`:
//! per agent profile ([`AgentServices`]: engine, STT, agent, TTS, the apology) and for the
//! whole server ([`CallServices`]: the profiles, the Twilio REST client, secrets). Holds no
//! per-call state; which profile a call gets is decided in [`crate::engine::profiles`].

use std::sync::Arc;

use bytes::Bytes;

use crate::agent::Agent;
use crate::agent::echo::EchoAgent;
use crate::agent::openai::OpenAiAgent;
use crate::agent::scripted::ScriptedAgent;
use crate::audio::mulaw;
use crate::call::context::EngineKind;
use crate::call::live::LiveCalls;
use crate::config::profiles::{DEFAULT_PROFILE, ResolvedProfile};
use crate::config::{AgentKind, Config, SttProvider, TtsProvider, TurnSource};
use crate::engine::profiles::Profiles;
use crate::engine::realtime::RealtimeSetup;
use crate::engine::realtime::preconnect::Preconnect;
use crate::provider::{ProviderError, Secret};
use crate::store::RecordWriter;
use crate::stt::SpeechToText;
use crate::stt::deepgram::Deepgram;
use crate::tts::TextToSpeech;
use crate::tts::elevenlabs_http::ElevenLabsHttp;
use crate::tts::elevenlabs_ws::ElevenLabsWs;
use crate::tts::espeak::Espeak;
use crate::tts::fallback::FallbackTts;
use crate::tts::openai::OpenAiTts;
use crate::twilio::rest::TwilioRest;

/// One agent profile's providers.
pub struct AgentServices {
    /// The profile's name (`default` for `[agent]`).
    pub name: String,
    pub engine: EngineKind,
    pub stt: Option<Arc<dyn SpeechToText>>,
    pub agent: Arc<dyn Agent>,
    pub tts: Option<Arc<dyn TextToSpeech>>,
    /// Said through the TTS when the agent fails, and when speech-to-text is down.
    pub apology_text: String,
    /// Said when the caller spoke but no words were recognised.
    pub reprompt_text: String,
    /// Played when every TTS fails too (pre-rendered at start-up), if available.
    pub apology_audio: Option<Bytes>,
    /// What ends the caller's turn (`auto` resolved).
    pub turn_source: TurnSource,
    /// The OpenAI Realtime client and session (the `openai_realtime` engine).
    pub realtime: Option<RealtimeSetup>,
}

/// Everything calls share.
pub struct CallServices {
    pub profiles: Profiles,
    /// The calls in progress (the API and console read it; sessions register in it).
    pub live: Arc<LiveCalls>,
    /// Twilio REST, for the agent's `end_call` / `transfer_call` (with credentials only).
    pub twilio: Option<Arc<TwilioRest>>,
    /// `TWILIO_AUTH_TOKEN`: signature validation is on whenever this is set.
    pub auth_token: Option<Secret>,
    /// Key of the per-stream tokens (when `security.stream_token` is on).
    pub stream_token_secret: Option<Secret>,
    /// Realtime sockets opened when the webhook answers (with a realtime profile).
    pub preconnect: Option<Preconnect>,
    /// Call recording (started with the server; `None`: calls are not recorded).
    pub recordings: Option<crate::call::recorder::Recordings>,
    /// Where finished calls' records go (`None` when records are off; set by the server).
    pub records: Option<RecordWriter>,
}

impl AgentServices {
    /// The zero-configuration default: echo engine, local VAD, no speech providers.
    pub fn echo() -> Self {
        Self {
            name: DEFAULT_PROFILE.to_owned(),
            engine: EngineKind::Echo,
            stt: None,
            agent: Arc::new(EchoAgent::default()),
            tts: None,
            apology_text: String::new(),
            reprompt_text: String::new(),
            apology_audio: None,
            turn_source: TurnSource::Vad,
            realtime: None,
        }
    }
}

impl CallServices {
    /// The zero-configuration default: one profile, the echo engine.
    pub fn echo() -> Self {
        Self {
            profiles: Profiles::single(AgentServices::echo()),
            live: Arc::new(LiveCalls::default()),
            twilio: None,
            auth_token: None,
            stream_token_secret: None,
            preconnect: None,
            recordings: None,
            records: None,
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
    /// Build the providers `config` asks for, for every agent profile; secrets come from `env`
    /// (the process environment in production). Apologies are pre-rendered with espeak-ng
    /// when available.
    pub async fn from_config(
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ServicesError> {
        let mut profiles = Vec::new();
        for name in config.profile_names() {
            let Some(profile) = config.profile(&name) else {
                continue;
            };
            profiles.push(AgentServices::from_profile(&profile, config, &env).await?);
        }
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
        let preconnect = profiles
            .iter()
            .find_map(|p| p.realtime.as_ref())
            .map(|setup| {
                let ttl = std::time::Duration::from_millis(config.realtime.preconnect_ttl_ms);
                Preconnect::new(setup.client.clone(), config.limits.max_calls, ttl)
            });
        Ok(Self {
            preconnect,
            profiles: Profiles::new(profiles, config.numbers.clone()),
            live: Arc::new(LiveCalls::default()),
            twilio,
            auth_token,
            stream_token_secret,
            // Started with the server (`Server::bind_with`), which owns its threads.
            recordings: None,
            records: None,
        })
    }
}

impl AgentServices {
    /// Build one profile's providers.
    pub async fn from_profile(
        profile: &ResolvedProfile,
        config: &Config,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ServicesError> {
        let key = |what: &'static str, var: &'static str| {
            env(var)
                .filter(|v| !v.is_empty())
                .map(Secret::new)
                .ok_or(ServicesError::MissingKey { what, var })
        };
        let (agent_cfg, stt_cfg, tts_cfg) = (&profile.agent, &profile.stt, &profile.tts);
        let engine = match (agent_cfg.kind, stt_cfg.provider, tts_cfg.provider) {
            (AgentKind::OpenaiRealtime, _, _) => EngineKind::OpenaiRealtime,
            (AgentKind::Echo, SttProvider::None, TtsProvider::None) => EngineKind::Echo,
            _ => EngineKind::Cascade,
        };
        let stt: Option<Arc<dyn SpeechToText>> = match stt_cfg.provider {
            _ if engine != EngineKind::Cascade => None,
            SttProvider::None => None,
            SttProvider::Deepgram => {
                let api_key = key("stt.provider = \"deepgram\"", "DEEPGRAM_API_KEY")?;
                Some(Arc::new(Deepgram::new(stt_cfg, api_key)))
            }
        };
        let agent: Arc<dyn Agent> = match agent_cfg.kind {
            AgentKind::Echo | AgentKind::OpenaiRealtime => Arc::new(EchoAgent {
                greeting: Some(agent_cfg.greeting.clone()).filter(|g| !g.trim().is_empty()),
            }),
            AgentKind::Openai => {
                let api_key = key("agent.kind = \"openai\"", "OPENAI_API_KEY")?;
                let fallback = if agent_cfg.fallback_base_url.is_empty() {
                    None
                } else {
                    let fallback_key = env("AGENT_FALLBACK_API_KEY")
                        .filter(|v| !v.is_empty())
                        .map(Secret::new)
                        .unwrap_or_else(|| api_key.clone());
                    let model = if agent_cfg.fallback_model.is_empty() {
                        agent_cfg.model.clone()
                    } else {
                        agent_cfg.fallback_model.clone()
                    };
                    Some((agent_cfg.fallback_base_url.clone(), model, fallback_key))
                };
                let agent = OpenAiAgent::new(agent_cfg, api_key, fallback).map_err(|error| {
                    ServicesError::Provider {
                        what: "agent",
                        error,
                    }
                })?;
                Arc::new(agent)
            }
            AgentKind::Scripted => {
                let agent = if agent_cfg.flow_file.is_empty() {
                    ScriptedAgent::demo()
                } else {
                    ScriptedAgent::from_file(&agent_cfg.flow_file)
                        .map_err(|e| ServicesError::Flow(e.to_string()))?
                };
                Arc::new(agent)
            }
        };
        let espeak = Espeak::new(tts_cfg);
        let apology_audio = if agent_cfg.apology.trim().is_empty() || engine == EngineKind::Echo {
            None
        } else {
            match espeak.render(&agent_cfg.apology).await {
                Ok(audio) => Some(audio),
                Err(e) => {
                    tracing::warn!(profile = %profile.name, error = %e,
                        "apology not pre-rendered (espeak-ng unavailable); \
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
                        tts_cfg,
                        key("tts elevenlabs_ws", "ELEVENLABS_API_KEY")?,
                    ))),
                    TtsProvider::ElevenlabsHttp => Some(Arc::new(ElevenLabsHttp::new(
                        tts_cfg,
                        key("tts elevenlabs_http", "ELEVENLABS_API_KEY")?,
                    ))),
                    TtsProvider::Openai => Some(Arc::new(OpenAiTts::new(
                        tts_cfg,
                        key("tts openai", "OPENAI_API_KEY")?,
                    ))),
                    TtsProvider::Espeak => Some(Arc::new(Espeak::new(tts_cfg))),
                })
            };
        let tts = match build(tts_cfg.provider)? {
            None => None,
            Some(_) if engine != EngineKind::Cascade => None,
            Some(primary) => {
                let secondary = match tts_cfg.fallback_provider() {
                    Some(p) => build(p)?,
                    None => None,
                };
                let tts: Arc<dyn TextToSpeech> =
                    Arc::new(FallbackTts::new(primary, secondary, apology_audio.clone()));
                Some(tts)
            }
        };
        let turn_source = match (config.turn.source, stt_cfg.provider) {
            (TurnSource::Auto, SttProvider::None) => TurnSource::Vad,
            (TurnSource::Auto, _) => TurnSource::Stt,
            (source, _) => source,
        };
        let realtime = if engine == EngineKind::OpenaiRealtime {
            let key = key("agent.kind = \"openai_realtime\"", "OPENAI_API_KEY")?;
            Some(RealtimeSetup::new(config, profile, key))
        } else {
            None
        };
        Ok(Self {
            realtime,
            name: profile.name.clone(),
            engine,
            stt,
            agent,
            tts,
            apology_text: agent_cfg.apology.clone(),
            reprompt_text: agent_cfg.reprompt.clone(),
            apology_audio,
            turn_source,
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
