//! The call recorder: an observer that keeps a two-channel μ-law recording of one call — the
//! caller on the left, what the caller heard on the right — aligned in time.
//!
//! The session hands it every inbound frame ([`Recorder::caller_audio`]), every chunk it sends
//! to Twilio positioned at the moment it will play ([`Recorder::played_audio`]), and every
//! barge-in ([`Recorder::cleared`]). Positions are 8 kHz frames since the recorder was made:
//! the caller's from Twilio's media timestamps (anchored to our clock by the earliest-arriving
//! frame until the caller's first audio goes to the writer, then fixed so the channel is never
//! torn; jitter does not smear it and lost frames leave gaps where they happened), what
//! was played from the play head. A short window (the playout lead plus 500 ms, plus a block)
//! stays in memory so a `clear` can still remove what had been sent but not yet heard; older
//! audio goes in 250 ms blocks to the shared [`RecordingWriter`] thread, which does the file
//! I/O. Nothing here allocates per frame (one buffer per 250 ms block with audio), reads a
//! clock, blocks, or transcodes; per call it holds a ~20 KB ring.
//!
//! What it must not do: change the call (it only observes), or wait for the writer — a full
//! writer queue drops the block (counted) and the recording has silence there, still aligned.

mod service;
mod window;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use service::{RecordingThreads, Recordings};
pub use writer::{ClosedRecording, IDLE_CLOSE, RecordingWriter, WriterThread};

use crate::store::recordings::raw::SAMPLE_RATE;
use window::Window;
use writer::{Target, WriterMsg};

/// Blocks the writer queue had no room for (heard as silence in the recording).
pub use crate::metrics::RECORDING_BLOCKS_DROPPED as BLOCKS_DROPPED;
/// Timing anomalies met while recording, by event (fixed set, see [`RecorderStats`]).
pub use crate::metrics::RECORDING_TIMING_EVENTS as TIMING_EVENTS;
/// Recording file writes that failed (the rest of that recording is lost).
pub use crate::metrics::RECORDING_WRITE_ERRORS as WRITE_ERRORS;

/// Frames per block handed to the writer: 250 ms.
pub const BLOCK_FRAMES: usize = 2_000;
const FRAMES_PER_MS: u64 = SAMPLE_RATE as u64 / 1_000;
/// Kept in memory beyond the playout lead, for late caller frames and late clears.
const HOLD_EXTRA_MS: u64 = 500;
/// Room for a chunk or frame extending past the play head or the newest frame.
const MARGIN_MS: u64 = 250;
/// A caller frame may sit this far ahead of its arrival (clock granularity).
const FUTURE_SLACK: i64 = 16;
/// Timestamps this far from what arrival says have jumped (hostile or broken): re-anchor.
const JUMP: i64 = 5 * SAMPLE_RATE as i64;
/// Timestamps above this (35 years in ms) are clamped, keeping the arithmetic in range.
const MAX_TIMESTAMP_MS: u64 = 1 << 40;
const CALLER: usize = 0;
const HEARD: usize = 1;

/// What went wrong with timing during one recording (all zero on a clean call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Caller frames (or parts) that arrived after their place had gone to the writer.
    pub late_frames: u64,
    /// Times the caller's media timestamps jumped and were re-anchored to arrival.
    pub reanchors: u64,
    /// Barge-ins seen, and sent-but-unheard frames they removed.
    pub clears: u64,
    pub cut_frames: u64,
    /// Clears that came after some unheard audio had already gone to the writer.
    pub cut_too_late: u64,
    /// Blocks handed over early because audio arrived too far ahead of the window.
    pub forced_flushes: u64,
    /// Blocks dropped because the writer queue was full.
    pub blocks_dropped: u64,
}

/// A finished call's raw recording (`DIR/…/{call_sid}.mulaw.wav`). The file is complete once
/// the writer thread has processed the close, shortly after; it then goes to compaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingFile {
    pub call_sid: String,
    pub path: PathBuf,
    pub duration: Duration,
    pub stats: RecorderStats,
}

/// Where the caller's media timestamps sit on our clock.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    /// Caller position = offset + media timestamp (in frames).
    offset: i64,
    /// Where the first caller frame under this anchor was placed.
    first: i64,
}

impl Anchor {
    fn at(offset: i64, first: i64) -> Self {
        Self { offset, first }
    }

    /// Has caller audio placed by this anchor already gone to the writer (window base past it)?
    fn fixed(&self, base: u64) -> bool {
        self.first < base as i64
    }
}

