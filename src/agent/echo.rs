//! The echo agent, voxbridge's zero-configuration default: at the end of each caller turn it
//! plays the caller's utterance straight back. It proves the whole media path — decode, turn
//! detection, pacing, marks, barge-in — with no speech provider. It keeps no history.

use bytes::Bytes;

/// Plays each caller utterance back as the response.
#[derive(Debug, Default)]
pub struct EchoAgent {
    responses: u64,
}

impl EchoAgent {
    /// The response to a finished caller turn: the caller's own μ-law audio.
    pub fn respond(&mut self, utterance: Vec<u8>) -> Bytes {
        self.responses += 1;
        Bytes::from(utterance)
    }

    /// How many responses this agent has given on this call.
    pub fn responses(&self) -> u64 {
        self.responses
    }
}
