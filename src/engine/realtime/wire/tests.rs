use bytes::Bytes;
use serde_json::{Value, json};

use super::server::{ItemKind, ResponseStatus, ServerEvent, parse};
use super::*;
use crate::config::Config;
use crate::engine::realtime::config::Eagerness;

fn cfg() -> RealtimeConfig {
    Config::default().realtime
}

fn spec() -> SessionSpec {
    SessionSpec {
        instructions: "You are a phone agent.".into(),
        tools: Tool::ALL.to_vec(),
        voice: None,
    }
}

#[test]
fn ga_session_update_is_exactly_the_reference_shape() {
    let v: Value = serde_json::from_str(&session_update(&cfg(), &spec())).unwrap();
    assert_eq!(v["type"], "session.update");
    let s = &v["session"];
    assert_eq!(s["type"], "realtime");
    assert_eq!(s["model"], "gpt-realtime");
    assert_eq!(s["output_modalities"], json!(["audio"]));
    assert_eq!(s["instructions"], "You are a phone agent.");
    assert_eq!(s["audio"]["input"]["format"], json!({"type": "audio/pcmu"}));
    assert_eq!(
        s["audio"]["output"]["format"],
        json!({"type": "audio/pcmu"})
    );
    assert_eq!(s["audio"]["output"]["voice"], "alloy");
    let turn = &s["audio"]["input"]["turn_detection"];
    assert_eq!(turn["type"], "server_vad");
    assert_eq!(turn["threshold"], 0.5);
    assert_eq!(turn["prefix_padding_ms"], 300);
    assert_eq!(turn["silence_duration_ms"], 500);
    assert_eq!(turn["interrupt_response"], true);
    assert_eq!(
        s["audio"]["input"]["transcription"]["model"],
        "gpt-4o-mini-transcribe"
    );
    let names: Vec<&str> = s["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["end_call", "transfer_call", "set_outcome", "opt_out"]
    );
    let transfer = &s["tools"][1];
    assert_eq!(transfer["type"], "function");
    assert_eq!(transfer["parameters"]["required"], json!(["to"]));
    assert!(s.get("input_audio_format").is_none());
}

#[test]
fn beta_session_update_is_flat_with_g711_ulaw_and_semantic_vad() {
    let mut c = cfg();
    c.api = ApiShape::Beta;
    c.turn_detection = crate::engine::realtime::config::TurnDetection::SemanticVad;
    c.eagerness = Eagerness::High;
    c.transcription_model.clear();
    let v: Value = serde_json::from_str(&session_update(&c, &spec())).unwrap();
    let s = &v["session"];
    assert!(s.get("type").is_none() && s.get("audio").is_none());
    assert_eq!(s["input_audio_format"], "g711_ulaw");
    assert_eq!(s["output_audio_format"], "g711_ulaw");
    assert_eq!(s["voice"], "alloy");
    assert_eq!(
        s["turn_detection"],
        json!({"type": "semantic_vad", "eagerness": "high", "create_response": true,
            "interrupt_response": true})
    );
    assert!(s.get("input_audio_transcription").is_none());
}

#[test]
fn audio_passes_through_as_base64_text() {
    let payload = Bytes::from_static(b"//79/A==");
    let audio = Base64Audio::new(payload).unwrap();
    assert_eq!(audio.decoded_len(), 4);
    let text = ClientEvent::AppendAudio(audio).to_json(ApiShape::Ga);
    assert_eq!(
        text,
        r#"{"type":"input_audio_buffer.append","audio":"//79/A=="}"#
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["audio"], "//79/A==");
    // Nothing that could break out of the JSON string gets in.
    for bad in [
        "ab\"}",
        "abc",
        "a=bc",
        "",
        "ab\\c",
        "a===",
        "ab c",
        "abc\u{e9}",
    ] {
        let text = Bytes::copy_from_slice(bad.as_bytes());
        assert!(Base64Audio::new(text).is_err(), "{bad:?}");
    }
    let raw = Base64Audio::from_mulaw(&[0xFF; 160]);
    assert_eq!(raw.decoded_len(), 160);
}

