//! Placing one call: the `Calls.json` request (answer `Url` = our `/twilio/voice` with the
//! call's context as query parameters, which the webhook turns into `<Parameter>`s of the
//! stream; status and AMD callbacks to `/twilio/status` and `/twilio/amd`), and the partial
//! outbound call record written as soon as Twilio accepted the call.
//!
//! Using a `Url` (not inline `Twiml`) keeps one path for inbound and outbound calls: the
//! webhook signs the stream token with the call's sid, and opens a Realtime session early.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::{VoicemailAction, is_e164};
use super::{Dialer, DialerError};
use crate::store::record::{CallRecord, Direction};
use crate::twilio::rest::{CallAnswer, CallEvent, CreateCall, MachineDetection};

/// `POST /api/calls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundCall {
    /// E.164 number to call.
    pub to: String,
    /// E.164 caller id (default `dialer.caller_id`).
    #[serde(default)]
    pub from: Option<String>,
    /// The agent profile to talk (default: the server's choice for the number).
    #[serde(default)]
    pub agent: Option<String>,
    /// Variables for the agent's prompt or flow (stream parameters).
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// `201` answer of `POST /api/calls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlacedCall {
    pub call_sid: String,
    /// Twilio's status (`queued`).
    pub status: String,
    /// The call's record: `/api/calls/{call_sid}`.
    pub record: String,
}

/// The context one dial carries.
pub struct Dialling<'a> {
    pub attempt_id: &'a str,
    pub to: &'a str,
    pub from: &'a str,
    pub agent: Option<&'a str>,
    pub campaign_id: Option<&'a str>,
    pub contact_id: Option<&'a str>,
    pub variables: &'a BTreeMap<String, String>,
    pub voicemail: Option<VoicemailAction>,
}

impl Dialer {
    /// The Twilio request for `d`.
    pub fn create_request(&self, d: &Dialling<'_>) -> CreateCall {
        let mut query: Vec<(&str, &str)> =
            vec![("direction", "outbound"), ("attempt_id", d.attempt_id)];
        for (k, v) in [
            ("agent", d.agent),
            ("campaign_id", d.campaign_id),
            ("contact_id", d.contact_id),
        ] {
            if let Some(v) = v {
                query.push((k, v));
            }
        }
        for (k, v) in d.variables {
            query.push((k, v));
        }
        let query = serde_urlencoded::to_string(&query).unwrap_or_default();
        let base = &self.public_base;
        let mut call = CreateCall::new(
            d.to,
            d.from,
            CallAnswer::Url(format!("{base}/twilio/voice?{query}")),
        );
        // The attempt rides along so a callback can adopt a call its instance lost (see `lost`).
        let attempt =
            serde_urlencoded::to_string([("attempt_id", d.attempt_id)]).unwrap_or_default();
        call.status_callback = Some(format!("{base}/twilio/status?{attempt}"));
        call.status_callback_events = CallEvent::ALL.to_vec();
        call.timeout_secs = Some(self.cfg.ring_timeout_secs);
        if let Some(v) = d.voicemail {
            call.machine_detection = Some(match v {
                VoicemailAction::HangUp => MachineDetection::Enable,
                VoicemailAction::LeaveMessage => MachineDetection::DetectMessageEnd,
            });
            call.async_amd = true;
            call.async_amd_status_callback = Some(format!("{base}/twilio/amd"));
        }
        call
    }

    /// Ask Twilio to place `d`; on success write the partial record. The attempt row must
    /// exist already.
    pub async fn place(&self, d: &Dialling<'_>) -> Result<String, DialerError> {
        let twilio = self.twilio.as_ref().ok_or(DialerError::NoTwilio)?;
        let request = self.create_request(d);
        let resource = twilio.create_call(&request).await?;
        metrics::counter!(crate::metrics::DIALER_DIALS, "result" => "placed").increment(1);
        self.store.dialed(d.attempt_id, &resource.sid).await?;
        if let Some(records) = &self.records {
            let mut r = CallRecord::new(resource.sid.clone(), Direction::Outbound, Utc::now());
            r.to = Some(d.to.to_owned());
            r.from = Some(d.from.to_owned());
            r.context.agent_profile = d.agent.map(str::to_owned);
            r.context.campaign_id = d.campaign_id.map(str::to_owned);
            r.context.contact_id = d.contact_id.map(str::to_owned);
            r.context.custom_parameters = d.variables.clone();
            if let Err(e) = records.create_outbound(&r).await {
                // The session's record and the callbacks fill it in later anyway.
                tracing::warn!(call_sid = %resource.sid, error = %e, "outbound record not created");
            }
        }
        Ok(resource.sid)
    }

    /// `POST /api/calls`: check, record the attempt, place the call; the call's id at once.
    pub async fn call(self: &Arc<Self>, req: &OutboundCall) -> Result<PlacedCall, DialerError> {
        // The request is checked first: a bad one is the caller's error whatever is configured.
        if !is_e164(&req.to) {
            return Err(DialerError::Invalid(
                "to",
                "must be an E.164 number like +14155550100".into(),
            ));
        }
        let from = req
            .from
            .clone()
            .unwrap_or_else(|| self.cfg.caller_id.clone());
        if !is_e164(&from) {
            return Err(DialerError::Invalid(
                "from",
                "must be an E.164 number (or set dialer.caller_id)".into(),
            ));
        }
        if let Some(k) = req
            .variables
            .keys()
            .find(|k| super::contacts::RESERVED.contains(&k.as_str()))
        {
            return Err(DialerError::Invalid(
                "variables",
                format!("{k:?} is reserved"),
            ));
        }
        if req.variables.len() > super::contacts::MAX_VARIABLES {
            return Err(DialerError::Invalid("variables", "too many".into()));
        }
        if self.twilio.is_none() {
            return Err(DialerError::NoTwilio);
        }
        let active = (self.active_calls)() + self.creating.load(Ordering::Acquire);
        if active >= self.max_calls {
            return Err(DialerError::AtCapacity(self.max_calls));
        }
        let attempt_id = self
            .store
            .single_attempt(&self.instance, Utc::now())
            .await?;
        self.creating.fetch_add(1, Ordering::AcqRel);
        let placed = self
            .place(&Dialling {
                attempt_id: &attempt_id,
                to: &req.to,
                from: &from,
                agent: req.agent.as_deref(),
                campaign_id: None,
                contact_id: None,
                variables: &req.variables,
                voicemail: None,
            })
            .await;
        self.creating.fetch_sub(1, Ordering::AcqRel);
        match placed {
            Ok(sid) => Ok(PlacedCall {
                record: format!("/api/calls/{sid}"),
                call_sid: sid,
                status: "queued".into(),
            }),
            Err(e) => {
                metrics::counter!(crate::metrics::DIALER_DIALS, "result" => "failed").increment(1);
                let _ = self
                    .store
                    .dial_failed(&attempt_id, &e.to_string(), Utc::now())
                    .await;
                Err(e)
            }
        }
    }
}
