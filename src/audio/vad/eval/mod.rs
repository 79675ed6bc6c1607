//! The voice-activity evaluation set (`fixtures/vad/`, made by `scripts/make-vad-fixtures.py`)
//! and how a detector is scored on it. Used by `examples/vad_eval`, `tests/vad.rs` and the
//! bench; not by the media path.
//!
//! - [`Manifest`] is `labels.json`: per-clip truth (20 ms speech labels, turns, barge-in
//!   events, levels).
//! - [`read_mulaw_wav`] reads the clips (G.711 μ-law WAV, format tag 7, as Twilio sends).
//! - [`score`] runs a detector and a [`super::gate::BargeInGate`] over a clip and counts misses,
//!   false alarms, turn-end errors and false barge-ins.
//!
//! This module reads files; it must not be used on a call's hot path.

pub mod score;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::FRAME_SAMPLES;
use crate::audio::mulaw;

/// Why the evaluation set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// A span of a clip in milliseconds from its start.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct Span {
    pub start_ms: u32,
    pub end_ms: u32,
}

/// A caller taking turns on a noisy line.
#[derive(Debug, Clone, Deserialize)]
pub struct TurnClip {
    pub file: String,
    pub noise: String,
    pub snr_db: i32,
    pub speech_dbfs: f32,
    /// One character per 20 ms frame: '1' speech, '0' not.
    pub frames: String,
    pub turns: Vec<Span>,
    pub pause_ms: u32,
}

/// Something the caller does while the agent speaks.
#[derive(Debug, Clone, Deserialize)]
pub struct BargeEvent {
    /// "cough", "clicks", "uh-huh", "yeah", "mm-hmm", "okay", or "interruption".
    pub kind: String,
    pub start_ms: u32,
    pub end_ms: u32,
}

/// What comes back from the phone while the agent speaks.
#[derive(Debug, Clone, Deserialize)]
pub struct BargeClip {
    pub file: String,
    pub noise: String,
    pub snr_db: i32,
    pub caller_dbfs: f32,
    pub agent_file: String,
    pub erl_db: f32,
    pub echo_delay_ms: u32,
    pub events: Vec<BargeEvent>,
}

/// `fixtures/vad/labels.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub rate_hz: u32,
    pub frame_ms: u32,
    pub end_of_turn_ms: u32,
    pub turn_clips: Vec<TurnClip>,
    pub barge_in_clips: Vec<BargeClip>,
    pub agent_frames: String,
}

impl TurnClip {
    /// Truth per frame.
    pub fn labels(&self) -> Vec<bool> {
        self.frames.bytes().map(|b| b == b'1').collect()
    }
}

/// The evaluation set shipped with the repository.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vad")
}

/// Read and check `labels.json` in `dir`.
pub fn load_manifest(dir: &Path) -> Result<Manifest, EvalError> {
    let path = dir.join("labels.json");
    let text = std::fs::read_to_string(&path).map_err(|source| EvalError::Io {
        path: path.clone(),
        source,
    })?;
    let m: Manifest = serde_json::from_str(&text).map_err(|source| EvalError::Json {
        path: path.clone(),
        source,
    })?;
    if m.rate_hz != 8000 || m.frame_ms != 20 {
        return Err(EvalError::Format {
            path,
            message: format!(
                "expected 8000 Hz / 20 ms, got {} / {}",
                m.rate_hz, m.frame_ms
            ),
        });
    }
    Ok(m)
}

/// The μ-law bytes of an 8 kHz mono G.711 μ-law WAV file.
pub fn read_mulaw_wav(path: &Path) -> Result<Vec<u8>, EvalError> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_mulaw_wav(&bytes).map_err(|message| EvalError::Format {
        path: path.to_owned(),
        message: message.to_owned(),
    })
}

fn parse_mulaw_wav(b: &[u8]) -> Result<Vec<u8>, &'static str> {
    if b.len() < 12 || &b[..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file");
    }
    let mut at = 12;
    let mut format_ok = false;
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let len = u32::from_le_bytes([b[at + 4], b[at + 5], b[at + 6], b[at + 7]]) as usize;
        let body = b.get(at + 8..at + 8 + len).ok_or("truncated chunk")?;
        match id {
            b"fmt " => {
                if body.len() < 16 {
                    return Err("short fmt chunk");
                }
                let tag = u16::from_le_bytes([body[0], body[1]]);
                let channels = u16::from_le_bytes([body[2], body[3]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                let bits = u16::from_le_bytes([body[14], body[15]]);
                if (tag, channels, rate, bits) != (7, 1, 8000, 8) {
                    return Err("not 8 kHz mono 8-bit mu-law (format tag 7)");
                }
                format_ok = true;
            }
            b"data" if format_ok => return Ok(body.to_vec()),
            b"data" => return Err("data before fmt"),
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    Err("no data chunk")
}

/// Decode μ-law into whole 20 ms frames of linear PCM (a trailing partial frame is dropped).
pub fn frames(mulaw_bytes: &[u8]) -> Vec<[i16; FRAME_SAMPLES]> {
    mulaw_bytes
        .chunks_exact(FRAME_SAMPLES)
        .map(|c| {
            let mut f = [0i16; FRAME_SAMPLES];
            mulaw::decode_into(c, &mut f);
            f
        })
        .collect()
}

/// Load and decode one clip of the set.
pub fn load_frames(dir: &Path, file: &str) -> Result<Vec<[i16; FRAME_SAMPLES]>, EvalError> {
    Ok(frames(&read_mulaw_wav(&dir.join(file))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_mulaw() {
        assert!(parse_mulaw_wav(b"nope").is_err());
        let mut pcm = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
        pcm.extend_from_slice(&[1, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x80, 0x3e, 0, 0, 2, 0, 16, 0]);
        assert_eq!(
            parse_mulaw_wav(&pcm),
            Err("not 8 kHz mono 8-bit mu-law (format tag 7)")
        );
        let mut ok = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
        ok.extend_from_slice(&[7, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x40, 0x1f, 0, 0, 1, 0, 8, 0]);
        ok.extend_from_slice(b"data\x03\0\0\0\xff\x7f\x00\0");
        assert_eq!(parse_mulaw_wav(&ok), Ok(vec![0xff, 0x7f, 0x00]));
        ok.truncate(ok.len() - 3);
        assert_eq!(parse_mulaw_wav(&ok), Err("truncated chunk"));
    }
}
