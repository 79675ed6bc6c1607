//! Parsing of inbound frames (Twilio → server): [`parse_inbound`] and
//! [`decode_payload`], plus the error-classification helpers shared with
//! the outbound parser.
//!
//! Must NOT: do I/O, keep call state, log, or panic on any input. The media
//! path stays one borrowed serde pass: no `serde_json::Value`, no allocation.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::error::{ErrorReason, ProtocolError, truncate_for_log};
use super::inbound::{Connected, Dtmf, InboundEvent, Mark, Media, MediaFormat, Start, Stop, Track};
use super::json::{Field, Nested, from_object};
use super::{CallSid, StreamSid};

// ---- wire shapes: every field optional and lenient (see json.rs) ----
//
// Only `media` is inline in `Wire`: it is 50 frames a second per call, and the other events'
// shapes are boxed so the struct serde builds, defaults and moves for every frame stays small.
// A box is allocated only when its event arrives (a few times per call).

#[derive(Default, Deserialize)]
#[serde(default)]
struct Wire<'a> {
    #[serde(borrow)]
    event: Field<Cow<'a, str>>,
    #[serde(rename = "sequenceNumber")]
    sequence_number: Field<u64>,
    #[serde(rename = "streamSid", borrow)]
    stream_sid: Field<Cow<'a, str>>,
    #[serde(borrow)]
    protocol: Field<Cow<'a, str>>,
    #[serde(borrow)]
    version: Field<Cow<'a, str>>,
    #[serde(borrow)]
    media: Field<Nested<WireMedia<'a>>>,
    #[serde(borrow)]
    start: Field<Nested<Box<WireStart<'a>>>>,
    #[serde(borrow)]
    dtmf: Field<Nested<Box<WireDtmf<'a>>>>,
    #[serde(borrow)]
    mark: Field<Nested<Box<WireMark<'a>>>>,
    #[serde(borrow)]
    stop: Field<Nested<Box<WireStop<'a>>>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireMedia<'a> {
    #[serde(borrow)]
    track: Field<Cow<'a, str>>,
    chunk: Field<u64>,
    timestamp: Field<u64>,
    #[serde(borrow)]
    payload: Field<Cow<'a, str>>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireStart<'a> {
    #[serde(borrow)]
    account_sid: Field<Cow<'a, str>>,
    #[serde(borrow)]
    stream_sid: Field<Cow<'a, str>>,
    #[serde(borrow)]
    call_sid: Field<Cow<'a, str>>,
    // `start` arrives once per call, so `Value` is fine here (not on the media path).
    tracks: Option<serde_json::Value>,
    custom_parameters: Option<serde_json::Value>,
    #[serde(borrow)]
    media_format: Field<Nested<WireFormat<'a>>>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireFormat<'a> {
    #[serde(borrow)]
    encoding: Field<Cow<'a, str>>,
    sample_rate: Field<u64>,
    channels: Field<u64>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireDtmf<'a> {
    #[serde(borrow)]
    track: Field<Cow<'a, str>>,
    #[serde(borrow)]
    digit: Field<Cow<'a, str>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireMark<'a> {
    #[serde(borrow)]
    name: Field<Cow<'a, str>>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireStop<'a> {
    #[serde(borrow)]
    account_sid: Field<Cow<'a, str>>,
    #[serde(borrow)]
    call_sid: Field<Cow<'a, str>>,
}

/// Only `event`; used to classify a frame the full parse rejected.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct Envelope<'a> {
    #[serde(borrow)]
    pub(crate) event: Field<Cow<'a, str>>,
}

/// Parses one inbound text frame.
///
/// Tolerant as the reference asks: integers as strings or numbers, unknown
/// fields ignored, `tracks`/`customParameters`/`track` defaulted. Errors:
/// not JSON / not an object / no string `event` → `InvalidJson`; unknown
/// `event` → `UnknownEvent`; known event with a missing or malformed required
/// field → `InvalidMessage` naming the field. Never panics.
pub fn parse_inbound(text: &str) -> Result<InboundEvent<'_>, ProtocolError> {
    let mut wire: Wire<'_> = match from_object(text) {
        Ok(Some(w)) => w,
        Ok(None) => return Err(not_object()),
        Err(e) => return Err(classify_serde_error(text, &e, is_inbound_event)),
    };
    let event = event_name(std::mem::take(&mut wire.event))?;
    let ev = event.as_ref();
    Ok(match ev {
        "connected" => InboundEvent::Connected(Connected {
            protocol: opt(ev, "protocol", wire.protocol)?.into_owned(),
            version: opt(ev, "version", wire.version)?.into_owned(),
        }),
        "media" => InboundEvent::Media(media(wire)?),
        "start" => InboundEvent::Start(start(wire)?),
        "dtmf" => {
            let d = req(ev, "dtmf", wire.dtmf)?.0;
            let track = match d.track {
                Field::Missing => "inbound_track".to_owned(),
                other => req(ev, "dtmf.track", other)?.into_owned(),
            };
            InboundEvent::Dtmf(Dtmf {
                sequence_number: req(ev, "sequenceNumber", wire.sequence_number)?,
                stream_sid: StreamSid(req(ev, "streamSid", wire.stream_sid)?.into_owned()),
                track,
                digit: req(ev, "dtmf.digit", d.digit)?.into_owned(),
            })
        }
        "mark" => InboundEvent::Mark(Mark {
            sequence_number: req(ev, "sequenceNumber", wire.sequence_number)?,
            stream_sid: StreamSid(req(ev, "streamSid", wire.stream_sid)?.into_owned()),
            name: req(ev, "mark.name", req(ev, "mark", wire.mark)?.0.name)?.into_owned(),
        }),
        "stop" => {
            let s = match wire.stop {
                Field::Missing => Box::default(),
                other => req(ev, "stop", other)?.0,
            };
            InboundEvent::Stop(Stop {
                sequence_number: req(ev, "sequenceNumber", wire.sequence_number)?,
                stream_sid: StreamSid(req(ev, "streamSid", wire.stream_sid)?.into_owned()),
                account_sid: opt(ev, "stop.accountSid", s.account_sid)?.into_owned(),
                call_sid: CallSid(opt(ev, "stop.callSid", s.call_sid)?.into_owned()),
            })
        }
        other => return Err(ProtocolError::UnknownEvent(truncate_for_log(other))),
    })
}

fn is_inbound_event(ev: &str) -> bool {
    matches!(
        ev,
        "connected" | "start" | "media" | "dtmf" | "mark" | "stop"
    )
}

/// The hot path: one media frame, no allocation unless `streamSid` had escapes.
fn media(wire: Wire<'_>) -> Result<Media<'_>, ProtocolError> {
    const EV: &str = "media";
    let m = req(EV, "media", wire.media)?.0;
    let payload = match req(EV, "media.payload", m.payload)? {
        Cow::Borrowed(p) => p,
        // Base64 never needs escaping; refuse rather than allocate.
        Cow::Owned(_) => {
            return Err(ProtocolError::invalid(
                EV,
                "`media.payload` must be plain base64, got a string with JSON escapes",
            ));
        }
    };
    let track = match m.track {
        Field::Missing => Track::Inbound,
        other => Track::from_wire(&req(EV, "media.track", other)?),
    };
    Ok(Media {
        sequence_number: req(EV, "sequenceNumber", wire.sequence_number)?,
        stream_sid: req(EV, "streamSid", wire.stream_sid)?,
        track,
        chunk: req(EV, "media.chunk", m.chunk)?,
        timestamp: req(EV, "media.timestamp", m.timestamp)?,
        payload,
    })
}

fn start(wire: Wire<'_>) -> Result<Start, ProtocolError> {
    const EV: &str = "start";
    let s = req(EV, "start", wire.start)?.0;
    // The sid is both inside `start` and top-level; prefer the inner one.
    let stream_sid = match s.stream_sid {
        Field::Missing => req(EV, "start.streamSid", wire.stream_sid)?,
        inner => req(EV, "start.streamSid", inner)?,
    };
    let f = req(EV, "start.mediaFormat", s.media_format)?.0;
    let sample_rate = req(EV, "start.mediaFormat.sampleRate", f.sample_rate)?;
    let channels = req(EV, "start.mediaFormat.channels", f.channels)?;
    Ok(Start {
        sequence_number: req(EV, "sequenceNumber", wire.sequence_number)?,
        account_sid: req(EV, "start.accountSid", s.account_sid)?.into_owned(),
        stream_sid: StreamSid(stream_sid.into_owned()),
        call_sid: CallSid(req(EV, "start.callSid", s.call_sid)?.into_owned()),
        tracks: tracks(s.tracks)?,
        custom_parameters: custom_parameters(s.custom_parameters)?,
        media_format: MediaFormat {
            encoding: req(EV, "start.mediaFormat.encoding", f.encoding)?.into_owned(),
            sample_rate: u32::try_from(sample_rate).map_err(|_| {
                ProtocolError::invalid(EV, "`start.mediaFormat.sampleRate` is out of range")
            })?,
            channels: u16::try_from(channels).map_err(|_| {
                ProtocolError::invalid(EV, "`start.mediaFormat.channels` is out of range")
            })?,
        },
    })
}

fn tracks(v: Option<serde_json::Value>) -> Result<Vec<String>, ProtocolError> {
    use serde_json::Value;
    match v {
        None | Some(Value::Null) => Ok(vec!["inbound".to_owned()]),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                _ => Err(()),
            })
            .collect::<Result<_, ()>>()
            .map_err(|()| {
                ProtocolError::invalid("start", "`start.tracks` must be an array of strings")
            }),
        Some(_) => Err(ProtocolError::invalid(
            "start",
            "`start.tracks` must be an array of strings",
        )),
    }
}

