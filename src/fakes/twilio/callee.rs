//! Who picks up at a destination number: a scripted human, an answering machine (greeting,
//! beep, then it records), or a line that is busy, never answers, or fails. A number can have
//! one behaviour per attempt (`no_answer` on the first dial, `human` on the second, …).
//!
//! Pure description plus the simulated-caller script it turns into; the lifecycle in
//! `call.rs` decides timing against Twilio's rules. Audio is 8 kHz μ-law.

use std::time::Duration;

use bytes::Bytes;

use crate::audio::mulaw;
use crate::fakes::synth_speech;
use crate::sim::Step;

/// The lines [`Callee::human`] says, in turn (cycled).
pub const HUMAN_LINES: [&str; 3] = [
    "Hello, who is this?",
    "Yes, tell me more about it",
    "Thank you, goodbye",
];
/// What [`Callee::machine`]'s voicemail says before the beep.
pub const MACHINE_GREETING: &str = "Hi, you have reached Alex. I cannot take your call right now. Please leave a message after the tone";

/// One destination's behaviour for one attempt.
#[derive(Debug, Clone)]
pub enum Callee {
    Human(Human),
    Machine(Machine),
    /// Rings briefly, then `busy`.
    Busy,
    /// Rings until the request's `Timeout`, then `no-answer`.
    NoAnswer,
    /// The carrier fails the call at once (`failed`, no ringing).
    Fail,
}

/// A person: answers after `ring`, then per turn waits `pause`, says a line and waits for the
/// agent's reply to finish (at most `reply_timeout`); after the last turn, `hang_up_after` of
/// silence and they hang up.
#[derive(Debug, Clone)]
pub struct Human {
    pub ring: Duration,
    pub lines: Vec<Bytes>,
    pub pause: Duration,
    pub reply_timeout: Duration,
    pub hang_up_after: Duration,
}

/// A voicemail box: answers after `ring`, plays `greeting` then `beep`, then records what it
/// hears until a message has played and `record_tail` of silence followed (or `record_max`
/// passed with nothing), and hangs up.
#[derive(Debug, Clone)]
pub struct Machine {
    pub ring: Duration,
    pub greeting: Bytes,
    pub beep: Bytes,
    pub record_max: Duration,
    pub record_tail: Duration,
}

impl Human {
    /// Says these lines, synthesised (`synth_speech`), one per turn.
    pub fn saying(lines: &[&str]) -> Self {
        Self::with_audio(lines.iter().map(|l| speech(l)).collect())
    }

    /// Says these μ-law clips, one per turn.
    pub fn with_audio(lines: Vec<Bytes>) -> Self {
        Self {
            ring: Duration::from_millis(300),
            lines,
            pause: Duration::from_millis(300),
            reply_timeout: Duration::from_secs(15),
            hang_up_after: Duration::from_millis(300),
        }
    }

    /// The simulated leg's script for the whole conversation.
    pub(super) fn steps(&self) -> Vec<Step> {
        let mut steps = Vec::with_capacity(self.lines.len() * 3 + 1);
        for line in &self.lines {
            steps.push(Step::Silence(self.pause));
            steps.push(Step::Speak(line.clone()));
            steps.push(Step::WaitForReplyEnd(self.reply_timeout));
        }
        steps.push(Step::Silence(self.hang_up_after));
        steps
    }

    /// Time from the stream's start to the end of the first line (AMD's "human" moment).
    pub(super) fn first_words_end(&self) -> Duration {
        self.pause + self.lines.first().map_or(Duration::ZERO, |l| audio_len(l))
    }
}

impl Default for Machine {
    fn default() -> Self {
        Self {
            ring: Duration::from_millis(300),
            greeting: speech(MACHINE_GREETING),
            beep: beep(),
            record_max: Duration::from_secs(30),
            record_tail: Duration::from_millis(1500),
        }
    }
}

impl Machine {
    /// The stream script: from `greeting_offset` into the greeting (AMD may have consumed the
    /// start of it before the stream opened), the beep (unless `skip_beep`), then recording.
    pub(super) fn steps(&self, greeting_offset: Duration, skip_beep: bool) -> Vec<Step> {
        let mut steps = Vec::with_capacity(4);
        if !skip_beep {
            if self.streams_greeting(greeting_offset) {
                let skip = greeting_offset.as_millis() as usize * 8;
                steps.push(Step::Speak(self.greeting.slice(skip..)));
            }
            steps.push(Step::Speak(self.beep.clone()));
        }
        steps.push(Step::WaitForReplyEnd(self.record_max));
        steps.push(Step::Silence(self.record_tail));
        steps
    }

    /// Some of the greeting is left to stream after `greeting_offset`.
    pub(super) fn streams_greeting(&self, greeting_offset: Duration) -> bool {
        (greeting_offset.as_millis() as usize).saturating_mul(8) < self.greeting.len()
    }

    pub(super) fn greeting_len(&self) -> Duration {
        audio_len(&self.greeting)
    }

    pub(super) fn beep_len(&self) -> Duration {
        audio_len(&self.beep)
    }
}

impl Callee {
    /// A human who talks for `turns` turns (lines from [`HUMAN_LINES`], cycled).
    pub fn human(turns: usize) -> Self {
        let lines: Vec<&str> = HUMAN_LINES.iter().copied().cycle().take(turns).collect();
        Callee::Human(Human::saying(&lines))
    }

