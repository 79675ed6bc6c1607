//! Twilio REST failures, typed so a dialer can tell "slow down and retry" (HTTP 429 / Twilio
//! code 20429, with any `Retry-After`) from "this request is wrong" (4xx with Twilio's error
//! JSON: `code`, `message`, `more_info`, `status`) from "Twilio or the network is unwell".
//!
//! Pure classification of an answer already received; no I/O and no logging here.

use std::time::Duration;

use serde::Deserialize;

use crate::provider::ProviderError;

/// Twilio's "too many concurrent requests" code (sent with HTTP 429).
pub const RATE_LIMIT_CODE: i64 = 20429;
/// Twilio's "resource not found" code: for a call, it is unknown or already gone.
pub const NOT_FOUND_CODE: i64 = 20404;

/// Twilio's error body (`{"code":21211,"message":"…","more_info":"https://…","status":400}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status of the answer.
    pub status: u16,
    /// Twilio's error code, when the body carried one.
    pub code: Option<i64>,
    pub message: String,
    pub more_info: Option<String>,
}

/// Why a Twilio REST request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwilioError {
    /// HTTP 429 or code 20429: too many requests at once. Retry after `retry_after` (when
    /// Twilio said) or a backoff of the caller's choosing. Nothing was done.
    #[error("Twilio rate limited (code {code:?}, retry after {retry_after:?}): {message}")]
    RateLimited {
        code: Option<i64>,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Twilio refused the request (4xx other than 429): bad parameters, bad credentials, unknown
    /// resource. Retrying the same request will fail the same way.
    #[error("Twilio refused ({}, code {:?}): {}", .0.status, .0.code, .0.message)]
    Api(ApiError),
    /// Twilio failed (5xx). Retryable, but the request may have taken effect.
    #[error("Twilio server error ({status}): {message}")]
    Server { status: u16, message: String },
    /// No connection could be made: nothing was sent. Retryable.
    #[error("cannot reach Twilio: {0}")]
    Connect(String),
    /// The connection broke or timed out after the request may have been sent. Retryable, but
    /// the request may have taken effect (a call may have been created: reconcile first).
    #[error("Twilio request interrupted: {0}")]
    Network(String),
    /// A success answer that is not the JSON resource it should be.
    #[error("unreadable Twilio answer: {0}")]
    Malformed(String),
}

impl TwilioError {
    /// Classify a non-success answer from its status, `Retry-After` header and body.
    pub fn from_response(status: u16, retry_after: Option<&str>, body: &str) -> Self {
        let parsed = serde_json::from_str::<ErrorBody>(body).ok();
        let code = parsed.as_ref().and_then(|b| b.code);
        let message = parsed
            .as_ref()
            .and_then(|b| b.message.clone())
            .unwrap_or_else(|| body.chars().take(200).collect());
        if status == 429 || code == Some(RATE_LIMIT_CODE) {
            return TwilioError::RateLimited {
                code,
                message,
                retry_after: retry_after.and_then(parse_retry_after),
            };
        }
        if status >= 500 {
            return TwilioError::Server { status, message };
        }
        TwilioError::Api(ApiError {
            status,
            code,
            message,
            more_info: parsed.and_then(|b| b.more_info),
        })
    }

    /// Worth retrying later (rate limits, server errors, network trouble).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TwilioError::RateLimited { .. }
                | TwilioError::Server { .. }
                | TwilioError::Connect(_)
                | TwilioError::Network(_)
        )
    }

    /// The request may have been carried out although it failed (a created call may exist).
    pub fn may_have_taken_effect(&self) -> bool {
        matches!(
            self,
            TwilioError::Server { .. } | TwilioError::Network(_) | TwilioError::Malformed(_)
        )
    }

    /// How long Twilio asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TwilioError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Twilio's error code, if the answer carried one.
    pub fn code(&self) -> Option<i64> {
        match self {
            TwilioError::RateLimited { code, .. } => *code,
            TwilioError::Api(e) => e.code,
            _ => None,
        }
    }

    /// The call (or other resource) does not exist at Twilio (404, code 20404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, TwilioError::Api(e) if e.status == 404 && e.code.is_none_or(|c| c == NOT_FOUND_CODE))
    }

    /// A small fixed label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        ProviderError::from(self.clone()).kind()
    }
}

impl From<TwilioError> for ProviderError {
    fn from(e: TwilioError) -> Self {
        match e {
            TwilioError::RateLimited { message, .. } => ProviderError::RateLimited(message),
            TwilioError::Api(a) if a.status == 401 || a.status == 403 => {
                ProviderError::Unauthorized {
                    status: a.status,
                    message: a.message,
                }
            }
            TwilioError::Api(a) => ProviderError::Rejected {
                status: a.status,
                message: a.message,
            },
            TwilioError::Server { status, message } => ProviderError::Server { status, message },
            TwilioError::Connect(m) => ProviderError::Connect(m),
            TwilioError::Network(m) => ProviderError::Disconnected(m),
            TwilioError::Malformed(m) => ProviderError::Malformed(m),
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<i64>,
    message: Option<String>,
    more_info: Option<String>,
}

/// `Retry-After` as delay-seconds (Twilio does not send the HTTP-date form).
fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: f64 = v.trim().parse().ok()?;
    (0.0..86_400.0)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_twilio_answers() {
        let body = r#"{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}"#;
        let e = TwilioError::from_response(429, Some("2"), body);
        assert_eq!(e.code(), Some(20429));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert!(e.is_retryable() && !e.may_have_taken_effect());
        assert_eq!(e.kind(), "rate_limited");
        // 20429 in the body classifies as rate limited whatever the status.
        let e = TwilioError::from_response(400, None, r#"{"code":20429,"message":"x"}"#);
        assert!(matches!(e, TwilioError::RateLimited { .. }));
        // A bare 429 with no JSON still is a rate limit; a bad Retry-After is ignored.
        let e = TwilioError::from_response(429, Some("soon"), "slow down");
        assert_eq!((e.code(), e.retry_after()), (None, None));
        assert!(e.to_string().contains("slow down"));

        let body = r#"{"code":21211,"message":"Invalid 'To' Phone Number","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#;
        let e = TwilioError::from_response(400, None, body);
        assert_eq!(
            e,
            TwilioError::Api(ApiError {
                status: 400,
                code: Some(21211),
                message: "Invalid 'To' Phone Number".into(),
                more_info: Some("https://www.twilio.com/docs/errors/21211".into()),
            })
        );
        assert!(!e.is_retryable());
        assert_eq!(e.kind(), "rejected");
        let e = TwilioError::from_response(401, None, r#"{"code":20003,"message":"Authenticate"}"#);
        assert_eq!(e.kind(), "unauthorized");
        let e = TwilioError::from_response(404, None, r#"{"code":20404,"message":"nope"}"#);
        assert!(e.is_not_found());
        assert!(!TwilioError::from_response(404, None, r#"{"code":20001}"#).is_not_found());
        let e = TwilioError::from_response(503, None, "<html>");
        assert!(e.is_retryable() && e.may_have_taken_effect());
        assert_eq!(e.kind(), "server_error");
        assert!(TwilioError::Connect("refused".into()).is_retryable());
        assert!(!TwilioError::Connect("refused".into()).may_have_taken_effect());
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(parse_retry_after(" 1 "), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
