//! What every speech/LLM provider shares: the error type whose kind labels
//! `voxbridge_provider_errors_total{provider, kind}`, API keys that never print, and the ids a
//! provider may log with.
//!
//! Providers live in `stt/`, `agent/` and `tts/`, one file each, behind small traits; the call
//! session knows the traits only. This module holds no provider logic.

use std::fmt;

use metrics::counter;

pub use crate::metrics::PROVIDER_ERRORS;

/// A provider failure, classified the same way for every provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// TCP/TLS/WebSocket connection could not be made.
    #[error("connect failed: {0}")]
    Connect(String),
    /// 401/403: bad or missing credentials.
    #[error("unauthorized ({status}): {message}")]
    Unauthorized { status: u16, message: String },
    /// 429: rate or concurrency limit.
    #[error("rate limited (429): {0}")]
    RateLimited(String),
    /// 5xx.
    #[error("server error ({status}): {message}")]
    Server { status: u16, message: String },
    /// Any other non-success HTTP status (4xx).
    #[error("request rejected ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// The stream ended before it should have.
    #[error("disconnected: {0}")]
    Disconnected(String),
    /// No answer (or no progress) within the configured time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The provider sent something we could not understand.
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl ProviderError {
    /// The `kind` label: a small fixed set.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Connect(_) => "connect",
            ProviderError::Unauthorized { .. } => "unauthorized",
            ProviderError::RateLimited(_) => "rate_limited",
            ProviderError::Server { .. } => "server_error",
            ProviderError::Rejected { .. } => "rejected",
            ProviderError::Disconnected(_) => "disconnected",
            ProviderError::Timeout(_) => "timeout",
            ProviderError::Malformed(_) => "malformed",
        }
    }

    /// Classify a non-success HTTP status (body trimmed to keep logs short).
    pub fn from_status(status: u16, body: &str) -> Self {
        let message: String = body.chars().take(200).collect();
        match status {
            401 | 403 => ProviderError::Unauthorized { status, message },
            429 => ProviderError::RateLimited(message),
            500..=599 => ProviderError::Server { status, message },
            _ => ProviderError::Rejected { status, message },
        }
    }

    /// Worth retrying or failing over (everything but bad credentials and bad requests).
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            ProviderError::Unauthorized { .. } | ProviderError::Rejected { .. }
        )
    }
}

/// Count a provider failure (`voxbridge_provider_errors_total{provider, kind}`).
pub fn count_error(provider: &'static str, err: &ProviderError) {
    counter!(PROVIDER_ERRORS, "provider" => provider, "kind" => err.kind()).increment(1);
}

/// An API key or token: usable, never printed (Debug and Display show `***`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Read from the environment; `None` when unset or empty.
    pub fn from_env(var: &str) -> Option<Self> {
        std::env::var(var).ok().filter(|v| !v.is_empty()).map(Self)
    }

    /// The secret itself, for an Authorization header. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The ids of the call a provider works for, for its log lines.
#[derive(Debug, Clone, Default)]
pub struct CallIds {
    pub call_sid: String,
    pub stream_sid: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify() {
        assert_eq!(ProviderError::from_status(401, "x").kind(), "unauthorized");
        assert_eq!(ProviderError::from_status(429, "x").kind(), "rate_limited");
        assert_eq!(ProviderError::from_status(503, "x").kind(), "server_error");
        assert_eq!(ProviderError::from_status(422, "x").kind(), "rejected");
        assert!(!ProviderError::from_status(401, "").is_transient());
        assert!(ProviderError::from_status(500, "").is_transient());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("sk-very-secret");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "sk-very-secret");
    }
}
