//! Cheap per-frame spectral cues for telling speech from noise on an 8 kHz line.
//!
//! [`Voicing`] measures periodicity: the low band (80–900 Hz, where the pitch harmonics of
//! voiced speech are strongest) is decimated to 4 kHz and its normalised autocorrelation is
//! searched over pitch lags 50–308 Hz on the last 40 ms. Voiced speech scores 0.6–0.95; white,
//! pink and car noise, clicks and coughs score low because they have no stable period.
//!
//! Everything but keeping the frame is lazy, so a detector can gate the cost on level (a
//! cascade): [`Voicing::update`] only keeps the raw frame (the last [`RAW_FRAMES`]); the band
//! filter runs over the kept frames, and the lag search over the filtered window, only when
//! [`Voicing::periodicity_until`] is asked. A frame asked for after at most `RAW_FRAMES − 1`
//! skipped ones gets exactly what filtering every frame would give; after a longer gap the
//! filter restarts from rest on the oldest kept frame, whose 20 ms settle it to −60 dB before
//! the window's first sample. Nothing here allocates; buffers are fixed arrays.

use super::FRAME_SAMPLES;

/// Decimated samples per 20 ms frame (4 kHz).
const DEC_FRAME: usize = FRAME_SAMPLES / 2;
/// Analysis window: the last two frames (40 ms) at 4 kHz.
const WINDOW: usize = 2 * DEC_FRAME;
const _: () = assert!(
    WINDOW.is_multiple_of(4),
    "the prefix sums go four at a time"
);
/// Pitch lags at 4 kHz: 13 (308 Hz) ..= 80 (50 Hz). Higher pitches are rare on the phone, and
/// short lags are where narrow-band noise (a cough's resonance) correlates.
const MIN_LAG: usize = 13;
const MAX_LAG: usize = 80;
/// Raw frames kept for the lazy filter: the two of the window and one to settle the filter.
pub const RAW_FRAMES: usize = 3;

/// One Butterworth biquad section's coefficients, normalised by a0. Both kinds used here have
/// `b2 == b0` (low-pass `[k, 2k, k]`, high-pass `[k, −2k, k]`).
#[derive(Debug, Clone, Copy)]
struct Section {
    b0: f32,
    b1: f32,
    a1: f32,
    a2: f32,
}

impl Section {
    /// Butterworth low-pass (`high == false`) or high-pass at `fc` for 8 kHz (RBJ cookbook).
    fn butterworth(fc: f32, high: bool) -> Self {
        let w0 = std::f32::consts::TAU * fc / 8000.0;
        let (cw, sw) = (w0.cos(), w0.sin());
        let alpha = sw / std::f32::consts::SQRT_2;
        let a0 = 1.0 + alpha;
        let (b0, b1) = if high {
            ((1.0 + cw) / 2.0, -(1.0 + cw))
        } else {
            ((1.0 - cw) / 2.0, 1.0 - cw)
        };
        Self {
            b0: b0 / a0,
            b1: b1 / a0,
            a1: -2.0 * cw / a0,
            a2: (1.0 - alpha) / a0,
        }
    }

    /// One output of the section (direct form I) from its input `x` and the last two inputs
    /// and outputs. The last output comes in last, so the feedback path is one multiply-add.
    #[inline(always)]
    fn step(&self, x: f32, x1: f32, x2: f32, y1: f32, y2: f32) -> f32 {
        (self.b0 * (x + x2) + self.b1 * x1 - self.a2 * y2) - self.a1 * y1
    }
}

/// The voicing band: an 80 Hz high-pass and two 900 Hz low-pass sections (~24 dB/octave above
/// 900 Hz, enough to decimate to 4 kHz), in cascade.
#[derive(Debug, Clone, Copy)]
struct BandFilter {
    high: Section,
    low: Section,
    /// The last two samples at the input, after the high-pass, after the first low-pass and at
    /// the output (`[n−1, n−2]` each): a section's input history is the one before's output.
    state: [[f32; 2]; 4],
}

