//! Unit tests for inbound parsing: reference examples, tolerance, error
//! classes, payload decoding, escapes and a truncation "fuzz" loop.
//! Round trips (builders, outbound) are in `tests_roundtrip.rs`.

use std::borrow::Cow;

use super::*;

pub(super) const MZ: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";
pub(super) const CA: &str = "CA2f4e7d6b8c9a0b1c2d3e4f5a6b7c8d9e";
pub(super) const AC: &str = "AC1234567890abcdef1234567890abcdef";

pub(super) fn media_of(text: &str) -> Media<'_> {
    match parse_inbound(text) {
        Ok(InboundEvent::Media(m)) => m,
        other => panic!("expected media, got {other:?}"),
    }
}

fn err_of(text: &str) -> ProtocolError {
    match parse_inbound(text) {
        Err(e) => e,
        Ok(ev) => panic!("expected an error for {text}, got {ev:?}"),
    }
}

fn detail_of(text: &str) -> String {
    match err_of(text) {
        ProtocolError::InvalidMessage { detail, .. } => detail,
        other => panic!("expected InvalidMessage for {text}, got {other:?}"),
    }
}

// ---- reference examples ----

#[test]
fn parses_connected() {
    let ev = parse_inbound(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#).unwrap();
    assert_eq!(
        ev,
        InboundEvent::Connected(Connected {
            protocol: "Call".into(),
            version: "1.0.0".into()
        })
    );
    assert_eq!(ev.stream_sid(), None);
    assert_eq!(ev.sequence_number(), None);
    // Optional fields: a bare connected still parses.
    assert!(matches!(
        parse_inbound(r#"{"event":"connected"}"#),
        Ok(InboundEvent::Connected(_))
    ));
}

#[test]
fn parses_start() {
    let text = format!(
        r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"{AC}","streamSid":"{MZ}","callSid":"{CA}","tracks":["inbound"],"customParameters":{{"tenant":"acme","from":"+15551234567"}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}},"streamSid":"{MZ}"}}"#
    );
    let InboundEvent::Start(s) = parse_inbound(&text).unwrap() else {
        panic!("not start")
    };
    assert_eq!(s.sequence_number, 1);
    assert_eq!(s.account_sid, AC);
    assert_eq!(s.stream_sid, StreamSid(MZ.into()));
    assert_eq!(s.call_sid.as_str(), CA);
    assert_eq!(s.tracks, vec!["inbound".to_owned()]);
    assert_eq!(
        s.custom_parameters.get("tenant").map(String::as_str),
        Some("acme")
    );
    assert_eq!(s.custom_parameters.len(), 2);
    assert!(s.media_format.is_mulaw_8k_mono());
}

#[test]
fn start_defaults_and_tolerance() {
    // No tracks, no customParameters, sampleRate/channels as strings, only
    // the top-level streamSid, unknown fields everywhere, a number parameter.
    let text = format!(
        r#"{{"event":"start","sequenceNumber":1,"future":{{"x":[1,2]}},"start":{{"accountSid":"{AC}","callSid":"{CA}","mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":"8000","channels":"1","bits":8}},"new":true}},"streamSid":"{MZ}"}}"#
    );
    let InboundEvent::Start(s) = parse_inbound(&text).unwrap() else {
        panic!("not start")
    };
    assert_eq!(s.stream_sid.as_str(), MZ);
    assert_eq!(s.tracks, vec!["inbound".to_owned()]);
    assert!(s.custom_parameters.is_empty());
    assert_eq!(s.media_format.sample_rate, 8000);
    assert_eq!(s.media_format.channels, 1);

    let with_num = format!(
        r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"{AC}","streamSid":"{MZ}","callSid":"{CA}","customParameters":{{"n":5,"b":true}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000.0,"channels":1}}}}}}"#
    );
    let InboundEvent::Start(s) = parse_inbound(&with_num).unwrap() else {
        panic!("not start")
    };
    assert_eq!(s.custom_parameters["n"], "5");
    assert_eq!(s.custom_parameters["b"], "true");
}

