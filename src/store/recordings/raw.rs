//! The raw recording format written during a call: a WAV file of G.711 μ-law at 8 kHz with two
//! interleaved channels (left: the caller, right: what the caller heard).
//!
//! Writing μ-law as it arrives costs nothing on the media path (no transcoding), and a WAV
//! header makes the raw file self-describing, so it can be served or inspected before it is
//! compacted. The header's sizes are written when the call ends; a file whose call never ended
//! (a crash) has zero sizes and is read up to its end.
//!
//! This module only knows the byte layout; it must not decide where files go or when.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::RecordingError;

/// Samples per second, per channel.
pub const SAMPLE_RATE: u32 = 8_000;
/// Channels: 0 the caller, 1 what the caller heard.
pub const CHANNELS: u16 = 2;
/// Bytes before the first audio byte.
pub const HEADER_LEN: u64 = 58;
/// μ-law code for silence (decodes to 0).
pub const SILENCE: u8 = 0xFF;
/// WAVE_FORMAT_MULAW.
const FORMAT_MULAW: u16 = 7;

/// The 58-byte header of a raw file holding `frames` stereo frames (sizes saturate at 4 GiB).
pub fn header(frames: u64) -> [u8; HEADER_LEN as usize] {
    let data = u32::try_from(frames.saturating_mul(2)).unwrap_or(u32::MAX - 64);
    let per_channel = u32::try_from(frames).unwrap_or(u32::MAX);
    let mut h = [0u8; HEADER_LEN as usize];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        h[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(b"RIFF");
    put(&(data.saturating_add(HEADER_LEN as u32 - 8)).to_le_bytes());
    put(b"WAVE");
    put(b"fmt ");
    put(&18u32.to_le_bytes());
    put(&FORMAT_MULAW.to_le_bytes());
    put(&CHANNELS.to_le_bytes());
    put(&SAMPLE_RATE.to_le_bytes());
    put(&(SAMPLE_RATE * u32::from(CHANNELS)).to_le_bytes());
    put(&CHANNELS.to_le_bytes()); // block align: one byte per channel
    put(&8u16.to_le_bytes());
    put(&0u16.to_le_bytes()); // cbSize
    put(b"fact");
    put(&4u32.to_le_bytes());
    put(&per_channel.to_le_bytes());
    put(b"data");
    put(&data.to_le_bytes());
    h
}

/// Reads a raw recording frame by frame.
#[derive(Debug)]
pub struct RawReader {
    input: BufReader<File>,
    /// Stereo frames not yet read.
    remaining: u64,
}

impl RawReader {
    /// Open `path` and check that it is a two-channel 8 kHz μ-law WAV file.
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        let io = |source| RecordingError::Io {
            path: path.to_owned(),
            source,
        };
        let bad = |detail: &str| RecordingError::Format {
            path: path.to_owned(),
            detail: detail.to_owned(),
        };
        let mut file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut riff = [0u8; 12];
        file.read_exact(&mut riff)
            .map_err(|_| bad("shorter than a WAV header"))?;
        if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
            return Err(bad("not a RIFF/WAVE file"));
        }
        let mut format_ok = false;
        // Walk the chunks until `data`; at most a few, each bounded by the file length.
        loop {
            let mut chunk = [0u8; 8];
            file.read_exact(&mut chunk)
                .map_err(|_| bad("no data chunk"))?;
            let size = u64::from(u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]));
            let start = file.stream_position().map_err(io)?;
            match &chunk[0..4] {
                b"fmt " => {
                    let mut fmt = [0u8; 16];
                    file.read_exact(&mut fmt)
                        .map_err(|_| bad("short fmt chunk"))?;
                    let word = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
                    let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
                    if word(0) != FORMAT_MULAW
                        || word(2) != CHANNELS
                        || rate != SAMPLE_RATE
                        || word(14) != 8
                    {
                        return Err(bad("not 8-bit μ-law, 2 channels, 8000 Hz"));
                    }
                    format_ok = true;
                }
                b"data" => {
                    if !format_ok {
                        return Err(bad("data before fmt"));
                    }
                    let available = file_len.saturating_sub(start);
                    // Zero (or too large): the call never ended cleanly; read what is there.
                    let bytes = if size == 0 || size > available {
                        available
                    } else {
                        size
                    };
                    return Ok(Self {
                        input: BufReader::with_capacity(64 * 1024, file),
                        remaining: bytes / 2,
                    });
                }
                _ => {}
            }
            let next = start + size + (size & 1);
            if next >= file_len {
                return Err(bad("no data chunk"));
            }
            file.seek(SeekFrom::Start(next)).map_err(io)?;
        }
    }

    /// Stereo frames left to read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Fill `frames` from the file; returns how many were read (0 at the end).
    pub fn read(&mut self, frames: &mut [[u8; 2]]) -> std::io::Result<usize> {
        let n = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(frames.len());
        let bytes: &mut [u8] = dasp::slice::to_sample_slice_mut(&mut frames[..n]);
        let mut filled = 0;
        while filled < bytes.len() {
            match self.input.read(&mut bytes[filled..])? {
                0 => break,
                k => filled += k,
            }
        }
        let got = filled / 2;
        self.remaining = if filled < bytes.len() {
            0 // the file was shorter than its header said
        } else {
            self.remaining - got as u64
        };
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn header_round_trips_and_unfinished_files_read_to_the_end() {
        let dir = std::env::temp_dir().join(format!("voxbridge-raw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.mulaw.wav");
        for declared in [3u64, 0] {
            let mut f = File::create(&path).unwrap();
            f.write_all(&header(declared)).unwrap();
            f.write_all(&[1, 2, 3, 4, 5, 6]).unwrap();
            drop(f);
            let mut r = RawReader::open(&path).unwrap();
            assert_eq!(r.remaining(), 3);
            let mut frames = [[0u8; 2]; 8];
            assert_eq!(r.read(&mut frames).unwrap(), 3);
            assert_eq!(&frames[..3], &[[1, 2], [3, 4], [5, 6]]);
            assert_eq!(r.read(&mut frames).unwrap(), 0);
        }
        std::fs::write(&path, b"RIFF\0\0\0\0WAVEjunk").unwrap();
        let e = RawReader::open(&path).unwrap_err();
        assert!(e.to_string().contains("a.mulaw.wav"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
