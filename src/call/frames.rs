//! The call's neutral vocabulary between a carrier codec and the [`CallSession`]: what the
//! caller's side sent ([`CallInput`]) and what we send back ([`CallOutput`]).
//!
//! A carrier codec (today only [`crate::twilio::codec`]) turns its wire messages into these
//! and back; the session and the engines never see a carrier's words. Plain data: no I/O, no
//! clocks, no state.
//!
//! [`CallSession`]: super::session::CallSession

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

/// The stream began: who is calling, and the parameters the call was set up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStart {
    pub call_sid: String,
    pub stream_sid: String,
    /// The parameters of the call's stream (TwiML `<Parameter>`s): `From`, `To`, `agent`, …
    pub parameters: BTreeMap<String, String>,
    /// The audio is 8 kHz μ-law mono (anything else is logged and treated as that).
    pub mulaw_8k: bool,
    /// The carrier's description of the format, for the log when it is not μ-law.
    pub format: String,
}

/// One frame of caller audio. The payload itself is decoded into a buffer the caller of the
/// codec owns (no allocation per frame); `payload_b64` is the wire text, for engines that can
/// pass it on as is (OpenAI Realtime takes base64 μ-law).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioPacket<'a> {
    /// Sequence of this frame among the stream's audio frames (gaps are lost audio).
    pub chunk: u64,
    /// Milliseconds since the stream started, by the carrier's clock.
    pub timestamp_ms: u64,
    pub payload_b64: &'a str,
}

/// A keypad key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfKey {
    Digit(u8),
    Star,
    Pound,
    /// The column keys `A`-`D`.
    Letter(u8),
}

impl DtmfKey {
    /// The key named by one character of `0-9 * # A-D`.
    pub fn from_char(c: char) -> Option<Self> {
        match c {
            '0'..='9' => Some(DtmfKey::Digit(c as u8 - b'0')),
            '*' => Some(DtmfKey::Star),
            '#' => Some(DtmfKey::Pound),
            'A'..='D' => Some(DtmfKey::Letter(c as u8)),
            _ => None,
        }
    }

    pub fn as_char(self) -> char {
        match self {
            DtmfKey::Digit(d) => char::from(b'0' + d),
            DtmfKey::Star => '*',
            DtmfKey::Pound => '#',
            DtmfKey::Letter(l) => char::from(l),
        }
    }
}

impl fmt::Display for DtmfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// What the caller's side sent, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallInput<'a> {
    /// The carrier said hello (before `Start`).
    Connected,
    Start(StreamStart),
    Audio(AudioPacket<'a>),
    Dtmf(DtmfKey),
    /// A marker we sent came back: everything before it has played (or was cleared).
    MarkPlayed(String),
    /// The stream ended (the caller hung up or the call moved on).
    Stop,
}

/// What we send to the caller's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutput {
    /// Raw 8 kHz μ-law audio to play, in order.
    Audio(Bytes),
    /// Tell us (with [`CallInput::MarkPlayed`]) when everything sent before this has played.
    Mark(String),
    /// Drop everything buffered and not yet played (barge-in).
    Clear,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_keys_round_trip() {
        for c in "0123456789*#ABCD".chars() {
            let k = DtmfKey::from_char(c).expect("a key");
            assert_eq!(k.as_char(), c);
        }
        for c in ['E', 'a', ' ', 'x', '~'] {
            assert_eq!(DtmfKey::from_char(c), None, "{c}");
        }
    }
}
