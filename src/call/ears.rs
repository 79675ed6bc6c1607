//! The session's ears: each inbound frame decoded once — μ-law to PCM, its level, and the
//! call's speech detector's verdict — so the engine and every observer see the same analysis
//! and nobody decodes twice. The detector (`vad.kind`, [`crate::audio::vad`]) is per call: it
//! tracks this line's noise floor, and its thresholds are relative to it. Buffers and detector
//! state are allocated once per call: nothing is allocated per frame.
//!
//! Must not keep turn state (engines do, with [`crate::audio::vad::BargeInGate`]) or
//! call-quality statistics (the quality meter does).

use crate::audio::mulaw;
use crate::audio::vad::{self, Detector, SpeechDetector, VadFrame};
use crate::config::{TurnConfig, VadConfig};

pub struct Ears {
    /// The frame's μ-law bytes (the codec decodes base64 into it).
    pub payload: Vec<u8>,
    pcm: Vec<i16>,
    detector: Detector,
}

/// What the ears made of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heard {
    pub level_dbfs: f32,
    /// The detector says speech (with its own short hangover).
    pub voiced: bool,
    /// The detector's whole verdict (probability, periodic voicing), for the turn gate.
    pub vad: VadFrame,
    /// The line's noise floor as the detector tracks it now (dBFS).
    pub noise_floor_dbfs: f32,
}

impl Ears {
    pub fn new(turn: &TurnConfig, vad_cfg: &VadConfig) -> Self {
        Self {
            payload: Vec::with_capacity(1024),
            pcm: Vec::with_capacity(1024),
            detector: vad::detector(vad_cfg.kind, vad_cfg, turn.vad_threshold_dbfs),
        }
    }

    /// Decode and judge the frame now in [`Ears::payload`].
    pub fn listen(&mut self) -> Heard {
        self.pcm.resize(self.payload.len(), 0);
        mulaw::decode_into(&self.payload, &mut self.pcm);
        let v = self.detector.push(&self.pcm);
        Heard {
            level_dbfs: v.level_dbfs,
            voiced: v.speech,
            vad: v,
            noise_floor_dbfs: self.detector.noise_floor_dbfs(),
        }
    }

    /// The frame's μ-law and PCM, as of the last [`Ears::listen`].
    pub fn frame(&self) -> (&[u8], &[i16]) {
        (&self.payload, &self.pcm)
    }

    /// Which detector these ears use (for logs).
    pub fn detector_name(&self) -> &'static str {
        self.detector.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn ears(kind: vad::VadKind) -> Ears {
        let mut cfg = Config::default();
        cfg.vad.kind = kind;
        Ears::new(&cfg.turn, &cfg.vad)
    }

    /// Steady loud noise is speech to the fixed threshold and not to the adaptive detector,
    /// whose floor settles on it; a voiced tone above that floor is speech to both.
    #[test]
    fn the_adaptive_detector_hears_speech_over_noise_not_the_noise() {
        let mut rng = 0x1234_5678_u32;
        let mut noise = move || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            ((rng >> 16) as i32 - 32768) as f32 / 32768.0
        };
        let mut run = |e: &mut Ears, voice: bool, frames: usize| -> usize {
            let mut speech = 0;
            for k in 0..frames {
                let pcm: Vec<i16> = (0..160)
                    .map(|i| {
                        let t = (k * 160 + i) as f32 / 8000.0;
                        let v: f32 = if voice {
                            (1..=6)
                                .map(|h| {
                                    (std::f32::consts::TAU * 130.0 * h as f32 * t).sin() / h as f32
                                })
                                .sum::<f32>()
                                * 2500.0
                        } else {
                            0.0
                        };
                        (v + noise() * 600.0) as i16 // noise about -38 dBFS
                    })
                    .collect();
                e.payload.clear();
                e.payload.extend(pcm.iter().map(|&s| mulaw::encode(s)));
                speech += usize::from(e.listen().voiced);
            }
            speech
        };
        let mut fixed = ears(vad::VadKind::FixedEnergy);
        assert_eq!(
            run(&mut fixed, false, 150),
            150,
            "noise over -42 dBFS is voice to it"
        );
        let mut adaptive = ears(vad::VadKind::Adaptive);
        assert_eq!(adaptive.detector_name(), "adaptive");
        assert!(run(&mut adaptive, false, 150) <= 3);
        let floor = adaptive.listen().noise_floor_dbfs;
        assert!((-42.0..-34.0).contains(&floor), "floor {floor}");
        assert!(run(&mut adaptive, true, 50) >= 45);
    }
}
