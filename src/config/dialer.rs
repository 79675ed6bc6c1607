//! `[dialer]`: outbound calls and campaigns (see `crate::dialer`).

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialerConfig {
    /// Run the campaign dispatcher on this instance (single calls work either way).
    pub enabled: bool,
    /// Default `From` of `POST /api/calls` (E.164; empty: the request must give one).
    pub caller_id: String,
    pub tick_ms: u64,
    /// After an answered call ends, wait this long for its record (the agent's verdict).
    pub settle_ms: u64,
    /// Ask Twilio about attempts with no final callback after this long (and this often).
    pub reconcile_secs: u64,
    pub ring_timeout_secs: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub max_dials_in_flight: usize,
    /// Left after the beep when a campaign says `leave_message` and gives no message.
    pub voicemail_message: String,
}

impl DialerConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: format!("dialer.{key}"),
                message: message.to_owned(),
            })
        };
        if !(5..=10_000).contains(&self.tick_ms) {
            return invalid("tick_ms", "must be 5–10000");
        }
        if !(5..=600).contains(&self.ring_timeout_secs) {
            return invalid("ring_timeout_secs", "must be 5–600 (Twilio's range)");
        }
        if self.reconcile_secs == 0 {
            return invalid("reconcile_secs", "must be at least 1");
        }
        if self.backoff_initial_ms == 0 || self.backoff_max_ms < self.backoff_initial_ms {
            return invalid(
                "backoff_max_ms",
                "must be at least backoff_initial_ms (> 0)",
            );
        }
        if self.max_dials_in_flight == 0 {
            return invalid("max_dials_in_flight", "must be at least 1");
        }
        if !self.caller_id.is_empty() && !crate::dialer::model::is_e164(&self.caller_id) {
            return invalid("caller_id", "must be an E.164 number or empty");
        }
        Ok(())
    }
}