#[test]
fn client_events_serialise_for_each_shape() {
    let t = ClientEvent::Truncate {
        item_id: "item_1".into(),
        audio_end_ms: 1520,
    };
    let v: Value = serde_json::from_str(&t.to_json(ApiShape::Ga)).unwrap();
    assert_eq!(
        v,
        json!({"type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0,
            "audio_end_ms": 1520})
    );
    let out = ClientEvent::FunctionOutput {
        call_id: "call_1".into(),
        output: r#"{"ok":true}"#.into(),
    };
    let v: Value = serde_json::from_str(&out.to_json(ApiShape::Ga)).unwrap();
    assert_eq!(v["item"]["type"], "function_call_output");
    assert_eq!(v["item"]["output"], r#"{"ok":true}"#);
    let said = ClientEvent::Message {
        role: Role::Assistant,
        text: "Hi".into(),
    };
    let ga: Value = serde_json::from_str(&said.to_json(ApiShape::Ga)).unwrap();
    let beta: Value = serde_json::from_str(&said.to_json(ApiShape::Beta)).unwrap();
    assert_eq!(ga["item"]["content"][0]["type"], "output_text");
    assert_eq!(beta["item"]["content"][0]["type"], "text");
    let greet = ClientEvent::CreateResponse {
        instructions: Some("Greet the caller.".into()),
    };
    let v: Value = serde_json::from_str(&greet.to_json(ApiShape::Ga)).unwrap();
    assert_eq!(v["response"]["instructions"], "Greet the caller.");
    assert_eq!(greet.kind(), "response.create");
}

#[test]
fn server_events_parse_in_both_shapes() {
    for ty in ["response.output_audio.delta", "response.audio.delta"] {
        let text = json!({"type": ty, "event_id": "e", "response_id": "resp_1",
            "item_id": "item_2", "output_index": 0, "content_index": 0, "delta": "//79/A=="})
        .to_string();
        let ServerEvent::AudioDelta { audio, item_id, .. } = parse(&text).unwrap() else {
            panic!("{ty}");
        };
        assert_eq!(&audio[..], &[0xFF, 0xFE, 0xFD, 0xFC]);
        assert_eq!(item_id, "item_2");
    }
    let ga = json!({"type": "session.updated", "session": {"id": "sess_1", "type": "realtime",
        "audio": {"input": {"format": {"type": "audio/pcmu"}},
                  "output": {"format": {"type": "audio/pcm", "rate": 24000}}}}});
    let ServerEvent::SessionUpdated(s) = parse(&ga.to_string()).unwrap() else {
        panic!();
    };
    assert_eq!(s.output_format, "audio/pcm@24000");
    assert!(!s.is_mulaw());
    let beta = json!({"type": "session.updated", "session": {"id": "sess_1",
        "input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw"}});
    let ServerEvent::SessionUpdated(s) = parse(&beta.to_string()).unwrap() else {
        panic!();
    };
    assert!(s.is_mulaw());
    let item = json!({"type": "response.output_item.added", "response_id": "r", "output_index": 1,
        "item": {"id": "item_3", "type": "function_call", "name": "end_call", "call_id": "call_9",
            "arguments": ""}});
    let ServerEvent::OutputItemAdded { kind, .. } = parse(&item.to_string()).unwrap() else {
        panic!();
    };
    assert_eq!(
        kind,
        ItemKind::FunctionCall {
            name: "end_call".into(),
            call_id: "call_9".into()
        }
    );
    let unknown = json!({"type": "response.content_part.added", "part": {}});
    assert_eq!(
        parse(&unknown.to_string()).unwrap(),
        ServerEvent::Other("response.content_part.added".into())
    );
    assert_eq!(parse("{broken").unwrap_err().kind(), "malformed");
    let bad_audio = json!({"type": "response.audio.delta", "response_id": "r", "item_id": "i",
        "delta": "***"});
    assert_eq!(
        parse(&bad_audio.to_string()).unwrap_err().kind(),
        "malformed"
    );
}

#[test]
fn failures_are_classified() {
    let failed = json!({"type": "response.done", "response": {"id": "resp_1", "status": "failed",
        "status_details": {"type": "failed", "error": {"type": "tokens",
            "code": "rate_limit_exceeded", "message": "Rate limit reached"}}}});
    let event = parse(&failed.to_string()).unwrap();
    let ServerEvent::ResponseDone { status, .. } = &event else {
        panic!();
    };
    assert_eq!(*status, ResponseStatus::Failed);
    assert_eq!(event.failure().map(|e| e.kind()), Some("rate_limited"));
    let race = json!({"type": "error", "error": {"type": "invalid_request_error",
        "code": "conversation_already_has_active_response", "message": "busy"}});
    let event = parse(&race.to_string()).unwrap();
    let ServerEvent::Error(e) = &event else {
        panic!();
    };
    assert!(e.is_benign() && !e.is_session_expired());
    assert_eq!(event.failure(), None);
    let expired = json!({"type": "error", "error": {"type": "invalid_request_error",
        "code": "session_expired", "message": "Your session hit the maximum duration of 60 minutes."}});
    let ServerEvent::Error(e) = parse(&expired.to_string()).unwrap() else {
        panic!();
    };
    assert!(e.is_session_expired());
    let cancelled = json!({"type": "response.done", "response": {"id": "r", "status": "cancelled",
        "status_details": {"type": "cancelled", "reason": "turn_detected"}}});
    let ServerEvent::ResponseDone { reason, .. } = parse(&cancelled.to_string()).unwrap() else {
        panic!();
    };
    assert_eq!(reason.as_deref(), Some("turn_detected"));
}
