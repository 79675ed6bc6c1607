//! The Call resource's wire shapes: what `POST …/Calls.json` takes ([`CreateCall`], form
//! fields named as Twilio names them) and what Twilio answers ([`CallResource`], JSON), plus
//! the status and `AnsweredBy` vocabularies shared with status callbacks
//! (twilio-rest-and-dialing.md §1–2).
//!
//! Plain data and (de)serialisation only: no I/O, no validation beyond what the types say —
//! Twilio (or the fake) judges the parameters.

use serde::Deserialize;

/// What Twilio runs when the call is answered: TwiML fetched from a URL, or given inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallAnswer {
    /// `Url` (fetched with POST).
    Url(String),
    /// `Twiml` (≤ 4000 characters).
    Twiml(String),
}

/// A `StatusCallbackEvent` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEvent {
    Initiated,
    Ringing,
    Answered,
    /// Any final status (completed, busy, no-answer, failed, canceled).
    Completed,
}

impl CallEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            CallEvent::Initiated => "initiated",
            CallEvent::Ringing => "ringing",
            CallEvent::Answered => "answered",
            CallEvent::Completed => "completed",
        }
    }

    /// All four, in lifecycle order.
    pub const ALL: [CallEvent; 4] = [
        CallEvent::Initiated,
        CallEvent::Ringing,
        CallEvent::Answered,
        CallEvent::Completed,
    ];
}

/// `MachineDetection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineDetection {
    /// Decide human / machine as soon as possible (`machine_start`).
    Enable,
    /// Wait for the end of a machine's greeting (`machine_end_beep` | `_silence` | `_other`),
    /// the moment to leave a message.
    DetectMessageEnd,
}

impl MachineDetection {
    pub fn as_str(self) -> &'static str {
        match self {
            MachineDetection::Enable => "Enable",
            MachineDetection::DetectMessageEnd => "DetectMessageEnd",
        }
    }
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Calls.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCall {
    /// E.164 number to call.
    pub to: String,
    /// E.164 caller id (a number of the account).
    pub from: String,
    pub answer: CallAnswer,
    /// Where status changes are POSTed.
    pub status_callback: Option<String>,
    /// Which changes (Twilio's default: completed only).
    pub status_callback_events: Vec<CallEvent>,
    /// Seconds to let it ring (Twilio: default 60, max 600).
    pub timeout_secs: Option<u32>,
    /// Longest the call may last, seconds.
    pub time_limit_secs: Option<u32>,
    pub machine_detection: Option<MachineDetection>,
    /// `MachineDetectionTimeout`, seconds.
    pub machine_detection_timeout_secs: Option<u32>,
    /// `AsyncAmd=true`: the call proceeds at once and the result is POSTed later.
    pub async_amd: bool,
    /// `AsyncAmdStatusCallback`: where that result goes.
    pub async_amd_status_callback: Option<String>,
}

impl CreateCall {
    /// A call `from` → `to` running `answer`, everything else Twilio's defaults.
    pub fn new(to: impl Into<String>, from: impl Into<String>, answer: CallAnswer) -> Self {
        Self {
            to: to.into(),
            from: from.into(),
            answer,
            status_callback: None,
            status_callback_events: Vec::new(),
            timeout_secs: None,
            time_limit_secs: None,
            machine_detection: None,
            machine_detection_timeout_secs: None,
            async_amd: false,
            async_amd_status_callback: None,
        }
    }