impl BandFilter {
    fn new() -> Self {
        Self {
            high: Section::butterworth(80.0, true),
            low: Section::butterworth(900.0, false),
            state: [[0.0; 2]; 4],
        }
    }

    fn clear(&mut self) {
        self.state = [[0.0; 2]; 4];
    }

    /// Filter one frame and keep every other sample at the end of the window, shifting the
    /// oldest out. The state lives in registers for the frame (no store in the feedback path).
    fn run_into(&mut self, history: &mut [f32; WINDOW], pcm: &[i16]) {
        let keep = pcm.len().div_ceil(2).min(WINDOW);
        history.copy_within(keep.., 0);
        let mut w = WINDOW - keep;
        let (h, l) = (self.high, self.low);
        let [
            [mut x1, mut x2],
            [mut h1, mut h2],
            [mut l1, mut l2],
            [mut o1, mut o2],
        ] = self.state;
        for (i, &s) in pcm.iter().enumerate() {
            let x = f32::from(s);
            let hp = h.step(x, x1, x2, h1, h2);
            let lp = l.step(hp, h1, h2, l1, l2);
            let out = l.step(lp, l1, l2, o1, o2);
            (x2, x1, h2, h1, l2, l1, o2, o1) = (x1, x, h1, hp, l1, lp, o1, out);
            if i % 2 == 0 && w < WINDOW {
                history[w] = out;
                w += 1;
            }
        }
        self.state = [[x1, x2], [h1, h2], [l1, l2], [o1, o2]];
    }
}

/// Periodicity (voicing) of the last 40 ms.
#[derive(Debug, Clone)]
pub struct Voicing {
    band: BandFilter,
    /// Last [`WINDOW`] decimated low-band samples, oldest first.
    history: [f32; WINDOW],
    /// The best lag of the last search: where the next search starts (pitch moves slowly).
    last_lag: usize,
    /// The last [`RAW_FRAMES`] frames as given (`raw_len` samples each), a ring at `raw_next`.
    raw: [[i16; FRAME_SAMPLES]; RAW_FRAMES],
    raw_len: [usize; RAW_FRAMES],
    raw_next: usize,
    /// Kept frames not yet through the filter (saturating: more than `RAW_FRAMES` means the
    /// filter state is older than what is kept).
    unfiltered: usize,
}

impl Default for Voicing {
    fn default() -> Self {
        Self::new()
    }
}

impl Voicing {
    pub fn new() -> Self {
        Self {
            band: BandFilter::new(),
            history: [0.0; WINDOW],
            last_lag: (MIN_LAG + MAX_LAG) / 2,
            raw: [[0; FRAME_SAMPLES]; RAW_FRAMES],
            raw_len: [0; RAW_FRAMES],
            raw_next: 0,
            unfiltered: 0,
        }
    }

    /// Keep one frame (20 ms expected; a longer one is cut to its last 20 ms). Cheap: a copy.
    pub fn update(&mut self, pcm: &[i16]) {
        let pcm = &pcm[pcm.len().saturating_sub(FRAME_SAMPLES)..];
        let slot = self.raw_next;
        self.raw[slot][..pcm.len()].copy_from_slice(pcm);
        self.raw_len[slot] = pcm.len();
        self.raw_next = (slot + 1) % RAW_FRAMES;
        self.unfiltered = (self.unfiltered + 1).min(RAW_FRAMES + 1);
    }

    /// Run the kept, unfiltered frames through the band filter into the window, oldest first.
    fn catch_up(&mut self) {
        if self.unfiltered > RAW_FRAMES {
            // The state belongs to audio no longer kept: restart from rest.
            self.band.clear();
        }
        let n = self.unfiltered.min(RAW_FRAMES);
        for k in (0..n).rev() {
            let slot = (self.raw_next + RAW_FRAMES - 1 - k) % RAW_FRAMES;
            let pcm = &self.raw[slot][..self.raw_len[slot]];
            self.band.run_into(&mut self.history, pcm);
        }
        self.unfiltered = 0;
    }

