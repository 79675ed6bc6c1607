//! Turn detection: speech start and end of turn from per-frame voice activity, with
//! hysteresis, and the caller's current utterance.
//!
//! The detector sees one inbound frame's voice-activity verdict at a time (the session's
//! speech detector decides what is voice) and says when the caller *starts*
//! speaking (used for barge-in) and when their *turn ends* (silence for `end_of_turn_ms` after
//! at least `min_utterance_ms` of speech). [`Utterance`] keeps the μ-law audio of the turn, with a
//! little pre-roll so word onsets are not clipped. Neither allocates per frame once warmed up,
//! and neither knows about sockets, playout or agents.

use std::collections::VecDeque;
use std::time::Instant;

use crate::config::TurnConfig;

pub use crate::audio::frame_dbfs;

/// What a frame changed about the caller's turn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TurnEvent {
    /// Voice has lasted `speech_start_ms`: the caller is speaking.
    SpeechStarted,
    /// The caller stopped speaking `end_of_turn_ms` ago. `speech_end` is when the last voiced
    /// frame arrived, the start of response latency.
    TurnEnded { speech_ms: u32, speech_end: Instant },
    /// Speech too short to be a turn (a cough, a click); it is forgotten.
    Discarded,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Silent {
        voiced_ms: u32,
    },
    Speaking {
        speech_ms: u32,
        silence_ms: u32,
        last_voiced: Instant,
    },
}

/// Voice activity → speech start / end of turn.
#[derive(Debug)]
pub struct TurnDetector {
    speech_start_ms: u32,
    end_of_turn_ms: u32,
    min_utterance_ms: u32,
    state: State,
}

impl TurnDetector {
    pub fn new(cfg: &TurnConfig) -> Self {
        Self {
            speech_start_ms: cfg.speech_start_ms,
            end_of_turn_ms: cfg.end_of_turn_ms,
            min_utterance_ms: cfg.min_utterance_ms,
            state: State::Silent { voiced_ms: 0 },
        }
    }

    pub fn is_speaking(&self) -> bool {
        matches!(self.state, State::Speaking { .. })
    }

    /// Feed one frame's voice-activity verdict and duration; `now` is its arrival time.
    pub fn push(&mut self, voiced: bool, frame_ms: u32, now: Instant) -> Option<TurnEvent> {
        match &mut self.state {
            State::Silent { voiced_ms } => {
                if !voiced {
                    *voiced_ms = 0;
                    return None;
                }
                *voiced_ms += frame_ms;
                if *voiced_ms >= self.speech_start_ms {
                    self.state = State::Speaking {
                        speech_ms: *voiced_ms,
                        silence_ms: 0,
                        last_voiced: now,
                    };
                    return Some(TurnEvent::SpeechStarted);
                }
                None
            }
            State::Speaking {
                speech_ms,
                silence_ms,
                last_voiced,
            } => {
                if voiced {
                    *speech_ms += frame_ms + *silence_ms;
                    *silence_ms = 0;
                    *last_voiced = now;
                    return None;
                }
                *silence_ms += frame_ms;
                if *silence_ms < self.end_of_turn_ms {
                    return None;
                }
                let (speech_ms, speech_end) = (*speech_ms, *last_voiced);
                self.state = State::Silent { voiced_ms: 0 };
                if speech_ms < self.min_utterance_ms {
                    Some(TurnEvent::Discarded)
                } else {
                    Some(TurnEvent::TurnEnded {
                        speech_ms,
                        speech_end,
                    })
                }
            }
        }
    }
}

/// The μ-law audio of the caller's current turn, bounded by `max_bytes`.
///
/// While the caller is silent only the last `pre_roll` bytes are kept (a ring); once speech
/// starts every frame is appended. When the buffer is full the newest audio is dropped — the
/// agent gets the first `max_utterance_ms` of an over-long turn.
#[derive(Debug)]
pub struct Utterance {
    pre_roll: VecDeque<u8>,
    pre_roll_bytes: usize,
    audio: Vec<u8>,
    /// Offset in `audio` where the voiced run that started the turn begins.
    first_voiced: usize,
    /// Length of `audio` at the end of the last voiced frame (trailing silence is trimmed).
    voiced_len: usize,
    /// Bytes of voice at the end of the pre-roll (the onset of the speech being detected).
    pre_roll_voiced: usize,
    max_bytes: usize,
    recording: bool,
}

impl Utterance {
    /// `pre_roll_ms` and `max_ms` at 8 kHz μ-law (8 bytes per ms).
    pub fn new(pre_roll_ms: u32, max_ms: u32) -> Self {
        let pre_roll_bytes = pre_roll_ms as usize * 8;
        Self {
            pre_roll: VecDeque::with_capacity(pre_roll_bytes),
            pre_roll_bytes,
            audio: Vec::new(),
            first_voiced: 0,
            voiced_len: 0,
            pre_roll_voiced: 0,
            max_bytes: max_ms as usize * 8,
            recording: false,
        }
    }

    /// Begin recording: the pre-roll becomes the start of the utterance.
    pub fn start(&mut self) {
        self.audio.clear();
        self.audio.extend(self.pre_roll.drain(..));
        self.voiced_len = self.audio.len();
        self.first_voiced = self.audio.len() - self.pre_roll_voiced.min(self.audio.len());
        self.pre_roll_voiced = 0;
        self.recording = true;
    }

