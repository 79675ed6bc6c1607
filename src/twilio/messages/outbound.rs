//! Outbound messages (server → Twilio): [`OutboundMessage`] and
//! [`write_outbound`], plus [`parse_outbound`] for the simulated Twilio leg.
//!
//! Must NOT: do I/O, pace audio, or track marks/generations (the call layer
//! does; remember Twilio returns every pending mark at once after `clear`, so
//! a returned mark does not prove the audio played). `write_outbound` builds
//! JSON by hand into a reused `String`: no serde, and for media no
//! intermediate base64 buffer.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::error::{ProtocolError, truncate_for_log};
use super::inbound_parse::{classify_serde_error, event_name, not_object, req};
use super::json::{Field, Nested, from_object, push_json_str};

/// A message the server sends to Twilio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundMessage {
    /// Audio to play: raw `audio/x-mulaw` 8 kHz mono, **no file header** (a WAV
    /// header plays as noise). Base64-encoded when written. Twilio accepts any
    /// size and buffers in order, but send ≥ 20 ms per message.
    Media {
        /// Raw μ-law bytes.
        payload: bytes::Bytes,
    },
    /// Ask Twilio to echo `name` back once everything sent before it has
    /// played (or immediately after a `clear`).
    Mark {
        /// Mark name, echoed verbatim in the inbound `mark` event.
        name: String,
    },
    /// Drop all audio Twilio has buffered (barge-in). Twilio then returns every
    /// pending mark at once.
    Clear,
}

impl OutboundMessage {
    /// The wire `event` value.
    pub fn name(&self) -> &'static str {
        match self {
            OutboundMessage::Media { .. } => "media",
            OutboundMessage::Mark { .. } => "mark",
            OutboundMessage::Clear => "clear",
        }
    }
}

/// Clears `out` and writes `msg` as Twilio expects it, one text frame:
///
/// - `{"event":"media","streamSid":"MZ…","media":{"payload":"<base64>"}}`
/// - `{"event":"mark","streamSid":"MZ…","mark":{"name":"…"}}`
/// - `{"event":"clear","streamSid":"MZ…"}`
///
/// `stream_sid` and the mark name are JSON-escaped (they normally need none).
/// The streamSid must be the one from `start`: a wrong one is Twilio error 31951.
pub fn write_outbound(msg: &OutboundMessage, stream_sid: &str, out: &mut String) {
    out.clear();
    match msg {
        OutboundMessage::Media { payload } => {
            out.reserve(64 + stream_sid.len() + payload.len().div_ceil(3) * 4);
            out.push_str(r#"{"event":"media","streamSid":"#);
            push_json_str(out, stream_sid);
            out.push_str(r#","media":{"payload":""#);
            STANDARD.encode_string(payload, out);
            out.push_str(r#""}}"#);
        }
        OutboundMessage::Mark { name } => {
            out.push_str(r#"{"event":"mark","streamSid":"#);
            push_json_str(out, stream_sid);
            out.push_str(r#","mark":{"name":"#);
            push_json_str(out, name);
            out.push_str("}}");
        }
        OutboundMessage::Clear => {
            out.push_str(r#"{"event":"clear","streamSid":"#);
            push_json_str(out, stream_sid);
            out.push('}');
        }
    }
}

/// An outbound message as the simulated Twilio leg sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedOutbound {
    /// `media`, payload already base64-decoded.
    Media {
        /// `streamSid`.
        stream_sid: String,
        /// Decoded μ-law bytes.
        payload: Vec<u8>,
    },
    /// `mark`.
    Mark {
        /// `streamSid`.
        stream_sid: String,
        /// `mark.name`.
        name: String,
    },
    /// `clear`.
    Clear {
        /// `streamSid`.
        stream_sid: String,
    },
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct OutWire<'a> {
    #[serde(borrow)]
    event: Field<Cow<'a, str>>,
    #[serde(rename = "streamSid", borrow)]
    stream_sid: Field<Cow<'a, str>>,
    #[serde(borrow)]
    media: Field<Nested<OutMedia<'a>>>,
    #[serde(borrow)]
    mark: Field<Nested<OutMark<'a>>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct OutMedia<'a> {
    #[serde(borrow)]
    payload: Field<Cow<'a, str>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct OutMark<'a> {
    #[serde(borrow)]
    name: Field<Cow<'a, str>>,
}

fn is_outbound_event(ev: &str) -> bool {
    matches!(ev, "media" | "mark" | "clear")
}

/// Parses a frame the server sent (simulator side). Same error classes as
/// [`super::parse_inbound`]; a payload that is not valid padded base64 is
/// `InvalidMessage`. An empty payload decodes to an empty vector.
pub fn parse_outbound(text: &str) -> Result<ParsedOutbound, ProtocolError> {
    let wire: OutWire<'_> = match from_object(text) {
        Ok(Some(w)) => w,
        Ok(None) => return Err(not_object()),
        Err(e) => return Err(classify_serde_error(text, &e, is_outbound_event)),
    };
    let event = event_name(wire.event)?;
    let ev = event.as_ref();
    if !is_outbound_event(ev) {
        return Err(ProtocolError::UnknownEvent(truncate_for_log(ev)));
    }
    let stream_sid = req(ev, "streamSid", wire.stream_sid)?.into_owned();
    Ok(match ev {
        "media" => {
            let b64 = req(ev, "media.payload", req(ev, "media", wire.media)?.0.payload)?;
            let payload = STANDARD.decode(b64.as_bytes()).map_err(|_| {
                ProtocolError::invalid(ev, "`media.payload` is not valid padded base64")
            })?;
            ParsedOutbound::Media {
                stream_sid,
                payload,
            }
        }
        "mark" => ParsedOutbound::Mark {
            stream_sid,
            name: req(ev, "mark.name", req(ev, "mark", wire.mark)?.0.name)?.into_owned(),
        },
        _ => ParsedOutbound::Clear { stream_sid },
    })
}
