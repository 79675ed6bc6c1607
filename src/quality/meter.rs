//! `QualityMeter`: one per call, fed every inbound media frame and every outbound event, it
//! keeps running transport, signal and outbound figures without allocating per frame.
//!
//! Transport follows the reference: a gap in `chunk` is loss (`sequenceNumber` counts every
//! message and is useless for this); a `timestamp` jump without a chunk gap is a timing gap;
//! jitter is RFC 3550 §6.4.1 interarrival jitter over `arrival − timestamp`. Signal figures come
//! from the decoded PCM. Per-second buckets of the last few seconds feed live alerts.
//! The meter decides nothing: [`super::report`] turns its figures into bands and reasons.

use std::collections::VecDeque;
use std::time::Instant;

use crate::audio::mulaw;
use crate::config::QualityConfig;

/// Figures over one second of inbound media, for rolling windows.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bucket {
    pub second: u64,
    pub received: u64,
    pub lost: u64,
    pub jitter_sum: f64,
    pub jitter_max: f64,
    pub late: u64,
    pub samples: u64,
    pub clipped: u64,
}

impl Bucket {
    fn add(&mut self, other: &Bucket) {
        self.received += other.received;
        self.lost += other.lost;
        self.jitter_sum += other.jitter_sum;
        self.jitter_max = self.jitter_max.max(other.jitter_max);
        self.late += other.late;
        self.samples += other.samples;
        self.clipped += other.clipped;
    }

    pub fn loss_ratio(&self) -> f64 {
        ratio(self.lost, self.lost.saturating_add(self.received))
    }

    pub fn jitter_mean_ms(&self) -> f64 {
        if self.received == 0 {
            0.0
        } else {
            self.jitter_sum / self.received as f64
        }
    }

    pub fn clipping_ratio(&self) -> f64 {
        ratio(self.clipped, self.samples)
    }
}

pub(crate) fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A chunk jump larger than this (60 s of 20 ms frames) is a discontinuity, not loss.
const MAX_LOSS_GAP: u64 = 3000;

/// Samples per noise-floor window: 50 ms at 8 kHz (as SoX `stats` "RMS Tr dB").
const NOISE_WINDOW: usize = 400;

#[derive(Debug)]
pub struct QualityMeter {
    t0: Instant,
    silence_dbfs: f32,
    late_frame_ms: f64,
    // transport
    pub(crate) received: u64,
    pub(crate) lost: u64,
    pub(crate) out_of_order: u64,
    pub(crate) timing_gaps: u64,
    pub(crate) timing_gap_ms: u64,
    pub(crate) late: u64,
    last_chunk: Option<u64>,
    expected_ts: Option<u64>,
    prev_transit: Option<f64>,
    min_transit: f64,
    jitter: f64,
    pub(crate) jitter_sum: f64,
    pub(crate) jitter_max: f64,
    // signal
    pub(crate) samples: u64,
    sample_sum: i64,
    energy: f64,
    pub(crate) peak: i32,
    pub(crate) clipped: u64,
    pub(crate) silent_frames: u64,
    pub(crate) voiced_frames: u64,
    voiced_db_sum: f64,
    noise_acc: f64,
    noise_n: usize,
    pub(crate) noise_floor_db: Option<f64>,
    quiet_run_ms: u64,
    pub(crate) longest_quiet_ms: u64,
    // outbound
    pub(crate) frames_sent: u64,
    pub(crate) underruns: u64,
    // live window
    window: VecDeque<Bucket>,
    window_secs: usize,
}

impl QualityMeter {
    pub fn new(cfg: &QualityConfig, window_secs: u64, t0: Instant) -> Self {
        Self {
            t0,
            silence_dbfs: cfg.silence_dbfs,
            late_frame_ms: cfg.late_frame_ms,
            received: 0,
            lost: 0,
            out_of_order: 0,
            timing_gaps: 0,
            timing_gap_ms: 0,
            late: 0,
            last_chunk: None,
            expected_ts: None,
            prev_transit: None,
            min_transit: f64::INFINITY,
            jitter: 0.0,
            jitter_sum: 0.0,
            jitter_max: 0.0,
            samples: 0,
            sample_sum: 0,
            energy: 0.0,
            peak: 0,
            clipped: 0,
            silent_frames: 0,
            voiced_frames: 0,
            voiced_db_sum: 0.0,
            noise_acc: 0.0,
            noise_n: 0,
            noise_floor_db: None,
            quiet_run_ms: 0,
            longest_quiet_ms: 0,
            frames_sent: 0,
            underruns: 0,
            window: VecDeque::with_capacity(window_secs as usize + 1),
            window_secs: window_secs.max(1) as usize,
        }
    }

