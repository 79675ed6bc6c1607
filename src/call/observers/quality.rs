//! The quality observer: feeds the [`QualityMeter`] from the call-event stream, judges live
//! alerts once a second (logged with the call's ids, counted, POSTed to the webhook), and at
//! call end produces the [`QualityReport`].
//!
//! It only reads events; it never changes the call and never waits (the webhook and the report
//! file are fed through bounded queues, see [`crate::quality::notify`]).

use std::time::{Instant, SystemTime};

use tracing::{Span, info, warn};

use crate::call::events::CallEvent;
use crate::config::{AlertsConfig, QualityConfig};
use crate::metrics as m;
use crate::quality::alerts::{AlertEvent, AlertState, LiveAlerts};
use crate::quality::meter::QualityMeter;
use crate::quality::notify::{AlertNotice, QualityOutlets, rfc3339};
use crate::quality::report::{QualityReport, Reason};

/// Most alert transitions kept for the call's record.
pub const MAX_HISTORY: usize = 64;

pub struct QualityWatch {
    meter: QualityMeter,
    alerts: LiveAlerts,
    /// Transitions waiting to be published (reused: no allocation when nothing changes).
    pending: Vec<AlertEvent>,
    /// Conditions raised at least once during the call, in order.
    raised: Vec<Reason>,
    /// Every transition (ms into the call), for the call's record (at most [`MAX_HISTORY`]).
    history: Vec<(u64, AlertEvent)>,
    started: Instant,
    outlets: QualityOutlets,
    cfg: QualityConfig,
    window_secs: u64,
    ids: (Option<String>, Option<String>),
    span: Span,
}

impl QualityWatch {
    pub fn new(
        quality: &QualityConfig,
        alerts: &AlertsConfig,
        outlets: QualityOutlets,
        started: Instant,
        span: Span,
    ) -> Self {
        let window_secs = alerts.window_secs;
        Self {
            meter: QualityMeter::new(quality, window_secs, started),
            alerts: LiveAlerts::new(quality, window_secs),
            pending: Vec::new(),
            raised: Vec::new(),
            history: Vec::new(),
            started,
            outlets,
            cfg: quality.clone(),
            window_secs,
            ids: (None, None),
            span,
        }
    }

    pub fn config(&self) -> &QualityConfig {
        &self.cfg
    }

    pub fn meter(&self) -> &QualityMeter {
        &self.meter
    }

    /// The alert transitions so far, with when they happened (ms into the call).
    pub fn history(&self) -> &[(u64, AlertEvent)] {
        &self.history
    }

    /// Live conditions raised right now.
    pub fn active_alerts(&self) -> impl Iterator<Item = Reason> + '_ {
        self.alerts.active()
    }

    pub fn on_event(&mut self, event: &CallEvent<'_>) {
        match event {
            CallEvent::Started(ctx) => {
                self.ids = (Some(ctx.call_sid.clone()), Some(ctx.stream_sid.clone()));
            }
            CallEvent::AudioIn(f) => {
                let second = self.meter.on_media(
                    f.at,
                    f.chunk,
                    f.timestamp_ms,
                    f.pcm,
                    f.level_dbfs,
                    f.voiced,
                    f.playing,
                );
                if second {
                    self.alerts.evaluate(&self.meter, &mut self.pending);
                    self.publish();
                }
            }
            CallEvent::AudioSent { .. } => self.meter.on_frames_sent(1),
            CallEvent::Underruns(n) => self.meter.on_underruns(*n),
            _ => {}
        }
    }

    /// The call ended: clear what is still raised and judge the whole call.
    pub fn finish(&mut self, latencies_ms: &[u64]) -> (QualityReport, Vec<Reason>) {
        self.alerts.close(&mut self.pending);
        self.publish();
        let report = QualityReport::assess(&self.meter, latencies_ms, &self.cfg);
        m::observe_call_quality(&report);
        (report, std::mem::take(&mut self.raised))
    }

    /// Log, count and notify the transitions gathered in `pending`.
    fn publish(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() && self.history.len() < MAX_HISTORY {
            let at_ms = self.started.elapsed().as_millis() as u64;
            let room = MAX_HISTORY - self.history.len();
            self.history
                .extend(pending.iter().take(room).map(|e| (at_ms, *e)));
        }
        for event in pending.drain(..) {
            let condition = event.condition.as_str();
            match event.state {
                AlertState::Raised => warn!(parent: &self.span, condition, value = event.value,
                    threshold = event.threshold, "quality alert raised"),
                AlertState::Cleared => {
                    info!(parent: &self.span, condition, "quality alert cleared")
                }
            }
            m::quality_alert(event.condition, event.state);
            if event.state == AlertState::Raised && !self.raised.contains(&event.condition) {
                self.raised.push(event.condition);
            }
            self.outlets.alerts.notify(AlertNotice {
                event: "quality_alert",
                at: rfc3339(SystemTime::now()),
                call_sid: self.ids.0.clone(),
                stream_sid: self.ids.1.clone(),
                window_secs: self.window_secs,
                alert: event,
            });
        }
        self.pending = pending;
    }
}
