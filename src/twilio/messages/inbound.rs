//! Inbound message types (Twilio → server), as produced by
//! [`super::parse_inbound`].
//!
//! Must NOT: do I/O or keep call state (stream-sid checks, ordering such as
//! "media before start", chunk-gap tracking and once-per-call logging belong
//! to the call layer). Plain data plus tiny pure helpers.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::{CallSid, StreamSid};

/// One parsed inbound message. `Media` borrows from the frame text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundEvent<'a> {
    /// First message on every socket.
    Connected(Connected),
    /// Stream metadata; exactly once, before any media.
    Start(Start),
    /// 20 ms (normally) of caller audio.
    Media(Media<'a>),
    /// A keypress (bidirectional streams only).
    Dtmf(Dtmf),
    /// Echo of a mark the server sent.
    Mark(Mark),
    /// Stream ended or call hung up (the socket may also just close instead).
    Stop(Stop),
}

impl InboundEvent<'_> {
    /// The wire `event` value.
    pub fn name(&self) -> &'static str {
        match self {
            InboundEvent::Connected(_) => "connected",
            InboundEvent::Start(_) => "start",
            InboundEvent::Media(_) => "media",
            InboundEvent::Dtmf(_) => "dtmf",
            InboundEvent::Mark(_) => "mark",
            InboundEvent::Stop(_) => "stop",
        }
    }

    /// The message's `streamSid`; `None` for `connected`, which has none.
    pub fn stream_sid(&self) -> Option<&str> {
        match self {
            InboundEvent::Connected(_) => None,
            InboundEvent::Start(m) => Some(m.stream_sid.as_str()),
            InboundEvent::Media(m) => Some(&m.stream_sid),
            InboundEvent::Dtmf(m) => Some(m.stream_sid.as_str()),
            InboundEvent::Mark(m) => Some(m.stream_sid.as_str()),
            InboundEvent::Stop(m) => Some(m.stream_sid.as_str()),
        }
    }

    /// The message's `sequenceNumber`; `None` for `connected`, which has none.
    pub fn sequence_number(&self) -> Option<u64> {
        match self {
            InboundEvent::Connected(_) => None,
            InboundEvent::Start(m) => Some(m.sequence_number),
            InboundEvent::Media(m) => Some(m.sequence_number),
            InboundEvent::Dtmf(m) => Some(m.sequence_number),
            InboundEvent::Mark(m) => Some(m.sequence_number),
            InboundEvent::Stop(m) => Some(m.sequence_number),
        }
    }
}

/// `{"event":"connected","protocol":"Call","version":"1.0.0"}`. Carries no
/// `streamSid` and no `sequenceNumber`. Both fields default to `""` if absent:
/// the server does not act on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// `"Call"`.
    pub protocol: String,
    /// `"1.0.0"`.
    pub version: String,
}

/// `start.mediaFormat`. Twilio sends `audio/x-mulaw`, 8000 Hz, 1 channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFormat {
    /// e.g. `"audio/x-mulaw"`.
    pub encoding: String,
    /// Hz; a JSON number on the wire (strings accepted too).
    pub sample_rate: u32,
    /// Channel count; a JSON number on the wire (strings accepted too).
    pub channels: u16,
}

impl MediaFormat {
    /// True for the only format Twilio streams today: μ-law, 8 kHz, mono.
    pub fn is_mulaw_8k_mono(&self) -> bool {
        self.encoding == "audio/x-mulaw" && self.sample_rate == 8000 && self.channels == 1
    }
}

/// The `start` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// Top-level `sequenceNumber` (normally 1; `connected` has none).
    pub sequence_number: u64,
    /// `start.accountSid` (`AC…`).
    pub account_sid: String,
    /// `start.streamSid` (`MZ…`), falling back to the top-level `streamSid`.
    pub stream_sid: StreamSid,
    /// `start.callSid` (`CA…`).
    pub call_sid: CallSid,
    /// `start.tracks`; defaults to `["inbound"]`, the only track a
    /// `<Connect><Stream>` carries.
    pub tracks: Vec<String>,
    /// `start.customParameters`: the TwiML `<Parameter>`s, always strings
    /// (numbers/booleans are stringified); defaults to empty.
    pub custom_parameters: BTreeMap<String, String>,
    /// `start.mediaFormat` (required).
    pub media_format: MediaFormat,
}

