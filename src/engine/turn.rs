//! The caller's current utterance: [`Utterance`] keeps the μ-law audio of the turn, with a
//! little pre-roll so word onsets are not clipped. When turns start and end, and when a reply
//! is cut, is decided by [`crate::audio::vad::BargeInGate`] (see [`super::caller`]), which
//! replaced the fixed-threshold turn detector of before issue 11 (its rules — speech start,
//! end of turn `end_of_turn_ms` after the last speech, short blips discarded, pauses not ending
//! a turn — are the gate's idle-agent rules, tested there). No allocation per frame once
//! warmed up; nothing here knows about sockets, playout or agents.

use std::collections::VecDeque;

pub use crate::audio::frame_dbfs;

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

    /// Is a turn being recorded (between [`Utterance::start`] and `finish`/`discard`)?
    pub fn is_recording(&self) -> bool {
        self.recording
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
            // The ring keeps the last `pre_roll_bytes`: drop the oldest, append in bulk (one
            // or two slice copies, not a byte at a time).
            let keep = &mulaw[mulaw.len().saturating_sub(self.pre_roll_bytes)..];
            let excess = (self.pre_roll.len() + keep.len()).saturating_sub(self.pre_roll_bytes);
            self.pre_roll.drain(..excess);
            self.pre_roll.extend(keep);
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
    fn the_pre_roll_is_the_last_bytes_in_order_whatever_the_frame_size() {
        // 30 ms of pre-roll (240 bytes) from 20 ms and odd-sized frames, and no pre-roll.
        let mut u = Utterance::new(30, 1000);
        let mut all = Vec::new();
        for (k, len) in [160usize, 160, 7, 300, 160, 1].into_iter().enumerate() {
            let frame: Vec<u8> = (0..len).map(|i| (k * 31 + i) as u8).collect();
            u.push(&frame, false);
            all.extend_from_slice(&frame);
        }
        u.start();
        assert_eq!(u.finish(1000, 1000), all[all.len() - 240..]);
        let mut none = Utterance::new(0, 1000);
        none.push(&[9; 160], true);
        none.start();
        assert!(none.finish(1000, 1000).is_empty());
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
