//! WAV file reading and writing (via hound) for fixtures, prompts and call recordings.
//!
//! Reading accepts any sample rate and channel count (mixed down to mono by averaging),
//! integer samples of 8/16/24/32 bits and 32-bit float, and yields floats in [-1, 1].
//! Writing produces mono 16-bit PCM.
//!
//! This is the only file of the audio module that does I/O. It must not be used on the
//! real-time media path: it reads whole files into memory and blocks on the file system.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavReader, WavSpec, WavWriter};

use super::AudioError;
use super::mulaw;
use super::resample::{f32_to_i16, resample_all};

/// Name used in errors for WAV data read from memory.
const MEMORY_PATH: &str = "<memory>";

/// Mono audio in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Mono samples in [-1, 1].
    pub samples: Vec<f32>,
}

fn wav_error(path: &Path) -> impl FnOnce(hound::Error) -> AudioError + '_ {
    move |source| AudioError::Wav {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a WAV file as mono floats (channels averaged).
pub fn read_wav(path: &Path) -> Result<Pcm, AudioError> {
    let reader = WavReader::open(path).map_err(wav_error(path))?;
    read_pcm(reader, path)
}

/// Reads WAV data held in memory as mono floats (channels averaged).
pub fn read_wav_bytes(bytes: &[u8]) -> Result<Pcm, AudioError> {
    let path = Path::new(MEMORY_PATH);
    let reader = WavReader::new(Cursor::new(bytes)).map_err(wav_error(path))?;
    read_pcm(reader, path)
}

fn read_pcm<R: Read>(mut reader: WavReader<R>, path: &Path) -> Result<Pcm, AudioError> {
    let spec = reader.spec();
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Float, 32) => reader.samples::<f32>().collect::<Result<_, _>>(),
        (SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect()
        }
        (format, bits) => {
            return Err(AudioError::UnsupportedWavFormat {
                path: path.to_path_buf(),
                detail: format!("{bits}-bit {format:?} samples"),
            });
        }
    }
    .map_err(wav_error(path))?;
    let samples = match usize::from(spec.channels) {
        0 => {
            return Err(AudioError::UnsupportedWavFormat {
                path: path.to_path_buf(),
                detail: "zero channels".to_owned(),
            });
        }
        1 => interleaved,
        channels => interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() / channels as f32)
            .collect(),
    };
    Ok(Pcm {
        sample_rate: spec.sample_rate,
        samples,
    })
}

/// Reads a WAV file, resamples it to 8 kHz and encodes it as μ-law (Twilio's format).
pub fn read_wav_as_mulaw_8k(path: &Path) -> Result<Vec<u8>, AudioError> {
    let pcm = read_wav(path)?;
    let at_8k = resample_all(&pcm.samples, pcm.sample_rate, 8_000)?;
    let mut linear = Vec::with_capacity(at_8k.len());
    f32_to_i16(&at_8k, &mut linear);
    let mut codes = vec![mulaw::SILENCE; linear.len()];
    mulaw::encode_into(&linear, &mut codes);
    Ok(codes)
}

/// Writes mono 16-bit PCM samples to a WAV file (created or truncated).
pub fn write_wav_i16(path: &Path, sample_rate: u32, samples: &[i16]) -> Result<(), AudioError> {
    let spec = WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    };
    let to_error = |source| AudioError::Wav {
        path: PathBuf::from(path),
        source,
    };
    let mut writer = WavWriter::create(path, spec).map_err(to_error)?;
    for &sample in samples {
        writer.write_sample(sample).map_err(to_error)?;
    }
    writer.finalize().map_err(to_error)
}