    /// One inbound media frame. `voiced` is the turn detector's verdict; `playing` says whether
    /// a response is playing (a silent caller is listening then, not dead air).
    /// Returns true when this frame opened a new second (time to evaluate live alerts).
    #[allow(clippy::too_many_arguments)]
    pub fn on_media(
        &mut self,
        arrival: Instant,
        chunk: u64,
        timestamp_ms: u64,
        pcm: &[i16],
        level_dbfs: f32,
        voiced: bool,
        playing: bool,
    ) -> bool {
        let arrival_ms = arrival.saturating_duration_since(self.t0).as_secs_f64() * 1000.0;
        let second = (arrival_ms / 1000.0) as u64;
        let new_second = self.roll_window(second);
        let mut bucket = Bucket {
            received: 1,
            ..Bucket::default()
        };

        // Transport: loss from chunk gaps, timing gaps, RFC 3550 jitter, late frames.
        let in_order = self.last_chunk.is_none_or(|last| chunk > last);
        if in_order {
            let expected_chunk = self.last_chunk.map_or(1, |c| c.saturating_add(1));
            let mut gap = chunk.saturating_sub(expected_chunk);
            if gap > MAX_LOSS_GAP {
                // Not a plausible loss burst: a renumbered or corrupt stream. Count it as a
                // timing discontinuity instead of poisoning the loss figures.
                self.timing_gaps += 1;
                gap = 0;
            }
            self.lost += gap;
            bucket.lost = gap;
            if gap == 0
                && let Some(expected) = self.expected_ts
                && timestamp_ms > expected
            {
                self.timing_gaps += 1;
                self.timing_gap_ms = self.timing_gap_ms.saturating_add(timestamp_ms - expected);
            }
            self.last_chunk = Some(chunk);
            self.expected_ts = Some(timestamp_ms.saturating_add(pcm.len() as u64 / 8));
            let transit = arrival_ms - timestamp_ms as f64;
            if let Some(prev) = self.prev_transit {
                self.jitter += ((transit - prev).abs() - self.jitter) / 16.0;
            }
            self.prev_transit = Some(transit);
            self.min_transit = self.min_transit.min(transit);
            if transit - self.min_transit > self.late_frame_ms {
                self.late += 1;
                bucket.late = 1;
            }
        } else {
            self.out_of_order += 1;
        }
        self.received += 1;
        self.jitter_sum += self.jitter;
        self.jitter_max = self.jitter_max.max(self.jitter);
        bucket.jitter_sum = self.jitter;
        bucket.jitter_max = self.jitter;

        // Signal: exact integer sums per run of samples (a loop the compiler vectorises),
        // split where a noise-floor window ends.
        let mut rest = pcm;
        while !rest.is_empty() {
            let (run, tail) = rest.split_at(rest.len().min(NOISE_WINDOW - self.noise_n));
            rest = tail;
            let sums = Sums::of(run);
            self.sample_sum += sums.sum;
            self.energy += sums.energy as f64;
            self.peak = self.peak.max(sums.peak);
            bucket.clipped += sums.clipped;
            self.noise_acc += sums.energy as f64;
            self.noise_n += run.len();
            if self.noise_n == NOISE_WINDOW {
                let db = energy_dbfs(self.noise_acc / NOISE_WINDOW as f64);
                self.noise_floor_db = Some(self.noise_floor_db.map_or(db, |f| f.min(db)));
                self.noise_acc = 0.0;
                self.noise_n = 0;
            }
        }
        bucket.samples = pcm.len() as u64;
        self.samples += bucket.samples;
        self.clipped += bucket.clipped;
        if level_dbfs < self.silence_dbfs {
            self.silent_frames += 1;
        }
        if voiced {
            self.voiced_frames += 1;
            self.voiced_db_sum += f64::from(level_dbfs);
        }
        let frame_ms = pcm.len() as u64 / 8;
        if voiced || playing {
            self.quiet_run_ms = 0;
        } else {
            self.quiet_run_ms += frame_ms;
            self.longest_quiet_ms = self.longest_quiet_ms.max(self.quiet_run_ms);
        }

        if let Some(last) = self.window.back_mut() {
            last.add(&bucket);
        }
        new_second
    }

    /// Start a new bucket when the second changes; true if one was started.
    fn roll_window(&mut self, second: u64) -> bool {
        if self.window.back().is_some_and(|b| b.second == second) {
            return false;
        }
        self.window.push_back(Bucket {
            second,
            ..Bucket::default()
        });
        while self.window.len() > self.window_secs
            || self
                .window
                .front()
                .is_some_and(|b| b.second + (self.window_secs as u64) <= second)
        {
            self.window.pop_front();
        }
        true
    }

    /// Outbound media frames handed to the writer.
    pub fn on_frames_sent(&mut self, n: u64) {
        self.frames_sent += n;
    }

    /// Twilio's buffer ran dry while a response was still being sent.
    pub fn on_underruns(&mut self, n: u64) {
        self.underruns += n;
    }

    /// The completed seconds of the rolling window, summed (the current second is excluded:
    /// it has barely started).
    pub fn window(&self) -> (Bucket, usize) {
        let mut total = Bucket::default();
        let complete = self.window.len().saturating_sub(1);
        for b in self.window.iter().take(complete) {
            total.add(b);
        }
        (total, complete)
    }

