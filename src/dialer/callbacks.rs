//! Twilio's status and AMD callbacks for dialled calls (already signature-checked by the
//! webhook guard). Status changes go to the call record and the attempt; a final status ends
//! the attempt and moves its contact on. An AMD verdict hangs up on a machine, or leaves the
//! voicemail message once the greeting ended (the campaign's, else its agent profile's, else
//! `dialer.voicemail_message`). Unknown calls and repeated callbacks change
//! nothing (every write is conditional), and are answered 204 like any other.

use std::collections::HashMap;

use chrono::{Duration, Utc};

use super::Dialer;
use super::model::{Outcome, VoicemailAction};
use crate::config::profiles::DEFAULT_PROFILE;
use crate::metrics::{DIALER_CALLBACKS, DIALER_OUTCOMES};
use crate::store::StoreError;
use crate::store::record::{CallProgress, CallStatus};
use crate::twilio::rest::CallUpdate;
use crate::twilio::twiml::xml_escape;

/// What one status callback (or a reconciled call) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub call_sid: String,
    /// Twilio's spelling (`in-progress`, `no-answer`, …).
    pub status: String,
    pub duration_secs: Option<u64>,
}

impl StatusReport {
    pub fn from_form(params: &HashMap<String, String>) -> Option<Self> {
        let sid = params.get("CallSid").filter(|s| !s.is_empty())?;
        let status = params.get("CallStatus").filter(|s| !s.is_empty())?;
        Some(Self {
            call_sid: sid.clone(),
            status: status.clone(),
            duration_secs: params.get("CallDuration").and_then(|d| d.parse().ok()),
        })
    }
}

impl Dialer {
    /// A call status callback.
    pub async fn on_status(&self, report: &StatusReport) -> Result<(), StoreError> {
        let sid = report.call_sid.as_str();
        let Some(status) = CallStatus::from_twilio(&report.status) else {
            metrics::counter!(DIALER_CALLBACKS, "result" => "bad_status").increment(1);
            tracing::info!(call_sid = sid, status = %report.status, "unknown call status ignored");
            return Ok(());
        };
        let now = Utc::now();
        if let Some(records) = &self.records {
            let mut p = CallProgress::new(sid, status, now);
            if status == CallStatus::InProgress {
                p.answered_at = Some(now);
            }
            if status.is_final() {
                p.ended_at = Some(now);
                p.duration_ms = report.duration_secs.map(|s| s * 1000);
                p.end_reason = Some(format!("twilio_{}", status.as_str()));
            }
            match records.update_progress(&p).await {
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if !status.is_final() {
            let applied = self.store.call_progress(sid, &report.status).await?;
            let result = if applied { "progress" } else { "unknown" };
            metrics::counter!(DIALER_CALLBACKS, "result" => result).increment(1);
            return Ok(());
        }
        let settle = Duration::milliseconds(self.cfg.settle_ms as i64);
        let duration = report.duration_secs.map(|s| s * 1000);
        match self
            .store
            .call_ended(sid, &report.status, duration, settle, now)
            .await?
        {
            Some(f) => {
                metrics::counter!(DIALER_CALLBACKS, "result" => "ended").increment(1);
                metrics::counter!(DIALER_OUTCOMES, "outcome" => f.outcome.as_str()).increment(1);
                tracing::info!(call_sid = sid, attempt = %f.attempt_id, outcome = f.outcome.as_str(), "dial ended");
                self.wake();
            }
            None => {
                metrics::counter!(DIALER_CALLBACKS, "result" => "duplicate").increment(1);
                tracing::debug!(
                    call_sid = sid,
                    "final status for no open attempt (duplicate or unknown)"
                );
            }
        }
        Ok(())
    }

    /// An async AMD callback (`AnsweredBy`).
    pub async fn on_amd(&self, params: &HashMap<String, String>) -> Result<(), StoreError> {
        let (Some(sid), Some(by)) = (params.get("CallSid"), params.get("AnsweredBy")) else {
            metrics::counter!(DIALER_CALLBACKS, "result" => "bad_amd").increment(1);
            return Ok(());
        };
        let Some(attempt) = self.store.open_attempt(sid).await? else {
            metrics::counter!(DIALER_CALLBACKS, "result" => "unknown").increment(1);
            return Ok(());
        };
        metrics::counter!(DIALER_CALLBACKS, "result" => "amd").increment(1);
        let machine = by.starts_with("machine") || by == "fax";
        let campaign = match &attempt.campaign_id {
            Some(id) => self.store.campaign(id).await?,
            None => None,
        };
        let action = campaign.as_ref().map(|c| c.spec.voicemail);
        let message_end = by.starts_with("machine_end");
        let leave = machine && message_end && action == Some(VoicemailAction::LeaveMessage);
        let outcome = leave.then_some(Outcome::VoicemailLeft);
        self.store.answered_by(sid, by, outcome).await?;
        tracing::info!(call_sid = %sid, answered_by = %by, leave_message = leave, "AMD verdict");
        let Some(twilio) = &self.twilio else {
            return Ok(());
        };
        if leave {
            let text = campaign
                .and_then(|c| {
                    let profile = c.spec.agent.as_deref().unwrap_or(DEFAULT_PROFILE);
                    let own = self.profile_voicemail.get(profile).cloned();
                    c.spec.voicemail_message.or(own)
                })
                .unwrap_or_else(|| self.cfg.voicemail_message.clone());
            let twiml = format!(
                "<Response><Say>{}</Say><Hangup/></Response>",
                xml_escape(&text)
            );
            if let Err(e) = twilio.update_call(sid, &CallUpdate::Twiml(twiml)).await {
                tracing::warn!(call_sid = %sid, error = %e, "voicemail message not started");
            }
        } else if machine
            && action == Some(VoicemailAction::HangUp)
            && let Err(e) = twilio.hang_up(sid).await
        {
            tracing::warn!(call_sid = %sid, error = %e, "hang-up on a machine failed");
        }
        Ok(())
    }
}