fn custom_parameters(
    v: Option<serde_json::Value>,
) -> Result<BTreeMap<String, String>, ProtocolError> {
    use serde_json::Value;
    const BAD: &str = "`start.customParameters` must be an object of strings";
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                Value::Number(n) => Ok((k, n.to_string())),
                Value::Bool(b) => Ok((k, b.to_string())),
                _ => Err(ProtocolError::invalid("start", BAD)),
            })
            .collect(),
        Some(_) => Err(ProtocolError::invalid("start", BAD)),
    }
}

/// Clears `out` and base64-decodes `payload_b64` (standard alphabet, padding
/// required, as Twilio sends) into it, reusing its capacity. On error `out`
/// is left empty.
pub fn decode_payload(payload_b64: &str, out: &mut Vec<u8>) -> Result<(), ErrorReason> {
    out.clear();
    if payload_b64.is_empty() {
        return Err(ErrorReason::EmptyPayload);
    }
    STANDARD.decode_vec(payload_b64, out).map_err(|_| {
        out.clear();
        ErrorReason::InvalidBase64
    })
}

// ---- helpers shared with outbound.rs ----

/// A required field: missing or malformed → `InvalidMessage` naming `field`.
pub(crate) fn req<T>(event: &str, field: &str, f: Field<T>) -> Result<T, ProtocolError> {
    match f {
        Field::Present(v) => Ok(v),
        Field::Missing => Err(ProtocolError::invalid(event, format!("missing `{field}`"))),
        Field::Invalid { expected, found } => Err(ProtocolError::invalid(
            event,
            format!("`{field}` must be {expected}, got {found}"),
        )),
    }
}

