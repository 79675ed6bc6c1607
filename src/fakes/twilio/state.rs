//! The fake account's state: the call table (what `GET …/Calls/{sid}.json` shows and the
//! handle a REST update uses to reach a call's lifecycle), per-number callee scripts and attempt counts, and the status bookkeeping that records every
//! change with the number of calls up at that moment.
//!
//! Locks are held only for map updates, never across an await. The table keeps at most
//! [`MAX_CALLS_KEPT`] calls: beyond it, finished calls are forgotten oldest first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::callee::Callee;
use super::observed::{LifecycleEvent, TwilioObserved};
use super::request::Answer;
use super::time::rfc2822;

/// Calls kept in the table before finished ones are dropped.
pub const MAX_CALLS_KEPT: usize = 10_000;

/// A call's status, spelled as Twilio spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Canceled,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Initiated => "initiated",
            Status::Ringing => "ringing",
            Status::InProgress => "in-progress",
            Status::Completed => "completed",
            Status::Busy => "busy",
            Status::NoAnswer => "no-answer",
            Status::Canceled => "canceled",
            Status::Failed => "failed",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Busy | Status::NoAnswer | Status::Canceled | Status::Failed
        )
    }

    /// Dialled and not over: counts against concurrent calls.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Status::Initiated | Status::Ringing | Status::InProgress
        )
    }
}

/// What a REST update asks of a running call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Run,
    /// `Status=completed` (or `canceled` before answer).
    Hangup,
    /// New TwiML for a call in progress.
    Redirect(Answer),
}

/// One row of the call table.
pub struct CallEntry {
    pub to: String,
    pub from: String,
    pub status: Status,
    pub created: SystemTime,
    pub updated: SystemTime,
    pub start: Option<SystemTime>,
    pub end: Option<SystemTime>,
    pub answered_by: Option<&'static str>,
    /// `CallDuration`, fixed when the call ends.
    pub duration_secs: Option<u64>,
    /// TwiML source, replaceable until the call is answered.
    pub answer: Answer,
    pub control: watch::Sender<Control>,
}

impl CallEntry {
    /// The Call resource JSON.
    pub fn resource(&self, account_sid: &str, sid: &str) -> Value {
        let time = |t: Option<SystemTime>| t.map(rfc2822);
        let duration = self
            .end
            .map(|_| self.duration_secs.unwrap_or(0).to_string());
        let uri = format!("/2010-04-01/Accounts/{account_sid}/Calls/{sid}.json");
        let sub =
            |name: &str| format!("/2010-04-01/Accounts/{account_sid}/Calls/{sid}/{name}.json");
        json!({
            "sid": sid,
            "account_sid": account_sid,
            "parent_call_sid": null,
            "to": self.to,
            "to_formatted": self.to,
            "from": self.from,
            "from_formatted": self.from,
            "phone_number_sid": null,
            "status": self.status.as_str(),
            "start_time": time(self.start),
            "end_time": time(self.end),
            "duration": duration,
            "price": null,
            "price_unit": "USD",
            "direction": "outbound-api",
            "answered_by": self.answered_by,
            "api_version": "2010-04-01",
            "forwarded_from": null,
            "group_sid": null,
            "caller_name": null,
            "queue_time": "0",
            "trunk_sid": null,
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(self.updated),
            "uri": uri,
            "subresource_uris": {
                "notifications": sub("Notifications"),
                "recordings": sub("Recordings"),
                "streams": sub("Streams"),
                "events": sub("Events"),
            },
        })
    }
}

/// The account's mutable state.
#[derive(Default)]
pub struct Table {
    calls: Mutex<HashMap<String, CallEntry>>,
    scripts: Mutex<Scripts>,
}

#[derive(Default)]
struct Scripts {
    by_number: HashMap<String, Vec<Callee>>,
    attempts: HashMap<String, usize>,
}

