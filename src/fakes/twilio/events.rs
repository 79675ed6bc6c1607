//! A call's outward signs in the fake: its status changes (recorded, and POSTed to
//! `StatusCallback` for the events asked for, with Twilio's fields, `SequenceNumber`,
//! `CallDuration` and `AnsweredBy`), the AMD verdict (kept on the call, POSTed to
//! `AsyncAmdStatusCallback`) and the parameters every request about the call carries.
//!
//! Only builds and queues callbacks; delivery is `hooks.rs`'s, timing the lifecycle's.

use std::time::{Instant, SystemTime};

use super::amd::AmdVerdict;
use super::call::CallTask;
use super::observed::CallbackKind;
use super::state::Status;
use super::time::rfc2822;

impl CallTask {
    pub(super) fn base_params(&self) -> Vec<(String, String)> {
        let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        vec![
            p("AccountSid", &self.shared.config.account_sid),
            p("ApiVersion", "2010-04-01"),
            p("CallSid", &self.sid),
            p("Called", &self.req.to),
            p("Caller", &self.req.from),
            p("Direction", "outbound-api"),
            p("From", &self.req.from),
            p("To", &self.req.to),
        ]
    }

    pub(super) fn set_answered_by(&mut self, v: AmdVerdict) {
        self.progress.answered_by = Some(v.as_str());
        self.shared
            .table
            .with(&self.sid, |e| e.answered_by = Some(v.as_str()));
    }

    pub(super) fn amd_callback(&self, v: AmdVerdict) {
        let Some(hook) = self
            .req
            .amd
            .as_ref()
            .and_then(|a| a.async_callback.as_ref())
        else {
            return;
        };
        let detection_ms = self
            .progress
            .answered
            .map_or(0, |a| a.elapsed().as_millis() as u64);
        let params = vec![
            (
                "AccountSid".to_owned(),
                self.shared.config.account_sid.clone(),
            ),
            ("CallSid".to_owned(), self.sid.clone()),
            ("AnsweredBy".to_owned(), v.as_str().to_owned()),
            (
                "MachineDetectionDuration".to_owned(),
                detection_ms.to_string(),
            ),
        ];
        self.hooks.push(CallbackKind::Amd, hook, params);
    }

    /// Record a status change and send its callback if that event was asked for.
    pub(super) fn status(&mut self, status: Status) -> Instant {
        let at = self
            .shared
            .table
            .set_status(&self.shared.observed, &self.sid, status);
        let ev = &self.req.events;
        let wanted = match status {
            Status::Queued => false,
            Status::Initiated => ev.initiated,
            Status::Ringing => ev.ringing,
            Status::InProgress => ev.answered,
            _ => ev.completed,
        };
        let Some(hook) = self.req.status_callback.clone().filter(|_| wanted) else {
            return at;
        };
        let mut params = self.base_params();
        params.push(("CallStatus".into(), status.as_str().into()));
        params.push(("CallbackSource".into(), "call-progress-events".into()));
        params.push(("Timestamp".into(), rfc2822(SystemTime::now())));
        params.push(("SequenceNumber".into(), self.seq.to_string()));
        self.seq += 1;
        if let Some(by) = self.progress.answered_by {
            params.push(("AnsweredBy".into(), by.into()));
        }
        if status.is_final() {
            let secs = self.progress.duration_secs;
            params.push(("CallDuration".into(), secs.to_string()));
            params.push(("Duration".into(), secs.div_ceil(60).to_string()));
            let sip = match status {
                Status::Busy => Some("486"),
                Status::NoAnswer | Status::Canceled => Some("487"),
                Status::Failed => Some("500"),
                _ => None,
            };
            if let Some(code) = sip {
                params.push(("SipResponseCode".into(), code.into()));
            }
        }
        self.hooks.push(CallbackKind::Status, &hook, params);
        at
    }
}
