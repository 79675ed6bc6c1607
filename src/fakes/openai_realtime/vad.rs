//! The fake Realtime server's voice activity detector: an energy VAD with hysteresis over the
//! audio the client appends, deciding in audio time only (bytes appended / bytes per ms) when
//! speech starts and stops, the way `server_vad` reports it (`audio_start_ms` includes the
//! prefix padding, `audio_end_ms` includes the silence that ended the turn).
//!
//! It is synchronous and deterministic: the same audio gives the same events however it is
//! chunked or paced. It must not look at the wall clock or do I/O.

use crate::audio::mulaw;

/// One VAD frame: 20 ms.
const FRAME_MS: u64 = 20;
/// Voiced frames in a row before speech counts as started (60 ms).
const START_FRAMES: u32 = 3;
/// Once speaking, frames stay voiced down to this many dB under the start level.
const HYSTERESIS_DB: f32 = 6.0;

/// How the fake hears appended audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputCoding {
    /// G.711 μ-law, 8 kHz: 8 bytes per ms.
    Mulaw8k,
    /// 16-bit little-endian PCM, 24 kHz: 48 bytes per ms.
    Pcm24k,
}

impl InputCoding {
    pub fn bytes_per_ms(self) -> u64 {
        match self {
            InputCoding::Mulaw8k => 8,
            InputCoding::Pcm24k => 48,
        }
    }
}

/// `server_vad` parameters (semantic VAD is mapped onto these by eagerness).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadSettings {
    /// 0..1 as in the API; mapped to a start level of `-60 + 40 × threshold` dBFS.
    pub threshold: f64,
    pub prefix_padding_ms: u64,
    pub silence_duration_ms: u64,
}

impl Default for VadSettings {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 200,
        }
    }
}

/// Speech boundaries, in ms of appended audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    Started { audio_start_ms: u64 },
    Stopped { audio_end_ms: u64 },
}

/// Appended audio in, speech boundaries out.
#[derive(Debug)]
pub struct Vad {
    settings: VadSettings,
    coding: InputCoding,
    carry: Vec<u8>,
    /// Whole frames processed.
    frames: u64,
    voiced_run: u32,
    silent_run_ms: u64,
    speaking: bool,
}

impl Vad {
    pub fn new(settings: VadSettings, coding: InputCoding) -> Self {
        Self {
            settings,
            coding,
            carry: Vec::with_capacity(frame_bytes(coding)),
            frames: 0,
            voiced_run: 0,
            silent_run_ms: 0,
            speaking: false,
        }
    }

    /// New parameters (a `session.update`); the audio clock carries on.
    pub fn configure(&mut self, settings: VadSettings, coding: InputCoding) {
        self.settings = settings;
        if coding != self.coding {
            self.coding = coding;
            self.carry.clear();
        }
    }

    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// Feed appended audio (any length); boundaries found are appended to `out`.
    pub fn push(&mut self, mut audio: &[u8], out: &mut Vec<VadEvent>) {
        let frame = frame_bytes(self.coding);
        while !audio.is_empty() {
            let take = (frame - self.carry.len()).min(audio.len());
            self.carry.extend_from_slice(&audio[..take]);
            audio = &audio[take..];
            if self.carry.len() == frame {
                let level = frame_dbfs(&self.carry, self.coding);
                self.carry.clear();
                self.frame(level, out);
            }
        }
    }

    fn frame(&mut self, level: f32, out: &mut Vec<VadEvent>) {
        self.frames += 1;
        let now_ms = self.frames * FRAME_MS;
        let start_db = -60.0 + 40.0 * self.settings.threshold.clamp(0.0, 1.0) as f32;
        if !self.speaking {
            if level >= start_db {
                self.voiced_run += 1;
            } else {
                self.voiced_run = 0;
            }
            if self.voiced_run >= START_FRAMES {
                self.speaking = true;
                self.silent_run_ms = 0;
                let first_voiced = now_ms - u64::from(self.voiced_run) * FRAME_MS;
                let audio_start_ms = first_voiced.saturating_sub(self.settings.prefix_padding_ms);
                out.push(VadEvent::Started { audio_start_ms });
            }
            return;
        }
        if level >= start_db - HYSTERESIS_DB {
            self.silent_run_ms = 0;
        } else {
            self.silent_run_ms += FRAME_MS;
            if self.silent_run_ms >= self.settings.silence_duration_ms.max(FRAME_MS) {
                self.speaking = false;
                self.voiced_run = 0;
                out.push(VadEvent::Stopped {
                    audio_end_ms: now_ms,
                });
            }
        }
    }
}

