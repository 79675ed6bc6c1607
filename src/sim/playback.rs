//! A model of Twilio's outbound playback buffer, as the caller's phone experiences it.
//!
//! Twilio queues the audio a server sends and plays it in order in real time. A mark sits in
//! the queue behind the audio sent before it and is returned when playback passes it — or at
//! once if nothing is queued. `clear` empties the queue and returns every pending mark at once
//! (shared/reference/twilio-media-streams.md). This model does exactly that, one 20 ms tick at a
//! time, and does no I/O: the simulator sends back the marks it returns.

use std::collections::VecDeque;

use crate::audio::mulaw;

/// 20 ms of 8 kHz μ-law.
pub const FRAME_BYTES: usize = 160;

#[derive(Debug)]
enum Item {
    Audio(Vec<u8>),
    Mark(String),
}

#[derive(Debug, Default)]
pub struct PlaybackBuffer {
    items: VecDeque<Item>,
    /// Bytes of the front audio item already played.
    offset: usize,
    queued_bytes: usize,
}

impl PlaybackBuffer {
    /// Queue received audio.
    pub fn push_audio(&mut self, audio: Vec<u8>) {
        if audio.is_empty() {
            return;
        }
        self.queued_bytes += audio.len();
        self.items.push_back(Item::Audio(audio));
    }

    /// Queue a mark; returns it at once if nothing is playing.
    pub fn push_mark(&mut self, name: String) -> Option<String> {
        if self.items.is_empty() {
            return Some(name);
        }
        self.items.push_back(Item::Mark(name));
        None
    }

    /// Empty the buffer; returns the marks that were pending, in order.
    pub fn clear(&mut self) -> Vec<String> {
        let marks = self
            .items
            .drain(..)
            .filter_map(|item| match item {
                Item::Mark(name) => Some(name),
                Item::Audio(_) => None,
            })
            .collect();
        self.offset = 0;
        self.queued_bytes = 0;
        marks
    }

    /// Milliseconds of audio waiting to be played.
    pub fn queued_ms(&self) -> usize {
        self.queued_bytes / 8
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Play one 20 ms tick into `heard` (silence where the buffer runs dry); `marks` receives the
    /// marks playback passed. Returns how many bytes of real audio were played.
    pub fn tick(&mut self, heard: &mut Vec<u8>, marks: &mut Vec<String>) -> usize {
        let mut played = 0;
        while played < FRAME_BYTES {
            match self.items.front() {
                Some(Item::Mark(_)) => {
                    if let Some(Item::Mark(name)) = self.items.pop_front() {
                        marks.push(name);
                    }
                }
                Some(Item::Audio(audio)) => {
                    let take = (audio.len() - self.offset).min(FRAME_BYTES - played);
                    heard.extend_from_slice(&audio[self.offset..self.offset + take]);
                    self.offset += take;
                    played += take;
                    self.queued_bytes -= take;
                    if self.offset == audio.len() {
                        self.items.pop_front();
                        self.offset = 0;
                    }
                }
                None => break,
            }
        }
        // Marks right behind the audio just played are passed too.
        while let Some(Item::Mark(_)) = self.items.front() {
            if let Some(Item::Mark(name)) = self.items.pop_front() {
                marks.push(name);
            }
        }
        heard.resize(heard.len() + FRAME_BYTES - played, mulaw::SILENCE);
        played
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plays_in_order_and_returns_marks_when_passed() {
        let mut b = PlaybackBuffer::default();
        assert_eq!(b.push_mark("early".into()), Some("early".into()));
        b.push_audio(vec![1; 200]);
        assert_eq!(b.push_mark("m1".into()), None);
        b.push_audio(vec![2; 100]);
        let (mut heard, mut marks) = (Vec::new(), Vec::new());
        assert_eq!(b.tick(&mut heard, &mut marks), 160);
        assert!(marks.is_empty());
        assert_eq!(b.tick(&mut heard, &mut marks), 140);
        assert_eq!(marks, vec!["m1".to_string()]);
        assert_eq!(heard.len(), 320);
        assert!(heard[..200].iter().all(|&x| x == 1));
        assert!(heard[200..300].iter().all(|&x| x == 2));
        assert!(heard[300..].iter().all(|&x| x == mulaw::SILENCE));
        assert!(b.is_empty());
    }

    #[test]
    fn clear_returns_pending_marks() {
        let mut b = PlaybackBuffer::default();
        b.push_audio(vec![1; 1600]);
        b.push_mark("a".into());
        b.push_audio(vec![1; 1600]);
        b.push_mark("b".into());
        assert_eq!(b.queued_ms(), 400);
        assert_eq!(b.clear(), vec!["a".to_string(), "b".to_string()]);
        let (mut heard, mut marks) = (Vec::new(), Vec::new());
        assert_eq!(b.tick(&mut heard, &mut marks), 0);
        assert!(heard.iter().all(|&x| x == mulaw::SILENCE));
    }
}