/// One call's recorder. See the module doc for what to call when.
pub struct Recorder {
    writer: RecordingWriter,
    target: Arc<Target>,
    origin: Instant,
    window: Window,
    /// The latest "now" seen, as a position.
    now: u64,
    /// Kept in memory behind `now`, and how far ahead of now audio is sent, in frames.
    hold: u64,
    lead: u64,
    /// Caller position = anchor offset + media timestamp (in frames).
    anchor: Option<Anchor>,
    stats: RecorderStats,
    /// Some block reached the writer (so there is a file).
    sent_any: bool,
    closed: bool,
}

impl Recorder {
    /// A recorder for `call_sid` writing to `path` (from `RecordingStore::raw_path`), with
    /// position 0 at `origin` (the stream's start), for a playout sending `lead_ms` ahead.
    pub fn new(
        writer: &RecordingWriter,
        call_sid: &str,
        path: PathBuf,
        origin: Instant,
        lead_ms: u32,
    ) -> Self {
        let lead = u64::from(lead_ms) * FRAMES_PER_MS;
        let hold = lead + HOLD_EXTRA_MS * FRAMES_PER_MS;
        let span = hold + lead + MARGIN_MS * FRAMES_PER_MS + BLOCK_FRAMES as u64;
        let blocks = span.div_ceil(BLOCK_FRAMES as u64) as usize;
        Self {
            writer: writer.clone(),
            target: writer.target(call_sid, path),
            origin,
            window: Window::new(blocks),
            now: 0,
            hold,
            lead,
            anchor: None,
            stats: RecorderStats::default(),
            sent_any: false,
            closed: false,
        }
    }

    /// One inbound frame: `arrived` when it was read, `timestamp_ms` its media timestamp.
    pub fn caller_audio(&mut self, arrived: Instant, timestamp_ms: u64, mulaw: &[u8]) {
        let now = self.pos_of(arrived) as i64;
        let ts = timestamp_ms.min(MAX_TIMESTAMP_MS) as i64 * FRAMES_PER_MS as i64;
        let pos = match self.anchor {
            Some(a) if a.offset + ts + JUMP < now || a.offset + ts > now + JUMP => {
                // Far off either way: the timestamps jumped.
                self.stats.reanchors += 1;
                self.anchor = Some(Anchor::at(now - ts, now));
                now
            }
            Some(a) if a.offset + ts > now + FUTURE_SLACK && !a.fixed(self.window.base) => {
                // Earlier than the anchor allows: the frames so far came late. Anchor on this
                // one and move what is in the window back with it, so the caller's audio stays
                // exactly where its timestamps put it.
                let delta = a.offset + ts - now;
                self.window.shift_back(CALLER, delta as u64);
                self.anchor = Some(Anchor {
                    offset: now - ts,
                    first: a.first - delta,
                });
                now
            }
            // Where the timestamp puts it. Once some of the caller's audio has gone to the
            // writer the anchor stays: moving only what is still in the window would tear the
            // caller's channel apart (a frame that beats the anchor then sits a little ahead).
            Some(a) => a.offset + ts,
            None => {
                self.anchor = Some(Anchor::at(now - ts, now));
                now
            }
        };
        self.advance(now.max(0) as u64);
        self.write(pos.max(0) as u64, CALLER, mulaw);
    }

    /// One chunk sent to Twilio, which the caller hears from `play_at` on.
    pub fn played_audio(&mut self, play_at: Instant, mulaw: &[u8]) {
        let pos = self.pos_of(play_at);
        // Playout sends at most `lead` ahead, so now is at least this.
        self.advance(pos.saturating_sub(self.lead));
        self.write(pos, HEARD, mulaw);
    }

    /// A barge-in at `at`: what was sent but would only have played after `at` was never heard.
    pub fn cleared(&mut self, at: Instant) {
        let at = self.pos_of(at);
        self.advance(at);
        self.stats.clears += 1;
        let heard_end = self.window.ends[HEARD];
        if heard_end <= at {
            return;
        }
        if at < self.window.base {
            self.stats.cut_too_late += 1;
        }
        let from = at.max(self.window.base);
        self.window.silence(from, heard_end, HEARD);
        self.stats.cut_frames += heard_end - from;
        self.window.ends[HEARD] = from;
    }

    /// The call ended at `end`: what was sent to play after it was never heard (the call was
    /// gone), so the caller-heard channel stops there and the recording ends with the later of
    /// the two channels. Then as [`Recorder::finish`].
    pub fn finish_at(mut self, end: Instant) -> Option<RecordingFile> {
        let end = self.pos_of(end);
        self.advance(end);
        let heard_end = self.window.ends[HEARD];
        if heard_end > end {
            let from = end.max(self.window.base);
            self.window.silence(from, heard_end, HEARD);
            self.window.ends[HEARD] = from;
            // Nothing beyond the later channel was heard or said: the recording ends there
            // (never before what already went to the writer).
            let last = self.window.ends[CALLER].max(from).max(self.window.base);
            self.window.head = self.window.head.min(last);
        }
        self.finish()
    }

