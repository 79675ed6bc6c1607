//! The session's ears: each inbound frame decoded once — μ-law to PCM, its level, and the
//! speech detector's verdict — so the engine and every observer see the same analysis and
//! nobody decodes twice. Buffers are reused: no allocation per frame once warmed up.
//!
//! Must not keep turn state (engines do) or call-quality statistics (the quality meter does).

use crate::audio::{frame_dbfs, mulaw};
use crate::config::TurnConfig;

pub struct Ears {
    /// The frame's μ-law bytes (the codec decodes base64 into it).
    pub payload: Vec<u8>,
    pcm: Vec<i16>,
    threshold_dbfs: f32,
}

/// What the ears made of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heard {
    pub level_dbfs: f32,
    pub voiced: bool,
}

impl Ears {
    pub fn new(turn: &TurnConfig) -> Self {
        Self {
            payload: Vec::with_capacity(1024),
            pcm: Vec::with_capacity(1024),
            threshold_dbfs: turn.vad_threshold_dbfs,
        }
    }

    /// Decode and judge the frame now in [`Ears::payload`].
    pub fn listen(&mut self) -> Heard {
        self.pcm.resize(self.payload.len(), 0);
        mulaw::decode_into(&self.payload, &mut self.pcm);
        let level_dbfs = frame_dbfs(&self.pcm);
        Heard {
            level_dbfs,
            voiced: level_dbfs >= self.threshold_dbfs,
        }
    }

    /// The frame's μ-law and PCM, as of the last [`Ears::listen`].
    pub fn frame(&self) -> (&[u8], &[i16]) {
        (&self.payload, &self.pcm)
    }
}
