//! Agent profiles: named overlays of the `[agent]` section (`[agents.sales]`, `[agents.support]`)
//! and the numbers that select them (`[numbers] "+15551230000" = "sales"`).
//!
//! `[agent]` itself is the profile named [`DEFAULT_PROFILE`]. A profile sets only the keys it
//! changes; the rest come from `[agent]`, `[stt]` and `[tts]`. Which profile a call gets is
//! decided per call (see [`crate::engine::profiles`]); this module only resolves and checks
//! the settings. It must not build providers or read secrets.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{AgentConfig, AgentKind, Config, ConfigError, SttConfig, SttProvider, TtsConfig};
use super::{TtsProvider, TurnSource};

/// The name of the profile `[agent]` defines.
pub const DEFAULT_PROFILE: &str = "default";

/// One `[agents.NAME]` table: every key optional, over `[agent]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentProfile {
    pub kind: Option<AgentKind>,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub greeting: Option<String>,
    pub timeout_ms: Option<u64>,
    pub flow_file: Option<String>,
    pub apology: Option<String>,
    pub reprompt: Option<String>,
    /// Override `stt.provider` / `tts.provider` for this profile.
    pub stt_provider: Option<SttProvider>,
    pub tts_provider: Option<TtsProvider>,
    /// The OpenAI Realtime voice (`realtime.voice` when unset).
    pub voice: Option<String>,
    /// Said after the beep when a campaign using this profile leaves voicemail and gives no
    /// message itself (`dialer.voicemail_message` when unset).
    pub voicemail_message: Option<String>,
}

/// The longest voicemail message (as for a campaign's).
pub const MAX_VOICEMAIL_CHARS: usize = 1000;

/// A profile with everything filled in.
#[derive(Debug, Clone)]
pub struct ResolvedProfile {
    pub name: String,
    pub agent: AgentConfig,
    pub stt: SttConfig,
    pub tts: TtsConfig,
    pub voice: Option<String>,
    pub voicemail_message: Option<String>,
}

impl Config {
    /// Every profile's name: `default` first, then `[agents.*]` in name order.
    pub fn profile_names(&self) -> Vec<String> {
        std::iter::once(DEFAULT_PROFILE.to_owned())
            .chain(
                self.agents
                    .keys()
                    .filter(|k| *k != DEFAULT_PROFILE)
                    .cloned(),
            )
            .collect()
    }

    /// The profile `name` resolved over the base sections (None: no such profile).
    pub fn profile(&self, name: &str) -> Option<ResolvedProfile> {
        let base = ResolvedProfile {
            name: name.to_owned(),
            agent: self.agent.clone(),
            stt: self.stt.clone(),
            tts: self.tts.clone(),
            voice: None,
            voicemail_message: None,
        };
        let Some(p) = self.agents.get(name) else {
            return (name == DEFAULT_PROFILE).then_some(base);
        };
        let mut r = base;
        let a = &mut r.agent;
        set(&mut a.kind, p.kind);
        set(&mut a.base_url, p.base_url.clone());
        set(&mut a.model, p.model.clone());
        set(&mut a.system_prompt, p.system_prompt.clone());
        set(&mut a.greeting, p.greeting.clone());
        set(&mut a.timeout_ms, p.timeout_ms);
        set(&mut a.flow_file, p.flow_file.clone());
        set(&mut a.apology, p.apology.clone());
        set(&mut a.reprompt, p.reprompt.clone());
        set(&mut r.stt.provider, p.stt_provider);
        set(&mut r.tts.provider, p.tts_provider);
        r.voice = p.voice.clone();
        r.voicemail_message = p.voicemail_message.clone();
        Some(r)
    }

    /// Each profile's own voicemail message, by profile name (profiles without one absent).
    pub fn voicemail_messages(&self) -> BTreeMap<String, String> {
        self.profile_names()
            .into_iter()
            .filter_map(|name| {
                let message = self.profile(&name)?.voicemail_message?;
                Some((name, message))
            })
            .collect()
    }