    /// The call ended: hand over the rest and close the file. `None` if nothing was recorded.
    pub fn finish(mut self) -> Option<RecordingFile> {
        self.close();
        self.sent_any.then(|| RecordingFile {
            call_sid: self.target.call_sid.to_string(),
            path: self.target.path.clone(),
            duration: Duration::from_micros(self.window.head * 1_000_000 / u64::from(SAMPLE_RATE)),
            stats: self.stats,
        })
    }

    /// Timing anomalies so far.
    pub fn stats(&self) -> RecorderStats {
        self.stats
    }

    fn pos_of(&self, t: Instant) -> u64 {
        let ns = t.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(ns / 125_000).unwrap_or(u64::MAX / 4)
    }

    /// Time moved on to `now`: hand over every block older than the hold.
    fn advance(&mut self, now: u64) {
        if now <= self.now {
            return;
        }
        self.now = now;
        let block = BLOCK_FRAMES as u64;
        self.flush_until(now.saturating_sub(self.hold) / block * block);
    }

    /// Hand over blocks until the window starts at or after `pos` (rounded up to a block).
    fn flush_until(&mut self, pos: u64) {
        while self.window.base < pos && self.window.base < self.window.head {
            self.emit_block(BLOCK_FRAMES);
        }
        if self.window.base < pos {
            // Nothing recorded beyond: move the window without visiting empty blocks.
            let block = BLOCK_FRAMES as u64;
            self.window.base = pos.div_ceil(block) * block;
        }
    }

    /// Write into the window; returns where the data ends.
    fn write(&mut self, mut pos: u64, ch: usize, mut data: &[u8]) -> u64 {
        if pos < self.window.base {
            let skip = (self.window.base - pos).min(data.len() as u64) as usize;
            self.stats.late_frames += 1;
            data = &data[skip..];
            pos += skip as u64;
        }
        let cap = self.window.capacity();
        let max_len = (cap - BLOCK_FRAMES as u64) as usize;
        if data.len() > max_len {
            // Longer than the window can take at once (hostile): keep its tail.
            pos += (data.len() - max_len) as u64;
            data = &data[data.len() - max_len..];
        }
        if data.is_empty() {
            return pos;
        }
        let end = pos + data.len() as u64;
        if end > self.window.base + cap {
            // Too far ahead: hand over early. The window then starts before `pos`, because
            // `data` is at least a block shorter than the window.
            self.stats.forced_flushes += 1;
            self.flush_until(end - cap);
        }
        self.window.put(pos, ch, data);
        end
    }

    /// Hand the block at the window's start (its first `len` frames) to the writer.
    fn emit_block(&mut self, len: usize) {
        let (writer, target) = (&self.writer, &self.target);
        let mut outcome = None;
        self.window.take_block(|start, frames| {
            let bytes: &[u8] = dasp::slice::to_sample_slice(&frames[..len]);
            outcome = Some(writer.send(WriterMsg::Block {
                target: target.clone(),
                start,
                frames: bytes.to_vec(),
            }));
        });
        match outcome {
            Some(true) => self.sent_any = true,
            Some(false) => self.stats.blocks_dropped += 1,
            None => {}
        }
    }

    fn close(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let head = self.window.head;
        while self.window.base < head {
            let len = (head - self.window.base).min(BLOCK_FRAMES as u64) as usize;
            self.emit_block(len);
        }
        if self.sent_any {
            self.writer.send(WriterMsg::Close {
                target: self.target.clone(),
                frames: head,
            });
        }
        self.count_stats();
    }

    fn count_stats(&self) {
        let s = &self.stats;
        for (event, n) in [
            ("late_frame", s.late_frames),
            ("reanchor", s.reanchors),
            ("cut_too_late", s.cut_too_late),
            ("forced_flush", s.forced_flushes),
        ] {
            if n > 0 {
                ::metrics::counter!(TIMING_EVENTS, "event" => event).increment(n);
            }
        }
    }
}

impl Drop for Recorder {
    /// A recorder dropped without `finish` (a panicking session) still closes its file.
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("call_sid", &self.target.call_sid)
            .field("path", &self.target.path)
            .field("base", &self.window.base)
            .field("head", &self.window.head)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