#[test]
fn parses_media_with_strings_and_numbers() {
    let text = format!(
        r#"{{"event":"media","sequenceNumber":"4","media":{{"track":"inbound","chunk":"2","timestamp":"5","payload":"//79/A=="}},"streamSid":"{MZ}"}}"#
    );
    let m = media_of(&text);
    assert_eq!(
        (m.sequence_number, m.chunk, m.timestamp, m.track),
        (4, 2, 5, Track::Inbound)
    );
    assert_eq!(m.payload, "//79/A==");
    assert_eq!(m.decoded_len(), 4);
    assert!(matches!(m.stream_sid, Cow::Borrowed(MZ)), "borrowed sid");

    let numbers = format!(
        r#"{{"event":"media","sequenceNumber":4,"media":{{"chunk":2,"timestamp":5,"payload":"AAAA","extra":{{}}}},"streamSid":"{MZ}","new":[null]}}"#
    );
    let m = media_of(&numbers);
    assert_eq!((m.sequence_number, m.chunk, m.timestamp), (4, 2, 5));
    assert_eq!(m.track, Track::Inbound, "missing track defaults to inbound");
}

#[test]
fn parses_dtmf_mark_stop() {
    let dtmf = format!(
        r#"{{"event":"dtmf","streamSid":"{MZ}","sequenceNumber":"5","dtmf":{{"track":"inbound_track","digit":"1"}}}}"#
    );
    let InboundEvent::Dtmf(d) = parse_inbound(&dtmf).unwrap() else {
        panic!("not dtmf")
    };
    assert_eq!((d.sequence_number, d.digit.as_str()), (5, "1"));
    assert_eq!(d.track, "inbound_track");
    assert_eq!(Track::from_wire(&d.track), Track::Inbound);
    let no_track = format!(
        r##"{{"event":"dtmf","streamSid":"{MZ}","sequenceNumber":"5","dtmf":{{"digit":"#"}}}}"##
    );
    assert!(
        matches!(parse_inbound(&no_track), Ok(InboundEvent::Dtmf(d)) if d.track == "inbound_track" && d.digit == "#")
    );

    let mark = format!(
        r#"{{"event":"mark","sequenceNumber":"9","streamSid":"{MZ}","mark":{{"name":"utt-7"}}}}"#
    );
    assert_eq!(
        parse_inbound(&mark).unwrap(),
        InboundEvent::Mark(Mark {
            sequence_number: 9,
            stream_sid: StreamSid(MZ.into()),
            name: "utt-7".into()
        })
    );

    let stop = format!(
        r#"{{"event":"stop","sequenceNumber":"10","stop":{{"accountSid":"{AC}","callSid":"{CA}"}},"streamSid":"{MZ}"}}"#
    );
    let ev = parse_inbound(&stop).unwrap();
    assert_eq!(ev.name(), "stop");
    assert_eq!(ev.stream_sid(), Some(MZ));
    assert_eq!(
        ev,
        InboundEvent::Stop(Stop {
            sequence_number: 10,
            stream_sid: StreamSid(MZ.into()),
            account_sid: AC.into(),
            call_sid: CallSid(CA.into())
        })
    );
    let bare_stop = format!(r#"{{"event":"stop","sequenceNumber":"10","streamSid":"{MZ}"}}"#);
    assert!(
        matches!(parse_inbound(&bare_stop), Ok(InboundEvent::Stop(s)) if s.call_sid.0.is_empty())
    );
}

// ---- errors ----

#[test]
fn invalid_json_class() {
    for text in [
        "",
        "not json",
        "{",
        r#"{"event":"media""#,
        "[]",
        r#"["media","4"]"#,
        "42",
        r#""media""#,
        "null",
        "{}",
        r#"{"event":5}"#,
        r#"{"event":null,"streamSid":"MZ"}"#,
        r#"{"event":"media"} trailing"#,
    ] {
        let e = err_of(text);
        assert_eq!(e.reason(), ErrorReason::InvalidJson, "{text:?} -> {e}");
    }
}

#[test]
fn unknown_event_class() {
    let e = err_of(r#"{"event":"transcription","streamSid":"MZ1","x":{"y":1}}"#);
    assert_eq!(e, ProtocolError::UnknownEvent("transcription".into()));
    assert_eq!(e.reason(), ErrorReason::UnknownEvent);
    // A huge event name is truncated in the error.
    let long = format!(r#"{{"event":"{}"}}"#, "x".repeat(5000));
    assert!(err_of(&long).to_string().len() < 120);
}

#[test]
fn invalid_message_names_the_field() {
    let sid = format!(r#""streamSid":"{MZ}""#);
    let cases = [
        (
            format!(r#"{{"event":"media","sequenceNumber":"4","media":{{"chunk":"abc","timestamp":"5","payload":"AAAA"}},{sid}}}"#),
            "media.chunk",
        ),
        (
            format!(r#"{{"event":"media","sequenceNumber":"4","media":{{"chunk":"2","timestamp":"5"}},{sid}}}"#),
            "media.payload",
        ),
        (
            format!(r#"{{"event":"media","sequenceNumber":"4","media":{{"chunk":"2","timestamp":-5,"payload":"AAAA"}},{sid}}}"#),
            "media.timestamp",
        ),
        (
            format!(r#"{{"event":"media","sequenceNumber":"4","media":"oops",{sid}}}"#),
            "media",
        ),
        (
            r#"{"event":"media","sequenceNumber":"4","media":{"chunk":"2","timestamp":"5","payload":"AAAA"}}"#.to_owned(),
            "streamSid",
        ),
        (
            format!(r#"{{"event":"media","sequenceNumber":true,"media":{{"chunk":"2","timestamp":"5","payload":"AAAA"}},{sid}}}"#),
            "sequenceNumber",
        ),
        (
            format!(r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"{AC}","callSid":"{CA}","mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}}}}"#),
            "start.streamSid",
        ),
        (
            format!(r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"{AC}","streamSid":"{MZ}","callSid":"{CA}"}}}}"#),
            "start.mediaFormat",
        ),
        (
            format!(r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"{AC}","streamSid":"{MZ}","callSid":"{CA}","mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":70000}}}}}}"#),
            "start.mediaFormat.channels",
        ),
        (
            format!(r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"{AC}","streamSid":"{MZ}","callSid":"{CA}","tracks":[1],"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}}}}"#),
            "start.tracks",
        ),
        (format!(r#"{{"event":"dtmf",{sid},"sequenceNumber":"5","dtmf":{{"track":"inbound_track"}}}}"#), "dtmf.digit"),
        (format!(r#"{{"event":"mark","sequenceNumber":"9",{sid},"mark":{{"name":7}}}}"#), "mark.name"),
        (format!(r#"{{"event":"mark","sequenceNumber":"9",{sid}}}"#), "`mark`"),
    ];
    for (text, field) in cases {
        let e = err_of(&text);
        assert_eq!(e.reason(), ErrorReason::InvalidMessage, "{text} -> {e}");
        let detail = detail_of(&text);
        assert!(detail.contains(field), "{detail:?} should name {field}");
    }
}

#[test]
fn duplicate_key_is_classified_by_event() {
    let dup = r#"{"event":"mark","mark":{"name":"a"},"mark":{"name":"b"},"streamSid":"MZ","sequenceNumber":"1"}"#;
    assert_eq!(err_of(dup).reason(), ErrorReason::InvalidMessage);
    let dup_unknown = r#"{"event":"nope","mark":1,"mark":2}"#;
    assert_eq!(err_of(dup_unknown).reason(), ErrorReason::UnknownEvent);
    let dup_event = r#"{"event":"mark","event":"mark"}"#;
    assert_eq!(err_of(dup_event).reason(), ErrorReason::InvalidJson);
}

#[test]
fn errors_never_echo_payload_and_stay_short() {
    let big = "QUFB".repeat(4000);
    let texts = [
        format!(
            r#"{{"event":"media","sequenceNumber":"x","media":{{"chunk":"1","timestamp":"1","payload":"{big}"}},"streamSid":"MZ"}}"#
        ),
        format!(r#"{{"event":"media","media":{{"payload":"{big}","payload":"{big}"}}}}"#),
        format!(r#"{{"event":"media","media":{{"payload":"{big}"#),
    ];
    for t in &texts {
        let msg = err_of(t).to_string();
        assert!(!msg.contains("QUFBQUFB"), "payload echoed: {msg}");
        assert!(msg.len() < 200, "too long: {msg}");
    }
    // Echoed wire input (here a huge event name) is cut to ~80 chars.
    let msg = err_of(&format!(r#"{{"event":"{big}"}}"#)).to_string();
    assert!(msg.chars().count() <= 100, "too long: {msg}");
}

#[test]
fn reasons_are_complete_and_stable() {
    for (i, r) in ErrorReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
        assert_eq!(r.to_string(), r.as_str());
    }
    let names: Vec<_> = ErrorReason::ALL.iter().map(ErrorReason::as_str).collect();
    assert_eq!(
        names,
        [
            "invalid_json",
            "invalid_message",
            "binary_frame",
            "unknown_event",
            "media_before_start",
            "wrong_stream_sid",
            "duplicate_start",
            "invalid_base64",
            "empty_payload",
            "oversized_payload",
            "message_too_large",
            "abrupt_disconnect",
        ]
    );
    assert_eq!(ErrorReason::BinaryFrame.twilio_error_code(), Some(31950));
    for r in [
        ErrorReason::InvalidJson,
        ErrorReason::UnknownEvent,
        ErrorReason::WrongStreamSid,
        ErrorReason::InvalidMessage,
    ] {
        assert_eq!(r.twilio_error_code(), Some(31951));
    }
    assert_eq!(ErrorReason::AbruptDisconnect.twilio_error_code(), None);
}

// ---- payloads ----

#[test]
fn decode_payload_reuses_buffer_and_classifies() {
    let mut buf = Vec::with_capacity(256);
    let cap = buf.capacity();
    decode_payload("//79/A==", &mut buf).unwrap();
    assert_eq!(buf, [0xff, 0xfe, 0xfd, 0xfc]);
    assert_eq!(buf.capacity(), cap);
    assert_eq!(decode_payload("", &mut buf), Err(ErrorReason::EmptyPayload));
    assert!(buf.is_empty());
    for bad in ["//79/A", "not base64!", "AAA=A", "AB==", "-_-_"] {
        buf.push(1);
        assert_eq!(
            decode_payload(bad, &mut buf),
            Err(ErrorReason::InvalidBase64),
            "{bad}"
        );
        assert!(buf.is_empty());
    }
}

#[test]
fn escaped_strings_do_not_panic() {
    // Escaped payload: refused as InvalidMessage, not a panic and not copied.
    let text = format!(
        r#"{{"event":"media","sequenceNumber":"4","media":{{"chunk":"2","timestamp":"5","payload":"AA\/A"}},"streamSid":"{MZ}"}}"#
    );
    assert!(detail_of(&text).contains("media.payload"));
    // Escaped streamSid: accepted, owned.
    let text = r#"{"event":"media","sequenceNumber":"4","media":{"chunk":"2","timestamp":"5","payload":"AAAA"},"streamSid":"MZ\u0041\"x"}"#;
    let m = media_of(text);
    assert_eq!(m.stream_sid, "MZA\"x");
    // Broken escapes are JSON errors.
    assert_eq!(
        err_of(r#"{"event":"me\x"}"#).reason(),
        ErrorReason::InvalidJson
    );
    assert_eq!(
        err_of(r#"{"event":"\ud800"}"#).reason(),
        ErrorReason::InvalidJson
    );
}

#[test]
fn every_prefix_of_a_media_message_is_handled() {
    let full = media_json(4, MZ, 2, 20, &[0x7f; 160]);
    assert!(parse_inbound(&full).is_ok());
    for cut in 0..full.len() {
        // Sync on char boundaries only (the text is ASCII, but stay honest).
        if let Some(prefix) = full.get(..cut) {
            assert!(parse_inbound(prefix).is_err(), "prefix {cut} parsed");
        }
        // Also mangle one byte to something structural.
        let mut bytes = full.clone().into_bytes();
        bytes[cut] = b"\"{}[],:\\0"[cut % 9];
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = parse_inbound(s);
            let _ = parse_outbound(s);
        }
    }
}
