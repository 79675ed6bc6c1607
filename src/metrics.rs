//! Prometheus metrics: the one catalogue of names and help texts ([`CATALOGUE`]), buckets, and
//! pre-registered handles.
//!
//! Conventions (shared/reference/call-quality.md): base units in the name (`_seconds`), counters
//! end in `_total`, and **no per-call labels** — per-call detail goes to logs and call summaries.
//! Hot paths hold the handles in [`Metrics`] so counting a frame is one atomic add, not a
//! registry lookup. This module must not decide *when* to count; callers do.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, counter, describe_counter, describe_gauge};
use metrics::{describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::quality::alerts::AlertState;
use crate::quality::report::{QualityReport, Reason};
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
pub const CALL_MOS: &str = "voxbridge_call_mos";
pub const CALL_JITTER: &str = "voxbridge_call_jitter_seconds";
pub const CALL_LOSS: &str = "voxbridge_call_packet_loss_ratio";
pub const CALL_CLIPPING: &str = "voxbridge_call_clipping_ratio";
pub const CALL_SILENCE: &str = "voxbridge_call_silence_ratio";
pub const CALLS_BY_QUALITY: &str = "voxbridge_calls_by_quality_total";
pub const CALL_QUALITY_ISSUES: &str = "voxbridge_call_quality_issues_total";
pub const QUALITY_ALERTS: &str = "voxbridge_quality_alerts_total";
pub const FRAMES_LOST: &str = "voxbridge_media_frames_lost_total";
pub const PLAYOUT_UNDERRUNS: &str = "voxbridge_playout_underruns_total";
pub const ALERT_WEBHOOK_DELIVERIES: &str = "voxbridge_alert_webhook_deliveries_total";
pub const CALL_REPORTS_DROPPED: &str = "voxbridge_call_reports_dropped_total";
pub const STREAM_TOKENS_REFUSED: &str = "voxbridge_stream_tokens_refused_total";
pub const TURN_STAGE: &str = "voxbridge_turn_stage_seconds";
pub const PROVIDER_ERRORS: &str = "voxbridge_provider_errors_total";
pub const TTS_FALLBACKS: &str = "voxbridge_tts_fallbacks_total";
pub const REQUESTS_REFUSED: &str = "voxbridge_requests_refused_total";
pub const CALL_PANICS: &str = "voxbridge_call_panics_total";
pub const TURNS_UNRECOGNISED: &str = "voxbridge_turns_unrecognised_total";
pub const REALTIME_AUDIO_DROPPED: &str = "voxbridge_realtime_audio_dropped_total";
pub const REALTIME_CONNECT_SECONDS: &str = "voxbridge_realtime_connect_seconds";
pub const REALTIME_PRECONNECTS: &str = "voxbridge_realtime_preconnects_total";
pub const REALTIME_PRECONNECT_PENDING: &str = "voxbridge_realtime_preconnect_pending";
pub const OPEN_CONNECTIONS: &str = "voxbridge_open_connections";
pub const RECORDING_BLOCKS_DROPPED: &str = "voxbridge_recording_blocks_dropped_total";
pub const RECORDING_WRITE_ERRORS: &str = "voxbridge_recording_write_errors_total";
pub const RECORDING_TIMING_EVENTS: &str = "voxbridge_recording_timing_events_total";
pub const RECORDINGS_COMPACTED: &str = "voxbridge_recordings_compacted_total";
pub const RECORDINGS_DELETED: &str = "voxbridge_recordings_deleted_total";
pub const RECORDINGS_SKIPPED: &str = "voxbridge_recordings_skipped_total";
pub const STORE_WRITES: &str = "voxbridge_store_writes_total";
pub const STORE_RETRIES: &str = "voxbridge_store_write_retries_total";
pub const STORE_QUEUE_FULL: &str = "voxbridge_store_queue_full_total";
pub const STORE_PENDING: &str = "voxbridge_store_pending_records";
pub const STORE_DROPPED: &str = "voxbridge_store_records_dropped_total";
pub const API_PROBLEMS: &str = "voxbridge_api_problems_total";
pub const CONSOLE_SIGNINS: &str = "voxbridge_console_signins_total";
pub const CONSOLE_REFUSED: &str = "voxbridge_console_refused_total";
pub const DIALER_DIALS: &str = "voxbridge_dialer_dials_total";
pub const DIALER_CALLBACKS: &str = "voxbridge_dialer_callbacks_total";
pub const DIALER_OUTCOMES: &str = "voxbridge_dialer_outcomes_total";
pub const DIALER_ERRORS: &str = "voxbridge_dialer_errors_total";
pub const DIALER_RECONCILED: &str = "voxbridge_dialer_reconciled_total";

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The catalogue: every metric voxbridge exports, named once, with its help text (and the
/// README's metrics table follows it). A unit test checks nothing on `/metrics` is missing.
pub const CATALOGUE: &[(&str, Kind, &str)] = &[
    (
        ACTIVE_CALLS,
        Kind::Gauge,
        "Media streams currently connected.",
    ),
    (CALLS, Kind::Counter, "Media streams accepted since start."),
    (
        MEDIA_FRAMES_RECEIVED,
        Kind::Counter,
        "Inbound media messages received from Twilio.",
    ),
    (
        MEDIA_FRAMES_SENT,
        Kind::Counter,
        "Outbound media messages sent to Twilio.",
    ),
    (
        PROTOCOL_ERRORS,
        Kind::Counter,
        "Bad inbound frames and disconnects, by reason (fixed set).",
    ),
    (
        RESPONSE_LATENCY,
        Kind::Histogram,
        "End of caller speech to first reply audio frame sent, seconds.",
    ),
    (
        BARGE_INS,
        Kind::Counter,
        "Barge-ins by kind: speech (sustained caller speech), words (STT words), realtime (the \
         provider's VAD); kind=false counts, in addition, barge-ins followed by no words.",
    ),
    (
        RESPONSES,
        Kind::Counter,
        "Agent responses by outcome (played, interrupted, abandoned).",
    ),
    (DTMF, Kind::Counter, "DTMF digits received."),
    (
        OUTBOUND_BACKPRESSURE,
        Kind::Counter,
        "Playout stalls on a full socket writer queue (slow client).",
    ),
    (
        CALLS_REFUSED,
        Kind::Counter,
        "Media streams refused, by reason (fixed set: draining, max_calls, bad_signature, start_timeout = upgraded but no start in time).",
    ),
    (
        STATUS_CALLBACKS,
        Kind::Counter,
        "Twilio status callbacks received.",
    ),
    (
        CALL_MOS,
        Kind::Histogram,
        "Per-call estimated MOS (E-model, 1-4.5), at call end.",
    ),
    (
        CALL_JITTER,
        Kind::Histogram,
        "Per-call mean RFC 3550 interarrival jitter of inbound media, seconds.",
    ),
    (
        CALL_LOSS,
        Kind::Histogram,
        "Per-call share of inbound media frames lost (chunk gaps).",
    ),
    (
        CALL_CLIPPING,
        Kind::Histogram,
        "Per-call share of inbound samples at full scale.",
    ),
    (
        CALL_SILENCE,
        Kind::Histogram,
        "Per-call share of inbound frames below the silence level.",
    ),
    (
        CALLS_BY_QUALITY,
        Kind::Counter,
        "Finished calls by quality band (good, fair, poor).",
    ),
    (
        CALL_QUALITY_ISSUES,
        Kind::Counter,
        "Finished calls flagged with each quality reason.",
    ),
    (
        QUALITY_ALERTS,
        Kind::Counter,
        "Live per-call quality alerts by condition and state.",
    ),
    (
        FRAMES_LOST,
        Kind::Counter,
        "Inbound media frames lost (gaps in chunk numbers).",
    ),
    (
        PLAYOUT_UNDERRUNS,
        Kind::Counter,
        "Times Twilio's playback buffer ran dry in the middle of a response.",
    ),
    (
        ALERT_WEBHOOK_DELIVERIES,
        Kind::Counter,
        "Alert webhook deliveries by outcome (delivered, failed, dropped).",
    ),
    (
        CALL_REPORTS_DROPPED,
        Kind::Counter,
        "Per-call reports not written (queue full or I/O error).",
    ),
    (
        STREAM_TOKENS_REFUSED,
        Kind::Counter,
        "Media streams closed for a missing, forged or expired per-stream token, by reason.",
    ),
    (
        TURN_STAGE,
        Kind::Histogram,
        "Per-turn latency by stage (stt, agent, tts, server = voxbridge's own) and provider, seconds.",
    ),
    (
        PROVIDER_ERRORS,
        Kind::Counter,
        "Speech/LLM provider failures by provider and kind.",
    ),
    (
        TTS_FALLBACKS,
        Kind::Counter,
        "Replies switched to the second TTS or to the apology.",
    ),
    (
        REQUESTS_REFUSED,
        Kind::Counter,
        "Requests and connections refused at admission, by reason (fixed set: bad_signature, rate_limited, body_too_large, too_many_connections, too_many_connections_per_ip, header_timeout, request_timeout).",
    ),
    (
        OPEN_CONNECTIONS,
        Kind::Gauge,
        "TCP connections open now on the public listener (media streams included).",
    ),
    (
        CALL_PANICS,
        Kind::Counter,
        "Call tasks that panicked (that call closed with 1011; others unaffected).",
    ),
    (
        TURNS_UNRECOGNISED,
        Kind::Counter,
        "Caller turns with speech but no recognised words (answered with a reprompt, or the apology while speech-to-text was down).",
    ),
    (
        REALTIME_AUDIO_DROPPED,
        Kind::Counter,
        "Caller audio frames not forwarded to the Realtime socket because its send queue was full.",
    ),
    (
        REALTIME_CONNECT_SECONDS,
        Kind::Histogram,
        "Time to open an OpenAI Realtime socket and complete its session handshake, seconds.",
    ),
    (
        REALTIME_PRECONNECTS,
        Kind::Counter,
        "Realtime sessions opened at the webhook, by outcome (started, claimed, expired, failed, refused).",
    ),
    (
        REALTIME_PRECONNECT_PENDING,
        Kind::Gauge,
        "Realtime sessions opened at the webhook and not yet claimed by their media stream.",
    ),
    (
        RECORDING_BLOCKS_DROPPED,
        Kind::Counter,
        "Recording blocks (250 ms) dropped because the writer queue was full; silence instead, still aligned.",
    ),
    (
        RECORDING_WRITE_ERRORS,
        Kind::Counter,
        "Recording file writes that failed (that recording stops there).",
    ),
    (
        RECORDING_TIMING_EVENTS,
        Kind::Counter,
        "Recording timing events: late_frame (arrived after its place was written), reanchor (media timestamps jumped), cut_too_late (a clear came after unheard audio was written), forced_flush (audio too far ahead of the window).",
    ),
    (
        RECORDINGS_COMPACTED,
        Kind::Counter,
        "Finished recordings compacted, by outcome (ok, failed, dropped = queue full, deleted).",
    ),
    (
        RECORDINGS_DELETED,
        Kind::Counter,
        "Recordings deleted, by reason (retention, request).",
    ),
    (
        RECORDINGS_SKIPPED,
        Kind::Counter,
        "Calls not recorded although recording is on, by reason (bad_call_sid).",
    ),
    (
        STORE_WRITES,
        Kind::Counter,
        "Call record write attempts by outcome (ok, error).",
    ),
    (
        STORE_RETRIES,
        Kind::Counter,
        "Call record writes retried after a failure (database unreachable, busy, timed out).",
    ),
    (
        STORE_QUEUE_FULL,
        Kind::Counter,
        "Call records that found the writer queue full (held in memory beside it, not lost).",
    ),
    (
        STORE_PENDING,
        Kind::Gauge,
        "Call records submitted and not yet written (queued, overflow, retrying).",
    ),
    (
        STORE_DROPPED,
        Kind::Counter,
        "Call records given up, by reason (backlog_full, closed, rejected, shutdown); each is logged with its call_sid.",
    ),
    (
        API_PROBLEMS,
        Kind::Counter,
        "REST API requests answered with a problem (error) document, by status.",
    ),
    (
        CONSOLE_SIGNINS,
        Kind::Counter,
        "Console sign-in attempts by result (ok, refused).",
    ),
    (
        CONSOLE_REFUSED,
        Kind::Counter,
        "Console requests refused, by reason (origin, csrf, not_loopback, bad_input).",
    ),
    (
        DIALER_DIALS,
        Kind::Counter,
        "Outbound dials by result (placed, throttled by Twilio 429/20429, failed).",
    ),
    (
        DIALER_CALLBACKS,
        Kind::Counter,
        "Twilio status and AMD callbacks for dialled calls, by result (progress, ended, amd, duplicate, unknown, bad_status, bad_amd).",
    ),
    (
        DIALER_OUTCOMES,
        Kind::Counter,
        "Finished dial attempts by outcome (answered, voicemail_left, machine, no_answer, busy, failed, cancelled).",
    ),
    (
        DIALER_ERRORS,
        Kind::Counter,
        "Dialer database failures, by stage (claim, dial, sweep); each is logged and retried on the next tick.",
    ),
    (
        DIALER_RECONCILED,
        Kind::Counter,
        "Attempts whose final status was learnt from Twilio (GET Calls/{sid}) instead of a callback.",
    ),
];

/// Buckets for response latency: end-of-turn silence dominates, so resolve 0.5–1.5 s finely.
const LATENCY_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0,
];

const MOS_BUCKETS: &[f64] = &[1.0, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.3, 4.4, 4.5];
const JITTER_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2];
const LOSS_BUCKETS: &[f64] = &[0.0, 0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5];
const CLIPPING_BUCKETS: &[f64] = &[0.0, 0.0001, 0.001, 0.01, 0.05, 0.1];
const STAGE_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0,
];
const SILENCE_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the process-wide Prometheus recorder (once; later calls return the same handle).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for (name, buckets) in [
                (RESPONSE_LATENCY, LATENCY_BUCKETS),
                (CALL_MOS, MOS_BUCKETS),
                (CALL_JITTER, JITTER_BUCKETS),
                (CALL_LOSS, LOSS_BUCKETS),
                (CALL_CLIPPING, CLIPPING_BUCKETS),
                (CALL_SILENCE, SILENCE_BUCKETS),
                (TURN_STAGE, STAGE_BUCKETS),
                (REALTIME_CONNECT_SECONDS, STAGE_BUCKETS),
            ] {
                builder = match builder.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
                {
                    Ok(b) => b,
                    // Only fails on empty bucket lists, which these are not.
                    Err(_) => PrometheusBuilder::new(),
                };
            }
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
    for &(name, kind, help) in CATALOGUE {
        match kind {
            Kind::Counter => describe_counter!(name, help),
            Kind::Gauge => describe_gauge!(name, help),
            Kind::Histogram if name.ends_with("_seconds") => {
                describe_histogram!(name, metrics::Unit::Seconds, help)
            }
            Kind::Histogram => describe_histogram!(name, help),
        }
    }
}

