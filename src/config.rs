//! Configuration: `config/default.toml` (compiled in), an optional file over it, then
//! environment variables over both.
//!
//! Every key has a default, so `voxbridge serve` runs with no configuration at all. A bad value
//! produces one [`ConfigError`] that names the key (`turn.end_of_turn_ms: …`). This module only
//! reads and checks settings; it must not hold secrets (those come from the environment where
//! they are used) and must not start anything.

pub mod dialer;
pub mod profiles;

pub use dialer::DialerConfig;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Table, Value};

/// The defaults, exactly as shipped in `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variable shortcuts for the most used keys.
const ENV_ALIASES: &[(&str, &str, &str)] = &[
    ("VOXBRIDGE_LISTEN", "server", "listen"),
    ("VOXBRIDGE_PUBLIC_HOST", "server", "public_host"),
];

/// A configuration problem, always naming the key (or file) at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: invalid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config key {key}: unknown key")]
    UnknownKey { key: String },
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub security: SecurityConfig,
    pub twilio: TwilioConfig,
    pub log: LogConfig,
    pub agent: AgentConfig,
    pub stt: SttConfig,
    pub tts: TtsConfig,
    pub realtime: crate::engine::realtime::config::RealtimeConfig,
    pub limits: LimitsConfig,
    pub turn: TurnConfig,
    pub vad: VadConfig,
    pub playout: PlayoutConfig,
    pub quality: QualityConfig,
    pub alerts: AlertsConfig,
    pub recording: RecordingConfig,
    pub store: StoreConfig,
    pub dialer: DialerConfig,
    /// Named agent profiles over `[agent]` (see [`profiles`]).
    #[serde(default)]
    pub agents: BTreeMap<String, profiles::AgentProfile>,
    /// Called number → agent profile.
    #[serde(default)]
    pub numbers: profiles::Numbers,
}

/// Sections whose keys are names chosen by the user (not in the defaults).
const FREE_FORM_SECTIONS: &[&str] = &["agents", "numbers"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub public_host: String,
    pub drain_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    pub production: bool,
    pub validate_signatures: bool,
    pub trust_proxy: bool,
    pub public_scheme: String,
    pub stream_token: bool,
    pub stream_token_ttl_secs: u64,
    pub admin_listen: String,
    /// Networks whose `X-Forwarded-*` headers are believed (with `trust_proxy`); see
    /// [`SecurityConfig::trusted_proxy_networks`].
    pub trusted_proxies: Vec<String>,
}

