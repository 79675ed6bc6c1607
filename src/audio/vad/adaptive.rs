//! The adaptive detector (`vad.kind = "adaptive"`): speech is a frame well above the line's
//! own noise floor *and* part of a voiced stretch.
//!
//! Per frame:
//! 1. level (dBFS) and the per-call floor by minimum statistics ([`MinimumStatistics`]);
//! 2. a cascade gate: frames less than `snr_db − HOLD_DB` above the floor are noise, and cost
//!    only the level, the floor and a copy of the frame (the voicing filter catches up on the
//!    kept frames when a frame passes the gate);
//! 3. for frames past the gate, the periodicity of the low band ([`Voicing`]);
//! 4. speech starts on a loud *voiced* frame (`snr ≥ vad.snr_db`, periodicity ≥
//!    `vad.voicing`) and continues while frames stay within `HOLD_DB` of that threshold and
//!    voicing was seen in the last `VOICING_HOLD_FRAMES` (unvoiced consonants between vowels).
//!
//! Once the caller has spoken, an onset must also be within 20 dB of their voiced level, so
//! quiet voices far behind them (babble) do not start speech.
//! Steady noise (white, pink, car) sits on the floor; clicks and coughs rise above it but are
//! not periodic; what is left is mostly other people's voices (babble), which are speech.
//! The decision hangs over by 100 ms on a noisy line (fading word endings), 20 ms on a quiet
//! one; the timing of turns
//! (end-of-turn silence, barge-in) is [`super::gate`]'s.

use super::features::Voicing;
use super::noise_floor::MinimumStatistics;
use super::{SpeechDetector, VadFrame, frame_dbfs};

/// Hysteresis: once speaking, frames this much below the start threshold still count.
const HOLD_DB: f32 = 3.0;
/// Unvoiced frames kept in a speech run after the last voiced one (160 ms).
const VOICING_HOLD_FRAMES: u32 = 8;
/// Frames still called speech after a run fails on a noisy line (100 ms): word endings fade
/// under the noise before they end, and losing them would add to a pause and end a turn early.
const HANGOVER_FRAMES: u32 = 5;
/// The same on a quiet line, where the run holds until the ending is below
/// `vad.min_speech_dbfs` (inaudible on a phone): nothing fades under the noise, and a longer
/// hangover would only delay the end of every turn.
const QUIET_HANGOVER_FRAMES: u32 = 1;

/// Once the caller has spoken, a new onset must be within this many dB of their voiced level:
/// quiet voices far behind the caller (babble, a television) are not the caller.
const TALKER_RANGE_DB: f32 = 20.0;
/// How the caller's voiced level follows louder (fast) and quieter (slow) frames, and how it
/// drifts down while they are silent (dB per frame: 0.5 dB/s), so a caller who moves away from
/// the phone is not locked out.
const TALKER_ATTACK: f32 = 0.1;
const TALKER_RELEASE: f32 = 0.02;
const TALKER_DRIFT_DB: f32 = 0.01;

/// Thresholds of [`AdaptiveVad`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveConfig {
    /// A frame must be this far above the noise floor to start speech (dB).
    pub snr_db: f32,
    /// Periodicity (0..1) that makes a frame voiced.
    pub voicing: f32,
    /// Nothing quieter than this is speech, whatever the floor (dBFS).
    pub min_speech_dbfs: f32,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            snr_db: 8.0,
            voicing: 0.65,
            min_speech_dbfs: -60.0,
        }
    }
}

impl From<&crate::config::VadConfig> for AdaptiveConfig {
    fn from(c: &crate::config::VadConfig) -> Self {
        Self {
            snr_db: c.snr_db,
            voicing: c.voicing,
            min_speech_dbfs: c.min_speech_dbfs,
        }
    }
}

/// Noise-floor-relative energy with a voicing cue. About 1 KiB of state, no allocation.
#[derive(Debug, Clone)]
pub struct AdaptiveVad {
    cfg: AdaptiveConfig,
    floor: MinimumStatistics,
    voicing: Voicing,
    speaking: bool,
    hangover: u32,
    since_voiced: u32,
    last_periodicity: f32,
    /// The caller's typical voiced level (dBFS), once heard.
    talker_dbfs: Option<f32>,
}

