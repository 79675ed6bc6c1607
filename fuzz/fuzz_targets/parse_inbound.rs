//! Fuzz the inbound (and, in passing, outbound) Media Streams parsers.
//!
//! Input: arbitrary bytes; when they are UTF-8 they are one WebSocket text frame.
//! Checks, beyond "never panics":
//! - `parse_inbound` errors render short messages (wire input is truncated for logs);
//! - a parsed `media` payload decodes with `decode_payload` exactly when it is valid padded
//!   base64, to `Media::decoded_len()` bytes, and `decode_payload` leaves its buffer empty on
//!   error;
//! - parsed `media`/`dtmf`/`mark`/`stop` survive a round trip through the simulated-Twilio
//!   builders (`media_json` & co.) unchanged;
//! - a frame `parse_outbound` accepts survives a `write_outbound` round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxbridge::twilio::messages::{
    self as msg, InboundEvent, OutboundMessage, ParsedOutbound, decode_payload, parse_inbound,
    parse_outbound, write_outbound,
};

/// Longest error message any input may produce (wire text is cut at ~80 chars).
const MAX_ERROR_LEN: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut buf = Vec::with_capacity(64);

    // decode_payload on the raw text too: it is a standalone public function.
    match decode_payload(text, &mut buf) {
        Ok(()) => assert!(!text.is_empty()),
        Err(_) => assert!(buf.is_empty(), "decode_payload left bytes after an error"),
    }

    match parse_inbound(text) {
        Err(e) => {
            let shown = e.to_string();
            assert!(
                shown.len() <= MAX_ERROR_LEN,
                "error message of {} bytes",
                shown.len()
            );
            let _ = e.reason().as_str();
        }
        Ok(event) => {
            let _ = (event.name(), event.stream_sid(), event.sequence_number());
            inbound_round_trip(&event, &mut buf);
        }
    }

    if let Ok(out) = parse_outbound(text) {
        outbound_round_trip(out);
    }
});

fn inbound_round_trip(event: &InboundEvent<'_>, buf: &mut Vec<u8>) {
    match event {
        InboundEvent::Media(m) => {
            let ok = decode_payload(m.payload, buf).is_ok();
            if !ok {
                assert!(buf.is_empty());
                return;
            }
            assert_eq!(buf.len(), m.decoded_len(), "decoded_len of {:?}", m.payload);
            let again =
                msg::media_json(m.sequence_number, &m.stream_sid, m.chunk, m.timestamp, buf);
            match parse_inbound(&again) {
                Ok(InboundEvent::Media(m2)) => {
                    assert_eq!(m2.sequence_number, m.sequence_number);
                    assert_eq!(m2.stream_sid, m.stream_sid);
                    assert_eq!(m2.chunk, m.chunk);
                    assert_eq!(m2.timestamp, m.timestamp);
                    assert_eq!(
                        m2.payload, m.payload,
                        "canonical base64 re-encodes the same"
                    );
                }
                other => panic!("media_json output did not parse as media: {other:?}\n{again}"),
            }
        }
        InboundEvent::Dtmf(d) => {
            let again = msg::dtmf_json(d.sequence_number, d.stream_sid.as_str(), &d.digit);
            match parse_inbound(&again) {
                Ok(InboundEvent::Dtmf(d2)) => {
                    assert_eq!(d2.sequence_number, d.sequence_number);
                    assert_eq!(d2.stream_sid, d.stream_sid);
                    assert_eq!(d2.digit, d.digit);
                }
                other => panic!("dtmf_json output did not parse as dtmf: {other:?}\n{again}"),
            }
        }
        InboundEvent::Mark(k) => {
            let again = msg::mark_json(k.sequence_number, k.stream_sid.as_str(), &k.name);
            match parse_inbound(&again) {
                Ok(InboundEvent::Mark(k2)) => assert_eq!(&k2, k),
                other => panic!("mark_json output did not parse as mark: {other:?}\n{again}"),
            }
        }
        InboundEvent::Stop(s) => {
            let again = msg::stop_json(
                s.sequence_number,
                &s.account_sid,
                s.stream_sid.as_str(),
                s.call_sid.as_str(),
            );
            match parse_inbound(&again) {
                Ok(InboundEvent::Stop(s2)) => assert_eq!(&s2, s),
                other => panic!("stop_json output did not parse as stop: {other:?}\n{again}"),
            }
        }
        InboundEvent::Start(s) => {
            let params: Vec<(String, String)> = s
                .custom_parameters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let again = msg::start_json(
                s.sequence_number,
                &s.account_sid,
                s.stream_sid.as_str(),
                s.call_sid.as_str(),
                &params,
            );
            match parse_inbound(&again) {
                Ok(InboundEvent::Start(s2)) => {
                    assert_eq!(s2.sequence_number, s.sequence_number);
                    assert_eq!(s2.account_sid, s.account_sid);
                    assert_eq!(s2.stream_sid, s.stream_sid);
                    assert_eq!(s2.call_sid, s.call_sid);
                    assert_eq!(s2.custom_parameters, s.custom_parameters);
                    assert!(s2.media_format.is_mulaw_8k_mono());
                }
                other => panic!("start_json output did not parse as start: {other:?}\n{again}"),
            }
        }
        InboundEvent::Connected(_) => {}
    }
}

fn outbound_round_trip(parsed: ParsedOutbound) {
    let (sid, msg) = match &parsed {
        ParsedOutbound::Media {
            stream_sid,
            payload,
        } => (
            stream_sid.clone(),
            OutboundMessage::Media {
                payload: payload.clone().into(),
            },
        ),
        ParsedOutbound::Mark { stream_sid, name } => (
            stream_sid.clone(),
            OutboundMessage::Mark { name: name.clone() },
        ),
        ParsedOutbound::Clear { stream_sid } => (stream_sid.clone(), OutboundMessage::Clear),
    };
    let mut text = String::new();
    write_outbound(&msg, &sid, &mut text);
    match parse_outbound(&text) {
        Ok(again) => assert_eq!(again, parsed, "write_outbound round trip\n{text}"),
        Err(e) => panic!("write_outbound output did not parse: {e}\n{text}"),
    }
}
