//! The slice of Twilio's REST API voxbridge uses (twilio-rest-and-dialing.md §1): place an
//! outbound call ([`TwilioRest::create_call`], `POST …/Calls.json`), read one back
//! ([`TwilioRest::fetch_call`], to reconcile after a restart), find the calls placed to a number
//! ([`TwilioRest::list_calls`], `GET …/Calls.json?To=&From=`, for a dial whose answer was lost
//! with the instance that sent it), and act on a live call
//! ([`TwilioRest::update_call`]; [`TwilioRest::hang_up`] and [`TwilioRest::transfer`] for the
//! agent's tools, where a 404 with code 20404 means the call already ended, which is success).
//! Form-encoded bodies, HTTP Basic `AccountSid:AuthToken`, JSON answers.
//!
//! This is the one I/O file under `twilio/`. It must not log the auth token, retry (the
//! caller decides, from [`TwilioError::is_retryable`] and `retry_after`), or decide when to
//! act — it only performs the request it is asked for, and never panics on what comes back.

mod call;
mod error;

use std::time::Duration;

use crate::provider::{ProviderError, Secret, count_error};

use super::twiml::xml_escape;

pub use call::{
    AnsweredBy, CallAnswer, CallEvent, CallResource, CallStatus, CallUpdate, CreateCall,
    MachineDetection,
};
pub use error::{ApiError, NOT_FOUND_CODE, RATE_LIMIT_CODE, TwilioError};

/// Twilio's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";
const PROVIDER: &str = "twilio";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest answer body read (Call resources are ~2 KB).
const MAX_BODY_BYTES: usize = 64 * 1024;

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

    /// The account this client acts for.
    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    /// Place an outbound call. Twilio answers `201` with the queued call; it then dials at the
    /// account's calls-per-second rate and reports progress to `status_callback`.
    pub async fn create_call(&self, call: &CreateCall) -> Result<CallResource, TwilioError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Calls.json",
            self.base_url,
            encode(&self.account_sid)
        );
        let result = self
            .send(self.client.post(url).body(form_body(&call.form())))
            .await
            .and_then(|body| parse_resource(&body));
        match &result {
            Ok(r) => {
                tracing::info!(call_sid = %r.sid, to = %call.to, status = r.status.as_str(), "Twilio call created")
            }
            Err(e) => log_failure("", "create_call", e),
        }
        result
    }

    /// The call as Twilio knows it now (404 / code 20404: [`TwilioError::is_not_found`]).
    pub async fn fetch_call(&self, call_sid: &str) -> Result<CallResource, TwilioError> {
        let result = self
            .send(self.client.get(self.call_url(call_sid)))
            .await
            .and_then(|body| parse_resource(&body));
        if let Err(e) = &result {
            log_failure(call_sid, "fetch_call", e);
        }
        result
    }

    /// The first page (`page_size` calls, most recent first) of the account's calls to `to`
    /// from `from`: `GET …/Calls.json?To=&From=&PageSize=`.
    pub async fn list_calls(
        &self,
        to: &str,
        from: &str,
        page_size: u32,
    ) -> Result<Vec<CallResource>, TwilioError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Calls.json?To={}&From={}&PageSize={}",
            self.base_url,
            encode(&self.account_sid),
            encode(to),
            encode(from),
            page_size.clamp(1, 1000)
        );
        let result = self.send(self.client.get(url)).await.and_then(|body| {
            serde_json::from_str::<CallPage>(&body)
                .map(|page| page.calls)
                .map_err(|e| TwilioError::Malformed(format!("Call list: {e}")))
        });
        if let Err(e) = &result {
            log_failure("", "list_calls", e);
        }
        result
    }

    /// Change a call: hang up, cancel, or replace its TwiML. Returns the updated resource.
    pub async fn update_call(
        &self,
        call_sid: &str,
        update: &CallUpdate,
    ) -> Result<CallResource, TwilioError> {
        let result = self
            .send(
                self.client
                    .post(self.call_url(call_sid))
                    .body(form_body(&update.form())),
            )
            .await
            .and_then(|body| parse_resource(&body));
        match &result {
            Ok(r) => tracing::info!(call_sid, status = r.status.as_str(), "Twilio call updated"),
            Err(e) => log_failure(call_sid, "update_call", e),
        }
        result
    }

    /// End the call (`Status=completed`). Already ended counts as done.
    pub async fn hang_up(&self, call_sid: &str) -> Result<(), ProviderError> {
        self.act(call_sid, "hang_up", &CallUpdate::Complete).await
    }

    /// Replace the call's TwiML with `<Dial>{to}</Dial>`, leaving the stream for a person.
    pub async fn transfer(&self, call_sid: &str, to: &str) -> Result<(), ProviderError> {
        let twiml = format!("<Response><Dial>{}</Dial></Response>", xml_escape(to));
        self.act(call_sid, "transfer", &CallUpdate::Twiml(twiml))
            .await
    }

    /// An update whose answer body does not matter; "already ended" is success.
    async fn act(
        &self,
        call_sid: &str,
        what: &'static str,
        update: &CallUpdate,
    ) -> Result<(), ProviderError> {
        let sent = self
            .send(
                self.client
                    .post(self.call_url(call_sid))
                    .body(form_body(&update.form())),
            )
            .await;
        match sent {
            Ok(_) => {
                tracing::info!(call_sid, action = what, "Twilio call updated");
                Ok(())
            }
            Err(e) if e.is_not_found() => {
                tracing::info!(call_sid, action = what, "call already ended");
                Ok(())
            }
            Err(e) => {
                log_failure(call_sid, what, &e);
                Err(e.into())
            }
        }
    }

    fn call_url(&self, call_sid: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Calls/{}.json",
            self.base_url,
            encode(&self.account_sid),
            encode(call_sid)
        )
    }

    /// Send with auth and a deadline; the body of a 2xx answer, else the classified error.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<String, TwilioError> {
        let sent = request
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return Err(TwilioError::Connect(e.without_url().to_string()));
            }
            Err(e) => return Err(TwilioError::Network(e.without_url().to_string())),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_BODY_BYTES => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => return Err(TwilioError::Malformed("answer too large".into())),
                Ok(None) => break,
                Err(e) if (200..300).contains(&status) => {
                    return Err(TwilioError::Network(e.without_url().to_string()));
                }
                Err(_) => break, // an error answer cut short: classify what we have
            }
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(TwilioError::from_response(
                status,
                retry_after.as_deref(),
                &body,
            ))
        }
    }
}

/// One page of `GET …/Calls.json` (the paging links are not followed).
#[derive(serde::Deserialize)]
struct CallPage {
    calls: Vec<CallResource>,
}

fn parse_resource(body: &str) -> Result<CallResource, TwilioError> {
    serde_json::from_str(body).map_err(|e| TwilioError::Malformed(format!("Call resource: {e}")))
}

fn log_failure(call_sid: &str, action: &'static str, e: &TwilioError) {
    count_error(PROVIDER, &ProviderError::from(e.clone()));
    tracing::warn!(
        call_sid,
        action,
        kind = e.kind(),
        code = e.code(),
        retryable = e.is_retryable(),
        error = %e,
        "Twilio request failed"
    );
}

fn form_body(form: &[(&str, String)]) -> String {
    let pairs: Vec<String> = form
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    pairs.join("&")
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
