//! What a campaign is, as the API takes and shows it: settings ([`CampaignSpec`]: caller id,
//! agent, calling window, pacing, retry policy, voicemail behaviour, end date), state, contacts
//! and their attempts, and the outcome vocabulary.
//!
//! Plain serde data with validation of settings; no I/O, no clocks (callers pass `now`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a campaign is in its life: `draft → running ⇄ paused → completed | cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    Draft,
    Running,
    Paused,
    Completed,
    Cancelled,
}

impl CampaignState {
    pub const ALL: [CampaignState; 5] = [
        CampaignState::Draft,
        CampaignState::Running,
        CampaignState::Paused,
        CampaignState::Completed,
        CampaignState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Draft => "draft",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Completed => "completed",
            CampaignState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The states a user may move a campaign in this state to (`completed` is reached by the
    /// dialer when no contact is left).
    pub fn may_become(self, to: CampaignState) -> bool {
        use CampaignState::*;
        matches!(
            (self, to),
            (Draft, Running)
                | (Running, Paused)
                | (Paused, Running)
                | (Draft | Running | Paused, Cancelled)
        )
    }
}

/// How one kind of unsuccessful attempt is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Retry {
    /// Wait this long before the next attempt, seconds.
    pub delay_secs: u64,
    /// Attempts in all (the first included) before the contact is set aside with this outcome.
    pub max_attempts: u32,
}

/// Retries by outcome. Other outcomes (answered, voicemail left, opted out, …) are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct RetryPolicy {
    pub no_answer: Retry,
    pub busy: Retry,
    pub failed: Retry,
    /// A machine answered (voicemail behaviour `hang_up`, or no message could be left).
    pub machine: Retry,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let thirty_min = |max_attempts| Retry {
            delay_secs: 1800,
            max_attempts,
        };
        Self {
            no_answer: thirty_min(3),
            busy: thirty_min(3),
            failed: Retry {
                delay_secs: 300,
                max_attempts: 2,
            },
            machine: thirty_min(2),
        }
    }
}

impl RetryPolicy {
    /// The rule for `outcome`, if it is retried at all.
    pub fn for_outcome(&self, outcome: Outcome) -> Option<Retry> {
        match outcome {
            Outcome::NoAnswer => Some(self.no_answer),
            Outcome::Busy => Some(self.busy),
            Outcome::Failed => Some(self.failed),
            Outcome::Machine => Some(self.machine),
            _ => None,
        }
    }
}

/// What to do when a machine answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailAction {
    /// Hang up as soon as a machine is detected (`MachineDetection=Enable`, async AMD).
    #[default]
    HangUp,
    /// Wait for the beep (`MachineDetection=DetectMessageEnd`, async AMD) and leave
    /// `voicemail_message`.
    LeaveMessage,
}

/// Local calling hours, in the contact's time zone (else the campaign's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CallingWindow {
    /// `HH:MM`, inclusive.
    pub start: String,
    /// `HH:MM`, exclusive; before `start` means the window runs past midnight.
    pub end: String,
    /// Days the window opens on (`mon` … `sun`); empty: every day.
    #[serde(default)]
    pub days: Vec<String>,
}

impl Default for CallingWindow {
    fn default() -> Self {
        Self {
            start: "09:00".into(),
            end: "21:00".into(),
            days: Vec::new(),
        }
    }
}

/// A campaign's settings (`POST /api/campaigns`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    pub name: String,
    /// The `From` number (E.164, a number of the Twilio account).
    pub caller_id: String,
    /// The agent profile that talks to the contacts (else the server's default).
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub window: CallingWindow,
    /// IANA time zone for contacts without one (e.g. `America/New_York`).
    #[serde(default = "utc")]
    pub timezone: String,
    /// Calls of this campaign in progress at once, at most.
    #[serde(default = "one")]
    pub max_concurrent: u32,
    /// New calls per second, at most (Twilio's default account rate is 1).
    #[serde(default = "one_f")]
    pub cps: f64,
    #[serde(default)]
    pub retry: RetryPolicy,
    #[serde(default)]
    pub voicemail: VoicemailAction,
    /// Spoken after the beep with `leave_message` (else `dialer.voicemail_message`).
    #[serde(default)]
    pub voicemail_message: Option<String>,
    /// Contacts not reached by then are set aside (`expired`).
    #[serde(default)]
    pub end_at: Option<DateTime<Utc>>,
}

fn utc() -> String {
    "UTC".into()
}
fn one() -> u32 {
    1
}
fn one_f() -> f64 {
    1.0
}

/// The most calls per second a campaign may ask for.
pub const MAX_CPS: f64 = 100.0;
/// The most concurrent calls a campaign may ask for.
pub const MAX_CONCURRENT: u32 = 1000;

