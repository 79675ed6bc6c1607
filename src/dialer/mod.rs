//! Outbound calls and campaigns (issue 14): single calls (`POST /api/calls`) and campaigns
//! dialled through Twilio REST, paced by calls per second and concurrent calls, inside each
//! contact's calling window, retried by outcome, never dialling a number on the do-not-call
//! list, with answering-machine detection (hang up, or leave a message after the beep).
//!
//! - [`model`] the API's data, [`contacts`] CSV/JSON uploads, [`window`] calling hours;
//! - [`store`] the campaign tables (every decision is written there first: restart-safe, and
//!   instances sharing Postgres claim contacts in the database, never twice);
//! - [`place`] the Twilio request for one dial; [`callbacks`] status and AMD callbacks;
//!   [`dispatch`] the loop that claims and dials, settles, sweeps and reconciles; [`lost`]
//!   dials whose instance died before it stored Twilio's answer.
//!
//! This module never touches a call's media path: a dialled call reaches the server like any
//! other (Twilio fetches `/twilio/voice`, opens `/twilio/media`), carrying its context as
//! stream parameters.

pub mod callbacks;
pub mod contacts;
pub mod dispatch;
mod lost;
pub mod model;
pub mod place;
pub mod store;
pub mod window;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, Notify};

pub use store::DialerStore;

use crate::config::DialerConfig;
use crate::store::{CallStore, StoreError};
use crate::twilio::rest::{TwilioError, TwilioRest};

/// Why a dial or a dialer request failed.
#[derive(Debug, thiserror::Error)]
pub enum DialerError {
    #[error("outbound calls need TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")]
    NoTwilio,
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    #[error("the server is at limits.max_calls ({0})")]
    AtCapacity(usize),
    #[error("Twilio: {0}")]
    Twilio(#[from] TwilioError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts the server's calls in progress (media streams), for `limits.max_calls`.
pub type ActiveCalls = Arc<dyn Fn() -> usize + Send + Sync>;

/// The dialer of one instance.
pub struct Dialer {
    pub store: DialerStore,
    records: Option<Arc<dyn CallStore>>,
    twilio: Option<Arc<TwilioRest>>,
    cfg: DialerConfig,
    /// Agent profiles' own voicemail messages, by profile name.
    profile_voicemail: BTreeMap<String, String>,
    /// `http(s)://host` Twilio reaches this server at (webhook, callbacks).
    public_base: String,
    /// This process's id in attempt rows.
    instance: String,
    max_calls: usize,
    active_calls: ActiveCalls,
    /// Twilio create requests in flight from this instance.
    creating: AtomicUsize,
    /// After a 429 / 20429: no dial before this, and the next backoff.
    backoff: Mutex<dispatch::Backoff>,
    wake: Notify,
}

/// What the dialer is built from.
pub struct DialerParts {
    pub store: DialerStore,
    pub records: Option<Arc<dyn CallStore>>,
    pub twilio: Option<Arc<TwilioRest>>,
    pub cfg: DialerConfig,
    /// Agent profiles' own voicemail messages, by profile name
    /// ([`Config::voicemail_messages`](crate::config::Config::voicemail_messages)).
    pub profile_voicemail: BTreeMap<String, String>,
    pub public_base: String,
    pub max_calls: usize,
    pub active_calls: ActiveCalls,
}

impl Dialer {
    pub fn new(parts: DialerParts) -> Arc<Self> {
        let backoff = dispatch::Backoff::new(&parts.cfg);
        Arc::new(Self {
            store: parts.store,
            records: parts.records,
            twilio: parts.twilio,
            cfg: parts.cfg,
            profile_voicemail: parts.profile_voicemail,
            public_base: parts.public_base.trim_end_matches('/').to_owned(),
            instance: store::new_id("IN"),
            max_calls: parts.max_calls,
            active_calls: parts.active_calls,
            creating: AtomicUsize::new(0),
            backoff: Mutex::new(backoff),
            wake: Notify::new(),
        })
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn config(&self) -> &DialerConfig {
        &self.cfg
    }

    /// Look at the campaigns now (a campaign started, a call ended).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Wait (at most `timeout`) until no Twilio create request of this instance is in
    /// flight: after a pause or cancel has been stored, no new dial follows its answer.
    pub async fn quiesce(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.creating.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
