//! Per-turn latency accounting: end of caller speech → STT final → agent's first token → TTS
//! first byte → first audio frame to Twilio, each stage observed in
//! `voxbridge_turn_stage_seconds{stage, provider}` and kept in the call summary.
//!
//! The `server` stage (provider audio in → frame out) is voxbridge's own added latency.
//! Plain bookkeeping over instants the session supplies; no clocks read here.

use std::time::Instant;

use metrics::histogram;
use serde::Serialize;

pub use crate::metrics::TURN_STAGE;

/// Instants of one turn's milestones.
#[derive(Debug, Clone, Copy)]
pub struct TurnTiming {
    /// The caller's last voiced frame arrived (None for a greeting).
    pub speech_end: Option<Instant>,
    /// The turn was declared over (STT final / VAD end of turn).
    pub turn_end: Instant,
    pub agent_first: Option<Instant>,
    pub tts_first_text: Option<Instant>,
    pub tts_first_audio: Option<Instant>,
}

impl TurnTiming {
    pub fn new(speech_end: Option<Instant>, turn_end: Instant) -> Self {
        Self {
            speech_end,
            turn_end,
            agent_first: None,
            tts_first_text: None,
            tts_first_audio: None,
        }
    }

    /// The first frame of the reply went out at `first_frame`: the breakdown, in ms.
    pub fn finish(&self, first_frame: Instant) -> TurnLatency {
        let ms = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(b.saturating_duration_since(a).as_secs_f64() * 1000.0),
            _ => None,
        };
        TurnLatency {
            stt_ms: ms(self.speech_end, Some(self.turn_end)),
            agent_ms: ms(Some(self.turn_end), self.agent_first),
            tts_ms: ms(self.tts_first_text, self.tts_first_audio),
            server_ms: ms(self.tts_first_audio, Some(first_frame)),
            total_ms: ms(self.speech_end, Some(first_frame)),
        }
    }
}

/// One turn's latency by stage, ms (None where a stage did not apply).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct TurnLatency {
    /// End of speech → turn declared over (STT endpointing, or the VAD's silence).
    pub stt_ms: Option<f64>,
    /// Turn over → the agent's first token (or audio).
    pub agent_ms: Option<f64>,
    /// First text to the TTS → its first audio byte.
    pub tts_ms: Option<f64>,
    /// First audio byte in → first frame to Twilio: voxbridge's own added latency.
    pub server_ms: Option<f64>,
    /// End of speech → first frame to Twilio.
    pub total_ms: Option<f64>,
}

impl TurnLatency {
    /// Observe each stage in the histogram.
    pub fn record(&self, stt: &'static str, agent: &'static str, tts: &'static str) {
        let observe = |stage: &'static str, provider: &'static str, ms: Option<f64>| {
            if let Some(ms) = ms {
                histogram!(TURN_STAGE, "stage" => stage, "provider" => provider)
                    .record(ms / 1000.0);
            }
        };
        observe("stt", stt, self.stt_ms);
        observe("agent", agent, self.agent_ms);
        observe("tts", tts, self.tts_ms);
        observe("server", "voxbridge", self.server_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stages_add_up() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut t = TurnTiming::new(Some(t0), at(300));
        t.agent_first = Some(at(500));
        t.tts_first_text = Some(at(500));
        t.tts_first_audio = Some(at(650));
        let l = t.finish(at(651));
        assert_eq!(l.stt_ms, Some(300.0));
        assert_eq!(l.agent_ms, Some(200.0));
        assert_eq!(l.tts_ms, Some(150.0));
        assert_eq!(l.server_ms, Some(1.0));
        assert_eq!(l.total_ms, Some(651.0));
        let greeting = TurnTiming::new(None, t0).finish(at(10));
        assert_eq!(greeting.total_ms, None);
    }
}
