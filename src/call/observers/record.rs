//! The record observer: builds the call's [`CallRecord`] from the call-event stream — ids,
//! parties, profile and engine, every turn with its latency by stage, DTMF, actions, provider
//! errors, the outcome — and at call end adds the quality report, the alerts, the per-second
//! timeline and the recording's location, then hands it to the [`RecordWriter`].
//!
//! It only reads events and never waits: [`RecordWriter::submit`] is a non-blocking queue
//! (see `store::writer` for what happens when it is full). Lists are capped (`MAX_*`), so a
//! long call's record stays bounded. Nothing here runs per frame except a `match` that ignores
//! audio events.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::agent::CallAction;
use crate::call::context::{CallContext, Direction as CallDirection};
use crate::call::events::{CallEvent, Role as CallRole};
use crate::call::live::QualitySample;
use crate::call::summary::CallSummary;
use crate::quality::alerts::AlertEvent;
use crate::quality::report::Reason;
use crate::store::events::{
    ActionEvent, ActionKind, AlertRecord, DtmfEvent, MAX_TIMELINE_POINTS, MAX_TURNS,
    ProviderErrorEvent, Role, StageLatency, TimelinePoint, Turn,
};
use crate::store::record::{CallQuality, CallStatus, Direction};
use crate::store::{CallRecord, RecordWriter, Recording};

/// Most DTMF keys, actions and provider errors kept per call (each list).
pub const MAX_EVENTS: usize = 256;
/// Latencies of responses whose transcript line has not come yet.
const MAX_UNMATCHED_LATENCIES: usize = 16;
/// Longest provider error text kept.
const MAX_ERROR_CHARS: usize = 200;

/// The record of one call, built as it runs.
pub struct RecordTap {
    writer: RecordWriter,
    started: Instant,
    /// From `Started` on (a stream that never started has no call to record).
    record: Option<CallRecord>,
    /// The response each agent turn belongs to (parallel to `record.events.turns`).
    turn_responses: Vec<Option<u64>>,
    /// Latencies that arrived before their response's transcript line.
    latencies: Vec<(u64, StageLatency)>,
    /// Where the call's recording is, set by the recorder's owner before [`RecordTap::finish`]
    /// (`None`: the call was not recorded).
    pub recording: Option<Recording>,
}

impl RecordTap {
    pub fn new(writer: RecordWriter, started: Instant) -> Self {
        Self {
            writer,
            started,
            record: None,
            turn_responses: Vec::new(),
            latencies: Vec::new(),
            recording: None,
        }
    }

