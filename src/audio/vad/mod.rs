//! Voice activity detection for the caller's leg: is this 20 ms frame of 8 kHz phone audio
//! speech, and how loud is the line's noise?
//!
//! - [`SpeechDetector`] is the one small trait every detector sits behind: push one frame of
//!   linear PCM, get a [`VadFrame`] (probability, decision, level); ask for the line's noise
//!   floor.
//! - [`FixedEnergy`] is the detector voxbridge used up to issue 11 (a frame at or above
//!   `turn.vad_threshold_dbfs` is voice). It is kept as the baseline of the evaluation.
//! - [`AdaptiveVad`] is the chosen detector: a per-call noise floor by minimum statistics
//!   ([`noise_floor`]), a threshold relative to it (`vad.snr_db`), and a voicing cue (the
//!   periodicity of the low band, by normalised autocorrelation, [`features`]) that tells
//!   speech from steady noise, clicks and coughs.
//! - [`gate`] turns per-frame decisions into barge-in and end-of-turn decisions
//!   ([`gate::BargeInGate`]), knowing what we are playing.
//! - [`eval`] loads the evaluation set in `fixtures/vad/` and scores any detector on it
//!   (`cargo run --release --example vad_eval`).
//!
//! What this module must not do: read clocks (instants are passed in), allocate per frame,
//! block, or know about sockets, sessions or engines.

pub mod adaptive;
pub mod energy;
pub mod eval;
pub mod features;
pub mod gate;
#[cfg(test)]
mod gate_tests;
pub mod noise_floor;

use serde::Deserialize;

pub use adaptive::AdaptiveVad;
pub use energy::FixedEnergy;
pub use gate::BargeInGate;

/// Samples in one 20 ms frame at 8 kHz (Twilio's frame).
pub const FRAME_SAMPLES: usize = 160;
/// Duration of one frame.
pub const FRAME_MS: u32 = 20;

/// What a detector says about one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadFrame {
    /// How likely the frame is speech, 0..=1 (detectors without a score give 0 or 1).
    pub probability: f32,
    /// The detector's decision for this frame (with its own short hysteresis and hangover).
    pub speech: bool,
    /// The frame itself is voiced (periodic). Detectors without the cue copy `speech`.
    /// The gate counts only voiced frames towards a barge-in, so a loud unvoiced burst
    /// (a cough) riding on a speech run cannot cut the reply.
    pub voiced: bool,
    /// Level of the frame in dBFS (full scale 32768; digital silence is -96).
    pub level_dbfs: f32,
}

/// A streaming voice activity detector for one call's inbound audio.
///
/// Frames are 20 ms of 8 kHz mono linear PCM ([`FRAME_SAMPLES`] samples); a detector given a
/// frame of another length still answers (from what it has), but is only specified for 20 ms.
pub trait SpeechDetector: Send {
    /// Short name for reports ("fixed-energy", "adaptive", …).
    fn name(&self) -> &'static str;
    /// Classify the next frame.
    fn push(&mut self, pcm: &[i16]) -> VadFrame;
    /// The line's noise floor as the detector currently sees it, in dBFS.
    fn noise_floor_dbfs(&self) -> f32;
    /// Forget the stream (a new call).
    fn reset(&mut self);
}

/// Which detector a call gets (`vad.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VadKind {
    /// The pre-issue-11 fixed threshold (`turn.vad_threshold_dbfs`).
    FixedEnergy,
    /// Adaptive noise floor + voicing ([`AdaptiveVad`]).
    Adaptive,
}

/// Level of a frame of linear PCM in dBFS (full scale = 32768); silence gives -96.
/// Same definition as `call::turn::frame_dbfs` and the quality meter's `energy_dbfs`.
pub fn frame_dbfs(pcm: &[i16]) -> f32 {
    if pcm.is_empty() {
        return -96.0;
    }
    let energy: i64 = pcm.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    power_dbfs(energy as f64 / pcm.len() as f64)
}

/// dBFS of a mean square (in i16 units squared), floored at -96.
pub fn power_dbfs(mean_square: f64) -> f32 {
    if mean_square < 1.0 {
        return -96.0;
    }
    (10.0 * (mean_square / (32768.0 * 32768.0)).log10()).max(-96.0) as f32
}

/// Build the detector `kind` for one call.
pub fn detector(kind: VadKind, cfg: &crate::config::VadConfig, fixed_dbfs: f32) -> Detector {
    match kind {
        VadKind::FixedEnergy => Detector::Fixed(FixedEnergy::new(fixed_dbfs)),
        VadKind::Adaptive => Detector::Adaptive(Box::new(AdaptiveVad::new(cfg.into()))),
    }
}

/// A detector picked by configuration, without dynamic dispatch on the media path.
#[derive(Debug)]
pub enum Detector {
    Fixed(FixedEnergy),
    Adaptive(Box<AdaptiveVad>),
}

impl SpeechDetector for Detector {
    fn name(&self) -> &'static str {
        match self {
            Self::Fixed(d) => d.name(),
            Self::Adaptive(d) => d.name(),
        }
    }

    fn push(&mut self, pcm: &[i16]) -> VadFrame {
        match self {
            Self::Fixed(d) => d.push(pcm),
            Self::Adaptive(d) => d.push(pcm),
        }
    }

    fn noise_floor_dbfs(&self) -> f32 {
        match self {
            Self::Fixed(d) => d.noise_floor_dbfs(),
            Self::Adaptive(d) => d.noise_floor_dbfs(),
        }
    }

    fn reset(&mut self) {
        match self {
            Self::Fixed(d) => d.reset(),
            Self::Adaptive(d) => d.reset(),
        }
    }
}