impl Table {
    /// Add a call unless `cap` calls are already open (queued or up); false when refused.
    pub fn insert(&self, sid: &str, entry: CallEntry, cap: Option<usize>) -> bool {
        let Ok(mut calls) = self.calls.lock() else {
            return false;
        };
        if let Some(cap) = cap
            && calls.values().filter(|e| !e.status.is_final()).count() >= cap
        {
            return false;
        }
        if calls.len() >= MAX_CALLS_KEPT {
            let mut done: Vec<(SystemTime, String)> = calls
                .iter()
                .filter(|(_, e)| e.status.is_final())
                .map(|(s, e)| (e.updated, s.clone()))
                .collect();
            done.sort();
            let evict = calls.len() / 10 + 1;
            for (_, s) in done.iter().take(evict) {
                calls.remove(s);
            }
        }
        calls.insert(sid.to_owned(), entry);
        true
    }

    /// Read (or change) one call under the lock.
    pub fn with<R>(&self, sid: &str, f: impl FnOnce(&mut CallEntry) -> R) -> Option<R> {
        self.calls.lock().ok()?.get_mut(sid).map(f)
    }

    /// The Call resources matching `keep`, most recently created first, at most `limit`.
    pub fn list(
        &self,
        account_sid: &str,
        limit: usize,
        keep: impl Fn(&CallEntry) -> bool,
    ) -> Vec<Value> {
        let Ok(calls) = self.calls.lock() else {
            return Vec::new();
        };
        let mut found: Vec<(&String, &CallEntry)> = calls.iter().filter(|(_, e)| keep(e)).collect();
        found.sort_by(|a, b| b.1.created.cmp(&a.1.created).then_with(|| b.0.cmp(a.0)));
        found
            .into_iter()
            .take(limit)
            .map(|(sid, e)| e.resource(account_sid, sid))
            .collect()
    }

    /// Calls not yet over (queued included).
    pub fn open_calls(&self) -> usize {
        self.calls
            .lock()
            .map(|c| c.values().filter(|e| !e.status.is_final()).count())
            .unwrap_or(0)
    }

    /// The status of a call, if known.
    pub fn status(&self, sid: &str) -> Option<Status> {
        self.with(sid, |e| e.status)
    }

    /// Move a call to `status`, recording the change (and when: returned) and the calls up
    /// after it.
    pub fn set_status(&self, observed: &TwilioObserved, sid: &str, status: Status) -> Instant {
        let at = Instant::now();
        let Ok(mut calls) = self.calls.lock() else {
            return at;
        };
        let now = SystemTime::now();
        let Some(e) = calls.get_mut(sid) else {
            return at;
        };
        if e.status.is_final() {
            return at;
        }
        e.status = status;
        e.updated = now;
        if status == Status::InProgress {
            e.start = Some(now);
        }
        if status.is_final() {
            e.end = Some(now);
        }
        let to = e.to.clone();
        let active = calls.values().filter(|e| e.status.is_active()).count();
        observed.lifecycle.push(LifecycleEvent {
            at,
            call_sid: sid.to_owned(),
            to,
            status: status.as_str(),
            active,
        });
        at
    }

    /// Script `number`: one behaviour per attempt, the last repeating.
    pub fn script(&self, number: &str, attempts: Vec<Callee>) {
        if let Ok(mut s) = self.scripts.lock() {
            s.by_number.insert(number.to_owned(), attempts);
        }
    }

    /// Who answers this dial of `number` (and which attempt it is, from 1).
    pub fn next_callee(&self, number: &str, default: &Callee) -> (usize, Callee) {
        let Ok(mut s) = self.scripts.lock() else {
            return (1, default.clone());
        };
        let n = s.attempts.entry(number.to_owned()).or_insert(0);
        *n += 1;
        let attempt = *n;
        let callee = s
            .by_number
            .get(number)
            .and_then(|seq| seq.get(attempt - 1).or(seq.last()))
            .unwrap_or(default)
            .clone();
        (attempt, callee)
    }
}
