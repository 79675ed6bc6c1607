//! The caller's side of turn-taking for the engines with a local detector (echo, cascade):
//! the [`BargeInGate`] fed with the session's per-frame detector verdicts, and the μ-law
//! [`Utterance`] of the turn being spoken.
//!
//! Per frame it says what the engine must do ([`Step`]): a turn began, the reply must be cut
//! (sustained speech, or words from the STT via [`CallerTurns::on_words`]), the turn ended (with
//! its audio), the last barge-in proved false. Speech over a busy agent is recorded from its
//! first frame (a contest), so a barge-in's turn keeps its onset; a contest that stops short
//! (a cough, a click, "uh-huh") is forgotten. What the agent is doing comes in as an
//! [`Agent`]; this module reads no clock, does no I/O and allocates only when a turn ends.

use std::time::Instant;

use crate::audio::vad::gate::{Agent, BargeInCause, BargeInGate, GateConfig, GateEvent};
use crate::call::events::AudioFrame;
use crate::config::Config;
use crate::engine::turn::Utterance;

/// Audio kept before the voice onset and after the last voiced frame of an utterance.
pub const UTTERANCE_LEAD_MS: u32 = 20;
pub const UTTERANCE_TAIL_MS: u32 = 60;

/// A caller turn that is over.
#[derive(Debug)]
pub struct EndedTurn {
    /// Its μ-law audio, trimmed to the speech (with [`UTTERANCE_LEAD_MS`]/[`UTTERANCE_TAIL_MS`]).
    pub audio: Vec<u8>,
    pub speech_ms: u32,
    /// Arrival of its last speech frame (the start of response latency).
    pub speech_end: Instant,
}

/// What one frame (or one set of words) asks of the engine.
#[derive(Debug, Default)]
pub struct Step {
    /// A new caller turn began with this frame (not a barge-in: the agent was idle).
    pub started: bool,
    /// Cut the reply now: the caller's turn has begun.
    pub barge_in: Option<BargeInCause>,
    pub ended: Option<EndedTurn>,
    /// A turn too short to be one was dropped.
    pub discarded: bool,
    /// The last barge-in got no words in time (count it; nothing resumes).
    pub false_barge_in: bool,
}

impl Step {
    /// The caller's speech began now, one way or the other.
    pub fn began(&self) -> bool {
        self.started || self.barge_in.is_some()
    }
}

/// The label of a barge-in's cause, as `interrupt` sources and metric kinds.
pub fn cause_label(cause: BargeInCause) -> &'static str {
    match cause {
        BargeInCause::Speech => "speech",
        BargeInCause::Words => "words",
    }
}

/// Gate + utterance for one call.
#[derive(Debug)]
pub struct CallerTurns {
    gate: BargeInGate,
    utterance: Utterance,
    /// When the caller's current utterance began.
    started_at: Option<Instant>,
}

impl CallerTurns {
    /// `stt`: words are expected from a speech-to-text (false barge-ins can be told).
    pub fn new(config: &Config, stt: bool) -> Self {
        Self {
            gate: BargeInGate::new(GateConfig::new(&config.turn, &config.vad, stt)),
            utterance: Utterance::new(config.turn.pre_roll_ms, config.limits.max_utterance_ms),
            started_at: None,
        }
    }

    /// When the caller's current (or just ended) utterance began.
    pub fn take_started_at(&mut self) -> Option<Instant> {
        self.started_at.take()
    }

    /// Is a caller turn in progress (started, or barged in)?
    pub fn in_turn(&self) -> bool {
        self.gate.in_turn()
    }

    /// One inbound frame, with what the agent is doing as it arrives.
    pub fn on_audio(&mut self, f: &AudioFrame<'_>, agent: Agent) -> Step {
        let mut step = Step::default();
        for event in self.gate.on_frame(f.at, f.vad, agent) {
            match event {
                GateEvent::Contest => self.begin(f.at),
                GateEvent::SpeechStarted => {
                    if !self.utterance.is_recording() {
                        self.begin(f.at);
                    }
                    step.started = true;
                }
                GateEvent::BargeIn { cause } => {
                    if !self.utterance.is_recording() {
                        self.begin(f.at);
                    }
                    step.barge_in = Some(cause);
                }
                GateEvent::Resume { .. } => {
                    self.utterance.discard();
                    self.started_at = None;
                }
                GateEvent::Hold => {}
                GateEvent::FalseBargeIn => step.false_barge_in = true,
                GateEvent::TurnEnded {
                    speech_ms,
                    speech_end,
                } => {
                    // This frame still belongs to the turn's tail (trimmed by `finish`).
                    self.utterance.push(f.mulaw, f.voiced);
                    let audio = self.utterance.finish(UTTERANCE_LEAD_MS, UTTERANCE_TAIL_MS);
                    step.ended = Some(EndedTurn {
                        audio,
                        speech_ms,
                        speech_end,
                    });
                    return step;
                }
                GateEvent::Discarded => {
                    self.utterance.discard();
                    step.discarded = true;
                }
            }
        }
        self.utterance.push(f.mulaw, f.voiced);
        step
    }

