//! The dialer's loop: every tick (or when woken) it finishes settled contacts, sweeps
//! campaigns (end dates, completion), reconciles attempts whose callbacks never came, and
//! claims and dials contacts of running campaigns while the pacing allows. The pacing of a
//! campaign (calls per second, concurrent calls) is checked in the claim, in the database; the
//! server's `limits.max_calls` and Twilio's 429 / 20429 backoff here.
//!
//! Dials run as tasks, at most `dialer.max_dials_in_flight` at once (a semaphore; when full
//! the loop stops claiming until one finishes). The loop must not hold a database transaction
//! across a Twilio request.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::callbacks::StatusReport;
use super::place::Dialling;
use super::store::Claim;
use super::{Dialer, DialerError};
use crate::config::DialerConfig;
use crate::dialer::model::CampaignState;
use crate::metrics::{DIALER_DIALS, DIALER_ERRORS, DIALER_RECONCILED};
use crate::twilio::rest::TwilioError;

/// Twilio's "slow down": no dial before `until`; each 429 in a row doubles the wait.
#[derive(Debug)]
pub struct Backoff {
    until: Option<Instant>,
    next: Duration,
    initial: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(cfg: &DialerConfig) -> Self {
        let initial = Duration::from_millis(cfg.backoff_initial_ms.max(1));
        Self {
            until: None,
            next: initial,
            initial,
            max: Duration::from_millis(cfg.backoff_max_ms.max(cfg.backoff_initial_ms)),
        }
    }

    /// A 429: wait `retry_after` (if Twilio said, within the max) or the next backoff.
    pub fn hit(&mut self, retry_after: Option<Duration>) -> Duration {
        let wait = retry_after.unwrap_or(self.next).min(self.max);
        self.next = (self.next * 2).min(self.max);
        self.until = Some(Instant::now() + wait);
        wait
    }

    pub fn ok(&mut self) {
        self.next = self.initial;
    }

    fn active(&self) -> bool {
        self.until.is_some_and(|u| Instant::now() < u)
    }
}

/// Most claims per campaign in one tick.
const CLAIMS_PER_TICK: usize = 64;