    /// Check every profile and every number's profile.
    pub(super) fn validate_profiles(&self) -> Result<(), ConfigError> {
        for name in self.profile_names() {
            let prefix = if name == DEFAULT_PROFILE {
                "agent".to_owned()
            } else {
                format!("agents.{name}")
            };
            if let Some(p) = self.profile(&name) {
                check_profile(&prefix, &p, self.turn.source)?;
            }
        }
        for (number, profile) in &self.numbers {
            if self.profile(profile).is_none() {
                return Err(ConfigError::Invalid {
                    key: format!("numbers.{number}"),
                    message: format!("no agent profile named {profile:?} ([agents.{profile}])"),
                });
            }
        }
        Ok(())
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// Settings that would make every call of the profile fail are refused at start-up.
fn check_profile(prefix: &str, p: &ResolvedProfile, source: TurnSource) -> Result<(), ConfigError> {
    let invalid = |key: &str, message: &str| {
        Err(ConfigError::Invalid {
            key: format!("{prefix}.{key}"),
            message: message.to_owned(),
        })
    };
    let (kind, stt, tts) = (p.agent.kind, p.stt.provider, p.tts.provider);
    if let Some(m) = &p.voicemail_message
        && (m.trim().is_empty() || m.chars().count() > MAX_VOICEMAIL_CHARS)
    {
        return invalid("voicemail_message", "must be 1-1000 characters when set");
    }
    if p.agent.apology.trim().is_empty() {
        return invalid(
            "apology",
            "must not be empty: it is what the caller hears when a provider fails",
        );
    }
    if kind == AgentKind::OpenaiRealtime {
        return Ok(()); // speech to speech: no STT, agent or TTS involved
    }
    if stt != SttProvider::None && p.agent.reprompt.trim().is_empty() {
        return invalid(
            "reprompt",
            "must not be empty: it is what the caller hears when no words were recognised",
        );
    }
    if kind == AgentKind::Openai {
        check_openai(&p.agent).map_err(|(key, message)| ConfigError::Invalid {
            key: format!("{prefix}.{key}"),
            message: message.to_owned(),
        })?;
    }

    if kind != AgentKind::Echo && tts == TtsProvider::None {
        return invalid(
            "kind",
            "the openai and scripted agents need a TTS provider (tts.provider)",
        );
    }
    if stt != SttProvider::None && tts == TtsProvider::None {
        return invalid(
            "stt_provider",
            "with an STT provider, replies are spoken: set a TTS provider (tts.provider)",
        );
    }
    if source == TurnSource::Stt && stt == SttProvider::None {
        return invalid(
            "stt_provider",
            "turn.source = \"stt\" needs an STT provider (stt.provider)",
        );
    }
    if kind == AgentKind::Openai && stt == SttProvider::None {
        return invalid(
            "kind",
            "the openai agent needs transcripts: set an STT provider (stt.provider)",
        );
    }
    Ok(())
}

/// An OpenAI-compatible agent's settings that would fail every request: `(key, why)`.
fn check_openai(a: &AgentConfig) -> Result<(), (&'static str, &'static str)> {
    let is_url = |u: &str| {
        let u = u.trim();
        (u.starts_with("http://") || u.starts_with("https://")) && u.len() > "https://".len()
    };
    if a.model.trim().is_empty() {
        return Err((
            "model",
            "must name a model (every request would be refused)",
        ));
    }
    if a.model != a.model.trim() {
        return Err((
            "model",
            "must not start or end with spaces (no server knows such a model)",
        ));
    }
    if !is_url(&a.base_url) {
        return Err(("base_url", "must be the server's http(s) URL (…/v1)"));
    }
    if a.timeout_ms == 0 {
        return Err((
            "timeout_ms",
            "must be at least 1 (every request would time out)",
        ));
    }
    if !a.fallback_base_url.is_empty() && !is_url(&a.fallback_base_url) {
        return Err((
            "fallback_base_url",
            "must be the fallback server's http(s) URL (…/v1), or empty",
        ));
    }
    if !a.fallback_model.is_empty() && a.fallback_model.trim() != a.fallback_model {
        return Err((
            "fallback_model",
            "must name a model without surrounding spaces, or be empty (then `model` is used)",
        ));
    }
    if !a.fallback_model.is_empty() && a.fallback_base_url.is_empty() {
        return Err((
            "fallback_model",
            "is set but fallback_base_url is empty: no fallback server would use it",
        ));
    }
    Ok(())
}

/// The `[numbers]` table: called number → profile.
pub type Numbers = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_overlay_the_agent_section() {
        let c = Config::from_toml_str(
            "[tts]\nprovider = \"espeak\"\n\
             [agents.sales]\nkind = \"scripted\"\ngreeting = \"Hi, sales here.\"\n\
             [agents.support]\nmodel = \"other\"\n\
             [numbers]\n\"+15550001111\" = \"sales\"\n",
        )
        .expect("config");
        assert_eq!(c.profile_names(), vec!["default", "sales", "support"]);
        let sales = c.profile("sales").expect("sales");
        assert_eq!(sales.agent.kind, AgentKind::Scripted);
        assert_eq!(sales.agent.greeting, "Hi, sales here.");
        assert_eq!(sales.agent.apology, c.agent.apology);
        assert_eq!(
            c.profile("default").expect("default").agent.kind,
            AgentKind::Echo
        );
        assert!(c.profile("nobody").is_none());
        assert_eq!(
            c.numbers.get("+15550001111").map(String::as_str),
            Some("sales")
        );
    }

    #[test]
    fn settings_that_guarantee_failure_are_refused() {
        let e = Config::from_toml_str("[agents.x]\nmodle = \"y\"").unwrap_err();
        assert!(e.to_string().contains("agents.x"), "{e}");
        let e = Config::from_toml_str("[agent]\napology = \" \"").unwrap_err();
        assert!(e.to_string().contains("agent.apology"), "{e}");
        let e = Config::from_toml_str(
            "[stt]\nprovider = \"deepgram\"\n[tts]\nprovider = \"espeak\"\n\
             [agents.llm]\nkind = \"openai\"\nmodel = \"\"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("agents.llm.model"), "{e}");
        let e = Config::from_toml_str("[numbers]\n\"+1555\" = \"ghost\"").unwrap_err();
        assert!(e.to_string().contains("numbers.+1555"), "{e}");
        assert!(Config::from_toml_str("[agents.rt]\nkind = \"openai_realtime\"").is_ok());
    }

    #[test]
    fn a_profile_may_carry_its_own_voicemail_message() {
        let c = Config::from_toml_str(
            "[agents.sales]\nvoicemail_message = \"Hi, Acme sales. Call us back.\"\n\
             [agents.support]\ngreeting = \"Hi\"",
        )
        .unwrap();
        let by_profile = c.voicemail_messages();
        assert_eq!(
            by_profile.get("sales").map(String::as_str),
            Some("Hi, Acme sales. Call us back.")
        );
        assert_eq!(by_profile.len(), 1, "{by_profile:?}");
        for bad in ["\" \"".to_owned(), format!("\"{}\"", "x".repeat(1001))] {
            let e = Config::from_toml_str(&format!("[agents.s]\nvoicemail_message = {bad}"))
                .unwrap_err();
            assert!(e.to_string().contains("agents.s.voicemail_message"), "{e}");
        }
    }

    fn openai_with(extra: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(&format!(
            "[stt]\nprovider = \"deepgram\"\n[tts]\nprovider = \"espeak\"\n\
             [agent]\nkind = \"openai\"\n{extra}"
        ))
    }

    #[test]
    fn openai_settings_that_fail_every_request_are_refused_with_the_key_named() {
        assert!(openai_with("").is_ok());
        for (extra, key) in [
            ("model = \"\"", "agent.model"),
            ("model = \" gpt-4o \"", "agent.model"),
            ("base_url = \"\"", "agent.base_url"),
            ("base_url = \"api.openai.com/v1\"", "agent.base_url"),
            ("timeout_ms = 0", "agent.timeout_ms"),
            ("fallback_base_url = \"groq\"", "agent.fallback_base_url"),
            (
                "fallback_base_url = \"http://127.0.0.1:1/v1\"\nfallback_model = \" \"",
                "agent.fallback_model",
            ),
            ("fallback_model = \"llama\"", "agent.fallback_model"),
            ("reprompt = \"\"", "agent.reprompt"),
            ("apology = \"\"", "agent.apology"),
        ] {
            let e = openai_with(extra).expect_err(extra);
            assert!(e.to_string().contains(key), "{extra}: {e}");
        }
        let ok = "fallback_base_url = \"http://127.0.0.1:1/v1\"\nfallback_model = \"llama\"";
        assert!(openai_with(ok).is_ok());
        // A profile inherits and may break them too.
        let e = openai_with("[agents.x]\nreprompt = \"  \"").unwrap_err();
        assert!(e.to_string().contains("agents.x.reprompt"), "{e}");
        let e = Config::from_toml_str(
            "[stt]\nprovider = \"deepgram\"\n[tts]\nprovider = \"espeak\"\ntimeout_ms = 0",
        )
        .unwrap_err();
        assert!(e.to_string().contains("tts.timeout_ms"), "{e}");
        let e = Config::from_toml_str("[stt]\nconnect_timeout_ms = 0").unwrap_err();
        assert!(e.to_string().contains("stt.connect_timeout_ms"), "{e}");
    }
}