fn frame_bytes(coding: InputCoding) -> usize {
    (coding.bytes_per_ms() * FRAME_MS) as usize
}

/// RMS level of one frame in dBFS (-96 for digital silence).
fn frame_dbfs(frame: &[u8], coding: InputCoding) -> f32 {
    let (sum, n) = match coding {
        InputCoding::Mulaw8k => frame.iter().fold((0f64, 0usize), |(s, n), &b| {
            let v = f64::from(mulaw::decode(b));
            (s + v * v, n + 1)
        }),
        InputCoding::Pcm24k => frame.chunks_exact(2).fold((0f64, 0usize), |(s, n), b| {
            let v = f64::from(i16::from_le_bytes([b[0], b[1]]));
            (s + v * v, n + 1)
        }),
    };
    if n == 0 || sum == 0.0 {
        return -96.0;
    }
    let rms = (sum / n as f64).sqrt() / 32768.0;
    (20.0 * rms.log10()).max(-96.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speech(text: &str, silence_ms: usize) -> Vec<u8> {
        let mut audio: Vec<u8> = crate::fakes::synth_speech(text, 8000)
            .into_iter()
            .map(mulaw::encode)
            .collect();
        audio.extend(std::iter::repeat_n(mulaw::SILENCE, silence_ms * 8));
        audio
    }

    fn run(audio: &[u8], chunk: usize, settings: VadSettings) -> Vec<VadEvent> {
        let mut vad = Vad::new(settings, InputCoding::Mulaw8k);
        let mut out = Vec::new();
        for c in audio.chunks(chunk) {
            vad.push(c, &mut out);
        }
        out
    }

    #[test]
    fn one_utterance_gives_start_with_padding_and_stop_after_silence() {
        let mut audio = vec![mulaw::SILENCE; 8000]; // 1 s of silence first
        audio.extend(speech("hello there how are you", 1000));
        let settings = VadSettings {
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
        };
        let events = run(&audio, 160, settings);
        assert_eq!(events.len(), 2, "{events:?}");
        let VadEvent::Started { audio_start_ms } = events[0] else {
            panic!("{events:?}");
        };
        // Speech begins at 1000 ms; the synth's envelope needs a few ms to get loud.
        assert!((680..=760).contains(&audio_start_ms), "{audio_start_ms}");
        let VadEvent::Stopped { audio_end_ms } = events[1] else {
            panic!("{events:?}");
        };
        let speech_end = 1000 + (audio.len() as u64 / 8 - 1000 - 1000);
        assert!(
            audio_end_ms >= speech_end + 400 && audio_end_ms <= speech_end + 600,
            "{audio_end_ms} vs {speech_end}"
        );
        // Chunking does not matter: audio time, not arrival.
        assert_eq!(run(&audio, 333, settings), events);
    }

    #[test]
    fn gaps_between_words_do_not_end_the_turn_and_silence_says_nothing() {
        assert!(run(&[mulaw::SILENCE; 16000], 160, VadSettings::default()).is_empty());
        let audio = speech("one two three four five six", 800);
        let events = run(&audio, 160, VadSettings::default());
        assert_eq!(events.len(), 2, "{events:?}");
        // 40 dB quieter: below the default threshold, above a low one.
        let quiet: Vec<u8> = audio
            .iter()
            .map(|&b| mulaw::encode(mulaw::decode(b) / 100))
            .collect();
        assert!(run(&quiet, 160, VadSettings::default()).is_empty());
        let sensitive = VadSettings {
            threshold: 0.05,
            ..VadSettings::default()
        };
        assert_eq!(run(&quiet, 160, sensitive).len(), 2);
    }
}
