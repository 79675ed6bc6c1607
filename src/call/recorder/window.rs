//! The recorder's in-memory window: the last moments of both channels, kept so a late caller
//! frame can still land in place and a `clear` can still remove what was never heard. It
//! only stores and hands over blocks; it must not read a clock or do I/O.

use super::BLOCK_FRAMES;
use crate::store::recordings::raw::SILENCE;

/// The in-memory part of the recording: a ring of stereo frames covering
/// `[base, base + capacity)`; blocks below `base` have gone to the writer.
pub(super) struct Window {
    pub(super) ring: Box<[[u8; 2]]>,
    /// Per block of the ring: has anything been written there?
    pub(super) touched: Box<[bool]>,
    pub(super) base: u64,
    /// End of the latest audio ever written (either channel): the recording's length.
    pub(super) head: u64,
    /// Per channel, the end of what is there now (a clear or a shift moves it back).
    pub(super) ends: [u64; 2],
}

impl Window {
    pub(super) fn new(blocks: usize) -> Self {
        Self {
            ring: vec![[SILENCE; 2]; blocks * BLOCK_FRAMES].into_boxed_slice(),
            touched: vec![false; blocks].into_boxed_slice(),
            base: 0,
            head: 0,
            ends: [0; 2],
        }
    }

    pub(super) fn capacity(&self) -> u64 {
        self.ring.len() as u64
    }

    pub(super) fn index(&self, pos: u64) -> usize {
        (pos % self.capacity()) as usize
    }

    /// Write `data` to channel `ch` from `pos`; the caller keeps it inside the window.
    pub(super) fn put(&mut self, pos: u64, ch: usize, data: &[u8]) {
        let at = self.index(pos);
        let first = data.len().min(self.ring.len() - at);
        for (slot, &b) in self.ring[at..at + first].iter_mut().zip(&data[..first]) {
            slot[ch] = b;
        }
        for (slot, &b) in self.ring.iter_mut().zip(&data[first..]) {
            slot[ch] = b;
        }
        let end = pos + data.len() as u64;
        self.mark(pos, end);
        self.head = self.head.max(end);
        self.ends[ch] = self.ends[ch].max(end);
    }

    /// Note that `[from, to)` holds audio.
    pub(super) fn mark(&mut self, from: u64, to: u64) {
        let blocks = self.touched.len() as u64;
        let block = BLOCK_FRAMES as u64;
        for b in from / block..to.div_ceil(block) {
            self.touched[(b % blocks) as usize] = true;
        }
    }

    /// Move channel `ch` `delta` frames earlier (audio before the window is lost).
    pub(super) fn shift_back(&mut self, ch: usize, delta: u64) {
        let end = self.ends[ch];
        if end <= self.base {
            return;
        }
        for pos in self.base + delta..end {
            let v = self.ring[self.index(pos)][ch];
            let to = self.index(pos - delta);
            self.ring[to][ch] = v;
        }
        let new_end = end.saturating_sub(delta).max(self.base);
        self.silence(new_end, end, ch);
        self.mark(self.base, new_end);
        self.ends[ch] = new_end;
    }

    /// Silence channel `ch` over `[from, to)` (inside the window).
    pub(super) fn silence(&mut self, from: u64, to: u64, ch: usize) {
        for pos in from..to {
            let i = self.index(pos);
            self.ring[i][ch] = SILENCE;
        }
    }

    /// The frames of the block at `base` if anything was written there, then forget them.
    pub(super) fn take_block(&mut self, out: impl FnOnce(u64, &[[u8; 2]])) {
        let b = self.index(self.base) / BLOCK_FRAMES;
        let frames = &mut self.ring[b * BLOCK_FRAMES..(b + 1) * BLOCK_FRAMES];
        if std::mem::take(&mut self.touched[b]) {
            out(self.base, frames);
            frames.fill([SILENCE; 2]);
        }
        self.base += BLOCK_FRAMES as u64;
    }
}