    /// Add one frame of caller audio.
    pub fn push(&mut self, mulaw: &[u8], voiced: bool) {
        if !self.recording {
            self.pre_roll_voiced = if voiced {
                self.pre_roll_voiced + mulaw.len()
            } else {
                0
            };
            for &b in mulaw {
                if self.pre_roll.len() == self.pre_roll_bytes {
                    self.pre_roll.pop_front();
                }
                if self.pre_roll_bytes > 0 {
                    self.pre_roll.push_back(b);
                }
            }
            return;
        }
        let room = self.max_bytes.saturating_sub(self.audio.len());
        let take = mulaw.len().min(room);
        self.audio.extend_from_slice(&mulaw[..take]);
        if voiced && take > 0 {
            self.voiced_len = self.audio.len();
        }
    }

    /// Finish the turn, keeping `lead_ms` of the pre-roll before the voice onset (at most the
    /// whole pre-roll) and `tail_ms` after the last voiced frame.
    pub fn finish(&mut self, lead_ms: u32, tail_ms: u32) -> Vec<u8> {
        self.recording = false;
        let end = (self.voiced_len + tail_ms as usize * 8).min(self.audio.len());
        self.audio.truncate(end);
        let start = self
            .first_voiced
            .saturating_sub(lead_ms as usize * 8)
            .min(end);
        self.audio.drain(..start);
        std::mem::take(&mut self.audio)
    }

    /// Forget the current turn (it was noise).
    pub fn discard(&mut self) {
        self.recording = false;
        self.audio.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> TurnConfig {
        TurnConfig {
            source: crate::config::TurnSource::Vad,
            vad_threshold_dbfs: -42.0,
            speech_start_ms: 60,
            end_of_turn_ms: 600,
            min_utterance_ms: 200,
            pre_roll_ms: 200,
        }
    }

    #[test]
    fn levels_are_in_dbfs() {
        assert_eq!(frame_dbfs(&[0; 160]), -96.0);
        let full: Vec<i16> = (0..160)
            .map(|i| if i % 2 == 0 { 32767 } else { -32767 })
            .collect();
        assert!(frame_dbfs(&full) > -0.01);
        let quiet = vec![100i16; 160];
        assert!((frame_dbfs(&quiet) - (-50.3)).abs() < 0.1);
    }

    #[test]
    fn speech_start_then_end_of_turn() {
        let mut d = TurnDetector::new(&cfg());
        let t0 = Instant::now();
        let at = |i: u64| t0 + Duration::from_millis(20 * i);
        assert_eq!(d.push(true, 20, at(0)), None);
        assert_eq!(d.push(true, 20, at(1)), None);
        assert_eq!(d.push(true, 20, at(2)), Some(TurnEvent::SpeechStarted));
        for i in 3..50 {
            assert_eq!(d.push(true, 20, at(i)), None);
        }
        // 29 silent frames (580 ms) keep the turn open; the 30th ends it.
        for i in 50..79 {
            assert_eq!(d.push(false, 20, at(i)), None, "frame {i}");
        }
        match d.push(false, 20, at(79)) {
            Some(TurnEvent::TurnEnded {
                speech_ms,
                speech_end,
            }) => {
                assert_eq!(speech_ms, 1000);
                assert_eq!(speech_end, at(49));
            }
            other => panic!("expected end of turn, got {other:?}"),
        }
        assert!(!d.is_speaking());
    }

    #[test]
    fn short_blips_are_discarded_and_pauses_do_not_end_turns() {
        let mut d = TurnDetector::new(&cfg());
        let now = Instant::now();
        // 40 ms of voice is not speech.
        d.push(true, 20, now);
        d.push(true, 20, now);
        assert_eq!(d.push(false, 20, now), None);
        assert!(!d.is_speaking());
        // 100 ms of voice, then silence: started, then discarded (< 200 ms).
        for _ in 0..5 {
            d.push(true, 20, now);
        }
        assert!(d.is_speaking());
        let events: Vec<_> = (0..30).filter_map(|_| d.push(false, 20, now)).collect();
        assert_eq!(events, vec![TurnEvent::Discarded]);
        // A 400 ms pause inside speech does not end the turn.
        for _ in 0..20 {
            d.push(true, 20, now);
        }
        for _ in 0..20 {
            assert_eq!(d.push(false, 20, now), None);
        }
        d.push(true, 20, now);
        assert!(d.is_speaking());
    }

    #[test]
    fn utterance_keeps_pre_roll_and_trims_silence() {
        let mut u = Utterance::new(40, 1000);
        u.push(&[1; 160], false); // older than the pre-roll
        u.push(&[2; 160], false);
        u.push(&[3; 160], true); // the onset, seen before speech was confirmed
        u.start();
        u.push(&[4; 160], true);
        u.push(&[0xFF; 160], false);
        u.push(&[0xFF; 160], false);
        let mut whole = Utterance::new(40, 1000);
        for (b, v) in [(1, false), (2, false), (3, true)] {
            whole.push(&[b; 160], v);
        }
        whole.start();
        whole.push(&[4; 160], true);
        // Full pre-roll kept with a generous lead; trimmed to the onset with none.
        assert_eq!(whole.finish(1000, 0).len(), 480);
        let audio = u.finish(0, 20);
        assert_eq!(audio.len(), 160 + 160 + 160);
        assert!(audio[..160].iter().all(|&b| b == 3));
        assert!(audio[160..320].iter().all(|&b| b == 4));
    }

    #[test]
    fn utterance_is_bounded() {
        let mut u = Utterance::new(0, 1000);
        u.start();
        for _ in 0..100 {
            u.push(&[7; 160], true);
        }
        assert_eq!(u.finish(0, 0).len(), 8000);
    }
}
