//! A fake Twilio REST API that really places calls (twilio-rest-and-dialing.md,
//! twilio-media-streams.md): `POST …/Calls.json` answers like Twilio (Basic auth, parameter
//! checks with Twilio's error codes, 201 with a queued Call resource), then the call lives:
//! dialled at the account's calls-per-second rate, it rings, and the callee scripted for the
//! destination number answers — a [`Human`] who talks for N turns over a real media stream
//! opened with `sim`, a [`Machine`] (greeting, beep, recording), or a busy, unanswered or
//! failing line. TwiML is fetched from `Url` (signed) or taken from `Twiml`; status, AMD and
//! stream callbacks are signed with the auth token. `GET`/`POST …/Calls/{sid}.json` read,
//! hang up or redirect a call. Concurrency caps answer 429 with code 20429.
//!
//! Everything it sees and does is in [`TwilioObserved`]; [`Faults`] inject one failure per
//! REST request. It listens on 127.0.0.1 only and only ever calls the URLs it is given.

mod amd;
mod api;
mod call;
pub mod callee;
mod events;
mod hooks;
pub mod observed;
pub mod request;
mod state;
mod stream;
mod time;
pub mod twiml;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

pub use callee::{Callee, Human, Machine};
pub use observed::{
    CallTimes, CallbackKind, Delivered, EndedBy, EndedCall, LifecycleEvent, SeenRequest, StreamLeg,
    TwilioObserved, Voicemail,
};

use super::{FakeServer, Faults};
use crate::provider::{ProviderError, Secret};
use crate::twilio::rest::TwilioRest;
use state::Table;

/// How the fake account behaves.
#[derive(Debug, Clone)]
pub struct FakeTwilioConfig {
    /// `AC` + 32 hex; the Basic-auth user and the `{AccountSid}` in paths.
    pub account_sid: String,
    /// The Basic-auth password and the key of every `X-Twilio-Signature`.
    pub auth_token: String,
    /// New calls dialled per second (Twilio's default 1; excess queued, never refused; 0: no
    /// limit).
    pub cps: f64,
    /// Open calls (queued or up) beyond which `Calls.json` answers 429 / 20429.
    pub max_active_calls: Option<usize>,
    /// REST requests in flight beyond which any request answers 429 / 20429.
    pub max_concurrent_requests: Option<usize>,
    /// Each REST request takes this long to answer (lets tests overlap requests).
    pub request_delay: Duration,
    /// `Retry-After` on 429 answers, seconds (`None`: no header).
    pub retry_after_secs: Option<u64>,
    /// The account's numbers: `From` must be one (empty: any E.164 number).
    pub owned_numbers: Vec<String>,
    /// Who answers numbers with no script.
    pub default_callee: Callee,
    /// Connect to `wss://` stream URLs over plain `ws://` (local servers without TLS).
    pub plain_ws: bool,
    /// Deliver every status callback twice, as Twilio sometimes does.
    pub duplicate_callbacks: bool,
}

impl Default for FakeTwilioConfig {
    fn default() -> Self {
        Self {
            account_sid: format!("AC{}", "fa4e".repeat(8)),
            auth_token: "fake-twilio-auth-token-0123456789".into(),
            cps: 1.0,
            max_active_calls: None,
            max_concurrent_requests: None,
            request_delay: Duration::ZERO,
            retry_after_secs: Some(1),
            owned_numbers: Vec::new(),
            default_callee: Callee::human(2),
            plain_ws: true,
            duplicate_callbacks: false,
        }
    }
}

/// What the handlers and call tasks share.
pub(crate) struct Shared {
    config: FakeTwilioConfig,
    observed: TwilioObserved,
    faults: Faults,
    table: Table,
    http: reqwest::Client,
    in_flight: AtomicUsize,
    ended: Notify,
    /// When the last call was dialled: calls leave the queue one at a time (FIFO) through it.
    dial_gate: tokio::sync::Mutex<Option<Instant>>,
}

