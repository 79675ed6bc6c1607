//! Unit tests for round trips: simulator builders → `parse_inbound`,
//! `write_outbound` → `parse_outbound` (byte-exact reference shapes),
//! escaping of odd sids and names, and the sid newtypes.

use serde_json::{Value, json};

use super::tests::{AC, CA, MZ, media_of};
use super::*;

// ---- builders round trip ----

#[test]
fn builders_round_trip() {
    assert_eq!(
        serde_json::from_str::<Value>(&connected_json()).unwrap(),
        json!({"event":"connected","protocol":"Call","version":"1.0.0"})
    );
    let params = vec![
        ("tenant".to_owned(), "acme".to_owned()),
        ("q\"".to_owned(), "\\v\n".to_owned()),
    ];
    let start = start_json(1, AC, MZ, CA, &params);
    assert_eq!(
        serde_json::from_str::<Value>(&start).unwrap(),
        json!({"event":"start","sequenceNumber":"1","start":{"accountSid":AC,"streamSid":MZ,"callSid":CA,
            "tracks":["inbound"],"customParameters":{"tenant":"acme","q\"":"\\v\n"},
            "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":MZ})
    );
    let InboundEvent::Start(s) = parse_inbound(&start).unwrap() else {
        panic!()
    };
    assert_eq!(s.custom_parameters["q\""], "\\v\n");
    assert_eq!(
        (
            s.stream_sid.as_str(),
            s.call_sid.as_str(),
            s.account_sid.as_str()
        ),
        (MZ, CA, AC)
    );

    let audio: Vec<u8> = (0..=255u8).cycle().take(160).collect();
    let text = media_json(u64::MAX, MZ, 7, 120, &audio);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["media"]["timestamp"],
        json!("120")
    );
    let m = media_of(&text);
    assert_eq!(
        (m.sequence_number, m.chunk, m.timestamp, m.track),
        (u64::MAX, 7, 120, Track::Inbound)
    );
    assert_eq!(m.decoded_len(), 160);
    let mut buf = Vec::new();
    decode_payload(m.payload, &mut buf).unwrap();
    assert_eq!(buf, audio);

    assert_eq!(
        serde_json::from_str::<Value>(&dtmf_json(5, MZ, "#")).unwrap(),
        json!({"event":"dtmf","streamSid":MZ,"sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"#"}})
    );
    assert!(
        matches!(parse_inbound(&dtmf_json(5, MZ, "#")), Ok(InboundEvent::Dtmf(d)) if d.digit == "#")
    );
    assert!(
        matches!(parse_inbound(&mark_json(9, MZ, "utt-\"7\"")), Ok(InboundEvent::Mark(m)) if m.name == "utt-\"7\"")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&stop_json(11, AC, MZ, CA)).unwrap(),
        json!({"event":"stop","sequenceNumber":"11","stop":{"accountSid":AC,"callSid":CA},"streamSid":MZ})
    );
    assert!(
        matches!(parse_inbound(&stop_json(11, AC, MZ, CA)), Ok(InboundEvent::Stop(s)) if s.sequence_number == 11)
    );
}

// ---- outbound ----

#[test]
fn write_outbound_matches_reference_and_round_trips() {
    let mut out = String::from("stale contents");
    let audio = vec![0xffu8, 0x7f, 0x00, 0x80, 0x55];
    write_outbound(
        &OutboundMessage::Media {
            payload: audio.clone().into(),
        },
        MZ,
        &mut out,
    );
    assert_eq!(
        out,
        format!(r#"{{"event":"media","streamSid":"{MZ}","media":{{"payload":"/38AgFU="}}}}"#)
    );
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"event":"media","streamSid":MZ,"media":{"payload":"/38AgFU="}})
    );
    assert_eq!(
        parse_outbound(&out).unwrap(),
        ParsedOutbound::Media {
            stream_sid: MZ.into(),
            payload: audio
        }
    );

    write_outbound(
        &OutboundMessage::Mark {
            name: "utt-7".into(),
        },
        MZ,
        &mut out,
    );
    assert_eq!(
        out,
        format!(r#"{{"event":"mark","streamSid":"{MZ}","mark":{{"name":"utt-7"}}}}"#)
    );
    assert_eq!(
        parse_outbound(&out).unwrap(),
        ParsedOutbound::Mark {
            stream_sid: MZ.into(),
            name: "utt-7".into()
        }
    );

    write_outbound(&OutboundMessage::Clear, MZ, &mut out);
    assert_eq!(out, format!(r#"{{"event":"clear","streamSid":"{MZ}"}}"#));
    assert_eq!(
        parse_outbound(&out).unwrap(),
        ParsedOutbound::Clear {
            stream_sid: MZ.into()
        }
    );
}

#[test]
fn write_outbound_escapes_odd_sids_and_names() {
    let odd_sid = "MZ\"\\\n\t\u{1}\u{1f}é☎";
    let odd_name = "a\"b\\c\r\u{0}/</script>\u{2028}";
    let mut out = String::new();
    for msg in [
        OutboundMessage::Mark {
            name: odd_name.into(),
        },
        OutboundMessage::Clear,
        OutboundMessage::Media {
            payload: bytes::Bytes::new(),
        },
        OutboundMessage::Media {
            payload: vec![1; 1000].into(),
        },
    ] {
        write_outbound(&msg, odd_sid, &mut out);
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
        assert_eq!(v["streamSid"], odd_sid);
        assert_eq!(v["event"], msg.name());
        match (parse_outbound(&out).unwrap(), &msg) {
            (ParsedOutbound::Mark { name, stream_sid }, OutboundMessage::Mark { .. }) => {
                assert_eq!((name.as_str(), stream_sid.as_str()), (odd_name, odd_sid));
            }
            (ParsedOutbound::Media { payload, .. }, OutboundMessage::Media { payload: p }) => {
                assert_eq!(&payload[..], &p[..]);
            }
            (ParsedOutbound::Clear { stream_sid }, OutboundMessage::Clear) => {
                assert_eq!(stream_sid, odd_sid);
            }
            other => panic!("mismatch {other:?}"),
        }
    }
    // Builders escape too.
    let v: Value = serde_json::from_str(&media_json(1, odd_sid, 1, 0, &[0])).unwrap();
    assert_eq!(v["streamSid"], odd_sid);
}

#[test]
fn parse_outbound_errors() {
    let cases = [
        ("nope", ErrorReason::InvalidJson),
        (r#"{"streamSid":"MZ"}"#, ErrorReason::InvalidJson),
        (
            r#"{"event":"start","streamSid":"MZ"}"#,
            ErrorReason::UnknownEvent,
        ),
        (r#"{"event":"clear"}"#, ErrorReason::InvalidMessage),
        (
            r#"{"event":"media","streamSid":"MZ","media":{"payload":"%%%"}}"#,
            ErrorReason::InvalidMessage,
        ),
        (
            r#"{"event":"media","streamSid":"MZ","media":{"payload":"AAA"}}"#,
            ErrorReason::InvalidMessage,
        ),
        (
            r#"{"event":"media","streamSid":"MZ"}"#,
            ErrorReason::InvalidMessage,
        ),
        (
            r#"{"event":"mark","streamSid":"MZ","mark":{}}"#,
            ErrorReason::InvalidMessage,
        ),
    ];
    for (text, reason) in cases {
        let e = parse_outbound(text).expect_err(text);
        assert_eq!(e.reason(), reason, "{text} -> {e}");
    }
}

#[test]
fn sid_newtypes() {
    let sid = StreamSid::from(MZ);
    assert_eq!(sid.to_string(), MZ);
    assert_eq!(serde_json::to_string(&sid).unwrap(), format!("\"{MZ}\""));
    let back: CallSid = serde_json::from_str(&format!("\"{CA}\"")).unwrap();
    assert_eq!(back, CallSid(CA.into()));
}