    /// Peak normalised autocorrelation over pitch lags of the last 40 ms, in 0..=1.
    /// Call after [`update`](Self::update). About 8 k multiply-adds.
    pub fn periodicity(&mut self) -> f32 {
        self.periodicity_until(f32::INFINITY)
    }

    /// As [`periodicity`](Self::periodicity), but the search stops at the first lag whose
    /// correlation reaches `enough` (and returns it): whether a frame is voiced costs one lag
    /// for most voiced frames, because the search starts at the last frame's pitch and moves
    /// outwards. A frame below `enough` gets the full search, so the answer to "is it at least
    /// `enough`, and if not, how much" is the same as the full search's.
    pub fn periodicity_until(&mut self, enough: f32) -> f32 {
        self.catch_up();
        let x = &self.history;
        // Prefix sums of squares (`energy[i]` = Σ x[..i]²): scratch, not per-call state, so
        // 1000 calls' detectors stay small in the cache.
        let mut energy = [0.0f32; WINDOW + 1];
        // Prefix sums four samples at a time: the running sum's chain is a quarter as long.
        for (j, q) in x.chunks_exact(4).enumerate() {
            let base = energy[4 * j];
            let (a, b, c, d) = (q[0] * q[0], q[1] * q[1], q[2] * q[2], q[3] * q[3]);
            let ab = a + b;
            energy[4 * j + 1] = base + a;
            energy[4 * j + 2] = base + ab;
            energy[4 * j + 3] = base + (ab + c);
            energy[4 * j + 4] = base + (ab + (c + d));
        }
        let total = energy[WINDOW];
        if total < 1e-3 {
            return 0.0;
        }
        let corr = |lag: usize| {
            let n = WINDOW - lag;
            let denom = (energy[n] * (total - energy[lag])).sqrt();
            if denom > 0.0 {
                dot(&x[..n], &x[lag..lag + n]) / denom
            } else {
                0.0
            }
        };
        let start = self.last_lag.clamp(MIN_LAG, MAX_LAG);
        let (mut best, mut best_lag) = (corr(start), start);
        for d in 1..=(MAX_LAG - MIN_LAG) {
            if best >= enough {
                break;
            }
            for lag in [start + d, start.wrapping_sub(d)] {
                if (MIN_LAG..=MAX_LAG).contains(&lag) {
                    let r = corr(lag);
                    if r > best {
                        (best, best_lag) = (r, lag);
                    }
                }
            }
        }
        self.last_lag = best_lag;
        best.clamp(0.0, 1.0)
    }
}