    fn offset_ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_millis() as u64
    }

    pub fn on_event(&mut self, event: &CallEvent<'_>) {
        if let CallEvent::Started(ctx) = event {
            self.record = Some(new_record(ctx));
            return;
        }
        let now_ms = || self.offset_ms(Instant::now());
        match *event {
            CallEvent::Transcript {
                role,
                text,
                interrupted,
                start,
                end,
                response,
            } => {
                let (start_ms, end_ms) =
                    (self.offset_ms(start.unwrap_or(end)), self.offset_ms(end));
                let latency = response.and_then(|id| self.take_latency(id));
                let Some(r) = &mut self.record else { return };
                if r.events.turns.len() < MAX_TURNS {
                    r.events.turns.push(Turn {
                        role: match role {
                            CallRole::Caller => Role::Caller,
                            CallRole::Agent => Role::Agent,
                        },
                        text: text.to_owned(),
                        start_ms,
                        end_ms,
                        latency,
                        interrupted,
                    });
                    self.turn_responses.push(response);
                }
            }
            CallEvent::Latency {
                response, latency, ..
            } => {
                let stages = StageLatency::from(*latency);
                // Attach to the response's line if it came first, else keep it for the line.
                let turns = self.record.as_mut().map(|r| &mut r.events.turns);
                let found = turns.and_then(|turns| {
                    let i = self
                        .turn_responses
                        .iter()
                        .rposition(|r| *r == Some(response))?;
                    turns.get_mut(i)
                });
                match found {
                    Some(turn) => turn.latency = Some(stages),
                    None if self.latencies.len() < MAX_UNMATCHED_LATENCIES => {
                        self.latencies.push((response, stages));
                    }
                    None => {}
                }
            }
            CallEvent::Dtmf(key) => {
                let at_ms = now_ms();
                if let Some(r) = &mut self.record
                    && r.events.dtmf.len() < MAX_EVENTS
                {
                    r.events.dtmf.push(DtmfEvent {
                        digit: key.as_char().to_string(),
                        at_ms,
                    });
                }
            }
            CallEvent::Action(action) => {
                let at_ms = now_ms();
                if let Some(r) = &mut self.record
                    && r.events.actions.len() < MAX_EVENTS
                {
                    let (action, target) = match action {
                        CallAction::EndCall => (ActionKind::Hangup, None),
                        CallAction::Transfer { to } => (ActionKind::Transfer, Some(to.clone())),
                    };
                    r.events.actions.push(ActionEvent {
                        action,
                        target,
                        at_ms,
                    });
                }
            }
            CallEvent::ProviderFailed { provider, error } => {
                let at_ms = now_ms();
                if let Some(r) = &mut self.record
                    && r.events.provider_errors.len() < MAX_EVENTS
                {
                    r.events.provider_errors.push(ProviderErrorEvent {
                        provider: provider.to_owned(),
                        kind: error.chars().take(MAX_ERROR_CHARS).collect(),
                        at_ms,
                    });
                }
            }
            CallEvent::Outcome(outcome) => {
                if let Some(r) = &mut self.record {
                    r.outcome = Some(outcome.chars().take(64).collect());
                }
            }
            CallEvent::Ended(reason) => {
                if let Some(r) = &mut self.record {
                    r.end_reason = Some(reason.as_str().to_owned());
                }
            }
            _ => {}
        }
    }

    fn take_latency(&mut self, response: u64) -> Option<StageLatency> {
        let i = self.latencies.iter().position(|(id, _)| *id == response)?;
        Some(self.latencies.swap_remove(i).1)
    }

    /// The call ended (after [`crate::call::observers::Observers::finish`] judged it): complete
    /// the record and hand it to the writer. Never waits.
    pub fn finish(
        mut self,
        summary: &CallSummary,
        alerts: &[(u64, AlertEvent)],
        timeline: &[QualitySample],
    ) {
        let Some(mut r) = self.record.take() else {
            return;
        };
        let ended = summary.started_at + Duration::from_millis(summary.duration_ms);
        r.times.ended_at = Some(DateTime::<Utc>::from(ended));
        r.times.duration_ms = Some(summary.duration_ms);
        r.status = CallStatus::Completed;
        r.end_reason = Some(summary.end_reason.as_str().to_owned());
        r.quality = summary.quality.as_ref().map(CallQuality::from_report);
        r.recording = self.recording.take();
        r.events.alerts = alerts
            .iter()
            .map(|(at_ms, a)| AlertRecord {
                condition: a.condition,
                state: a.state,
                value: a.value,
                threshold: a.threshold,
                at_ms: *at_ms,
            })
            .collect();
        r.events.timeline = timeline
            .iter()
            .take(MAX_TIMELINE_POINTS)
            .map(timeline_point)
            .collect();
        self.writer.submit(r);
    }
}

fn new_record(ctx: &CallContext) -> CallRecord {
    let started_at = DateTime::<Utc>::from(ctx.started_at);
    let direction = match ctx.direction {
        CallDirection::Inbound => Direction::Inbound,
        CallDirection::Outbound => Direction::Outbound,
    };
    let mut r = CallRecord::new(ctx.call_sid.clone(), direction, started_at);
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    r.stream_sid = some(&ctx.stream_sid);
    r.status = CallStatus::InProgress;
    r.from = some(&ctx.from);
    r.to = some(&ctx.to);
    r.context.agent_profile = some(&ctx.profile);
    r.context.engine = Some(ctx.engine.as_str().to_owned());
    r.context.campaign_id = ctx.parameter("campaign_id").map(str::to_owned);
    r.context.contact_id = ctx.parameter("contact_id").map(str::to_owned);
    r.context.custom_parameters = ctx.parameters.clone();
    // The media stream starts when the call is connected to us: answered then.
    r.times.answered_at = Some(started_at);
    r
}

pub fn timeline_point(s: &QualitySample) -> TimelinePoint {
    let level = f64::from(s.level_dbfs);
    TimelinePoint {
        t_s: s.t_s,
        // -96 dBFS is the sampler's floor: a second without audio.
        level_dbfs: (level > -96.0).then_some(level),
        jitter_ms: f64::from(s.jitter_ms),
        loss_pct: f64::from(s.loss_pct),
        mos: Some(f64::from(s.mos)),
        alerts: Reason::ALL
            .into_iter()
            .filter(|r| s.alerts & (1 << r.index()) != 0)
            .collect(),
    }
}
