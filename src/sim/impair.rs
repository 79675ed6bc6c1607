//! Network and line impairments for the simulated Twilio leg, so a bad call can be produced on
//! demand and its quality report checked against what was injected.
//!
//! - **Loss** (`loss_pct`): random but exact in rate — in every block of `100 / loss_pct` frames
//!   one frame, at a random position, is never sent. Its `chunk` number is skipped (a gap in
//!   `chunk` is how Twilio shows lost audio); `sequenceNumber` counts only messages sent.
//! - **Jitter** (`jitter_ms`): Media Streams ride on TCP, so a congested path does not reorder
//!   frames; it stalls and then delivers a burst. Every 400 ms cycle the link holds frames for
//!   `H = 10 × jitter_ms` (at most the whole cycle) and releases them together; everything
//!   behind them waits too (TCP order). The RFC 3550 interarrival jitter of that pattern is
//!   `2H / 20 frames = jitter_ms`, up to about 38 ms — the ceiling for in-order 20 ms frames,
//!   which can catch up by at most 20 ms per frame.
//! - **Gain** (`gain_db`): the caller's audio is amplified (and clips) before μ-law encoding.
//!
//! Deterministic for a given `seed`. No I/O; the runner sends what this releases.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::Message;

use crate::audio::mulaw;

/// What to do to the caller's leg.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairments {
    pub loss_pct: f64,
    pub jitter_ms: f64,
    pub gain_db: f64,
    pub seed: u64,
}

impl Default for Impairments {
    fn default() -> Self {
        Self {
            loss_pct: 0.0,
            jitter_ms: 0.0,
            gain_db: 0.0,
            seed: 1,
        }
    }
}

/// Frames per stall/burst cycle (400 ms).
const CYCLE_FRAMES: u64 = 20;

#[derive(Debug)]
pub(crate) struct Network {
    imp: Impairments,
    rng: u64,
    gain: f32,
    block: u64,
    drop_in_block: u64,
    hold: Duration,
    queue: VecDeque<(Instant, Message, Option<u64>)>,
    last_release: Option<Instant>,
}

impl Network {
    pub fn new(imp: Impairments) -> Self {
        let block = if imp.loss_pct > 0.0 {
            (100.0 / imp.loss_pct).round().max(1.0) as u64
        } else {
            0
        };
        let hold_ms =
            (imp.jitter_ms.max(0.0) * CYCLE_FRAMES as f64 / 2.0).min(CYCLE_FRAMES as f64 * 20.0);
        let mut net = Self {
            imp,
            rng: imp.seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            gain: 10f32.powf(imp.gain_db as f32 / 20.0),
            block,
            drop_in_block: 0,
            hold: Duration::from_micros((hold_ms * 1000.0) as u64),
            queue: VecDeque::new(),
            last_release: None,
        };
        if block > 0 {
            net.drop_in_block = net.next_rand() % block;
        }
        net
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*: small, fast, reproducible.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Is the frame of this tick lost?
    pub fn drops(&mut self, tick: u64) -> bool {
        if self.block == 0 {
            return false;
        }
        let pos = tick % self.block;
        let lost = pos == self.drop_in_block;
        if pos == self.block - 1 {
            self.drop_in_block = self.next_rand() % self.block;
        }
        lost
    }

    /// Amplify one μ-law frame in place.
    pub fn apply_gain(&self, frame: &mut [u8]) {
        if self.imp.gain_db == 0.0 {
            return;
        }
        for b in frame {
            let v = f32::from(mulaw::decode(*b)) * self.gain;
            *b = mulaw::encode(v.clamp(-32768.0, 32767.0) as i16);
        }
    }

    /// Queue a media frame generated at `at` (tick `tick`, stream `timestamp_ms`).
    pub fn send_media(&mut self, at: Instant, tick: u64, timestamp_ms: u64, msg: Message) {
        let cycle_start = at - Duration::from_millis(20 * (tick % CYCLE_FRAMES));
        let release = if at < cycle_start + self.hold {
            cycle_start + self.hold
        } else {
            at
        };
        self.push(release, msg, Some(timestamp_ms));
    }

    /// Queue any other message, due now (but behind anything held: TCP keeps order).
    pub fn send(&mut self, now: Instant, msg: Message) {
        self.push(now, msg, None);
    }

    fn push(&mut self, release: Instant, msg: Message, ts: Option<u64>) {
        let release = self.last_release.map_or(release, |last| release.max(last));
        self.last_release = Some(release);
        self.queue.push_back((release, msg, ts));
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|(at, _, _)| *at)
    }

    /// The next message due by `now`, with its media timestamp if it is media.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Message, Option<u64>)> {
        if self.queue.front().is_some_and(|(at, _, _)| *at <= now) {
            return self.queue.pop_front().map(|(_, m, ts)| (m, ts));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_exact_in_rate_and_reproducible() {
        let imp = Impairments {
            loss_pct: 5.0,
            ..Impairments::default()
        };
        let pattern = |imp| {
            let mut n = Network::new(imp);
            (0..1000).map(|t| n.drops(t)).collect::<Vec<_>>()
        };
        let a = pattern(imp);
        assert_eq!(a.iter().filter(|&&d| d).count(), 50);
        assert_eq!(a, pattern(imp));
        assert_ne!(a, pattern(Impairments { seed: 2, ..imp }));
        let none = pattern(Impairments::default());
        assert!(none.iter().all(|d| !d));
    }

    /// RFC 3550 jitter of the release schedule equals the requested jitter.
    #[test]
    fn jitter_schedule_has_the_requested_rfc3550_jitter() {
        for target in [10.0, 20.0, 38.0] {
            let mut n = Network::new(Impairments {
                jitter_ms: target,
                ..Impairments::default()
            });
            let t0 = Instant::now();
            let (mut j, mut prev, mut sum, mut count) = (0.0f64, None::<f64>, 0.0, 0);
            for tick in 0..2000u64 {
                let at = t0 + Duration::from_millis(20 * tick);
                n.send_media(at, tick, tick * 20, Message::text(""));
                while let Some((release, _, Some(ts))) = n.queue.pop_front() {
                    let transit = (release - t0).as_secs_f64() * 1000.0 - ts as f64;
                    if let Some(p) = prev {
                        j += ((transit - p).abs() - j) / 16.0;
                        sum += j;
                        count += 1;
                    }
                    prev = Some(transit);
                }
            }
            let mean = sum / count as f64;
            assert!(
                (mean - target).abs() < target * 0.1,
                "target {target}: {mean:.1}"
            );
        }
    }

    #[test]
    fn gain_clips() {
        let n = Network::new(Impairments {
            gain_db: 30.0,
            ..Impairments::default()
        });
        let mut frame = [mulaw::encode(3000); 160];
        n.apply_gain(&mut frame);
        assert!(frame.iter().all(|&b| mulaw::decode(b).abs() >= mulaw::PEAK));
    }
}