impl SecurityConfig {
    /// `trusted_proxies` parsed: CIDR networks (`10.0.0.0/8`) or single addresses.
    pub fn trusted_proxy_networks(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("{text:?} is not a network like 10.0.0.0/8 or an address"))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    pub api_base_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    Echo,
    Openai,
    Scripted,
    /// OpenAI Realtime speech-to-speech (the `[realtime]` section).
    OpenaiRealtime,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub kind: AgentKind,
    pub base_url: String,
    pub model: String,
    pub system_prompt: String,
    pub greeting: String,
    pub timeout_ms: u64,
    pub fallback_base_url: String,
    pub fallback_model: String,
    pub flow_file: String,
    pub apology: String,
    /// Said when the caller spoke but no words were recognised.
    pub reprompt: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SttProvider {
    None,
    Deepgram,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SttConfig {
    pub provider: SttProvider,
    pub base_url: String,
    pub model: String,
    pub endpointing_ms: u32,
    pub utterance_end_ms: u32,
    pub keepalive_secs: u64,
    pub replay_ms: u32,
    pub connect_timeout_ms: u64,
    pub max_reconnects: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TtsProvider {
    None,
    ElevenlabsWs,
    ElevenlabsHttp,
    Openai,
    Espeak,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtsConfig {
    pub provider: TtsProvider,
    /// A second provider, `""` for none (parsed by [`TtsConfig::fallback_provider`]).
    pub fallback: String,
    pub timeout_ms: u64,
    pub elevenlabs_base_url: String,
    pub elevenlabs_voice_id: String,
    pub elevenlabs_model: String,
    pub openai_base_url: String,
    pub openai_model: String,
    pub openai_voice: String,
    pub espeak_voice: String,
    pub espeak_rate: u32,
}

impl TtsConfig {
    pub fn fallback_provider(&self) -> Option<TtsProvider> {
        match self.fallback.as_str() {
            "elevenlabs_ws" => Some(TtsProvider::ElevenlabsWs),
            "elevenlabs_http" => Some(TtsProvider::ElevenlabsHttp),
            "openai" => Some(TtsProvider::Openai),
            "espeak" => Some(TtsProvider::Espeak),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TurnSource {
    Vad,
    Stt,
    Auto,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_message_bytes: usize,
    pub max_media_payload_bytes: usize,
    pub max_utterance_ms: u32,
    pub inbound_queue: usize,
    pub outbound_queue: usize,
    pub max_calls: usize,
    pub max_call_secs: u64,
    pub idle_timeout_secs: u64,
    pub per_ip_per_minute: u32,
    pub max_body_bytes: usize,
    /// Admission of connections (`server::listener`): request headers must be complete this
    /// long after the connection opens (or after the first byte of a keep-alive request).
    pub header_read_timeout_secs: u64,
    pub keepalive_idle_secs: u64,
    pub request_timeout_secs: u64,
    /// Concurrent connections per client address (0: no cap) and in all.
    pub max_connections_per_ip: usize,
    pub max_connections: usize,
    /// A media stream must send `start` within this long of the upgrade (enforced by the session).
    pub start_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnConfig {
    pub source: TurnSource,
    pub vad_threshold_dbfs: f32,
    pub speech_start_ms: u32,
    pub end_of_turn_ms: u32,
    pub min_utterance_ms: u32,
    pub pre_roll_ms: u32,
}

/// The caller's speech detector and barge-in rules (`[vad]`, issue 11).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VadConfig {
    pub kind: crate::audio::vad::VadKind,
    pub snr_db: f32,
    pub voicing: f32,
    pub min_speech_dbfs: f32,
    pub barge_in_ms: u32,
    pub backchannel_ms: u32,
    pub echo_margin_db: f32,
    pub false_barge_in_ms: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayoutConfig {
    pub lead_ms: u32,
    pub chunk_ms: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    pub reports_dir: String,
    pub low_mos: f64,
    pub jitter_mean_ms: f64,
    pub jitter_max_ms: f64,
    pub packet_loss_pct: f64,
    pub clipping_pct: f64,
    pub dead_air_ms: u64,
    pub slow_response_ms: u64,
    pub late_frame_ms: f64,
    pub silence_dbfs: f32,
    pub plc: bool,
    pub processing_delay_ms: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    pub window_secs: u64,
    pub webhook_url: String,
    pub webhook_queue: usize,
    pub webhook_timeout_ms: u64,
    pub webhook_attempts: u32,
}

/// Call records (`[store]`): where they go and how the background writer retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH`, `postgres://…`, or `""` for no records.
    pub url: String,
    pub queue: usize,
    pub max_pending: usize,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    pub write_timeout_ms: u64,
    pub max_connections: u32,
}

/// Call recordings (`[recording]`): see `store::recordings`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    pub enabled: bool,
    pub dir: String,
    /// Recordings older than this many days are deleted; 0 keeps them forever.
    pub retention_days: u32,
    /// Blocks (250 ms of both channels) waiting for the file writer, all calls together.
    pub writer_queue: usize,
    /// Finished recordings waiting for compaction.
    pub compact_queue: usize,
}

impl Default for Config {
    fn default() -> Self {
        // The embedded defaults are checked by a unit test; failing here is a build defect.
        Self::from_table(defaults_table()).unwrap_or_else(|e| panic!("embedded defaults: {e}"))
    }
}

impl Config {
    /// Where the caller's turn ends, with `auto` resolved.
    pub fn turn_source(&self) -> TurnSource {
        match (self.turn.source, self.stt.provider) {
            (TurnSource::Auto, SttProvider::None) => TurnSource::Vad,
            (TurnSource::Auto, _) => TurnSource::Stt,
            (source, _) => source,
        }
    }

    /// Defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, |name| std::env::var(name).ok())
    }

    /// Like [`Config::load`] with an explicit environment lookup (used by tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut table = defaults_table();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let user: Table = text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: path.to_owned(),
                    message: e.message().to_owned(),
                })?;
            merge(&mut table, user, "")?;
        }
        apply_env(&mut table, env)?;
        Self::from_table(table)
    }

    /// Parse a TOML document over the defaults (no environment); handy in tests.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let mut table = defaults_table();
        let user: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: PathBuf::from("<string>"),
                message: e.message().to_owned(),
            })?;
        merge(&mut table, user, "")?;
        Self::from_table(table)
    }

    fn from_table(table: Table) -> Result<Self, ConfigError> {
        let config: Config =
            serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
                ConfigError::Invalid {
                    key: e.path().to_string(),
                    message: e.inner().message().to_owned(),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.dialer.validate()?;
        let invalid = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                message: message.to_owned(),
            })
        };
        if self.playout.chunk_ms < 20 || !self.playout.chunk_ms.is_multiple_of(20) {
            return invalid(
                "playout.chunk_ms",
                "must be a multiple of 20 (ms), at least 20",
            );
        }
        if self.playout.lead_ms > 2000 {
            return invalid("playout.lead_ms", "must be at most 2000 ms");
        }
        if self.turn.end_of_turn_ms < 100 {
            return invalid("turn.end_of_turn_ms", "must be at least 100 ms");
        }
        if !(0.0..=40.0).contains(&self.vad.snr_db) {
            return invalid("vad.snr_db", "must be between 0 and 40 dB");
        }
        if !(0.0..=1.0).contains(&self.vad.voicing) {
            return invalid("vad.voicing", "must be between 0 and 1");
        }
        if !(-96.0..=0.0).contains(&self.vad.min_speech_dbfs) {
            return invalid("vad.min_speech_dbfs", "must be between -96 and 0 dBFS");
        }
        if self.vad.backchannel_ms > 2000 || self.vad.barge_in_ms > 2000 {
            return invalid("vad.barge_in_ms", "barge-in rules must be at most 2000 ms");
        }
        if !(0.0..=60.0).contains(&self.vad.echo_margin_db) {
            return invalid("vad.echo_margin_db", "must be between 0 and 60 dB");
        }
        if !(-96.0..=0.0).contains(&self.turn.vad_threshold_dbfs) {
            return invalid("turn.vad_threshold_dbfs", "must be between -96 and 0 dBFS");
        }
        if self.limits.max_message_bytes < 1024 {
            return invalid("limits.max_message_bytes", "must be at least 1024");
        }
        if self.limits.inbound_queue == 0 || self.limits.outbound_queue == 0 {
            return invalid(
                "limits.inbound_queue",
                "queues must hold at least 1 message",
            );
        }
        if self.limits.max_utterance_ms < 1000 {
            return invalid("limits.max_utterance_ms", "must be at least 1000 ms");
        }
        if !(1.0..=4.5).contains(&self.quality.low_mos) {
            return invalid("quality.low_mos", "must be between 1 and 4.5");
        }
        if self.alerts.window_secs == 0 || self.alerts.window_secs > 300 {
            return invalid("alerts.window_secs", "must be between 1 and 300");
        }
        if self.alerts.webhook_queue == 0 {
            return invalid("alerts.webhook_queue", "must hold at least 1 alert");
        }
        let url = &self.alerts.webhook_url;
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        if !url.is_empty() && !scheme_ok {
            return invalid("alerts.webhook_url", "must be an http:// or https:// URL");
        }
        if !self.tts.fallback.is_empty() && self.tts.fallback_provider().is_none() {
            return invalid(
                "tts.fallback",
                "must be elevenlabs_ws, elevenlabs_http, openai, espeak or empty",
            );
        }
        if self.tts.timeout_ms == 0 {
            return invalid(
                "tts.timeout_ms",
                "must be at least 1 (every reply would time out)",
            );
        }
        if self.stt.connect_timeout_ms == 0 {
            return invalid(
                "stt.connect_timeout_ms",
                "must be at least 1 (every connection would time out)",
            );
        }
        if self.stt.utterance_end_ms < 1000 {
            return invalid("stt.utterance_end_ms", "Deepgram needs 1000 ms or more");
        }
        if !matches!(self.security.public_scheme.as_str(), "http" | "https") {
            return invalid("security.public_scheme", "must be http or https");
        }
        if !self.security.admin_listen.is_empty()
            && self.security.admin_listen.parse::<SocketAddr>().is_err()
        {
            return invalid(
                "security.admin_listen",
                "must be an address like 127.0.0.1:9090, or empty",
            );
        }
        if self.limits.idle_timeout_secs == 0 || self.limits.max_call_secs == 0 {
            return invalid("limits.idle_timeout_secs", "timeouts must be at least 1 s");
        }
        if self.limits.max_calls == 0 {
            return invalid("limits.max_calls", "must allow at least one call");
        }
        if let Err(message) = self.validate_admission() {
            return invalid(message.0, &message.1);
        }
        self.validate_store()?;
        if self.recording.enabled && self.recording.dir.trim().is_empty() {
            return invalid(
                "recording.dir",
                "must name a directory when recording is enabled",
            );
        }
        if self.recording.writer_queue == 0 || self.recording.compact_queue == 0 {
            return invalid("recording.writer_queue", "queues must hold at least 1 item");
        }
        self.validate_profiles()?;
        self.realtime.validate()?;
        if self.public_host_invalid() {
            return invalid(
                "server.public_host",
                "a host name (and port), without scheme or path",
            );
        }
        Ok(())
    }

    /// The connection-admission keys: (key, message) of the first bad one.
    fn validate_admission(&self) -> Result<(), (&'static str, String)> {
        let l = &self.limits;
        for (key, secs) in [
            (
                "limits.header_read_timeout_secs",
                l.header_read_timeout_secs,
            ),
            ("limits.keepalive_idle_secs", l.keepalive_idle_secs),
            ("limits.request_timeout_secs", l.request_timeout_secs),
            ("limits.start_timeout_secs", l.start_timeout_secs),
        ] {
            if secs == 0 || secs > 3600 {
                return Err((key, "must be between 1 and 3600 s".into()));
            }
        }
        if l.max_connections <= l.max_calls {
            return Err((
                "limits.max_connections",
                format!(
                    "must be above limits.max_calls ({}): each call is a connection, and webhooks need some too",
                    l.max_calls
                ),
            ));
        }
        self.security
            .trusted_proxy_networks()
            .map(|_| ())
            .map_err(|message| ("security.trusted_proxies", message))
    }

    fn validate_store(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                message: message.to_owned(),
            })
        };
        let s = &self.store;
        let url_ok = s.url.is_empty()
            || s.url.starts_with("sqlite:")
            || s.url.starts_with("postgres://")
            || s.url.starts_with("postgresql://");
        if !url_ok {
            return invalid(
                "store.url",
                "must be sqlite://PATH, postgres://… or empty (no records)",
            );
        }
        if s.queue == 0 {
            return invalid("store.queue", "must hold at least 1 record");
        }
        if s.max_pending < s.queue {
            return invalid("store.max_pending", "must be at least store.queue");
        }
        if s.retry_initial_ms == 0 || s.retry_max_ms < s.retry_initial_ms {
            return invalid(
                "store.retry_max_ms",
                "backoff needs 0 < retry_initial_ms <= retry_max_ms",
            );
        }
        if s.write_timeout_ms < 100 {
            return invalid("store.write_timeout_ms", "must be at least 100 ms");
        }
        if s.max_connections == 0 {
            return invalid("store.max_connections", "must be at least 1");
        }
        Ok(())
    }

    fn public_host_invalid(&self) -> bool {
        let host = &self.server.public_host;
        host.contains("://") || host.contains('/') || host.contains(char::is_whitespace)
    }
}