/// The running fake; stops serving when dropped (calls already up run to their end).
pub struct FakeTwilio {
    pub server: FakeServer,
    pub observed: TwilioObserved,
    /// Faults for the next REST requests, one each: `Status(code)` (Twilio error JSON),
    /// `Stall(d)`, `Malformed` (done, then a broken JSON answer), `DisconnectAfter(_)` (done,
    /// then the answer is cut).
    pub faults: Faults,
    shared: Arc<Shared>,
}

impl FakeTwilio {
    /// Serve on a free 127.0.0.1 port.
    pub async fn start(config: FakeTwilioConfig) -> std::io::Result<Self> {
        Self::start_on(config, 0).await
    }

    /// Serve on 127.0.0.1:`port` (0: any free port).
    pub async fn start_on(config: FakeTwilioConfig, port: u16) -> std::io::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            config,
            observed: TwilioObserved::default(),
            faults: Faults::default(),
            table: Table::default(),
            http,
            in_flight: AtomicUsize::new(0),
            ended: Notify::new(),
            dial_gate: tokio::sync::Mutex::new(None),
        });
        let server = FakeServer::start(api::router(Arc::clone(&shared)), port).await?;
        Ok(Self {
            server,
            observed: shared.observed.clone(),
            faults: shared.faults.clone(),
            shared,
        })
    }

    /// `http://127.0.0.1:PORT`: the `twilio.api_base_url` to give the client.
    pub fn base_url(&self) -> String {
        self.server.http_url()
    }

    pub fn account_sid(&self) -> &str {
        &self.shared.config.account_sid
    }

    pub fn auth_token(&self) -> &str {
        &self.shared.config.auth_token
    }

    /// The production client, pointed at this fake with its credentials.
    pub fn client(&self) -> Result<TwilioRest, ProviderError> {
        TwilioRest::new(
            &self.base_url(),
            self.account_sid(),
            Secret::new(self.auth_token()),
        )
    }

    /// Script `number`: `attempts[0]` answers the first dial, `attempts[1]` the second, …, the
    /// last one every dial after. Replaces any earlier script (attempt counts carry on).
    pub fn script(&self, number: &str, attempts: impl IntoIterator<Item = Callee>) {
        let attempts: Vec<Callee> = attempts.into_iter().collect();
        if !attempts.is_empty() {
            self.shared.table.script(number, attempts);
        }
    }

    /// The status Twilio would report for `call_sid` now.
    pub fn status_of(&self, call_sid: &str) -> Option<&'static str> {
        self.shared.table.status(call_sid).map(|s| s.as_str())
    }

    /// Calls not yet over (queued included).
    pub fn open_calls(&self) -> usize {
        self.shared.table.open_calls()
    }

    /// Wait (at most `timeout`) for `call_sid` to end and its callbacks to be delivered.
    pub async fn wait_ended(&self, call_sid: &str, timeout: Duration) -> Option<EndedCall> {
        self.wait_for(timeout, || {
            self.observed
                .calls
                .snapshot()
                .into_iter()
                .find(|c| c.call_sid == call_sid)
        })
        .await
    }

    /// Wait (at most `timeout`) until `n` calls have ended; all ended calls so far.
    pub async fn wait_calls(&self, n: usize, timeout: Duration) -> Vec<EndedCall> {
        self.wait_for(timeout, || {
            let calls = self.observed.calls.snapshot();
            (calls.len() >= n).then_some(calls)
        })
        .await
        .unwrap_or_else(|| self.observed.calls.snapshot())
    }

    async fn wait_for<T>(&self, timeout: Duration, check: impl Fn() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let woken = self.shared.ended.notified();
            if let Some(v) = check() {
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            let nap = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            let _ = tokio::time::timeout(nap, woken).await;
        }
    }
}

/// A Twilio-shaped id: `prefix` + 32 lowercase hex digits, unique in the process.
pub(crate) fn new_sid(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::new()
        .chain_update(n.to_le_bytes())
        .chain_update(nanos.to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .finalize();
    let mut out = String::with_capacity(prefix.len() + 32);
    out.push_str(prefix);
    for b in &digest[..16] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests;