impl Dialer {
    /// Run until `stop`: reconcile once, then loop.
    pub fn start(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            info!(instance = %me.instance, "dialer started");
            me.reconcile(chrono::Duration::zero()).await;
            let permits = Arc::new(Semaphore::new(me.cfg.max_dials_in_flight.max(1)));
            let mut last_reconcile = Instant::now();
            let tick = Duration::from_millis(me.cfg.tick_ms.max(5));
            loop {
                let mut nap = tick;
                if let Err(e) = me.housekeeping().await {
                    metrics::counter!(DIALER_ERRORS, "stage" => "sweep").increment(1);
                    warn!(error = %e, "dialer sweep failed");
                }
                if last_reconcile.elapsed() >= Duration::from_secs(me.cfg.reconcile_secs.max(1)) {
                    last_reconcile = Instant::now();
                    let after = chrono::Duration::seconds(me.cfg.reconcile_secs as i64);
                    me.reconcile(after).await;
                }
                if !stop.is_cancelled() {
                    match me.dispatch(&permits).await {
                        Ok(Some(wait)) => nap = nap.min(wait.max(Duration::from_millis(2))),
                        Ok(None) => {}
                        Err(e) => {
                            metrics::counter!(DIALER_ERRORS, "stage" => "claim").increment(1);
                            warn!(error = %e, "dialer claim failed");
                        }
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = me.wake.notified() => {}
                    _ = tokio::time::sleep(nap) => {}
                }
            }
            info!(instance = %me.instance, "dialer stopped");
        })
    }

    async fn housekeeping(&self) -> Result<(), crate::store::StoreError> {
        let now = Utc::now();
        self.store.settle_due(now).await?;
        for id in self.store.sweep_campaigns(now).await? {
            info!(campaign_id = %id, "campaign completed");
        }
        Ok(())
    }

    /// Claim and dial what the pacing allows; how long until pacing allows the next dial.
    async fn dispatch(
        self: &Arc<Self>,
        permits: &Arc<Semaphore>,
    ) -> Result<Option<Duration>, DialerError> {
        if self.twilio.is_none() || self.backoff.lock().await.active() {
            return Ok(None);
        }
        let mut soonest: Option<Duration> = None;
        for campaign in self.store.campaigns(Some(CampaignState::Running)).await? {
            for _ in 0..CLAIMS_PER_TICK {
                let open = self.store.open_count(&self.instance).await? as usize;
                if (self.active_calls)().max(open) + self.creating.load(Ordering::Acquire)
                    >= self.max_calls
                {
                    return Ok(soonest);
                }
                let Ok(permit) = Arc::clone(permits).try_acquire_owned() else {
                    return Ok(soonest);
                };
                // Counted before the claim: a pause waits for it (see `quiesce`).
                self.creating.fetch_add(1, Ordering::AcqRel);
                let claim = self
                    .store
                    .claim(&campaign.id, &self.instance, Utc::now())
                    .await;
                let dial = match claim {
                    Ok(Claim::Dial(d)) => d,
                    other => {
                        self.creating.fetch_sub(1, Ordering::AcqRel);
                        match other? {
                            Claim::Skipped => continue,
                            Claim::Wait(w) => soonest = Some(soonest.map_or(w, |s| s.min(w))),
                            _ => {}
                        }
                        break;
                    }
                };
                let me = Arc::clone(self);
                tokio::spawn(async move {
                    me.dial(&dial).await;
                    me.creating.fetch_sub(1, Ordering::AcqRel);
                    drop(permit);
                });
            }
        }
        Ok(soonest)
    }

    async fn dial(&self, d: &super::store::claim::Dial) {
        let placed = self
            .place(&Dialling {
                attempt_id: &d.attempt_id,
                to: &d.phone,
                from: &d.spec.caller_id,
                agent: d.spec.agent.as_deref(),
                campaign_id: Some(&d.campaign_id),
                contact_id: Some(&d.contact_id),
                variables: &d.variables,
                voicemail: Some(d.spec.voicemail),
            })
            .await;
        let now = Utc::now();
        let result = match placed {
            Ok(sid) => {
                self.backoff.lock().await.ok();
                info!(call_sid = %sid, campaign_id = %d.campaign_id, contact_id = %d.contact_id, attempt = d.number, "dialled");
                return;
            }
            Err(DialerError::Twilio(TwilioError::RateLimited { retry_after, .. })) => {
                let wait = self.backoff.lock().await.hit(retry_after);
                metrics::counter!(DIALER_DIALS, "result" => "throttled").increment(1);
                warn!(campaign_id = %d.campaign_id, wait_ms = wait.as_millis() as u64, "Twilio rate limit: backing off");
                let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                self.store.throttled(&d.attempt_id, at).await
            }
            Err(e) => {
                metrics::counter!(DIALER_DIALS, "result" => "failed").increment(1);
                warn!(campaign_id = %d.campaign_id, contact_id = %d.contact_id, error = %e, "dial failed");
                self.store
                    .dial_failed(&d.attempt_id, &e.to_string(), now)
                    .await
            }
        };
        if let Err(e) = result {
            metrics::counter!(DIALER_ERRORS, "stage" => "dial").increment(1);
            warn!(attempt = %d.attempt_id, error = %e, "attempt not updated after the dial");
        }
    }

    /// Attempts open for longer than `after` with no final callback: ask Twilio how the call
    /// is (`GET Calls/{sid}.json`) and apply a final status as if its callback had come.
    /// Attempts claimed but never stored as placed (their instance died) are looked for at
    /// Twilio, and adopted or undone (see [`super::lost`]).
    pub async fn reconcile(&self, after: chrono::Duration) {
        let now = Utc::now();
        self.recover_lost_dials(now).await;
        let Some(twilio) = &self.twilio else { return };
        let open = match self.store.open_attempts(now - after).await {
            Ok(open) => open,
            Err(e) => {
                warn!(error = %e, "open attempts not read");
                return;
            }
        };
        for a in open {
            let (status, duration_secs) = match twilio.fetch_call(&a.call_sid).await {
                Ok(call) if call.status.is_final() => {
                    (call.status.as_str().to_owned(), call.duration_secs())
                }
                Ok(_) => continue,
                Err(e) if e.is_not_found() => ("failed".to_owned(), None),
                Err(_) => continue,
            };
            let report = StatusReport {
                call_sid: a.call_sid.clone(),
                status,
                duration_secs,
            };
            metrics::counter!(DIALER_RECONCILED).increment(1);
            info!(call_sid = %a.call_sid, status = %report.status, "reconciled with Twilio");
            if let Err(e) = self.on_status(&report).await {
                warn!(call_sid = %a.call_sid, error = %e, "reconciled status not stored");
            }
        }
    }
}
