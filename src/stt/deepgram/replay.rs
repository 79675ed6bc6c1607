//! The Deepgram client's replay buffer: the last `replay_ms` of caller audio, kept as the
//! `Bytes` frames the session handed over (clones share the data; nothing is copied), each
//! tagged with its byte offset in the call so results can confirm audio up to a point.
//!
//! It must not copy audio or grow without bound (at most `limit` bytes plus one frame, and
//! at most [`MAX_FRAMES`] frames).

use std::collections::VecDeque;

use bytes::Bytes;

/// Upper bound on buffered frames, whatever their size.
pub const MAX_FRAMES: usize = 4096;

/// A bounded ring of the most recent frames.
#[derive(Debug)]
pub struct ReplayBuffer {
    frames: VecDeque<(u64, Bytes)>,
    bytes: usize,
    limit: usize,
    /// Offset of the next frame: all audio accepted so far.
    pub end: u64,
}

impl ReplayBuffer {
    /// Keep at least the last `limit` bytes (8 bytes per ms of μ-law).
    pub fn new(limit: usize) -> Self {
        Self {
            frames: VecDeque::with_capacity((limit / 160 + 2).min(MAX_FRAMES)),
            bytes: 0,
            limit,
            end: 0,
        }
    }

    /// Keep `frame`, forgetting the oldest frames beyond the limit.
    pub fn push(&mut self, frame: Bytes) {
        let len = frame.len();
        self.frames.push_back((self.end, frame));
        self.end += len as u64;
        self.bytes += len;
        while let Some((_, front)) = self.frames.front() {
            let rest = self.bytes - front.len();
            if rest < self.limit && self.frames.len() <= MAX_FRAMES {
                break;
            }
            self.bytes = rest;
            self.frames.pop_front();
        }
    }

    /// Offset of the first kept frame ending after `confirmed` (`end` when there is none).
    pub fn replay_from(&self, confirmed: u64) -> u64 {
        self.frames
            .iter()
            .find(|(at, f)| at + f.len() as u64 > confirmed)
            .map_or(self.end, |(at, _)| *at)
    }

    /// The kept frames starting at or after `from`.
    pub fn since(&self, from: u64) -> impl Iterator<Item = &Bytes> {
        self.frames
            .iter()
            .filter(move |(at, _)| *at >= from)
            .map(|(_, f)| f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_limit_bytes_and_skips_confirmed_audio() {
        let mut b = ReplayBuffer::new(480); // 60 ms
        for i in 0..5u8 {
            b.push(Bytes::from(vec![i; 160]));
        }
        assert_eq!(b.end, 800);
        let kept: Vec<u8> = b.since(0).map(|f| f[0]).collect();
        assert_eq!(kept, [2, 3, 4]);
        assert_eq!(b.replay_from(0), 320);
        assert_eq!(b.replay_from(500), 480); // the partly confirmed frame is replayed
        assert_eq!(b.replay_from(800), 800);
        assert_eq!(b.since(b.replay_from(640)).count(), 1);
    }

    #[test]
    fn frame_count_is_bounded_and_shares_the_data() {
        let mut b = ReplayBuffer::new(1 << 20);
        let frame = Bytes::from_static(b"x");
        for _ in 0..MAX_FRAMES + 10 {
            b.push(frame.clone());
        }
        assert_eq!(b.since(0).count(), MAX_FRAMES);
        assert!(b.since(0).all(|f| f.as_ptr() == frame.as_ptr()));
        assert!(ReplayBuffer::new(0).since(0).next().is_none());
    }
}
