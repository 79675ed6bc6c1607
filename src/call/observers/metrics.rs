//! The metrics observer: counts the call-event stream into the process-wide Prometheus
//! metrics through pre-registered handles (one atomic add per event on the hot path). No
//! per-call labels; per-call detail belongs to the summary and the record.

use crate::call::events::{CallEvent, TurnKind};
use crate::metrics::Metrics;

pub struct MetricsTap {
    m: Metrics,
}

impl MetricsTap {
    pub fn new(m: Metrics) -> Self {
        Self { m }
    }

    pub fn on_event(&mut self, event: &CallEvent<'_>) {
        let m = &self.m;
        match event {
            CallEvent::MediaReceived => m.frames_received.increment(1),
            CallEvent::Dtmf(_) => m.dtmf.increment(1),
            CallEvent::ResponsePlayed(_) => m.responses_played.increment(1),
            CallEvent::BargeIn { cleared, .. } => {
                m.barge_ins.increment(1);
                m.responses_interrupted.increment(cleared.ids.len() as u64);
            }
            CallEvent::Abandoned(n) => m.responses_abandoned.increment(*n),
            CallEvent::Backpressure => m.outbound_backpressure.increment(1),
            CallEvent::Turn(TurnKind::Unrecognised) => m.turns_unrecognised.increment(1),
            CallEvent::ProtocolError { reason, .. } => m.protocol_error(*reason),
            CallEvent::Latency {
                latency, providers, ..
            } => {
                latency.record(providers.stt, providers.agent, providers.tts);
                if let Some(total) = latency.total_ms {
                    m.response_latency.record(total / 1000.0);
                }
            }
            _ => {}
        }
    }
}