/// An optional string field: missing → `""`, malformed → `InvalidMessage`.
fn opt<'a>(
    event: &str,
    field: &str,
    f: Field<Cow<'a, str>>,
) -> Result<Cow<'a, str>, ProtocolError> {
    match f {
        Field::Missing => Ok(Cow::Borrowed("")),
        other => req(event, field, other),
    }
}

/// The `event` value, or `InvalidJson` when absent / not a string.
pub(crate) fn event_name(f: Field<Cow<'_, str>>) -> Result<Cow<'_, str>, ProtocolError> {
    match f {
        Field::Present(ev) => Ok(ev),
        Field::Missing => Err(ProtocolError::InvalidJson("no `event` field".to_owned())),
        Field::Invalid { found, .. } => Err(ProtocolError::InvalidJson(format!(
            "`event` must be a string, got {found}"
        ))),
    }
}

pub(crate) fn not_object() -> ProtocolError {
    ProtocolError::InvalidJson("not a JSON object".to_owned())
}

/// Turns a serde error from a full parse into the right class. Syntax errors
/// are `InvalidJson`; the rare data errors (e.g. a duplicated key) are
/// classified by re-reading just `event` — a cold path.
pub(crate) fn classify_serde_error(
    text: &str,
    e: &serde_json::Error,
    known: fn(&str) -> bool,
) -> ProtocolError {
    let msg = truncate_for_log(&e.to_string());
    if !e.is_data() {
        return ProtocolError::InvalidJson(msg);
    }
    match from_object::<Envelope<'_>>(text) {
        Ok(Some(env)) => match event_name(env.event) {
            Ok(ev) if known(&ev) => ProtocolError::invalid(&ev, msg),
            Ok(ev) => ProtocolError::UnknownEvent(truncate_for_log(&ev)),
            Err(err) => err,
        },
        Ok(None) => not_object(),
        Err(_) => ProtocolError::InvalidJson(msg),
    }
}
