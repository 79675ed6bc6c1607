//! Audio primitives for the media path: G.711 μ-law coding, per-stream sample-rate
//! conversion and WAV file access.
//!
//! Twilio Media Streams carry 8 kHz mono μ-law; the speech pipeline works on linear PCM at
//! other rates (16 kHz for recognition, 22.05–48 kHz from synthesis). This module holds the
//! pure, synchronous building blocks that bridge the two:
//!
//! - [`mulaw`]: table-driven G.711 μ-law encode/decode.
//! - [`resample`]: a stateful, delay-compensated mono resampler for one stream.
//! - [`wav`]: reading and writing WAV files (fixtures, recordings, prompts).
//!
//! What this module must not do:
//! - no I/O anywhere except in [`wav`];
//! - no async, no locking, no threads: callers own scheduling;
//! - no allocation per frame in [`mulaw`] (callers pass the destination buffers).

pub mod mulaw;
pub mod resample;
pub mod wav;

/// Level of a frame of linear PCM in dBFS (full scale = 32768); silence gives -96.
pub fn frame_dbfs(pcm: &[i16]) -> f32 {
    if pcm.is_empty() {
        return -96.0;
    }
    let energy: i64 = pcm.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    let mean = energy as f64 / pcm.len() as f64;
    if mean < 1.0 {
        return -96.0;
    }
    (10.0 * (mean / (32768.0 * 32768.0)).log10()).max(-96.0) as f32
}

use std::path::PathBuf;

/// Errors produced by the audio module.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The pair of sample rates cannot be converted: a rate is zero or above 384 kHz, or the
    /// rates' greatest common divisor is below 10 Hz (no exact block of at most 100 ms).
    #[error("unsupported sample rate conversion {from_hz} Hz -> {to_hz} Hz")]
    UnsupportedRate {
        /// Input sample rate in Hz.
        from_hz: u32,
        /// Output sample rate in Hz.
        to_hz: u32,
    },
    /// The underlying resampler could not be constructed.
    #[error("cannot build resampler {from_hz} Hz -> {to_hz} Hz: {source}")]
    ResamplerInit {
        /// Input sample rate in Hz.
        from_hz: u32,
        /// Output sample rate in Hz.
        to_hz: u32,
        /// The error reported by rubato.
        #[source]
        source: rubato::ResamplerConstructionError,
    },
    /// The underlying resampler failed while processing a block.
    #[error("resampling failed: {0}")]
    Resample(#[from] rubato::ResampleError),
    /// An internal buffer handed to the resampler had the wrong size (a bug in this module).
    #[error("resampler buffer has the wrong size: {0}")]
    Buffer(#[from] rubato::audioadapter_buffers::SizeError),
    /// Opening, reading, parsing or writing a WAV file failed.
    #[error("WAV file {}: {source}", path.display())]
    Wav {
        /// The file (or `<memory>` for in-memory data) being accessed.
        path: PathBuf,
        /// The error reported by hound (includes I/O errors).
        #[source]
        source: hound::Error,
    },
    /// The WAV file is well formed but uses a sample format this module does not handle.
    #[error("WAV file {}: unsupported format: {detail}", path.display())]
    UnsupportedWavFormat {
        /// The file (or `<memory>` for in-memory data) being read.
        path: PathBuf,
        /// What was found, e.g. "12-bit integer samples".
        detail: String,
    },
}