/// Decodes 8 kHz μ-law and writes it as a mono 16-bit 8 kHz WAV file.
pub fn write_mulaw_8k_as_wav(path: &Path, mulaw: &[u8]) -> Result<(), AudioError> {
    let mut linear = vec![0i16; mulaw.len()];
    mulaw::decode_into(mulaw, &mut linear);
    write_wav_i16(path, 8_000, &linear)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file path in the temp dir, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir();
            Self(dir.join(format!("voxbridge-wav-{}-{name}.wav", std::process::id())))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn wav_bytes<S: hound::Sample + Copy>(spec: WavSpec, interleaved: &[S]) -> Vec<u8> {
        let mut cursor = Cursor::new(Vec::new());
        let mut writer = WavWriter::new(&mut cursor, spec).unwrap();
        for &s in interleaved {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
        cursor.into_inner()
    }

    fn spec(channels: u16, rate: u32, bits: u16, format: SampleFormat) -> WavSpec {
        WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    #[test]
    fn write_then_read_round_trip() {
        let file = TempFile::new("round-trip");
        let samples = [0i16, 1, -1, 16_384, i16::MAX, i16::MIN, 1234];
        write_wav_i16(&file.0, 16_000, &samples).unwrap();
        let pcm = read_wav(&file.0).unwrap();
        assert_eq!(pcm.sample_rate, 16_000);
        let expected: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
        assert_eq!(pcm.samples, expected);
    }

    #[test]
    fn stereo_is_mixed_down_to_mono() {
        let frames: [i16; 6] = [16_384, 0, -8_192, -8_192, 100, 300];
        let bytes = wav_bytes(spec(2, 44_100, 16, SampleFormat::Int), &frames);
        let file = TempFile::new("stereo");
        std::fs::write(&file.0, &bytes).unwrap();
        let pcm = read_wav(&file.0).unwrap();
        assert_eq!(pcm.sample_rate, 44_100);
        assert_eq!(pcm.samples, [0.25, -0.25, 200.0 / 32768.0]);
        assert_eq!(read_wav_bytes(&bytes).unwrap(), pcm);
    }

    #[test]
    fn reads_8_24_32_bit_int_and_float() {
        let bytes = wav_bytes(spec(1, 8_000, 8, SampleFormat::Int), &[-128i8, 0, 64, 127]);
        let pcm = read_wav_bytes(&bytes).unwrap();
        assert_eq!(pcm.samples, [-1.0, 0.0, 0.5, 127.0 / 128.0]);

        let bytes = wav_bytes(
            spec(1, 48_000, 24, SampleFormat::Int),
            &[-8_388_608i32, 4_194_304],
        );
        assert_eq!(read_wav_bytes(&bytes).unwrap().samples, [-1.0, 0.5]);

        let bytes = wav_bytes(spec(1, 48_000, 32, SampleFormat::Int), &[i32::MIN, 1 << 30]);
        assert_eq!(read_wav_bytes(&bytes).unwrap().samples, [-1.0, 0.5]);

        let floats = [0.125f32, -0.75, 1.0, -1.0, 0.0, 0.5];
        let bytes = wav_bytes(spec(2, 22_050, 32, SampleFormat::Float), &floats);
        let pcm = read_wav_bytes(&bytes).unwrap();
        assert_eq!(pcm.sample_rate, 22_050);
        assert_eq!(pcm.samples, [-0.3125, 0.0, 0.25]);
    }

    #[test]
    fn errors_name_the_path() {
        let path = std::env::temp_dir().join("voxbridge-definitely-missing.wav");
        let err = read_wav(&path).unwrap_err();
        assert!(matches!(err, AudioError::Wav { .. }));
        assert!(
            err.to_string().contains("voxbridge-definitely-missing.wav"),
            "{err}"
        );

        let err = read_wav_bytes(b"RIFF....not a wav").unwrap_err();
        assert!(err.to_string().contains(MEMORY_PATH), "{err}");

        let bad_dir = Path::new("/nonexistent-voxbridge-dir/out.wav");
        let err = write_wav_i16(bad_dir, 8_000, &[0]).unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent-voxbridge-dir/out.wav"),
            "{err}"
        );
    }

    #[test]
    fn mulaw_wav_round_trip() {
        let file = TempFile::new("mulaw");
        let codes: Vec<u8> = (0..=255u8).collect();
        write_mulaw_8k_as_wav(&file.0, &codes).unwrap();
        let pcm = read_wav(&file.0).unwrap();
        assert_eq!(pcm.sample_rate, 8_000);
        let expected: Vec<f32> = codes.iter().map(|&c| mulaw::decode_to_f32(c)).collect();
        assert_eq!(pcm.samples, expected);
        // 8 kHz input is passed through; only 0x7F (negative zero) re-encodes differently.
        let canonical: Vec<u8> = codes
            .iter()
            .map(|&c| mulaw::encode(mulaw::decode(c)))
            .collect();
        assert_eq!(canonical.iter().filter(|&&c| c == 0x7F).count(), 0);
        assert_eq!(read_wav_as_mulaw_8k(&file.0).unwrap(), canonical);
    }

    #[test]
    fn reads_any_rate_as_mulaw_8k() {
        let file = TempFile::new("tone-24k");
        let tone: Vec<i16> = (0..4_800)
            .map(|n| {
                (16_000.0 * (std::f32::consts::TAU * 1000.0 * n as f32 / 24_000.0).sin()) as i16
            })
            .collect();
        write_wav_i16(&file.0, 24_000, &tone).unwrap();
        let codes = read_wav_as_mulaw_8k(&file.0).unwrap();
        assert_eq!(codes.len(), 1_600);
        let peak = codes[400..1200]
            .iter()
            .map(|&c| mulaw::decode(c).unsigned_abs())
            .max()
            .unwrap();
        assert!((15_000..17_000).contains(&peak), "peak {peak}");
    }
}