    /// The default voicemail box ([`MACHINE_GREETING`], a 1 kHz beep).
    pub fn machine() -> Self {
        Callee::Machine(Machine::default())
    }

    /// A short label: `human`, `machine`, `busy`, `no_answer`, `fail`.
    pub fn label(&self) -> &'static str {
        match self {
            Callee::Human(_) => "human",
            Callee::Machine(_) => "machine",
            Callee::Busy => "busy",
            Callee::NoAnswer => "no_answer",
            Callee::Fail => "fail",
        }
    }

    /// One behaviour per attempt from `human[:TURNS]`, `machine`, `busy`, `no_answer`, `fail`,
    /// comma-separated (e.g. `no_answer,human:2`; the last one repeats for later attempts).
    pub fn parse_sequence(spec: &str) -> Result<Vec<Callee>, String> {
        let parsed: Result<Vec<Callee>, String> = spec
            .split(',')
            .map(|part| {
                let part = part.trim();
                let (name, arg) = part.split_once(':').unwrap_or((part, ""));
                match (name, arg) {
                    ("human", "") => Ok(Callee::human(2)),
                    ("human", n) => n
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=50).contains(n))
                        .map(Callee::human)
                        .ok_or_else(|| format!("human:{n}: turns must be 1 to 50")),
                    ("machine", "") => Ok(Callee::machine()),
                    ("busy", "") => Ok(Callee::Busy),
                    ("no_answer" | "no-answer", "") => Ok(Callee::NoAnswer),
                    ("fail" | "failed", "") => Ok(Callee::Fail),
                    _ => Err(format!(
                        "unknown callee {part:?} (human[:TURNS], machine, busy, no_answer, fail)"
                    )),
                }
            })
            .collect();
        match parsed {
            Ok(v) if v.is_empty() => Err("empty callee sequence".into()),
            other => other,
        }
    }
}

/// `text` as synthetic speech, 8 kHz μ-law.
pub fn speech(text: &str) -> Bytes {
    let pcm = synth_speech(text, 8000);
    let mut out = vec![0u8; pcm.len()];
    mulaw::encode_into(&pcm, &mut out);
    out.into()
}

/// A voicemail beep: 1 kHz, 500 ms, about −9 dBFS, 8 kHz μ-law.
pub fn beep() -> Bytes {
    let pcm: Vec<i16> = (0..4000)
        .map(|i| {
            let t = i as f32 / 8000.0;
            ((2.0 * std::f32::consts::PI * 1000.0 * t).sin() * 11_000.0) as i16
        })
        .collect();
    let mut out = vec![0u8; pcm.len()];
    mulaw::encode_into(&pcm, &mut out);
    out.into()
}

/// Playing time of 8 kHz μ-law audio, rounded up to whole 20 ms frames (as the sim sends it).
pub(super) fn audio_len(mulaw_audio: &[u8]) -> Duration {
    Duration::from_millis(mulaw_audio.len().div_ceil(160) as u64 * 20)
}

/// Milliseconds of `mulaw_audio` (whole 20 ms frames) at or above `threshold_dbfs`.
pub fn voiced_ms(mulaw_audio: &[u8], threshold_dbfs: f32) -> u64 {
    let mut pcm = [0i16; 160];
    let mut voiced = 0;
    for frame in mulaw_audio.chunks(160) {
        mulaw::decode_into(frame, &mut pcm[..frame.len()]);
        let energy: f64 = pcm[..frame.len()]
            .iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum::<f64>()
            / frame.len().max(1) as f64;
        let dbfs = 10.0 * (energy.max(1e-9) / (32768.0 * 32768.0)).log10();
        if dbfs >= f64::from(threshold_dbfs) {
            voiced += 20;
        }
    }
    voiced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_parse() {
        let seq = Callee::parse_sequence("no_answer, human:3,busy,machine,fail").unwrap();
        let labels: Vec<&str> = seq.iter().map(Callee::label).collect();
        assert_eq!(labels, ["no_answer", "human", "busy", "machine", "fail"]);
        match &seq[1] {
            Callee::Human(h) => assert_eq!(h.lines.len(), 3),
            other => panic!("{other:?}"),
        }
        assert!(Callee::parse_sequence("human:0").is_err());
        assert!(Callee::parse_sequence("robot").is_err());
        assert!(Callee::parse_sequence("").is_err());
    }

    #[test]
    fn scripts_and_audio() {
        let Callee::Human(h) = Callee::human(2) else {
            unreachable!()
        };
        assert_eq!(h.steps().len(), 7);
        assert!(h.first_words_end() > Duration::from_millis(500));
        let m = Machine::default();
        assert_eq!(m.beep_len(), Duration::from_millis(500));
        assert!(voiced_ms(&m.beep, -42.0) == 500);
        assert!(voiced_ms(&m.greeting, -42.0) > 2000);
        assert_eq!(voiced_ms(&[mulaw::SILENCE; 1600], -42.0), 0);
        assert_eq!(m.steps(Duration::ZERO, false).len(), 4);
        assert_eq!(m.steps(Duration::ZERO, true).len(), 2);
        // Past the end of the greeting: only the beep and the recording remain.
        assert_eq!(m.steps(Duration::from_secs(60), false).len(), 3);
    }
}