fn defaults_table() -> Table {
    DEFAULT_TOML.parse().unwrap_or_default()
}

/// Overlay `user` onto `base`, refusing keys the defaults do not have.
fn merge(base: &mut Table, user: Table, prefix: &str) -> Result<(), ConfigError> {
    for (key, value) in user {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let top = path.split('.').next().unwrap_or_default();
        let free_form = FREE_FORM_SECTIONS.contains(&top);
        match (base.get_mut(&key), value) {
            (None, value) if free_form => {
                base.insert(key, value);
            }
            (None, _) => return Err(ConfigError::UnknownKey { key: path }),
            (Some(Value::Table(base_sub)), Value::Table(user_sub)) => {
                merge(base_sub, user_sub, &path)?
            }
            (Some(Value::Table(_)), _) => {
                return Err(ConfigError::Invalid {
                    key: path,
                    message: "expected a table".into(),
                });
            }
            (Some(slot), value) => *slot = value,
        }
    }
    Ok(())
}

/// `VOXBRIDGE_<SECTION>_<KEY>` for every key the defaults have, typed like the default value.
fn apply_env(table: &mut Table, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    for (alias, section, key) in ENV_ALIASES {
        if let Some(raw) = env(alias) {
            set_from_env(table, section, key, alias, &raw)?;
        }
    }
    let sections: Vec<(String, Vec<String>)> = table
        .iter()
        .filter(|(s, _)| !FREE_FORM_SECTIONS.contains(&s.as_str()))
        .filter_map(|(s, v)| {
            v.as_table()
                .map(|t| (s.clone(), t.keys().cloned().collect()))
        })
        .collect();
    for (section, keys) in sections {
        for key in keys {
            let name = format!(
                "VOXBRIDGE_{}_{}",
                section.to_uppercase(),
                key.to_uppercase()
            );
            if let Some(raw) = env(&name) {
                set_from_env(table, &section, &key, &name, &raw)?;
            }
        }
    }
    Ok(())
}

fn set_from_env(
    table: &mut Table,
    section: &str,
    key: &str,
    var: &str,
    raw: &str,
) -> Result<(), ConfigError> {
    let Some(slot) = table
        .get_mut(section)
        .and_then(Value::as_table_mut)
        .and_then(|t| t.get_mut(key))
    else {
        return Ok(());
    };
    let bad = |ty: &str| ConfigError::Invalid {
        key: format!("{section}.{key}"),
        message: format!("environment variable {var}={raw:?} is not {ty}"),
    };
    *slot = match slot {
        Value::Integer(_) => Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?),
        Value::Float(_) => Value::Float(raw.trim().parse().map_err(|_| bad("a number"))?),
        Value::Boolean(_) => Value::Boolean(raw.trim().parse().map_err(|_| bad("true or false"))?),
        // A list from the environment: comma-separated strings (`10.0.0.0/8,127.0.0.1`).
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_owned()))
                .collect(),
        ),
        _ => Value::String(raw.to_owned()),
    };
    Ok(())
}

#[cfg(test)]
mod tests;