    /// The form fields, in a stable order (`StatusCallbackEvent` repeated).
    pub fn form(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![("To", self.to.clone()), ("From", self.from.clone())];
        match &self.answer {
            CallAnswer::Url(url) => {
                f.push(("Url", url.clone()));
                f.push(("Method", "POST".into()));
            }
            CallAnswer::Twiml(twiml) => f.push(("Twiml", twiml.clone())),
        }
        if let Some(cb) = &self.status_callback {
            f.push(("StatusCallback", cb.clone()));
            f.push(("StatusCallbackMethod", "POST".into()));
        }
        for e in &self.status_callback_events {
            f.push(("StatusCallbackEvent", e.as_str().into()));
        }
        let mut num = |name: &'static str, v: Option<u32>| {
            if let Some(v) = v {
                f.push((name, v.to_string()));
            }
        };
        num("Timeout", self.timeout_secs);
        num("TimeLimit", self.time_limit_secs);
        num(
            "MachineDetectionTimeout",
            self.machine_detection_timeout_secs,
        );
        if let Some(md) = self.machine_detection {
            f.push(("MachineDetection", md.as_str().into()));
        }
        if self.async_amd {
            f.push(("AsyncAmd", "true".into()));
        }
        if let Some(cb) = &self.async_amd_status_callback {
            f.push(("AsyncAmdStatusCallback", cb.clone()));
            f.push(("AsyncAmdStatusCallbackMethod", "POST".into()));
        }
        f
    }
}

/// A call's status, in the resource and in status callbacks (`CallStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Canceled,
    Failed,
    /// A value this version does not know.
    #[serde(other)]
    Unknown,
}

impl CallStatus {
    /// Parse a `CallStatus` string (unknown values → [`CallStatus::Unknown`]).
    pub fn parse(s: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .unwrap_or(CallStatus::Unknown)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Initiated => "initiated",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::NoAnswer => "no-answer",
            CallStatus::Canceled => "canceled",
            CallStatus::Failed => "failed",
            CallStatus::Unknown => "unknown",
        }
    }

    /// The call is over and will not change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CallStatus::Completed
                | CallStatus::Busy
                | CallStatus::NoAnswer
                | CallStatus::Canceled
                | CallStatus::Failed
        )
    }
}

/// Answering-machine detection's verdict (`AnsweredBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnsweredBy {
    Human,
    MachineStart,
    MachineEndBeep,
    MachineEndSilence,
    MachineEndOther,
    Fax,
    /// Twilio could not tell (or a value this version does not know).
    #[serde(other)]
    Unknown,
}

impl AnsweredBy {
    pub fn parse(s: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .unwrap_or(AnsweredBy::Unknown)
    }

    /// A machine answered (greeting start or end).
    pub fn is_machine(self) -> bool {
        matches!(
            self,
            AnsweredBy::MachineStart
                | AnsweredBy::MachineEndBeep
                | AnsweredBy::MachineEndSilence
                | AnsweredBy::MachineEndOther
                | AnsweredBy::Fax
        )
    }

    /// The greeting is over: time to leave a message.
    pub fn is_message_end(self) -> bool {
        matches!(
            self,
            AnsweredBy::MachineEndBeep
                | AnsweredBy::MachineEndSilence
                | AnsweredBy::MachineEndOther
        )
    }
}

/// Twilio's Call resource, the fields voxbridge reads (unknown fields ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallResource {
    pub sid: String,
    #[serde(default)]
    pub account_sid: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub from: String,
    pub status: CallStatus,
    #[serde(default)]
    pub direction: String,
    #[serde(default)]
    pub answered_by: Option<AnsweredBy>,
    /// RFC 2822 times, as Twilio formats them.
    #[serde(default)]
    pub date_created: Option<String>,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
    /// Seconds, as a string (Twilio's choice); `None` until the call ends.
    #[serde(default)]
    pub duration: Option<String>,
}

impl CallResource {
    /// `duration` as seconds.
    pub fn duration_secs(&self) -> Option<u64> {
        self.duration.as_deref()?.trim().parse().ok()
    }
}

/// `POST …/Calls/{CallSid}.json`: what to change on a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallUpdate {
    /// `Status=completed`: hang up (also a call in progress).
    Complete,
    /// `Status=canceled`: hang up a call that is queued or ringing (no effect once answered).
    Cancel,
    /// Replace the call's TwiML (e.g. `<Dial>` to transfer).
    Twiml(String),
    /// Fetch new TwiML from this URL (POST).
    Url(String),
}

