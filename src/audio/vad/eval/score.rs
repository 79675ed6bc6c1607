//! Scoring a detector on the evaluation set. Frame `i` of a clip "arrives" at
//! `t0 + (i + 1) × 20 ms` (when its last sample is in), so a turn that ends exactly
//! `end_of_turn_ms` after its last speech frame has a turn-end error of 0.

use std::time::{Duration, Instant};

use super::{BargeClip, TurnClip};
use crate::audio::vad::gate::{Agent, BargeInGate, GateConfig, GateEvent};
use crate::audio::vad::{FRAME_SAMPLES, SpeechDetector, VadFrame, frame_dbfs};

/// A turn-end report later than this after the true speech end counts as never ended.
pub const STUCK_MS: i64 = 3000;
/// A barge-in this close after an event is blamed on it.
const BLAME_MS: u32 = 300;
/// After a false barge-in the rule is re-armed this much later (the reply would have been cut
/// and the next one started), so a rule fooled by the echo counts once a second at most.
const REARM_MS: u32 = 1000;

/// Run a detector over a clip: its verdicts, and the CPU nanoseconds it spent (wall time where
/// the thread's CPU time cannot be read).
pub fn run(det: &mut dyn SpeechDetector, frames: &[[i16; FRAME_SAMPLES]]) -> (Vec<VadFrame>, u64) {
    det.reset();
    let mut out = Vec::with_capacity(frames.len());
    let wall = std::time::Instant::now();
    let cpu = thread_cpu_ns();
    for f in frames {
        out.push(det.push(f));
    }
    let nanos = match (cpu, thread_cpu_ns()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall.elapsed().as_nanos() as u64,
    };
    (out, nanos)
}

/// CPU time of this thread (Linux `/proc/thread-self/schedstat`, first field, ns): the
/// evaluation machine is shared, and wall time would count other processes' turns. The kernel
/// updates it at least every scheduler tick, so measure spans of many frames.
pub fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn arrival(t0: Instant, i: usize) -> Instant {
    t0 + Duration::from_millis(20 * (i as u64 + 1))
}

fn ms_since(t0: Instant, t: Instant) -> i64 {
    t.saturating_duration_since(t0).as_millis() as i64
}

/// How a detector did on one [`TurnClip`].
#[derive(Debug, Default, Clone)]
pub struct TurnScore {
    pub speech_frames: u32,
    pub missed: u32,
    pub noise_frames: u32,
    pub false_alarms: u32,
    /// Turn-end error (ms, reported − (true end + end_of_turn_ms)) of each turn that ended.
    pub end_errors: Vec<i64>,
    /// Turns cut before their true end (e.g. at the mid-sentence pause).
    pub early: u32,
    /// Turns never reported ended (within [`STUCK_MS`] of the expected end).
    pub stuck: u32,
    /// Turns reported where there was only noise.
    pub spurious: u32,
    /// Noise-only time, and barge-ins on it with the agent busy: (legacy rule, gate rule).
    pub noise_ms: u32,
    pub false_barge_ins: (u32, u32),
}

impl TurnScore {
    pub fn add(&mut self, o: &TurnScore) {
        self.speech_frames += o.speech_frames;
        self.missed += o.missed;
        self.noise_frames += o.noise_frames;
        self.false_alarms += o.false_alarms;
        self.end_errors.extend_from_slice(&o.end_errors);
        self.early += o.early;
        self.stuck += o.stuck;
        self.spurious += o.spurious;
        self.noise_ms += o.noise_ms;
        self.false_barge_ins.0 += o.false_barge_ins.0;
        self.false_barge_ins.1 += o.false_barge_ins.1;
    }

    pub fn missed_pct(&self) -> f64 {
        100.0 * f64::from(self.missed) / f64::from(self.speech_frames.max(1))
    }

    pub fn false_pct(&self) -> f64 {
        100.0 * f64::from(self.false_alarms) / f64::from(self.noise_frames.max(1))
    }

    /// Mean absolute turn-end error of the turns that ended (None: none did).
    pub fn mean_abs_end_error_ms(&self) -> Option<f64> {
        (!self.end_errors.is_empty()).then(|| {
            self.end_errors.iter().map(|e| e.abs() as f64).sum::<f64>()
                / self.end_errors.len() as f64
        })
    }

    /// False barge-ins per minute of noise: (legacy rule, gate rule).
    pub fn false_barge_ins_per_min(&self) -> (f64, f64) {
        let min = f64::from(self.noise_ms.max(1)) / 60_000.0;
        (
            f64::from(self.false_barge_ins.0) / min,
            f64::from(self.false_barge_ins.1) / min,
        )
    }
}

