//! Candidate detectors that are evaluated but not shipped: WebRTC's VAD (libfvad built by
//! `cc`, 8 kHz native) and earshot (a pure-Rust neural VAD at 16 kHz, fed through the project's
//! resampler), plus a cascade of the adaptive detector's floor gate in front of earshot.

use voxbridge::audio::resample::{StreamResampler, i16_to_f32};
use voxbridge::audio::vad::noise_floor::MinimumStatistics;
use voxbridge::audio::vad::{AdaptiveVad, SpeechDetector, VadFrame, frame_dbfs};
use webrtc_vad::{SampleRate, Vad, VadMode};

/// WebRTC VAD at 8 kHz in one of its four modes.
pub struct WebRtc {
    vad: Vad,
    mode: u8,
    floor: MinimumStatistics,
}

// SAFETY: `Vad` owns a heap `Fvad` instance behind a raw pointer that is only touched through
// `&mut self`; libfvad keeps no thread-local or global state, so moving it between threads is
// sound (it is never shared).
unsafe impl Send for WebRtc {}

impl WebRtc {
    pub fn new(mode: u8) -> Self {
        let m = match mode {
            0 => VadMode::Quality,
            1 => VadMode::LowBitrate,
            2 => VadMode::Aggressive,
            _ => VadMode::VeryAggressive,
        };
        Self {
            vad: Vad::new_with_rate_and_mode(SampleRate::Rate8kHz, m),
            mode,
            floor: MinimumStatistics::new(),
        }
    }
}

impl SpeechDetector for WebRtc {
    fn name(&self) -> &'static str {
        ["webrtc-0", "webrtc-1", "webrtc-2", "webrtc-3"][usize::from(self.mode.min(3))]
    }

    fn push(&mut self, pcm: &[i16]) -> VadFrame {
        let level_dbfs = frame_dbfs(pcm);
        self.floor.push(level_dbfs);
        let speech = self.vad.is_voice_segment(pcm).unwrap_or(false);
        VadFrame {
            probability: f32::from(u8::from(speech)),
            speech,
            voiced: speech,
            level_dbfs,
        }
    }

    fn noise_floor_dbfs(&self) -> f32 {
        self.floor.floor_dbfs()
    }

    fn reset(&mut self) {
        *self = Self::new(self.mode);
    }
}

/// earshot on 8 → 16 kHz audio: 256-sample (16 ms) predictions; a 20 ms frame's score is the
/// highest of the predictions it completed (1 or 2), or the last one.
pub struct Earshot {
    det: Box<earshot::Detector>,
    up: StreamResampler,
    pcm: Vec<f32>,
    up_out: Vec<f32>,
    pending: Vec<f32>,
    last: f32,
    threshold: f32,
    floor: MinimumStatistics,
}

impl Earshot {
    pub fn new(threshold: f32) -> Self {
        Self {
            det: earshot::Detector::default_boxed(),
            up: StreamResampler::new(8000, 16000).expect("8 -> 16 kHz is supported"),
            pcm: Vec::with_capacity(160),
            up_out: Vec::with_capacity(640),
            pending: Vec::with_capacity(1024),
            last: 0.0,
            threshold,
            floor: MinimumStatistics::new(),
        }
    }

    fn score(&mut self, pcm: &[i16]) -> f32 {
        self.pcm.clear();
        i16_to_f32(pcm, &mut self.pcm);
        self.up_out.clear();
        if self.up.process(&self.pcm, &mut self.up_out).is_err() {
            return self.last;
        }
        // The resampler can overshoot full scale a little; earshot wants [-1, 1].
        self.pending
            .extend(self.up_out.iter().map(|v| v.clamp(-1.0, 1.0)));
        let mut best: Option<f32> = None;
        let mut at = 0;
        while self.pending.len() - at >= 256 {
            let s = self.det.predict_f32(&self.pending[at..at + 256]);
            best = Some(best.map_or(s, |b| b.max(s)));
            at += 256;
        }
        self.pending.drain(..at);
        if let Some(b) = best {
            self.last = b;
        }
        self.last
    }
}

impl SpeechDetector for Earshot {
    fn name(&self) -> &'static str {
        "earshot"
    }

    fn push(&mut self, pcm: &[i16]) -> VadFrame {
        let level_dbfs = frame_dbfs(pcm);
        self.floor.push(level_dbfs);
        let probability = self.score(pcm);
        VadFrame {
            probability,
            speech: probability >= self.threshold,
            voiced: probability >= self.threshold,
            level_dbfs,
        }
    }

    fn noise_floor_dbfs(&self) -> f32 {
        self.floor.floor_dbfs()
    }

    fn reset(&mut self) {
        *self = Self::new(self.threshold);
    }
}

/// Both must agree: the adaptive detector (floor + voicing) and earshot.
pub struct AdaptiveAndEarshot {
    adaptive: AdaptiveVad,
    earshot: Earshot,
}

impl Default for AdaptiveAndEarshot {
    fn default() -> Self {
        Self {
            adaptive: AdaptiveVad::new(Default::default()),
            earshot: Earshot::new(0.5),
        }
    }
}

impl SpeechDetector for AdaptiveAndEarshot {
    fn name(&self) -> &'static str {
        "adaptive+earshot"
    }

    fn push(&mut self, pcm: &[i16]) -> VadFrame {
        let a = self.adaptive.push(pcm);
        let e = self.earshot.push(pcm);
        VadFrame {
            probability: a.probability.min(e.probability),
            speech: a.speech && e.speech,
            voiced: a.voiced && e.speech,
            level_dbfs: a.level_dbfs,
        }
    }

    fn noise_floor_dbfs(&self) -> f32 {
        self.adaptive.noise_floor_dbfs()
    }

    fn reset(&mut self) {
        self.adaptive.reset();
        self.earshot.reset();
    }
}