impl AdaptiveVad {
    pub fn new(cfg: AdaptiveConfig) -> Self {
        Self {
            cfg,
            floor: MinimumStatistics::new(),
            voicing: Voicing::new(),
            speaking: false,
            hangover: 0,
            since_voiced: u32::MAX,
            last_periodicity: 0.0,
            talker_dbfs: None,
        }
    }

    /// The caller's voiced level as tracked so far (dBFS).
    pub fn talker_dbfs(&self) -> Option<f32> {
        self.talker_dbfs
    }

    fn track_talker(&mut self, level_dbfs: f32, voiced_speech: bool) {
        self.talker_dbfs = match (self.talker_dbfs, voiced_speech) {
            (None, true) => Some(level_dbfs),
            (Some(t), true) => {
                let k = if level_dbfs > t {
                    TALKER_ATTACK
                } else {
                    TALKER_RELEASE
                };
                Some(t + k * (level_dbfs - t))
            }
            (Some(t), false) => Some(t - TALKER_DRIFT_DB),
            (None, false) => None,
        };
    }

    /// Periodicity of the last frame that passed the gate (0 for gated-out frames); for a
    /// voiced frame, at least `vad.voicing` (the search stops there), not the peak.
    pub fn last_periodicity(&self) -> f32 {
        self.last_periodicity
    }

    /// The current floor estimate and whether it has seen a whole sub-window yet.
    pub fn floor(&self) -> &MinimumStatistics {
        &self.floor
    }
}

fn logistic(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl SpeechDetector for AdaptiveVad {
    fn name(&self) -> &'static str {
        "adaptive"
    }

    fn push(&mut self, pcm: &[i16]) -> VadFrame {
        let level_dbfs = frame_dbfs(pcm);
        self.floor.push(level_dbfs);
        self.voicing.update(pcm);
        let floor_dbfs = self.floor.floor_dbfs();
        let snr = level_dbfs - floor_dbfs;
        let audible = level_dbfs >= self.cfg.min_speech_dbfs;
        let near = audible && snr >= self.cfg.snr_db - HOLD_DB;
        // Cascade: the lag search only for frames near or above the threshold.
        // The search may stop once the frame is known to be voiced: every use of the value
        // below saturates at the threshold.
        let periodicity = if near {
            self.voicing.periodicity_until(self.cfg.voicing)
        } else {
            0.0
        };
        self.last_periodicity = periodicity;
        let voiced = periodicity >= self.cfg.voicing;
        self.since_voiced = if voiced {
            0
        } else {
            self.since_voiced.saturating_add(1)
        };
        let loud = audible && snr >= self.cfg.snr_db;
        let in_range = self
            .talker_dbfs
            .is_none_or(|t| level_dbfs >= t - TALKER_RANGE_DB);
        self.speaking = if self.speaking {
            near && self.since_voiced <= VOICING_HOLD_FRAMES
        } else {
            loud && voiced && in_range
        };
        self.track_talker(level_dbfs, self.speaking && voiced && loud);
        if self.speaking {
            // Quiet line: the hold threshold above the floor is under the speech minimum.
            let quiet = floor_dbfs + self.cfg.snr_db - HOLD_DB <= self.cfg.min_speech_dbfs;
            self.hangover = if quiet {
                QUIET_HANGOVER_FRAMES
            } else {
                HANGOVER_FRAMES
            };
        } else {
            self.hangover = self.hangover.saturating_sub(1);
        }
        let speech = self.speaking || self.hangover > 0;
        let voicing_score = if self.since_voiced <= VOICING_HOLD_FRAMES {
            1.0
        } else {
            periodicity / self.cfg.voicing.max(1e-3)
        };
        let probability =
            (logistic(snr - self.cfg.snr_db) * voicing_score.min(1.0)).clamp(0.0, 1.0);
        VadFrame {
            probability: if near { probability } else { 0.0 },
            speech,
            voiced: speech && voiced,
            level_dbfs,
        }
    }

    fn noise_floor_dbfs(&self) -> f32 {
        self.floor.floor_dbfs()
    }

    fn reset(&mut self) {
        *self = Self::new(self.cfg);
    }
}