/// Score verdicts on a turn clip: frame accuracy, turn ends with the agent idle, and
/// barge-ins on noise with the agent busy under both rules.
pub fn score_turn_clip(
    clip: &TurnClip,
    verdicts: &[VadFrame],
    gate: GateConfig,
    legacy: GateConfig,
) -> TurnScore {
    let truth = clip.labels();
    let mut s = TurnScore::default();
    for (v, &t) in verdicts.iter().zip(&truth) {
        match (t, v.speech) {
            (true, false) => s.missed += 1,
            (false, true) => s.false_alarms += 1,
            _ => {}
        }
        if t {
            s.speech_frames += 1;
        } else {
            s.noise_frames += 1;
        }
    }
    let t0 = Instant::now();
    let clip_ms = verdicts.len() as u32 * 20;
    // Turn ends, agent idle.
    let mut ends: Vec<(i64, i64)> = Vec::new(); // (reported at, speech end)
    let mut g = BargeInGate::new(gate);
    for (i, v) in verdicts.iter().enumerate() {
        for e in g.on_frame(arrival(t0, i), *v, Agent::Idle) {
            if let GateEvent::TurnEnded { speech_end, .. } = e {
                ends.push((ms_since(t0, arrival(t0, i)), ms_since(t0, speech_end)));
            }
        }
    }
    let eot = i64::from(gate.end_of_turn_ms);
    for (k, turn) in clip.turns.iter().enumerate() {
        let next = clip.turns.get(k + 1).map_or(clip_ms, |t| t.start_ms);
        let expected = i64::from(turn.end_ms) + eot;
        let first = ends
            .iter()
            .find(|(at, _)| *at > i64::from(turn.start_ms) && *at <= i64::from(next));
        match first {
            Some((_, end)) if *end < i64::from(turn.end_ms) - 100 => s.early += 1,
            Some((at, _)) if at - expected <= STUCK_MS => s.end_errors.push(at - expected),
            _ => s.stuck += 1,
        }
    }
    let in_turn = |ms: i64, slack: i64| {
        clip.turns
            .iter()
            .any(|t| ms >= i64::from(t.start_ms) - slack && ms <= i64::from(t.end_ms) + slack)
    };
    s.spurious = ends.iter().filter(|(_, end)| !in_turn(*end, 300)).count() as u32;
    // Barge-ins on noise, agent busy (nothing audible, so no echo rule).
    s.noise_ms = clip_ms
        - clip
            .turns
            .iter()
            .map(|t| t.end_ms - t.start_ms)
            .sum::<u32>();
    for (rule, count) in [
        (legacy, &mut s.false_barge_ins.0),
        (gate, &mut s.false_barge_ins.1),
    ] {
        let mut g = BargeInGate::new(rule);
        for (i, v) in verdicts.iter().enumerate() {
            for e in g.on_frame(arrival(t0, i), *v, Agent::Busy) {
                if matches!(e, GateEvent::BargeIn { .. })
                    && !in_turn(ms_since(t0, arrival(t0, i)), 300)
                {
                    *count += 1;
                }
            }
        }
    }
    s
}

/// How a rule did on one [`BargeClip`].
#[derive(Debug, Default, Clone)]
pub struct BargeScore {
    /// Agent speech before the interruption (ms).
    pub agent_ms: u32,
    /// False barge-ins, blamed on the event they followed ("echo/noise" otherwise).
    pub false_by_kind: Vec<(String, u32)>,
    /// Delay from the interruption's start to the barge-in (None: missed).
    pub interruption_ms: Option<u32>,
}

impl BargeScore {
    pub fn false_total(&self) -> u32 {
        self.false_by_kind.iter().map(|(_, n)| n).sum()
    }

    fn blame(&mut self, kind: &str) {
        match self.false_by_kind.iter_mut().find(|(k, _)| k == kind) {
            Some((_, n)) => *n += 1,
            None => self.false_by_kind.push((kind.to_owned(), 1)),
        }
    }
}

/// Score verdicts on a barge-in clip under `rule`, with the agent playing `agent` (its frames).
pub fn score_barge_clip(
    clip: &BargeClip,
    verdicts: &[VadFrame],
    agent: &[[i16; FRAME_SAMPLES]],
    rule: GateConfig,
) -> BargeScore {
    let t0 = Instant::now();
    let mut s = BargeScore::default();
    let Some(interruption) = clip.events.iter().find(|e| e.kind == "interruption") else {
        return s;
    };
    s.agent_ms = interruption.start_ms;
    let mut g = BargeInGate::new(rule);
    let mut rearm_at = 0;
    for (i, v) in verdicts.iter().enumerate() {
        let level_dbfs = agent.get(i).map_or(-96.0, |f| frame_dbfs(f));
        let now_ms = 20 * (i as u32 + 1);
        if now_ms < rearm_at {
            continue;
        }
        if now_ms == rearm_at {
            g = BargeInGate::new(rule);
        }
        for e in g.on_frame(arrival(t0, i), *v, Agent::Playing { level_dbfs }) {
            if !matches!(e, GateEvent::BargeIn { .. }) {
                continue;
            }
            if now_ms >= interruption.start_ms {
                if now_ms <= interruption.end_ms {
                    s.interruption_ms = Some(now_ms - interruption.start_ms);
                }
                return s;
            }
            let kind = clip
                .events
                .iter()
                .find(|e| now_ms >= e.start_ms && now_ms <= e.end_ms + BLAME_MS)
                .map_or("echo/noise", |e| e.kind.as_str());
            s.blame(kind);
            rearm_at = now_ms + REARM_MS;
        }
    }
    s
}
