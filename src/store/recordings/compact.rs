//! Compaction: one raw μ-law recording in, one Ogg/Opus or 16-bit WAV file out.
//!
//! Streams the raw file in 20 ms frames (memory stays flat for a four-hour call), decodes μ-law
//! by table and hands interleaved 16-bit stereo to the encoder. The output is written to
//! `{call_sid}.{ext}.part` and only replaces the raw file, under the store's lock, once it is
//! complete, so a reader never sees a half-written recording and a deletion always wins.
//! Runs on the compaction worker's thread only: it blocks on the file system and the CPU.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::raw::{self, RawReader};
use super::{Format, RecordingError, RecordingStore};
use crate::audio::mulaw;

/// Stereo frames per encoded packet: 20 ms at 8 kHz.
pub(super) const PACKET_FRAMES: usize = 160;

/// What one compaction produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactStats {
    /// The compacted file (the raw file is gone).
    pub path: PathBuf,
    pub format: Format,
    /// Audio length.
    pub duration: Duration,
    pub raw_bytes: u64,
    pub bytes: u64,
    /// Time spent compacting.
    pub took: Duration,
}

/// Compact the raw recording `raw` to the store's format and replace it.
pub fn compact(store: &RecordingStore, raw_path: &Path) -> Result<CompactStats, RecordingError> {
    let started = Instant::now();
    let format = store.format();
    let raw_bytes = std::fs::metadata(raw_path)
        .map_err(|source| RecordingError::Io {
            path: raw_path.to_owned(),
            source,
        })?
        .len();
    let part = part_path(raw_path, format)?;
    let result = encode_file(raw_path, &part, format);
    let frames = match result {
        Ok(frames) => frames,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    let path = store.install(raw_path, &part)?;
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    Ok(CompactStats {
        path,
        format,
        duration: Duration::from_micros(frames * 1_000_000 / u64::from(raw::SAMPLE_RATE)),
        raw_bytes,
        bytes,
        took: started.elapsed(),
    })
}

/// Encode `raw_path` into `out` (created or truncated); returns the stereo frames encoded.
pub(super) fn encode_file(
    raw_path: &Path,
    out: &Path,
    format: Format,
) -> Result<u64, RecordingError> {
    let mut reader = RawReader::open(raw_path)?;
    let io_out = |source| RecordingError::Io {
        path: out.to_owned(),
        source,
    };
    let file = std::fs::File::create(out).map_err(io_out)?;
    let writer = std::io::BufWriter::with_capacity(64 * 1024, file);
    let mut frames = Frames::new(&mut reader, raw_path);
    match format {
        Format::Wav => write_wav(&mut frames, writer, out),
        #[cfg(feature = "opus")]
        Format::OggOpus => super::opus::write_ogg_opus(&mut frames, writer, out),
        #[cfg(not(feature = "opus"))]
        Format::OggOpus => Err(RecordingError::Encode {
            path: out.to_owned(),
            detail: "this build has no Opus encoder (cargo feature `opus`)".to_owned(),
        }),
    }
}

/// The raw file as 20 ms packets of interleaved 16-bit stereo, the last one padded with
/// silence.
pub(super) struct Frames<'a> {
    reader: &'a mut RawReader,
    path: &'a Path,
    codes: [[u8; 2]; PACKET_FRAMES],
    pcm: [i16; 2 * PACKET_FRAMES],
    /// Stereo frames of real audio handed out so far.
    pub total: u64,
}

impl<'a> Frames<'a> {
    fn new(reader: &'a mut RawReader, path: &'a Path) -> Self {
        Self {
            reader,
            path,
            codes: [[raw::SILENCE; 2]; PACKET_FRAMES],
            pcm: [0; 2 * PACKET_FRAMES],
            total: 0,
        }
    }

    /// Read the next packet into [`Frames::pcm`]; returns how many of its frames are audio
    /// (the rest is silence), `None` at the end.
    pub fn next_packet(&mut self) -> Result<Option<usize>, RecordingError> {
        let mut got = 0;
        while got < PACKET_FRAMES {
            let n =
                self.reader
                    .read(&mut self.codes[got..])
                    .map_err(|source| RecordingError::Io {
                        path: self.path.to_owned(),
                        source,
                    })?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got == 0 {
            return Ok(None);
        }
        self.codes[got..].fill([raw::SILENCE; 2]);
        let codes: &[u8] = dasp::slice::to_sample_slice(&self.codes[..]);
        mulaw::decode_into(codes, &mut self.pcm);
        self.total += got as u64;
        Ok(Some(got))
    }

    /// The packet read last: `2 * PACKET_FRAMES` interleaved samples.
    pub fn pcm(&self) -> &[i16] {
        &self.pcm
    }
}

fn write_wav(
    frames: &mut Frames<'_>,
    writer: std::io::BufWriter<std::fs::File>,
    out: &Path,
) -> Result<u64, RecordingError> {
    let wav_err = |e: hound::Error| RecordingError::Encode {
        path: out.to_owned(),
        detail: e.to_string(),
    };
    let spec = hound::WavSpec {
        channels: raw::CHANNELS,
        sample_rate: raw::SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::new(writer, spec).map_err(wav_err)?;
    while let Some(audio_frames) = frames.next_packet()? {
        let mut samples = wav.get_i16_writer(2 * audio_frames as u32);
        for &s in &frames.pcm()[..2 * audio_frames] {
            samples.write_sample(s);
        }
        samples.flush().map_err(wav_err)?;
    }
    wav.finalize().map_err(wav_err)?;
    Ok(frames.total)
}

fn part_path(raw_path: &Path, format: Format) -> Result<PathBuf, RecordingError> {
    let stem = super::recording_stem(raw_path)?;
    Ok(super::with_suffix(
        &stem,
        &format!("{}.part", format.extension()),
    ))
}
