//! Observers: read-only taps on one call's event stream ([`CallEvent`]). Each one keeps its own
//! view — quality, summary, metrics, live figures, the call's record, the once-per-call error
//! log — and none of them can change the call. The session emits every event once through [`Observers::emit`].
//!
//! Must not block or wait on I/O: anything leaving the process goes through bounded queues.

pub mod metrics;
pub mod quality;
pub mod record;
pub mod recording;

use std::time::Instant;

use tracing::{Span, info, warn};

use crate::call::events::CallEvent;
use crate::call::live::LiveTap;
use crate::call::summary::{CallSummary, EndReason};
use crate::quality::notify::QualityOutlets;
pub use metrics::MetricsTap;
pub use quality::QualityWatch;
pub use record::RecordTap;
pub use recording::{RecordingRef, RecordingTap};

/// Every observer of one call.
pub struct Observers {
    pub quality: QualityWatch,
    pub summary: CallSummary,
    pub live: LiveTap,
    /// The call's record for the store (`None` when records are off).
    pub record: Option<RecordTap>,
    metrics: MetricsTap,
    recording: RecordingTap,
    /// Protocol error reasons already logged on this call (a bit per reason).
    logged_reasons: u32,
    outlets: QualityOutlets,
    span: Span,
}

impl Observers {
    pub fn new(
        config: &crate::config::Config,
        metrics: crate::metrics::Metrics,
        outlets: QualityOutlets,
        started: Instant,
        span: Span,
    ) -> Self {
        Self {
            quality: QualityWatch::new(
                &config.quality,
                &config.alerts,
                outlets.clone(),
                started,
                span.clone(),
            ),
            summary: CallSummary::new(std::time::SystemTime::now(), started),
            live: LiveTap::new(started),
            record: None,
            metrics: MetricsTap::new(metrics),
            recording: RecordingTap::new(None, started, span.clone()),
            logged_reasons: 0,
            outlets,
            span,
        }
    }

    /// Record the call with `recordings` (the server's recording service; `None`: off).
    pub fn with_recordings(
        mut self,
        recordings: Option<crate::call::recorder::Recordings>,
        started: Instant,
    ) -> Self {
        self.recording = RecordingTap::new(recordings, started, self.span.clone());
        self
    }

    /// Where this call's recording is: from the stream's start on, `None` when the call is not
    /// recorded, and after the end (`Ended`, [`Observers::finish`]) `None` if nothing was.
    pub fn recording_location(&self) -> Option<RecordingRef> {
        self.recording.location().cloned()
    }

    pub fn emit(&mut self, event: CallEvent<'_>) {
        self.recording.on_event(&event);
        self.metrics.on_event(&event);
        self.summary.on_event(&event);
        self.quality.on_event(&event);
        self.live.on_event(&event);
        if let Some(record) = &mut self.record {
            record.on_event(&event);
        }
        if let CallEvent::ProtocolError { reason, detail } = event {
            // Log once per reason per call; every occurrence is counted above.
            let bit = 1u32 << reason.index();
            if self.logged_reasons & bit == 0 {
                self.logged_reasons |= bit;
                warn!(parent: &self.span, reason = reason.as_str(), error = detail, "bad inbound message");
            }
        }
    }

    /// Keep this call's record and hand it to `writer` when the call ends.
    pub fn record_to(&mut self, writer: Option<crate::store::RecordWriter>, started: Instant) {
        self.record = writer.map(|w| RecordTap::new(w, started));
    }

    /// Where the call's recording is, for its record: the hook the recorder fills before
    /// [`Observers::finish`] (the raw file's path; the recording store resolves it to the
    /// compacted file when it is served).
    pub fn set_recording(&mut self, recording: Option<crate::store::Recording>) {
        if let Some(record) = &mut self.record {
            record.recording = recording;
        }
    }

    /// Once a second: the live figures and the quality timeline.
    pub fn tick(&mut self, now: Instant) {
        let alerts: Vec<_> = self.quality.active_alerts().collect();
        self.live
            .tick(now, self.quality.meter(), &alerts, self.quality.config());
    }

    /// The call ended: judge its quality and publish its report (log line and report file).
    pub fn finish(mut self, end: EndReason, duration_ms: u64) -> CallSummary {
        self.recording
            .finish(std::time::Duration::from_millis(duration_ms));
        // The record points at the compacted file; the API resolves it to what is there now.
        let recording = self.recording_location().map(|r| crate::store::Recording {
            location: r.location.to_string_lossy().into_owned(),
            content_type: r.content_type().to_owned(),
        });
        self.set_recording(recording);
        self.emit(CallEvent::Ended(end));
        self.summary.duration_ms = duration_ms;
        let (report, raised) = self.quality.finish(&self.summary.response_latencies_ms);
        let (band, reasons, mos) = (
            report.band.as_str(),
            report.reasons.clone(),
            report.emodel.mos,
        );
        self.summary.alerts_raised = raised;
        self.summary.quality = Some(report);
        match serde_json::to_string(&self.summary) {
            Ok(json) => {
                info!(parent: &self.span, end = end.as_str(), band, mos, ?reasons,
                    report = %json, "call report");
                self.outlets.reports.write(json);
            }
            Err(e) => warn!(parent: &self.span, error = %e, "call report not serialisable"),
        }
        if let Some(record) = self.record.take() {
            record.finish(&self.summary, self.quality.history(), &self.live.timeline);
        }
        self.summary
    }
}
