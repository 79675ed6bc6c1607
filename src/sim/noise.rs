//! Background noise on the simulated caller's line, for tests of turn-taking on noisy lines
//! (issue 11): white noise, or car-like noise (a brown rumble plus an engine's harmonics, as
//! `scripts/make-vad-fixtures.py` makes it), band-limited like a phone line (250–3400 Hz) and
//! scaled to a level in dBFS. Generated in-process and deterministic for a seed; mixed under
//! everything the caller sends, speech and silence alike. No I/O, no allocation per frame.

/// Which noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseKind {
    White,
    /// Brown rumble + engine harmonics around 25–45 Hz, after the phone band-pass.
    Car,
}

/// Noise under the caller's line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineNoise {
    pub kind: NoiseKind,
    /// Its level (mean power) in dBFS.
    pub level_dbfs: f32,
    pub seed: u64,
}

/// Samples used to measure the generator's own level before scaling it (4 s).
const CALIBRATION_SAMPLES: usize = 32_000;
const RATE: f32 = 8000.0;
const HARMONICS: usize = 12;

#[derive(Debug, Clone, Copy)]
struct Biquad {
    b: [f32; 3],
    a: [f32; 2],
    x: [f32; 2],
    y: [f32; 2],
}

impl Biquad {
    fn butterworth(fc: f32, high: bool) -> Self {
        let w0 = std::f32::consts::TAU * fc / RATE;
        let (cw, sw) = (w0.cos(), w0.sin());
        let alpha = sw / std::f32::consts::SQRT_2;
        let a0 = 1.0 + alpha;
        let b = if high {
            [(1.0 + cw) / 2.0, -(1.0 + cw), (1.0 + cw) / 2.0]
        } else {
            [(1.0 - cw) / 2.0, 1.0 - cw, (1.0 - cw) / 2.0]
        };
        Self {
            b: [b[0] / a0, b[1] / a0, b[2] / a0],
            a: [-2.0 * cw / a0, (1.0 - alpha) / a0],
            x: [0.0; 2],
            y: [0.0; 2],
        }
    }

    fn run(&mut self, v: f32) -> f32 {
        let out = self.b[0] * v + self.b[1] * self.x[0] + self.b[2] * self.x[1]
            - self.a[0] * self.y[0]
            - self.a[1] * self.y[1];
        self.x = [v, self.x[0]];
        self.y = [out, self.y[0]];
        out
    }
}

/// The running generator for one call.
#[derive(Debug, Clone)]
pub(crate) struct NoiseSource {
    kind: NoiseKind,
    rng: u64,
    spare: Option<f32>,
    brown: f32,
    f0: f32,
    phase: [f32; HARMONICS],
    n: u64,
    band: [Biquad; 2],
    gain: f32,
}

impl NoiseSource {
    pub fn new(noise: LineNoise) -> Self {
        let mut src = Self {
            kind: noise.kind,
            rng: noise.seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            spare: None,
            brown: 0.0,
            f0: 32.0,
            phase: [0.0; HARMONICS],
            n: 0,
            band: [
                Biquad::butterworth(250.0, true),
                Biquad::butterworth(3400.0, false),
            ],
            gain: 1.0,
        };
        // Measure the unscaled level on a copy, then scale to the wanted level.
        let mut probe = src.clone();
        let power: f64 = (0..CALIBRATION_SAMPLES)
            .map(|_| f64::from(probe.raw()).powi(2))
            .sum::<f64>()
            / CALIBRATION_SAMPLES as f64;
        let want = 10f64.powf(f64::from(noise.level_dbfs) / 10.0) * 32768.0 * 32768.0;
        src.gain = (want / power.max(1e-12)).sqrt() as f32;
        src
    }

    fn uniform(&mut self) -> f32 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let v = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((v >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    /// A standard normal sample (Box–Muller, both halves used).
    fn gauss(&mut self) -> f32 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let (u, v) = (self.uniform(), self.uniform());
        let r = (-2.0 * u.ln()).sqrt();
        let t = std::f32::consts::TAU * v;
        self.spare = Some(r * t.sin());
        r * t.cos()
    }

    /// One unscaled, band-limited sample.
    fn raw(&mut self) -> f32 {
        let v = match self.kind {
            NoiseKind::White => self.gauss(),
            NoiseKind::Car => {
                self.brown = 0.995 * self.brown + self.gauss() * 0.1;
                if self.n.is_multiple_of(80) {
                    self.f0 = (self.f0 + self.gauss() * 0.15).clamp(25.0, 45.0);
                }
                let mut hum = 0.0;
                for (k, p) in self.phase.iter_mut().enumerate() {
                    let h = (k + 1) as f32;
                    *p = (*p + std::f32::consts::TAU * self.f0 * h / RATE) % std::f32::consts::TAU;
                    hum += p.sin() / h;
                }
                self.brown + 0.02 * hum
            }
        };
        self.n += 1;
        let v = self.band[0].run(v);
        self.band[1].run(v)
    }

    /// Add the noise to a frame of linear PCM (saturating).
    pub fn mix_into(&mut self, pcm: &mut [i16]) {
        for s in pcm {
            let v = f32::from(*s) + self.raw() * self.gain;
            *s = v.clamp(-32768.0, 32767.0) as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::frame_dbfs;

    #[test]
    fn noise_comes_out_at_its_level_and_repeats_for_a_seed() {
        for kind in [NoiseKind::White, NoiseKind::Car] {
            let noise = LineNoise {
                kind,
                level_dbfs: -40.0,
                seed: 3,
            };
            let mut a = NoiseSource::new(noise);
            let mut b = NoiseSource::new(noise);
            let mut energy = 0.0f64;
            for _ in 0..250 {
                let mut fa = [0i16; 160];
                let mut fb = [0i16; 160];
                a.mix_into(&mut fa);
                b.mix_into(&mut fb);
                assert_eq!(fa, fb);
                energy += 10f64.powf(f64::from(frame_dbfs(&fa)) / 10.0);
            }
            let level = 10.0 * (energy / 250.0).log10();
            assert!((level + 40.0).abs() < 1.0, "{kind:?}: {level:.1} dBFS");
        }
    }
}