    /// How long the caller has been silent with nothing playing, now.
    pub fn quiet_ms(&self) -> u64 {
        self.quiet_run_ms
    }

    pub fn jitter_mean_ms(&self) -> f64 {
        if self.received == 0 {
            0.0
        } else {
            self.jitter_sum / self.received as f64
        }
    }

    pub fn loss_ratio(&self) -> f64 {
        ratio(self.lost, self.lost.saturating_add(self.received))
    }

    pub fn rms_dbfs(&self) -> Option<f64> {
        (self.samples > 0).then(|| energy_dbfs(self.energy / self.samples as f64))
    }

    pub fn dc_offset(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.sample_sum as f64 / self.samples as f64 / 32768.0
        }
    }

    /// The quietest 50 ms window of the call so far (dBFS): the line's noise floor as the
    /// report shows it. The speech detector's floor (`audio::vad::noise_floor`) tracks the same
    /// quantity over a sliding 2.4 s window instead of the whole call.
    pub fn noise_floor_dbfs(&self) -> Option<f64> {
        self.noise_floor_db
    }

    /// Mean level of voiced frames minus the noise floor.
    pub fn snr_db(&self) -> Option<f64> {
        let speech =
            (self.voiced_frames > 0).then(|| self.voiced_db_sum / self.voiced_frames as f64)?;
        Some(speech - self.noise_floor_db?)
    }
}

/// Integer figures of a run of samples (at most [`NOISE_WINDOW`], so no sum can overflow).
struct Sums {
    sum: i64,
    energy: u64,
    peak: i32,
    clipped: u64,
}

impl Sums {
    fn of(run: &[i16]) -> Self {
        let (mut sum, mut energy, mut peak, mut clipped) = (0i64, 0u64, 0i32, 0u64);
        for &s in run {
            let v = i32::from(s);
            sum += i64::from(v);
            // |v| ≤ 32768, so v² ≤ 2³⁰ fits an i32 and is never negative.
            energy += (v * v) as u64;
            let a = v.abs();
            peak = peak.max(a);
            clipped += u64::from(a >= i32::from(mulaw::PEAK));
        }
        Self {
            sum,
            energy,
            peak,
            clipped,
        }
    }
}

/// dBFS of a mean square energy (full scale 32768), floored at -96.
pub fn energy_dbfs(mean_square: f64) -> f64 {
    if mean_square < 1.0 {
        return -96.0;
    }
    (10.0 * (mean_square / (32768.0 * 32768.0)).log10()).max(-96.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// The signal figures summed a run at a time equal the same figures taken sample by sample,
    /// whatever the frame size (frames straddle the 50 ms noise windows).
    #[test]
    fn signal_figures_match_a_sample_by_sample_reference() {
        let cfg = Config::default().quality;
        let mut rng = 0x2468_ace1_u32;
        let samples: Vec<i16> = (0..8000_usize)
            .map(|n| {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                // Quiet and loud stretches (some clipped), so the floor and peak both move.
                let full = (rng >> 16) as i32 - 32768;
                (if (n / 700).is_multiple_of(2) {
                    full / 800
                } else {
                    full
                }) as i16
            })
            .collect();
        let (mut sum, mut energy, mut peak, mut clipped) = (0i64, 0f64, 0i32, 0u64);
        let (mut floor, mut acc, mut n) = (None::<f64>, 0f64, 0usize);
        for &s in &samples {
            let v = i32::from(s);
            sum += i64::from(v);
            energy += f64::from(v) * f64::from(v);
            peak = peak.max(v.abs());
            clipped += u64::from(v.abs() >= i32::from(mulaw::PEAK));
            acc += f64::from(v) * f64::from(v);
            n += 1;
            if n == NOISE_WINDOW {
                let db = energy_dbfs(acc / NOISE_WINDOW as f64);
                floor = Some(floor.map_or(db, |f| f.min(db)));
                (acc, n) = (0.0, 0);
            }
        }
        for frame in [160, 7, 333] {
            let t0 = Instant::now();
            let mut meter = QualityMeter::new(&cfg, 5, t0);
            for (k, pcm) in samples.chunks(frame).enumerate() {
                let k = k as u64;
                meter.on_media(t0, k + 1, k * 20, pcm, -30.0, false, false);
            }
            assert_eq!(meter.sample_sum, sum, "frame {frame}");
            assert_eq!(meter.energy, energy, "frame {frame}");
            assert_eq!(
                (meter.peak, meter.clipped),
                (peak, clipped),
                "frame {frame}"
            );
            assert_eq!(meter.noise_floor_dbfs(), floor, "frame {frame}");
            assert_eq!(meter.samples, samples.len() as u64);
        }
        assert!(
            clipped > 0 && peak > 32000,
            "peak {peak}, {clipped} clipped"
        );
        assert!(floor.is_some_and(|f| f < -50.0), "floor {floor:?}");
    }
}
