//! Listing calls: the filters, the opaque page cursor, and the brief row a list returns.
//!
//! Every filter maps to an indexed column (or the indexed `call_reasons` table); lists are
//! newest first by `(started_at, call_sid)`, and the cursor is that key of the last row.
//! Parsing of HTTP query strings lives in the API; this module only holds and encodes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::record::{CallStatus, CallTimes, Direction, RecordContext};
use crate::quality::report::{Band, Reason};

/// Most rows one page may hold.
pub const MAX_PAGE: u32 = 200;
/// Rows per page when the caller does not say.
pub const DEFAULT_PAGE: u32 = 50;

/// Which calls to list (all conditions must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallFilter {
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Started before.
    pub until: Option<DateTime<Utc>>,
    pub direction: Option<Direction>,
    pub status: Option<CallStatus>,
    /// Either party's number (`from` or `to`), exactly.
    pub number: Option<String>,
    pub band: Option<Band>,
    /// Flagged with this quality reason.
    pub reason: Option<Reason>,
    pub end_reason: Option<String>,
    pub outcome: Option<String>,
    pub agent_profile: Option<String>,
    pub campaign_id: Option<String>,
}

/// Where a page starts: after this `(started_at, call_sid)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub started_at_us: i64,
    pub call_sid: String,
}

impl Cursor {
    const VERSION: &'static str = "v1";

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}:{}:{}",
            Self::VERSION,
            self.started_at_us,
            self.call_sid
        ))
    }

    /// `None` for anything this server did not hand out.
    pub fn decode(s: &str) -> Option<Self> {
        if s.len() > 256 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let mut parts = text.splitn(3, ':');
        if parts.next()? != Self::VERSION {
            return None;
        }
        let started_at_us = parts.next()?.parse().ok()?;
        let call_sid = parts.next()?.to_owned();
        if call_sid.is_empty() {
            return None;
        }
        Some(Self {
            started_at_us,
            call_sid,
        })
    }
}

/// One row of a call list: enough to show and filter, without the event lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallBrief {
    pub call_sid: String,
    pub direction: Direction,
    pub status: CallStatus,
    pub from: Option<String>,
    pub to: Option<String>,
    pub context: RecordContext,
    pub times: CallTimes,
    pub end_reason: Option<String>,
    pub outcome: Option<String>,
    pub band: Option<Band>,
    pub reasons: Vec<Reason>,
    pub mos: Option<f64>,
    /// The record has a recording (`GET /api/calls/{call_sid}/recording`).
    pub has_recording: bool,
}

/// One page of calls, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallPage {
    pub calls: Vec<CallBrief>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_foreign_text() {
        let c = Cursor {
            started_at_us: 1_700_000_000_123_456,
            call_sid: "CA:with:colons".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not base64!"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("v2:1:CA")), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("v1:x:CA")), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("v1:1:")), None);
    }
}
