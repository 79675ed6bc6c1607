//! The slice of Twilio's REST API voxbridge uses to act on a live call when the agent asks:
//! hang up (`Status=completed`) and transfer (`Twiml=<Response><Dial>…</Dial></Response>`),
//! both `POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`, form-encoded, HTTP Basic
//! `AccountSid:AuthToken` (twilio-media-streams.md "REST API"). A 404 with Twilio code 20404
//! means the call already ended, which is success for both.
//!
//! This is the one I/O file under `twilio/`. It must not log the auth token, retry (the
//! session decides), or decide when to act — it only performs the request it is asked for.

use std::time::Duration;

use crate::provider::{ProviderError, Secret, count_error};

use super::twiml::xml_escape;

/// Twilio's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";
const PROVIDER: &str = "twilio";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Twilio's "resource not found" error code: the call is already over.
const NOT_FOUND_CODE: i64 = 20404;

/// A small Twilio REST client for one account.
#[derive(Debug, Clone)]
pub struct TwilioRest {
    client: reqwest::Client,
    base_url: String,
    account_sid: String,
    auth_token: Secret,
}

impl TwilioRest {
    /// A client for `account_sid` at `base_url` (empty: [`DEFAULT_BASE_URL`]).
    pub fn new(
        base_url: &str,
        account_sid: &str,
        auth_token: Secret,
    ) -> Result<Self, ProviderError> {
        let base_url = match base_url.trim().trim_end_matches('/') {
            "" => DEFAULT_BASE_URL.to_string(),
            url => url.to_string(),
        };
        reqwest::Url::parse(&base_url)
            .map_err(|e| ProviderError::Connect(format!("Twilio base URL: {e}")))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ProviderError::Connect(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            base_url,
            account_sid: account_sid.to_string(),
            auth_token,
        })
    }

    /// End the call (`Status=completed`). Already ended counts as done.
    pub async fn hang_up(&self, call_sid: &str) -> Result<(), ProviderError> {
        self.update(call_sid, "hang_up", &[("Status", "completed")])
            .await
    }

    /// Replace the call's TwiML with `<Dial>{to}</Dial>`, leaving the stream for a person.
    pub async fn transfer(&self, call_sid: &str, to: &str) -> Result<(), ProviderError> {
        let twiml = format!("<Response><Dial>{}</Dial></Response>", xml_escape(to));
        self.update(call_sid, "transfer", &[("Twiml", &twiml)])
            .await
    }

    /// `POST …/Calls/{CallSid}.json` with `form`.
    async fn update(
        &self,
        call_sid: &str,
        what: &'static str,
        form: &[(&str, &str)],
    ) -> Result<(), ProviderError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Calls/{}.json",
            self.base_url,
            encode(&self.account_sid),
            encode(call_sid)
        );
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let sent = self
            .client
            .post(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.join("&"))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await;
        let result = match sent {
            Err(e) if e.is_timeout() => Err(ProviderError::Timeout(format!("Twilio {what}"))),
            Err(e) => Err(ProviderError::Connect(e.without_url().to_string())),
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                match status {
                    200..=299 => Ok(()),
                    404 if twilio_code(&text) == Some(NOT_FOUND_CODE) => {
                        tracing::info!(call_sid, action = what, "call already ended");
                        Ok(())
                    }
                    _ => Err(ProviderError::from_status(status, &text)),
                }
            }
        };
        match &result {
            Ok(()) => tracing::info!(call_sid, action = what, "Twilio call updated"),
            Err(err) => {
                count_error(PROVIDER, err);
                tracing::warn!(call_sid, action = what, kind = err.kind(), error = %err, "Twilio call update failed");
            }
        }
        result
    }
}

/// The `code` of a Twilio error body.
fn twilio_code(body: &str) -> Option<i64> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("code")?
        .as_i64()
}

/// Percent-encoding for form values and path segments (only unreserved characters stay).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