/// Pre-registered handles used on the per-call and per-frame paths.
#[derive(Clone)]
pub struct Metrics {
    pub active_calls: Gauge,
    pub calls: Counter,
    pub frames_received: Counter,
    pub frames_sent: Counter,
    pub response_latency: Histogram,
    pub barge_ins: BargeIns,
    pub responses_played: Counter,
    pub responses_interrupted: Counter,
    pub responses_abandoned: Counter,
    pub dtmf: Counter,
    pub outbound_backpressure: Counter,
    pub turns_unrecognised: Counter,
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
            barge_ins: BargeIns::new(),
            responses_played: counter!(RESPONSES, "outcome" => "played"),
            responses_interrupted: counter!(RESPONSES, "outcome" => "interrupted"),
            responses_abandoned: counter!(RESPONSES, "outcome" => "abandoned"),
            dtmf: counter!(DTMF),
            outbound_backpressure: counter!(OUTBOUND_BACKPRESSURE),
            turns_unrecognised: counter!(TURNS_UNRECOGNISED),
            protocol_errors: ErrorReason::ALL
                .map(|reason| counter!(PROTOCOL_ERRORS, "reason" => reason.as_str())),
        }
    }

    pub fn protocol_error(&self, reason: ErrorReason) {
        self.protocol_errors[reason.index()].increment(1);
    }
}

