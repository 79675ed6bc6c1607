//! Stateful, delay-compensated mono sample-rate conversion for one media stream.
//!
//! Typical pairs are 8 kHz (telephony) ↔ 16 / 22.05 / 24 / 44.1 / 48 kHz (speech engines), but
//! any two rates whose greatest common divisor is at least 10 Hz work. The conversion is
//! rubato's synchronous FFT resampler (windowed-sinc anti-aliasing filter, applied by
//! overlap-add), run on fixed blocks of about 20 ms so that one media frame in gives one
//! frame out. Because the blocks are fixed internally, the output does not depend on how
//! the input is chunked.
//!
//! What this module must not do: I/O, async, or allocation inside
//! [`StreamResampler::process`] once its buffers have grown to the caller's chunk size
//! (the caller's output `Vec` may still grow).

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler, WindowFunction};

use super::AudioError;

/// Target length of one internal processing block, in milliseconds.
const BLOCK_MS: u64 = 20;
/// Smallest allowed GCD of the two rates: it keeps the smallest exact block at 100 ms or less.
const MIN_RATE_GCD: u32 = 10;
/// Highest accepted sample rate.
const MAX_RATE_HZ: u32 = 384_000;

/// A mono resampler for one stream, accepting input in chunks of any size.
///
/// The output is time-aligned with the input: the filter delay is dropped at the start and
/// [`flush`](Self::flush) pushes out the tail, so `input_len` samples at `from_hz` become
/// `ceil(input_len * to_hz / from_hz)` samples at `to_hz`, with sample `n` of the output at
/// time `n / to_hz`, like sample `n` of the input is at `n / from_hz`.
pub struct StreamResampler {
    from_hz: u32,
    to_hz: u32,
    /// `None` when the rates are equal (pass-through).
    engine: Option<Engine>,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("from_hz", &self.from_hz)
            .field("to_hz", &self.to_hz)
            .field("identity", &self.engine.is_none())
            .finish()
    }
}

/// Block-wise conversion state for distinct rates.
struct Engine {
    fft: Fft<f32>,
    block_in: usize,
    block_out: usize,
    /// Output frames of filter delay, dropped at the start of each stream.
    delay: usize,
    /// Input received but not yet processed (always fewer than `block_in` between calls).
    pending: Vec<f32>,
    /// Output of one block.
    scratch: Vec<f32>,
    /// Output frames still to drop before emitting.
    skip: usize,
    /// Input frames accepted since the stream started.
    frames_in: u64,
    /// Output frames emitted since the stream started.
    frames_out: u64,
}

impl StreamResampler {
    /// Creates a resampler from `from_hz` to `to_hz`.
    ///
    /// Equal rates give a pass-through. Fails with [`AudioError::UnsupportedRate`] for a zero
    /// rate, a rate above 384 kHz, or a pair whose GCD is below 10 Hz.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, AudioError> {
        let unsupported = AudioError::UnsupportedRate { from_hz, to_hz };
        if from_hz == 0 || to_hz == 0 || from_hz > MAX_RATE_HZ || to_hz > MAX_RATE_HZ {
            return Err(unsupported);
        }
        if from_hz == to_hz {
            return Ok(Self {
                from_hz,
                to_hz,
                engine: None,
            });
        }
        let (block_in, _) = block_sizes(from_hz, to_hz).ok_or(unsupported)?;
        let fft = Fft::<f32>::new_custom(
            from_hz as usize,
            to_hz as usize,
            block_in,
            1,
            1,
            WindowFunction::BlackmanHarris2,
            FixedSync::Both,
        )
        .map_err(|source| AudioError::ResamplerInit {
            from_hz,
            to_hz,
            source,
        })?;
        let block_in = fft.input_frames_next();
        let block_out = fft.output_frames_next();
        let delay = fft.output_delay();
        Ok(Self {
            from_hz,
            to_hz,
            engine: Some(Engine {
                fft,
                block_in,
                block_out,
                delay,
                pending: Vec::with_capacity(2 * block_in),
                scratch: vec![0.0; block_out],
                skip: delay,
                frames_in: 0,
                frames_out: 0,
            }),
        })
    }

    /// Input sample rate in Hz.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// Output sample rate in Hz.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Feeds `input` (any length, including 0) and appends every output sample that is
    /// ready to `out`. Input that does not fill a whole internal block is kept for the next
    /// call or for [`flush`](Self::flush).
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        let Some(engine) = self.engine.as_mut() else {
            out.extend_from_slice(input);
            return Ok(());
        };
        engine.pending.extend_from_slice(input);
        engine.frames_in += input.len() as u64;
        let mut offset = 0;
        while engine.pending.len() - offset >= engine.block_in {
            engine.run_block(offset, out, u64::MAX)?;
            offset += engine.block_in;
        }
        engine.pending.drain(..offset);
        Ok(())
    }

    /// Ends the stream: appends the remaining output to `out`, so that the total output
    /// since the start is `ceil(input_len * to_hz / from_hz)` samples, then resets the
    /// resampler so it can start a new stream.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        let Some(engine) = self.engine.as_mut() else {
            return Ok(());
        };
        let total = (engine.frames_in * u64::from(self.to_hz)).div_ceil(u64::from(self.from_hz));
        let result = engine.drain_to(total, out);
        engine.reset();
        result
    }
}