    /// Words from the STT (interim or final): words that are not a backchannel cut a reply the
    /// caller is speaking over, and confirm the last barge-in.
    pub fn on_words(&mut self, now: Instant, text: &str) -> Step {
        let mut step = Step::default();
        for event in self.gate.on_words(now, text) {
            if let GateEvent::BargeIn { cause } = event {
                step.barge_in = Some(cause);
            }
        }
        step
    }

    fn begin(&mut self, at: Instant) {
        self.utterance.start();
        self.started_at = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::vad::VadFrame;
    use std::time::Duration;

    const PLAYING: Agent = Agent::Playing { level_dbfs: -20.0 };

    /// Feed `n` frames (speech or not) after frame `*i`, collecting the steps.
    fn feed(t: &mut CallerTurns, i: &mut u64, speech: bool, agent: Agent, n: u64) -> Vec<Step> {
        let t0 = Instant::now();
        let mulaw = [if speech { 0x20u8 } else { 0xFF }; 160];
        let pcm = [0i16; 160];
        (0..n)
            .map(|_| {
                *i += 1;
                let vad = VadFrame {
                    probability: f32::from(u8::from(speech)),
                    speech,
                    voiced: speech,
                    level_dbfs: if speech { -20.0 } else { -70.0 },
                };
                let f = AudioFrame {
                    at: t0 + Duration::from_millis(20 * *i),
                    chunk: *i,
                    timestamp_ms: 20 * *i,
                    mulaw: &mulaw,
                    pcm: &pcm,
                    payload_b64: "",
                    level_dbfs: vad.level_dbfs,
                    voiced: speech,
                    vad,
                    noise_floor_dbfs: -70.0,
                    playing: agent != Agent::Idle,
                };
                t.on_audio(&f, agent)
            })
            .collect()
    }

    #[test]
    fn a_barge_in_keeps_its_onset_and_one_without_words_is_false() {
        let cfg = Config::default();
        let mut t = CallerTurns::new(&cfg, true);
        let mut i = 0;
        feed(&mut t, &mut i, false, PLAYING, 10);
        let steps = feed(&mut t, &mut i, true, PLAYING, 40);
        let cut = steps.iter().position(|s| s.barge_in.is_some()).unwrap();
        assert_eq!(steps[cut].barge_in, Some(BargeInCause::Speech));
        let cut_ms = (cut + 1) * 20; // `cut` is the index of the frame that cut
        assert!(cut_ms > 400, "cut after {cut_ms} ms");
        // No words follow: `vad.false_barge_in_ms` after the cut it is counted false.
        let steps = feed(&mut t, &mut i, false, Agent::Idle, 100);
        let ended = steps.iter().find_map(|s| s.ended.as_ref()).unwrap();
        // The turn's audio starts at the contest's first frame (plus the lead), not at the cut.
        assert!(ended.audio.len() >= 40 * 160, "{} bytes", ended.audio.len());
        let false_at = steps.iter().position(|s| s.false_barge_in).unwrap() as u64;
        let after_cut = (40 - cut as u64) + false_at;
        assert!(
            (after_cut * 20).abs_diff(u64::from(cfg.vad.false_barge_in_ms)) <= 20,
            "false after {} ms",
            after_cut * 20
        );

        // Words confirm it: never false.
        let mut t = CallerTurns::new(&cfg, true);
        let mut i = 0;
        feed(&mut t, &mut i, true, PLAYING, 30);
        let words = t.on_words(Instant::now(), "no stop");
        assert!(words.barge_in.is_none(), "already cut by speech");
        let steps = feed(&mut t, &mut i, false, Agent::Idle, 100);
        assert!(!steps.iter().any(|s| s.false_barge_in));
    }

    #[test]
    fn a_short_contest_is_forgotten() {
        let cfg = Config::default();
        let mut t = CallerTurns::new(&cfg, false);
        let mut i = 0;
        let mut steps = feed(&mut t, &mut i, true, PLAYING, 15); // 300 ms: "uh-huh"
        steps.extend(feed(&mut t, &mut i, false, PLAYING, 20));
        steps.extend(feed(&mut t, &mut i, false, Agent::Idle, 50));
        assert!(
            steps
                .iter()
                .all(|s| !s.began() && s.ended.is_none() && !s.false_barge_in)
        );
        assert!(!t.in_turn());
    }
}
