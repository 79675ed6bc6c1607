//! The session's reporting half: live quality alerts (log, count, webhook) and the per-call
//! report when the call ends. Adds behaviour to [`CallSession`]; owns no state of its own.

use std::time::{Instant, SystemTime};

use tracing::{info, warn};

use super::CallSession;
use crate::call::summary::{CallSummary, EndReason};
use crate::metrics as m;
use crate::quality::alerts::AlertState;
use crate::quality::notify::{AlertNotice, rfc3339};
use crate::quality::report::QualityReport;

impl CallSession {
    /// Log, count and notify live alert transitions gathered in `alert_events`.
    pub(super) fn publish_alerts(&mut self) {
        let mut events = std::mem::take(&mut self.alert_events);
        for event in events.drain(..) {
            let condition = event.condition.as_str();
            match event.state {
                AlertState::Raised => warn!(parent: &self.span, condition, value = event.value,
                    threshold = event.threshold, "quality alert raised"),
                AlertState::Cleared => {
                    info!(parent: &self.span, condition, "quality alert cleared")
                }
            }
            m::quality_alert(event.condition, event.state);
            if event.state == AlertState::Raised
                && !self.summary.alerts_raised.contains(&event.condition)
            {
                self.summary.alerts_raised.push(event.condition);
            }
            self.outlets.alerts.notify(AlertNotice {
                event: "quality_alert",
                at: rfc3339(SystemTime::now()),
                call_sid: self.summary.call_sid.clone(),
                stream_sid: self.summary.stream_sid.clone(),
                window_secs: self.window_secs,
                alert: event,
            });
        }
        self.alert_events = events;
    }

    /// Wind the call down and produce its report.
    pub(super) fn finish(mut self, end: EndReason) -> CallSummary {
        self.stt_cancel.cancel();
        if let Some(conv) = &mut self.conv {
            conv.abandon();
        }
        if self.playout.is_active() {
            let n = self.playout.clear(Instant::now()).ids.len() as u64;
            self.metrics.responses_abandoned.increment(n);
        }
        if end == EndReason::ServerShutdown {
            self.outbox.close(1001, "server shutting down");
        }
        self.summary.end_reason = end;
        self.summary.duration_ms = self.started.elapsed().as_millis() as u64;
        self.alerts.close(&mut self.alert_events);
        self.publish_alerts();
        let latencies = &self.summary.response_latencies_ms;
        let report = QualityReport::assess(&self.meter, latencies, &self.quality);
        m::observe_call_quality(&report);
        let (band, reasons) = (report.band.as_str(), report.reasons.clone());
        let mos = report.emodel.mos;
        self.summary.quality = Some(report);
        // The per-call report: one structured log line, and one line in the reports file.
        match serde_json::to_string(&self.summary) {
            Ok(json) => {
                info!(parent: &self.span, end = end.as_str(), band, mos, ?reasons,
                    report = %json, "call report");
                self.outlets.reports.write(json);
            }
            Err(e) => warn!(parent: &self.span, error = %e, "call report not serialisable"),
        }
        self.summary
    }
}
