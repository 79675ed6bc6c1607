//! A per-call noise floor by minimum statistics (after R. Martin, "Noise power spectral density
//! estimation based on optimal smoothing and minimum statistics", 2001, reduced to one band):
//! the frame power is smoothed, and the floor is the minimum of the smoothed power over the
//! last ~2.4 s, kept as [`SUB_WINDOWS`] sub-window minima so each frame costs O(1).
//!
//! Speech has pauses between words and phrases; over a window of a couple of seconds the
//! minimum of the smoothed power lands in them, on the noise. The floor follows a quieter line
//! at once and a noisier one within one window. Digital silence (a muted leg, a VoIP line
//! without comfort noise, a test line) counts as a frame at [`SILENCE_DBFS`], and is remembered
//! for [`SILENCE_MEMORY_FRAMES`]: a line that was digitally silent has no noise to track, so a
//! turn longer than the window does not lift the floor onto the quietest speech. (A line that
//! turns noisy after a dropout keeps the low floor for those 10 s; the detector's voicing cue
//! still keeps steady noise out.) This module only estimates; it decides nothing.

/// Frames per sub-window (15 × 20 ms = 300 ms).
pub const SUB_WINDOW_FRAMES: u32 = 15;
/// Sub-windows in the search window (8 × 300 ms = 2.4 s).
pub const SUB_WINDOWS: usize = 8;
/// Smoothing of the frame power (per 20 ms frame) before the minimum search.
const SMOOTHING: f32 = 0.7;
/// The minimum of a smoothed noise power sits below its mean; this much is added back (dB),
/// measured on the white and pink fixtures (the minimum over 2.4 s is ~1 dB low).
const BIAS_DB: f32 = 1.0;
/// Frames below this are digital silence or a muted leg, and count as this level.
pub const SILENCE_DBFS: f32 = -90.0;
/// How long digital silence keeps the floor down (10 s of frames).
pub const SILENCE_MEMORY_FRAMES: u32 = 500;
/// Reported before any frame was seen.
const UNKNOWN_DBFS: f32 = -96.0;

/// Running minimum-statistics floor of a stream of frame levels.
#[derive(Debug, Clone)]
pub struct MinimumStatistics {
    smoothed: f32,
    started: bool,
    current_min: f32,
    in_current: u32,
    minima: [f32; SUB_WINDOWS],
    filled: usize,
    next: usize,
    /// Frames since the last digitally silent one (saturating; `u32::MAX`: never).
    since_silence: u32,
    /// [`floor_dbfs`](Self::floor_dbfs) as of the last push (it changes only there).
    floor_dbfs: f32,
}

impl Default for MinimumStatistics {
    fn default() -> Self {
        Self::new()
    }
}

impl MinimumStatistics {
    pub fn new() -> Self {
        Self {
            smoothed: 0.0,
            started: false,
            current_min: f32::INFINITY,
            in_current: 0,
            minima: [f32::INFINITY; SUB_WINDOWS],
            filled: 0,
            next: 0,
            since_silence: u32::MAX,
            floor_dbfs: UNKNOWN_DBFS,
        }
    }

    /// Feed one frame's level (dBFS).
    pub fn push(&mut self, level_dbfs: f32) {
        self.since_silence = if level_dbfs <= SILENCE_DBFS {
            0
        } else {
            self.since_silence.saturating_add(1)
        };
        let level_dbfs = level_dbfs.max(SILENCE_DBFS);
        let power = 10f32.powf(level_dbfs / 10.0);
        if self.started {
            self.smoothed = SMOOTHING * self.smoothed + (1.0 - SMOOTHING) * power;
        } else {
            self.smoothed = power;
            self.started = true;
        }
        self.current_min = self.current_min.min(self.smoothed);
        self.in_current += 1;
        if self.in_current == SUB_WINDOW_FRAMES {
            self.minima[self.next] = self.current_min;
            self.next = (self.next + 1) % SUB_WINDOWS;
            self.filled = (self.filled + 1).min(SUB_WINDOWS);
            self.current_min = f32::INFINITY;
            self.in_current = 0;
        }
        self.floor_dbfs = self.compute_floor_dbfs();
    }

    /// The floor in dBFS (−96 before any non-silent frame).
    pub fn floor_dbfs(&self) -> f32 {
        self.floor_dbfs
    }

    fn compute_floor_dbfs(&self) -> f32 {
        let mut min = self.current_min;
        if self.since_silence <= SILENCE_MEMORY_FRAMES {
            min = min.min(10f32.powf(SILENCE_DBFS / 10.0));
        }
        for m in &self.minima[..self.filled] {
            min = min.min(*m);
        }
        if !min.is_finite() {
            return UNKNOWN_DBFS;
        }
        (10.0 * min.max(1e-10).log10() + BIAS_DB).max(UNKNOWN_DBFS)
    }

    /// Frames seen since the start (capped), to tell a settled floor from a first guess.
    pub fn settled(&self) -> bool {
        self.filled >= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_quieter_line_at_once_and_a_noisier_one_within_a_window() {
        let mut m = MinimumStatistics::new();
        assert_eq!(m.floor_dbfs(), -96.0);
        for _ in 0..200 {
            m.push(-40.0);
        }
        assert!((m.floor_dbfs() - -39.0).abs() < 0.01, "{}", m.floor_dbfs());
        // Speech on top for 1 s: the floor stays on the noise.
        for i in 0..50 {
            m.push(if i % 10 < 8 { -20.0 } else { -40.0 });
        }
        assert!(m.floor_dbfs() < -38.0, "{}", m.floor_dbfs());
        // The line gets quieter: the floor follows as fast as the smoothing lets it (from
        // speech at -20 dBFS down to -60: 30 frames).
        for _ in 0..30 {
            m.push(-60.0);
        }
        assert!(m.floor_dbfs() < -58.0, "{}", m.floor_dbfs());
        // Noisier: one whole window after the smoothing settled (the run starts mid
        // sub-window; its first frames still rise), the old minimum is gone.
        let window = (SUB_WINDOW_FRAMES as usize) * (SUB_WINDOWS + 2);
        for _ in 0..window {
            m.push(-30.0);
        }
        assert!((m.floor_dbfs() - -29.0).abs() < 0.01, "{}", m.floor_dbfs());
    }

    #[test]
    fn digital_silence_is_a_floor_at_the_silence_level() {
        let mut m = MinimumStatistics::new();
        for _ in 0..100 {
            m.push(-96.0);
        }
        assert!((m.floor_dbfs() - (SILENCE_DBFS + BIAS_DB)).abs() < 0.01);
        // Speech on a clean line: the floor stays on the silence between words.
        for i in 0..100 {
            m.push(if i % 20 < 15 { -20.0 } else { -96.0 });
        }
        assert!(m.floor_dbfs() < -80.0, "{}", m.floor_dbfs());
        // A turn longer than the window, right after the silence: the floor stays down.
        for _ in 0..200 {
            m.push(-25.0);
        }
        assert!(m.floor_dbfs() < -80.0, "{}", m.floor_dbfs());
        // A noisy line after a dropout: once the silence is forgotten (10 s) and a window
        // has passed, the floor is the noise.
        for _ in 0..(SILENCE_MEMORY_FRAMES as usize) {
            m.push(-50.0);
        }
        assert!((m.floor_dbfs() - -49.0).abs() < 0.01, "{}", m.floor_dbfs());
    }
}