/// `voxbridge_barge_ins_total` by `kind` (a fixed set).
#[derive(Clone)]
pub struct BargeIns {
    speech: Counter,
    words: Counter,
    realtime: Counter,
    /// Barge-ins followed by no words within `vad.false_barge_in_ms` (counted again here).
    pub false_: Counter,
}

impl BargeIns {
    fn new() -> Self {
        Self {
            speech: counter!(BARGE_INS, "kind" => "speech"),
            words: counter!(BARGE_INS, "kind" => "words"),
            realtime: counter!(BARGE_INS, "kind" => "realtime"),
            false_: counter!(BARGE_INS, "kind" => "false"),
        }
    }

    /// A barge-in from `source` (the `interrupt` source: "speech", "words", "realtime").
    pub fn count(&self, source: &str) {
        match source {
            "words" => self.words.increment(1),
            "realtime" => self.realtime.increment(1),
            _ => self.speech.increment(1),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Record a finished call's quality in the per-call histograms and counters.
pub fn observe_call_quality(report: &QualityReport) {
    histogram!(CALL_MOS).record(report.emodel.mos);
    histogram!(CALL_JITTER).record(report.transport.jitter_mean_ms / 1000.0);
    histogram!(CALL_LOSS).record(report.transport.loss_ratio);
    histogram!(CALL_CLIPPING).record(report.signal.clipping_ratio);
    histogram!(CALL_SILENCE).record(report.signal.silence_ratio);
    counter!(CALLS_BY_QUALITY, "band" => report.band.as_str()).increment(1);
    for reason in &report.reasons {
        counter!(CALL_QUALITY_ISSUES, "reason" => reason.as_str()).increment(1);
    }
    counter!(FRAMES_LOST).increment(report.transport.frames_lost);
    counter!(PLAYOUT_UNDERRUNS).increment(report.outbound.underruns);
}

/// Count a live alert transition.
pub fn quality_alert(condition: Reason, state: AlertState) {
    counter!(QUALITY_ALERTS, "condition" => condition.as_str(), "state" => state.as_str())
        .increment(1);
}

/// Every reason [`CALLS_REFUSED`] is counted under.
pub const CALL_REFUSAL_REASONS: &[&str] =
    &["draining", "max_calls", "bad_signature", "start_timeout"];

/// Count a refused media stream (one of [`CALL_REFUSAL_REASONS`]).
pub fn call_refused(reason: &'static str) {
    counter!(CALLS_REFUSED, "reason" => reason).increment(1);
}