/// Dot product in eight independent lanes, so the compiler can vectorise it (a single running
/// sum is a dependency chain it may not reorder).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in ac.zip(bc) {
        for k in 0..8 {
            lanes[k] += ca[k] * cb[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic white noise in −0.5..0.5 (xorshift32), the same sequence for a seed.
    struct Noise(std::cell::Cell<u32>);

    impl Noise {
        fn new(seed: u32) -> Self {
            Self(std::cell::Cell::new(seed))
        }

        fn sample(&self) -> f32 {
            let mut s = self.0.get();
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            self.0.set(s);
            s as f32 / u32::MAX as f32 - 0.5
        }
    }

    fn feed(v: &mut Voicing, f: impl Fn(usize) -> f32, frames: usize) -> f32 {
        let mut p = 0.0;
        for k in 0..frames {
            let pcm: Vec<i16> = (0..FRAME_SAMPLES)
                .map(|i| f(k * FRAME_SAMPLES + i) as i16)
                .collect();
            v.update(&pcm);
            p = v.periodicity();
        }
        p
    }

    #[test]
    fn the_early_exit_search_agrees_with_the_full_search() {
        // A pitch glide (120 → 220 Hz) with noise: voiced, and the lag moves every frame.
        let rng = Noise::new(0x9e37_79b9);
        let sample = |n: usize| {
            let t = n as f32 / 8000.0;
            let f0 = 120.0 + 100.0 * (t / 2.0).min(1.0);
            let noise = rng.sample() * 3000.0;
            let voiced: f32 = (1..=6)
                .map(|h| 2500.0 / h as f32 * (std::f32::consts::TAU * f0 * h as f32 * t).sin())
                .sum();
            if (n / 4000).is_multiple_of(2) {
                voiced + noise
            } else {
                noise
            }
        };
        let (mut full, mut quick) = (Voicing::new(), Voicing::new());
        let mut quick_voiced = 0;
        for k in 0..100 {
            let pcm: Vec<i16> = (0..FRAME_SAMPLES)
                .map(|i| sample(k * FRAME_SAMPLES + i) as i16)
                .collect();
            full.update(&pcm);
            quick.update(&pcm);
            let (p, q) = (full.periodicity(), quick.periodicity_until(0.65));
            assert_eq!(p >= 0.65, q >= 0.65, "frame {k}: full {p}, early exit {q}");
            if p < 0.65 {
                assert!((p - q).abs() < 1e-6, "frame {k}: {p} vs {q}");
            }
            quick_voiced += usize::from(q >= 0.65);
        }
        assert!(quick_voiced > 20, "the glide is voiced: {quick_voiced}");
    }

    #[test]
    fn the_lazy_filter_matches_filtering_every_frame() {
        // Speech-like bursts (a 150 Hz voice in noise) between quiet stretches.
        let rng = Noise::new(0x1234_5678);
        let sample = |n: usize| {
            let t = n as f32 / 8000.0;
            let noise = rng.sample() * 400.0;
            let voice: f32 = (1..=5)
                .map(|h| 2000.0 / h as f32 * (std::f32::consts::TAU * 150.0 * h as f32 * t).sin())
                .sum();
            noise + voice * f32::from(u8::from(!(n / 1600).is_multiple_of(3)))
        };
        let (mut every, mut lazy) = (Voicing::new(), Voicing::new());
        // Asked after gaps of 0, 1, 2 skipped frames (exact until the first longer gap), and
        // after 9 or more (the filter restarts from rest: close, no longer bit-exact).
        let asked = [0, 1, 3, 6, 16, 17, 27, 28, 31, 41, 60, 61, 62, 63, 73, 99];
        let (mut checked, mut restarted) = (0, false);
        for k in 0..100 {
            let pcm: Vec<i16> = (0..FRAME_SAMPLES)
                .map(|i| sample(k * FRAME_SAMPLES + i) as i16)
                .collect();
            every.update(&pcm);
            let full = every.periodicity();
            lazy.update(&pcm);
            if !asked.contains(&k) {
                continue;
            }
            let since = asked
                .iter()
                .rev()
                .find(|&&a| a < k)
                .map_or(k + 1, |a| k - a);
            let got = lazy.periodicity();
            restarted |= since > RAW_FRAMES;
            if !restarted {
                assert_eq!(got, full, "frame {k}, {since} since the last ask");
            } else {
                assert!((got - full).abs() < 1e-3, "frame {k}: {got} vs {full}");
            }
            checked += 1;
        }
        assert_eq!(checked, asked.len());
    }

    #[test]
    fn a_voiced_pulse_train_is_periodic_noise_is_not() {
        // A 140 Hz glottal-like signal: harmonics with falling amplitude.
        let voiced = |n: usize| {
            let t = n as f32 / 8000.0;
            (1..=8)
                .map(|h| 3000.0 / h as f32 * (std::f32::consts::TAU * 140.0 * h as f32 * t).sin())
                .sum::<f32>()
        };
        let mut v = Voicing::new();
        assert!(feed(&mut v, voiced, 5) > 0.9);

        let mut v = Voicing::new();
        let rng = Noise::new(0x2545_f491);
        let noise = |_n: usize| rng.sample() * 8000.0;
        assert!(feed(&mut v, noise, 5) < 0.5);
        let mut v = Voicing::new();
        assert_eq!(feed(&mut v, |_| 0.0, 3), 0.0);
    }
}