impl CallUpdate {
    pub fn form(&self) -> Vec<(&'static str, String)> {
        match self {
            CallUpdate::Complete => vec![("Status", "completed".into())],
            CallUpdate::Cancel => vec![("Status", "canceled".into())],
            CallUpdate::Twiml(t) => vec![("Twiml", t.clone())],
            CallUpdate::Url(u) => vec![("Url", u.clone()), ("Method", "POST".into())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_use_twilios_spelling() {
        for (s, st) in [
            ("queued", CallStatus::Queued),
            ("initiated", CallStatus::Initiated),
            ("ringing", CallStatus::Ringing),
            ("in-progress", CallStatus::InProgress),
            ("completed", CallStatus::Completed),
            ("busy", CallStatus::Busy),
            ("no-answer", CallStatus::NoAnswer),
            ("canceled", CallStatus::Canceled),
            ("failed", CallStatus::Failed),
        ] {
            assert_eq!(CallStatus::parse(s), st);
            assert_eq!(st.as_str(), s);
        }
        assert_eq!(CallStatus::parse("teleported"), CallStatus::Unknown);
        assert!(CallStatus::NoAnswer.is_final() && !CallStatus::Ringing.is_final());
        assert_eq!(
            AnsweredBy::parse("machine_end_beep"),
            AnsweredBy::MachineEndBeep
        );
        assert_eq!(AnsweredBy::parse("human"), AnsweredBy::Human);
        assert_eq!(AnsweredBy::parse("robot"), AnsweredBy::Unknown);
        assert!(AnsweredBy::MachineEndSilence.is_message_end());
        assert!(AnsweredBy::MachineStart.is_machine() && !AnsweredBy::Human.is_machine());
    }

    #[test]
    fn create_form_names_fields_like_twilio() {
        let mut c = CreateCall::new(
            "+15550001111",
            "+15550009999",
            CallAnswer::Url("https://h/twilio/voice".into()),
        );
        c.status_callback = Some("https://h/twilio/status".into());
        c.status_callback_events = CallEvent::ALL.to_vec();
        c.timeout_secs = Some(20);
        c.machine_detection = Some(MachineDetection::DetectMessageEnd);
        c.async_amd = true;
        c.async_amd_status_callback = Some("https://h/twilio/amd".into());
        let form = c.form();
        let get = |k: &str| -> Vec<&str> {
            form.iter()
                .filter(|(n, _)| *n == k)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get("To"), ["+15550001111"]);
        assert_eq!(get("Url"), ["https://h/twilio/voice"]);
        assert!(get("Twiml").is_empty());
        assert_eq!(
            get("StatusCallbackEvent"),
            ["initiated", "ringing", "answered", "completed"]
        );
        assert_eq!(get("Timeout"), ["20"]);
        assert_eq!(get("MachineDetection"), ["DetectMessageEnd"]);
        assert_eq!(get("AsyncAmd"), ["true"]);
        assert_eq!(get("AsyncAmdStatusCallback"), ["https://h/twilio/amd"]);
        let bare = CreateCall::new("+1", "+2", CallAnswer::Twiml("<Response/>".into())).form();
        assert_eq!(bare.len(), 3);
    }

    #[test]
    fn resource_parses_tolerantly() {
        let r: CallResource = serde_json::from_str(
            r#"{"sid":"CAx","status":"completed","duration":"17","answered_by":"machine_end_beep","price":null,"new_field":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(r.status, CallStatus::Completed);
        assert_eq!(r.duration_secs(), Some(17));
        assert_eq!(r.answered_by, Some(AnsweredBy::MachineEndBeep));
        let r: CallResource =
            serde_json::from_str(r#"{"sid":"CAy","status":"queued","answered_by":null}"#).unwrap();
        assert_eq!((r.answered_by, r.duration_secs()), (None, None));
    }
}
