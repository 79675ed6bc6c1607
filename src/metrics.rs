//! Prometheus metrics: names, help texts, buckets, and pre-registered handles.
//!
//! Conventions (shared/reference/call-quality.md): base units in the name (`_seconds`), counters
//! end in `_total`, and **no per-call labels** — per-call detail goes to logs and call summaries.
//! Hot paths hold the handles in [`Metrics`] so counting a frame is one atomic add, not a
//! registry lookup. This module must not decide *when* to count; callers do.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, counter, describe_counter, describe_gauge};
use metrics::{describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::twilio::messages::ErrorReason;

pub const ACTIVE_CALLS: &str = "voxbridge_active_calls";
pub const CALLS: &str = "voxbridge_calls_total";
pub const MEDIA_FRAMES_RECEIVED: &str = "voxbridge_media_frames_received_total";
pub const MEDIA_FRAMES_SENT: &str = "voxbridge_media_frames_sent_total";
pub const PROTOCOL_ERRORS: &str = "voxbridge_protocol_errors_total";
pub const RESPONSE_LATENCY: &str = "voxbridge_response_latency_seconds";
pub const BARGE_INS: &str = "voxbridge_barge_ins_total";
pub const RESPONSES: &str = "voxbridge_responses_total";
pub const DTMF: &str = "voxbridge_dtmf_digits_total";
pub const OUTBOUND_BACKPRESSURE: &str = "voxbridge_outbound_backpressure_total";
pub const CALLS_REFUSED: &str = "voxbridge_calls_refused_total";
pub const STATUS_CALLBACKS: &str = "voxbridge_status_callbacks_total";

/// Buckets for response latency: end-of-turn silence dominates, so resolve 0.5–1.5 s finely.
const LATENCY_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the process-wide Prometheus recorder (once; later calls return the same handle).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(RESPONSE_LATENCY.into()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is already global (an embedding application's);
            // then we still render our own (empty) registry rather than crash.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_gauge!(ACTIVE_CALLS, "Media streams currently connected.");
    describe_counter!(CALLS, "Media streams accepted since start.");
    describe_counter!(
        MEDIA_FRAMES_RECEIVED,
        "Inbound media messages received from Twilio."
    );
    describe_counter!(MEDIA_FRAMES_SENT, "Outbound media messages sent to Twilio.");
    describe_counter!(
        PROTOCOL_ERRORS,
        "Bad inbound frames and disconnects, by reason (fixed set)."
    );
    describe_histogram!(
        RESPONSE_LATENCY,
        metrics::Unit::Seconds,
        "End of caller speech to first reply audio frame sent."
    );
    describe_counter!(BARGE_INS, "Responses interrupted by the caller speaking.");
    describe_counter!(
        RESPONSES,
        "Agent responses by outcome (played, interrupted, abandoned)."
    );
    describe_counter!(DTMF, "DTMF digits received.");
    describe_counter!(
        OUTBOUND_BACKPRESSURE,
        "Playout ticks deferred because the socket writer queue was full (slow client)."
    );
    describe_counter!(CALLS_REFUSED, "Media stream upgrades refused, by reason.");
    describe_counter!(STATUS_CALLBACKS, "Twilio status callbacks received.");
}

/// Pre-registered handles used on the per-call and per-frame paths.
#[derive(Clone)]
pub struct Metrics {
    pub active_calls: Gauge,
    pub calls: Counter,
    pub frames_received: Counter,
    pub frames_sent: Counter,
    pub response_latency: Histogram,
    pub barge_ins: Counter,
    pub responses_played: Counter,
    pub responses_interrupted: Counter,
    pub responses_abandoned: Counter,
    pub dtmf: Counter,
    pub outbound_backpressure: Counter,
    protocol_errors: [Counter; ErrorReason::ALL.len()],
}

impl Metrics {
    /// Handles bound to the global recorder; call after [`install`].
    pub fn new() -> Self {
        Self {
            active_calls: gauge!(ACTIVE_CALLS),
            calls: counter!(CALLS),
            frames_received: counter!(MEDIA_FRAMES_RECEIVED),
            frames_sent: counter!(MEDIA_FRAMES_SENT),
            response_latency: histogram!(RESPONSE_LATENCY),
            barge_ins: counter!(BARGE_INS),
            responses_played: counter!(RESPONSES, "outcome" => "played"),
            responses_interrupted: counter!(RESPONSES, "outcome" => "interrupted"),
            responses_abandoned: counter!(RESPONSES, "outcome" => "abandoned"),
            dtmf: counter!(DTMF),
            outbound_backpressure: counter!(OUTBOUND_BACKPRESSURE),
            protocol_errors: ErrorReason::ALL
                .map(|reason| counter!(PROTOCOL_ERRORS, "reason" => reason.as_str())),
        }
    }

    pub fn protocol_error(&self, reason: ErrorReason) {
        self.protocol_errors[reason.index()].increment(1);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Count a refused media stream upgrade (`draining`, …).
pub fn call_refused(reason: &'static str) {
    counter!(CALLS_REFUSED, "reason" => reason).increment(1);
}