/// Which leg of the call a media (or DTMF) frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// Caller → Twilio audio: `"inbound"` on media, `"inbound_track"` on dtmf.
    Inbound,
    /// `"outbound"` / `"outbound_track"` (unidirectional `<Start><Stream>` only).
    Outbound,
    /// Any other value; kept tolerant for future Twilio additions.
    Other,
}

impl Track {
    /// Maps a wire track name. Note the inconsistency the reference points
    /// out: media says `"inbound"`, dtmf says `"inbound_track"`; both are `Inbound`.
    pub fn from_wire(s: &str) -> Track {
        match s {
            "inbound" | "inbound_track" => Track::Inbound,
            "outbound" | "outbound_track" => Track::Outbound,
            _ => Track::Other,
        }
    }
}

/// The `media` message, borrowed from the frame text (no allocation, payload
/// still base64; see [`super::decode_payload`]).
///
/// `sequence_number` counts *every* message from 1, so a gap there is not
/// lost audio; `chunk` counts media messages per track from 1, so a gap in
/// `chunk` is lost audio. `timestamp` is ms since stream start; the next one is
/// expected at `timestamp + decoded bytes / 8` (reference, "Messages Twilio sends").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media<'a> {
    /// Top-level `sequenceNumber`.
    pub sequence_number: u64,
    /// Top-level `streamSid`; borrowed unless it contained JSON escapes.
    pub stream_sid: Cow<'a, str>,
    /// `media.track`; defaults to `Inbound` when absent.
    pub track: Track,
    /// `media.chunk`.
    pub chunk: u64,
    /// `media.timestamp`, ms since stream start.
    pub timestamp: u64,
    /// `media.payload`, base64 μ-law, borrowed and not decoded. A payload
    /// written with JSON escapes (never seen from Twilio) is rejected as
    /// `InvalidMessage` rather than copied.
    pub payload: &'a str,
}

impl Media<'_> {
    /// Decoded size of `payload` in bytes, computed from its length without
    /// decoding (exact for valid padded base64). At 8 kHz μ-law, ms = bytes / 8.
    pub fn decoded_len(&self) -> usize {
        let b = self.payload.as_bytes();
        let pad = b.iter().rev().take(2).take_while(|&&c| c == b'=').count();
        (b.len() / 4 * 3).saturating_sub(pad)
    }
}

/// The `dtmf` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtmf {
    /// Top-level `sequenceNumber`.
    pub sequence_number: u64,
    /// Top-level `streamSid`.
    pub stream_sid: StreamSid,
    /// `dtmf.track` exactly as sent: `"inbound_track"` (not `"inbound"` as on
    /// media); defaults to that when absent. See [`Track::from_wire`].
    pub track: String,
    /// `dtmf.digit`: `0`-`9`, `*`, `#` (not validated).
    pub digit: String,
}

/// The `mark` message: Twilio echoing a mark the server sent, once all audio
/// before it played, *or* at once when the server sent `clear` — so a
/// returned mark does not prove the audio was heard (reference, "Messages the
/// server may send").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Top-level `sequenceNumber`.
    pub sequence_number: u64,
    /// Top-level `streamSid`.
    pub stream_sid: StreamSid,
    /// `mark.name`, as the server sent it.
    pub name: String,
}

/// The `stop` message. `stop.accountSid`/`stop.callSid` default to `""` when
/// absent: the event itself is what matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// Top-level `sequenceNumber`.
    pub sequence_number: u64,
    /// Top-level `streamSid`.
    pub stream_sid: StreamSid,
    /// `stop.accountSid`.
    pub account_sid: String,
    /// `stop.callSid`.
    pub call_sid: CallSid,
}
