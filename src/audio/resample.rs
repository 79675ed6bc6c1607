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
mod tests;