impl CampaignSpec {
    /// Check every setting; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(("name", "must be 1–200 characters".into()));
        }
        if !is_e164(&self.caller_id) {
            return Err((
                "caller_id",
                "must be an E.164 number like +14155550100".into(),
            ));
        }
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(("timezone", format!("unknown time zone {:?}", self.timezone)));
        }
        super::window::Window::parse(&self.window).map_err(|e| ("window", e))?;
        if self.max_concurrent == 0 || self.max_concurrent > MAX_CONCURRENT {
            return Err(("max_concurrent", format!("must be 1–{MAX_CONCURRENT}")));
        }
        if !(self.cps > 0.0 && self.cps <= MAX_CPS) {
            return Err(("cps", format!("must be above 0 and at most {MAX_CPS}")));
        }
        for (name, r) in [
            ("retry.no_answer", self.retry.no_answer),
            ("retry.busy", self.retry.busy),
            ("retry.failed", self.retry.failed),
            ("retry.machine", self.retry.machine),
        ] {
            if r.max_attempts == 0 || r.max_attempts > 20 {
                return Err((name, "max_attempts must be 1–20".into()));
            }
        }
        if let Some(m) = &self.voicemail_message
            && m.len() > 1000
        {
            return Err(("voicemail_message", "at most 1000 characters".into()));
        }
        Ok(())
    }
}

/// `+` and 8–15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// The agent's verdict (call record `outcome`) that puts the number on the do-not-call list
/// (the Realtime engine's `opt_out` tool, or `set_outcome("opted_out")`).
pub const OPTED_OUT: &str = "opted_out";

/// The result of one attempt, and a contact's final outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A person answered and talked with the agent (the agent's own verdict is `agent_outcome`).
    Answered,
    VoicemailLeft,
    Machine,
    NoAnswer,
    Busy,
    Failed,
    Cancelled,
    OptedOut,
    /// On the do-not-call list at dispatch time.
    DoNotCall,
    /// The campaign ended (end date, or cancelled) before the contact was reached.
    Expired,
}

impl Outcome {
    pub const ALL: [Outcome; 10] = [
        Outcome::Answered,
        Outcome::VoicemailLeft,
        Outcome::Machine,
        Outcome::NoAnswer,
        Outcome::Busy,
        Outcome::Failed,
        Outcome::Cancelled,
        Outcome::OptedOut,
        Outcome::DoNotCall,
        Outcome::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::VoicemailLeft => "voicemail_left",
            Outcome::Machine => "machine",
            Outcome::NoAnswer => "no_answer",
            Outcome::Busy => "busy",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::OptedOut => "opted_out",
            Outcome::DoNotCall => "do_not_call",
            Outcome::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// A campaign as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Campaign {
    pub id: String,
    pub state: CampaignState,
    pub spec: CampaignSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a contact is: `pending` (due at `next_attempt_at`) → `dialing` → `settling` (the
/// call ended; its record is read for the agent's verdict) → `done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactState {
    Pending,
    Dialing,
    Settling,
    Done,
}

impl ContactState {
    pub const ALL: [ContactState; 4] = [
        ContactState::Pending,
        ContactState::Dialing,
        ContactState::Settling,
        ContactState::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ContactState::Pending => "pending",
            ContactState::Dialing => "dialing",
            ContactState::Settling => "settling",
            ContactState::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// One dial of a contact (or a single call).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    pub id: String,
    /// 1 for the first dial of the contact.
    pub number: u32,
    pub call_sid: Option<String>,
    /// Twilio's status (`dialing` until Twilio accepted the call).
    pub status: String,
    /// Twilio's `AnsweredBy` (with answering-machine detection).
    pub answered_by: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<u64>,
    pub outcome: Option<Outcome>,
    /// The agent's verdict from the call record (`set_outcome`), if any.
    pub agent_outcome: Option<String>,
    /// `/api/calls/{call_sid}`, once Twilio accepted the call.
    pub record: Option<String>,
    pub error: Option<String>,
}

/// One contact, with its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Contact {
    pub id: String,
    /// The line of the upload it came from (1 = the first data row; CSV: the header is line 1).
    pub line: u32,
    pub phone: String,
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub variables: BTreeMap<String, String>,
    pub state: ContactState,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    pub history: Vec<Attempt>,
}

/// `GET /api/campaigns/{id}`: the campaign and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CampaignProgress {
    #[serde(flatten)]
    pub campaign: Campaign,
    pub contacts: u64,
    /// Contacts by state (`pending`, `dialing`, `settling`, `done`).
    pub by_state: BTreeMap<String, u64>,
    /// Finished contacts by outcome.
    pub by_outcome: BTreeMap<String, u64>,
    /// Calls of this campaign in progress now.
    pub in_progress: u64,
    /// Dials in the last 60 seconds, per second.
    pub dial_rate: f64,
    pub attempts: u64,
}

/// A number on the do-not-call list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DncEntry {
    pub phone: String,
    /// `api`, `opt_out`, or what the caller gave.
    pub reason: String,
    pub added_at: DateTime<Utc>,
}
