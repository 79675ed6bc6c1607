//! Dials lost with their instance: an instance that dies between claiming a contact and
//! storing Twilio's answer to the create leaves an attempt `dialing` with no call id. Twilio
//! may have placed that call. Before the claim is undone (and the contact dialled again), the
//! call is looked for at Twilio: the calls to the contact's number from the campaign's caller
//! id created since the claim (`GET Calls.json?To=&From=`) that no attempt owns yet. A call
//! found is adopted (and settled, if it has ended); no call: the claim is undone; Twilio not
//! reachable: the claim waits for the next reconcile, because a second dial is worse than a
//! late one.
//!
//! The answered call's webhook and its status callbacks also name their attempt
//! (`attempt_id` in their URLs), so a call still going when the restarted instance comes up
//! is adopted by its first callback, before this ever runs.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::callbacks::StatusReport;
use super::store::StaleClaim;
use super::{Dialer, DialerError};
use crate::metrics::DIALER_RECONCILED;
use crate::twilio::rest::CallResource;

/// A claimed attempt with no call id after this long was abandoned by a dead instance.
pub const STALE_DIAL: std::time::Duration = std::time::Duration::from_secs(60);
/// How many of the number's most recent calls are looked at.
const LOOK_BACK_CALLS: u32 = 20;

impl Dialer {
    /// Tie `call_sid` to `attempt_id` if the attempt still waits for its call id (a webhook or
    /// callback of a call whose instance died before storing it); a no-op otherwise.
    pub async fn adopt(&self, attempt_id: &str, call_sid: &str) {
        if call_sid.is_empty() || attempt_id.is_empty() {
            return;
        }
        if let Err(e) = self.store.dialed(attempt_id, call_sid).await {
            warn!(call_sid, attempt = attempt_id, error = %e, "call not tied to its attempt");
        }
    }

    /// Every stale claim: adopt its call from Twilio, or undo it.
    pub(super) async fn recover_lost_dials(&self, now: DateTime<Utc>) {
        let before = now - chrono::Duration::from_std(STALE_DIAL).unwrap_or_default();
        let claims = match self.store.stale_claims(before).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "stale claims not read");
                return;
            }
        };
        let mut undone = 0;
        for claim in claims {
            match self.lost_call(&claim).await {
                Ok(Some(call)) => self.adopt_lost(&claim, &call).await,
                Ok(None) => match self.store.undo_claim(&claim.attempt_id, now).await {
                    Ok(()) => undone += 1,
                    Err(e) => {
                        warn!(attempt = %claim.attempt_id, error = %e, "stale claim not undone")
                    }
                },
                Err(e) => {
                    warn!(attempt = %claim.attempt_id, error = %e, "Twilio not asked about a lost dial: the claim waits");
                }
            }
        }
        if undone > 0 {
            info!(attempts = undone, "undid claims never placed");
        }
    }

    /// The call Twilio placed for `claim`, if any.
    async fn lost_call(&self, claim: &StaleClaim) -> Result<Option<CallResource>, DialerError> {
        let (Some(twilio), Some(to), Some(from)) = (&self.twilio, &claim.phone, &claim.caller_id)
        else {
            return Ok(None);
        };
        // Twilio's times have whole seconds: a call created in the claim's second counts.
        let since = claim.started_at - chrono::Duration::seconds(1);
        for call in twilio.list_calls(to, from, LOOK_BACK_CALLS).await? {
            let created = call
                .date_created
                .as_deref()
                .and_then(|d| DateTime::parse_from_rfc2822(d).ok());
            if created.is_some_and(|c| c >= since) && !self.store.sid_known(&call.sid).await? {
                return Ok(Some(call));
            }
        }
        Ok(None)
    }

    async fn adopt_lost(&self, claim: &StaleClaim, call: &CallResource) {
        metrics::counter!(DIALER_RECONCILED).increment(1);
        info!(call_sid = %call.sid, attempt = %claim.attempt_id, status = call.status.as_str(), "a dial lost with its instance found at Twilio: adopted");
        self.adopt(&claim.attempt_id, &call.sid).await;
        if call.status.is_final() {
            let report = StatusReport {
                call_sid: call.sid.clone(),
                status: call.status.as_str().to_owned(),
                duration_secs: call.duration_secs(),
            };
            if let Err(e) = self.on_status(&report).await {
                warn!(call_sid = %call.sid, error = %e, "adopted call's status not stored");
            }
        }
    }
}