impl Engine {
    /// Resamples the block of `pending` starting at `offset` and emits its output, dropping
    /// the start-up delay and emitting no more than `limit` frames in total.
    fn run_block(
        &mut self,
        offset: usize,
        out: &mut Vec<f32>,
        limit: u64,
    ) -> Result<(), AudioError> {
        let input = InterleavedSlice::new(&self.pending[..], 1, self.pending.len())?;
        let mut output = InterleavedSlice::new_mut(&mut self.scratch[..], 1, self.block_out)?;
        let indexing = Indexing {
            input_offset: offset,
            output_offset: 0,
            partial_len: None,
            active_channels_mask: None,
        };
        let (_, produced) = self
            .fft
            .process_into_buffer(&input, &mut output, Some(&indexing))?;
        let start = self.skip.min(produced);
        self.skip -= start;
        let room = usize::try_from(limit.saturating_sub(self.frames_out)).unwrap_or(usize::MAX);
        let end = produced.min(start.saturating_add(room));
        out.extend_from_slice(&self.scratch[start..end]);
        self.frames_out += (end - start) as u64;
        Ok(())
    }

    /// Pushes zero-padded blocks through until `total` frames have been emitted.
    fn drain_to(&mut self, total: u64, out: &mut Vec<f32>) -> Result<(), AudioError> {
        while self.frames_out < total {
            self.pending.resize(self.block_in, 0.0);
            self.run_block(0, out, total)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Returns to the start-of-stream state, keeping the allocated buffers.
    fn reset(&mut self) {
        self.fft.reset();
        self.pending.clear();
        self.skip = self.delay;
        self.frames_in = 0;
        self.frames_out = 0;
    }
}

/// Picks the internal block sizes `(in, out)`: an exact multiple of the smallest block
/// `(from/gcd, to/gcd)` of about [`BLOCK_MS`], with both sizes even so that the filter delay
/// (half a block) is a whole number of samples on both sides.
fn block_sizes(from_hz: u32, to_hz: u32) -> Option<(usize, usize)> {
    let g = gcd(from_hz, to_hz);
    if g < MIN_RATE_GCD {
        return None;
    }
    let (min_in, min_out) = (u64::from(from_hz / g), u64::from(to_hz / g));
    let target = u64::from(from_hz) * BLOCK_MS / 1000;
    let mut k = target.div_ceil(min_in).max(1);
    if (k * min_in) % 2 == 1 || (k * min_out) % 2 == 1 {
        k += 1;
    }
    Some((
        usize::try_from(k * min_in).ok()?,
        usize::try_from(k * min_out).ok()?,
    ))
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Resamples a whole clip in one call (`new` + `process` + `flush`).
pub fn resample_all(input: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, AudioError> {
    let mut resampler = StreamResampler::new(from_hz, to_hz)?;
    let expected = (input.len() as u64 * u64::from(to_hz)).div_ceil(u64::from(from_hz));
    let mut out = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    resampler.process(input, &mut out)?;
    resampler.flush(&mut out)?;
    Ok(out)
}

/// Appends `src` converted to floats in [-1, 1) (`x / 32768`) to `dst`.
pub fn i16_to_f32(src: &[i16], dst: &mut Vec<f32>) {
    dst.extend(src.iter().map(|&s| f32::from(s) / 32768.0));
}

/// Appends `src` converted to 16-bit (`round(x * 32768)`, saturating; NaN becomes 0) to `dst`.
pub fn f32_to_i16(src: &[f32], dst: &mut Vec<i16>) {
    // `as` saturates out-of-range floats and maps NaN to 0.
    dst.extend(src.iter().map(|&x| (x * 32768.0).round() as i16));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::TAU;

    const RATES: [u32; 5] = [16_000, 22_050, 24_000, 44_100, 48_000];

    fn tone(freq: f32, rate: u32, len: usize, amp: f32) -> Vec<f32> {
        (0..len)
            .map(|n| amp * (TAU * freq * n as f32 / rate as f32).sin())
            .collect()
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    }

    fn chunked(input: &[f32], from: u32, to: u32, chunk: usize) -> Vec<f32> {
        let mut r = StreamResampler::new(from, to).unwrap();
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            r.process(c, &mut out).unwrap();
        }
        r.flush(&mut out).unwrap();
        out
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn chunking_does_not_change_output() {
        for (from, to) in [(8_000, 16_000), (24_000, 8_000), (8_000, 22_050)] {
            for freq in [440.0, 1000.0] {
                let input = tone(freq, from, from as usize / 2, 0.8);
                let whole = resample_all(&input, from, to).unwrap();
                for chunk in [from as usize / 50, 37, 1] {
                    let diff = max_abs_diff(&chunked(&input, from, to, chunk), &whole);
                    assert!(diff < 1e-4, "{from}->{to} {freq} Hz chunk {chunk}: {diff}");
                }
            }
        }
    }

    #[test]
    fn tone_keeps_frequency_amplitude_and_timing() {
        let pairs = RATES.iter().flat_map(|&r| [(8_000, r), (r, 8_000)]);
        // 1 kHz is blind to a 10 ms misalignment (a whole number of periods); 730 Hz is not.
        for ((from, to), freq) in pairs.flat_map(|p| [(p, 1000.0), (p, 730.0)]) {
            let amp = 0.5;
            let len = from as usize * 3 / 10;
            let out = resample_all(&tone(freq, from, len, amp), from, to).unwrap();
            let expected_len = (len * to as usize).div_ceil(from as usize);
            assert_eq!(out.len(), expected_len, "{from}->{to} length");

            // Skip the onset/offset transients (30 ms each side), compare with the ideal tone.
            let edge = to as usize * 3 / 100;
            let body = &out[edge..out.len() - edge];
            let ideal = &tone(freq, to, out.len(), amp)[edge..out.len() - edge];
            let gain_db = 20.0 * (rms(body) / rms(ideal)).log10();
            assert!(
                gain_db.abs() < 0.5,
                "{from}->{to} {freq} Hz gain {gain_db} dB"
            );
            let err = max_abs_diff(body, ideal);
            assert!(
                err < 2e-3,
                "{from}->{to} {freq} Hz max error vs ideal {err}"
            );
        }
    }

    #[test]
    fn impulse_lands_at_the_same_time() {
        for (from, to, at_in, at_out) in [(8_000, 16_000, 400, 800), (24_000, 8_000, 1_200, 400)] {
            let mut input = vec![0.0; from as usize / 4];
            input[at_in] = 1.0;
            let out = resample_all(&input, from, to).unwrap();
            let peak = (0..out.len())
                .max_by(|&a, &b| out[a].abs().total_cmp(&out[b].abs()))
                .unwrap();
            assert_eq!(peak, at_out, "{from}->{to}");
        }
    }

    #[test]
    fn downsampling_rejects_aliases() {
        for from in [48_000, 24_000] {
            let input = tone(6000.0, from, from as usize / 5, 0.8);
            let out = resample_all(&input, from, 8_000).unwrap();
            let body = &out[240..out.len() - 240];
            let rejection_db = 20.0 * (rms(&input) / rms(body)).log10();
            assert!(rejection_db > 40.0, "{from}->8000: only {rejection_db} dB");
        }
    }

    #[test]
    fn identity_passes_through() {
        let input = tone(440.0, 16_000, 1000, 0.3);
        let mut r = StreamResampler::new(16_000, 16_000).unwrap();
        let mut out = vec![9.0];
        r.process(&input[..10], &mut out).unwrap();
        r.process(&input[10..], &mut out).unwrap();
        r.flush(&mut out).unwrap();
        assert_eq!(out[0], 9.0);
        assert_eq!(&out[1..], &input[..]);
        assert_eq!((r.from_hz(), r.to_hz()), (16_000, 16_000));
    }

    #[test]
    fn output_is_delay_compensated_and_streams_per_frame() {
        let mut r = StreamResampler::new(8_000, 16_000).unwrap();
        let frame = tone(1000.0, 8_000, 160, 0.5);
        let mut out = Vec::new();
        r.process(&[], &mut out).unwrap();
        assert!(out.is_empty());
        r.process(&frame, &mut out).unwrap();
        // One 20 ms frame in gives one frame out, minus the dropped filter delay.
        assert_eq!(out.len(), 320 - 160);
        r.process(&frame, &mut out).unwrap();
        assert_eq!(out.len(), 640 - 160);
        r.flush(&mut out).unwrap();
        assert_eq!(out.len(), 640);
    }

    #[test]
    fn flush_resets_for_a_new_stream() {
        let input = tone(440.0, 24_000, 2_000, 0.5);
        let first = resample_all(&input, 24_000, 8_000).unwrap();
        let mut r = StreamResampler::new(24_000, 8_000).unwrap();
        let mut out = Vec::new();
        r.process(&tone(1000.0, 24_000, 777, 0.9), &mut out)
            .unwrap();
        r.flush(&mut out).unwrap();
        assert_eq!(out.len(), 259);
        out.clear();
        r.process(&input, &mut out).unwrap();
        r.flush(&mut out).unwrap();
        assert!(out == first, "second stream differs from a fresh resampler");
        out.clear();
        r.flush(&mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn resampler_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<StreamResampler>();
    }

    #[test]
    fn rejects_unsupported_rates() {
        for (from, to) in [(0, 8_000), (8_000, 0), (44_100, 44_101), (8_000, 1_000_000)] {
            let err = StreamResampler::new(from, to).unwrap_err();
            assert!(
                matches!(err, AudioError::UnsupportedRate { .. }),
                "{from}->{to}"
            );
        }
        assert!(StreamResampler::new(11_025, 8_000).is_ok());
    }

    #[test]
    fn block_sizes_are_even_and_about_20_ms() {
        assert_eq!(block_sizes(8_000, 16_000), Some((160, 320)));
        assert_eq!(block_sizes(24_000, 8_000), Some((480, 160)));
        assert_eq!(block_sizes(8_000, 44_100), Some((160, 882)));
        assert_eq!(block_sizes(8_000, 22_050), Some((320, 882)));
        assert_eq!(block_sizes(48_000, 8_000), Some((960, 160)));
    }

    #[test]
    fn sample_format_helpers_round_and_saturate() {
        let mut f = vec![0.25];
        i16_to_f32(&[i16::MIN, 0, 16_384, i16::MAX], &mut f);
        assert_eq!(f, [0.25, -1.0, 0.0, 0.5, 32767.0 / 32768.0]);
        let mut i = vec![7];
        f32_to_i16(
            &[
                1.0,
                -1.0,
                2.0,
                -2.0,
                f32::NAN,
                0.5,
                1.4 / 32768.0,
                1.6 / 32768.0,
            ],
            &mut i,
        );
        assert_eq!(i, [7, 32767, -32768, 32767, -32768, 0, 16_384, 1, 2]);
    }
}
