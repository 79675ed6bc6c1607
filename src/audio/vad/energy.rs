//! The fixed-threshold energy detector voxbridge shipped before issue 11: a frame at or above
//! `turn.vad_threshold_dbfs` (−42 dBFS by default) is voice. It cannot tell noise from speech:
//! any line noise above the threshold is "speech" and the turn never ends. Kept as the
//! evaluation's baseline and for `vad.kind = "fixed_energy"`. It must not grow cleverness:
//! that is [`super::AdaptiveVad`]'s job.

use super::noise_floor::MinimumStatistics;
use super::{SpeechDetector, VadFrame, frame_dbfs};

/// Voice is any frame at or above a fixed level.
#[derive(Debug, Clone)]
pub struct FixedEnergy {
    threshold_dbfs: f32,
    /// Only reported (the decision does not use it), so the two detectors can be compared.
    floor: MinimumStatistics,
}

impl FixedEnergy {
    pub fn new(threshold_dbfs: f32) -> Self {
        Self {
            threshold_dbfs,
            floor: MinimumStatistics::new(),
        }
    }
}

impl SpeechDetector for FixedEnergy {
    fn name(&self) -> &'static str {
        "fixed-energy"
    }

    fn push(&mut self, pcm: &[i16]) -> VadFrame {
        let level_dbfs = frame_dbfs(pcm);
        self.floor.push(level_dbfs);
        let speech = level_dbfs >= self.threshold_dbfs;
        VadFrame {
            probability: if speech { 1.0 } else { 0.0 },
            speech,
            voiced: speech,
            level_dbfs,
        }
    }

    fn noise_floor_dbfs(&self) -> f32 {
        self.floor.floor_dbfs()
    }

    fn reset(&mut self) {
        self.floor = MinimumStatistics::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_inclusive() {
        let mut d = FixedEnergy::new(-42.0);
        // A constant frame's RMS is its value: 262/32768 ≈ −41.94 dBFS, 260 ≈ −42.01 dBFS.
        assert!(d.push(&[262; 160]).speech);
        assert!(!d.push(&[260; 160]).speech);
        let mut at = FixedEnergy::new(frame_dbfs(&[262; 160]));
        assert!(at.push(&[262; 160]).speech, "the threshold itself is voice");
        assert_eq!(d.push(&[0; 160]).level_dbfs, -96.0);
    }
}
