//! The fake Realtime server driven by a raw WebSocket client (the production client's tests
//! are in `engine::realtime`): refusals, the beta names, errors that leave the session open.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use super::*;
use crate::audio::mulaw;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn dial(
    fake: &FakeOpenAiRealtime,
    key: Option<&str>,
    beta: bool,
) -> Result<Ws, tungstenite::Error> {
    let mut req = format!("{}?model=gpt-realtime", fake.url()).into_client_request()?;
    if let Some(key) = key {
        let auth = HeaderValue::from_str(&format!("Bearer {key}")).unwrap();
        req.headers_mut().insert("authorization", auth);
    }
    if beta {
        let value = HeaderValue::from_static("realtime=v1");
        req.headers_mut().insert("openai-beta", value);
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

async fn next(ws: &mut Ws) -> Value {
    loop {
        match timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).unwrap(),
            Ok(Some(Ok(Message::Close(f)))) => {
                return json!({"type": "<close>", "frame": format!("{f:?}")});
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no message: {other:?}"),
        }
    }
}

/// Read until an event of type `ty`, returning every type seen on the way (and it).
async fn until(ws: &mut Ws, ty: &str) -> (Vec<String>, Value) {
    let mut seen = Vec::new();
    loop {
        let v = next(ws).await;
        let t = v["type"].as_str().unwrap_or_default().to_string();
        seen.push(t.clone());
        if t == ty {
            return (seen, v);
        }
        assert_ne!(t, "<close>", "closed while waiting for {ty}: {seen:?}");
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

fn speech_then_silence(text: &str) -> Vec<u8> {
    let mut audio: Vec<u8> = crate::fakes::synth_speech(text, 8000)
        .into_iter()
        .map(mulaw::encode)
        .collect();
    audio.extend(std::iter::repeat_n(mulaw::SILENCE, 8000));
    audio
}

#[tokio::test]
async fn refuses_without_a_key_and_closes_3000_for_a_wrong_one() {
    let fake = FakeOpenAiRealtime::start("sk-right").await.unwrap();
    let Err(tungstenite::Error::Http(resp)) = dial(&fake, None, false).await else {
        panic!("expected 401");
    };
    assert_eq!(resp.status().as_u16(), 401);
    let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
    assert!(body.contains("invalid_request_error"), "{body}");

    fake.faults.push(RealtimeFault::Refuse(429));
    let Err(tungstenite::Error::Http(resp)) = dial(&fake, Some("sk-right"), false).await else {
        panic!("expected 429");
    };
    assert_eq!(resp.status().as_u16(), 429);

    let mut ws = dial(&fake, Some("sk-wrong"), false).await.unwrap();
    let close = next(&mut ws).await;
    assert_eq!(close["type"], "<close>");
    let frame = close["frame"].as_str().unwrap();
    assert!(
        frame.contains("3000") && frame.contains("invalid_api_key"),
        "{frame}"
    );
    let conns = fake.observed.connections.snapshot();
    let refused: Vec<Option<u16>> = conns.iter().map(|c| c.refused).collect();
    assert_eq!(refused, [Some(401), Some(429), None]);
    assert!(!conns[2].authorized);
}

#[tokio::test]
async fn beta_connection_speaks_the_beta_shape_and_names() {
    let fake = FakeOpenAiRealtime::start("k").await.unwrap();
    fake.set_pacing(Pacing {
        speed: 20.0,
        first_audio: Duration::from_millis(10),
        ..Pacing::default()
    });
    let mut ws = dial(&fake, Some("k"), true).await.unwrap();
    let created = next(&mut ws).await;
    assert_eq!(created["type"], "session.created");
    assert_eq!(created["session"]["input_audio_format"], "pcm16");
    send(
        &mut ws,
        json!({"type": "session.update", "session": {"input_audio_format": "g711_ulaw",
            "output_audio_format": "g711_ulaw",
            "input_audio_transcription": {"model": "gpt-4o-mini-transcribe"}}}),
    )
    .await;
    let updated = next(&mut ws).await;
    assert_eq!(updated["type"], "session.updated", "{updated}");
    assert_eq!(updated["session"]["output_audio_format"], "g711_ulaw");

    let audio = speech_then_silence("I would like to check my order");
    for chunk in audio.chunks(160) {
        let b64 = STANDARD.encode(chunk);
        send(
            &mut ws,
            json!({"type": "input_audio_buffer.append", "audio": b64}),
        )
        .await;
    }
    let (seen, started) = until(&mut ws, "input_audio_buffer.speech_started").await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    let user_item = started["item_id"].as_str().unwrap().to_string();
    let (seen, _) = until(&mut ws, "response.done").await;
    for ty in [
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
        "response.created",
        "conversation.item.input_audio_transcription.completed",
        "response.audio.delta",
        "response.audio_transcript.delta",
        "response.audio.done",
        "response.audio_transcript.done",
    ] {
        assert!(seen.iter().any(|s| s == ty), "{ty} missing from {seen:?}");
    }
    assert!(!seen.iter().any(|s| s.contains("output_audio")), "{seen:?}");
    let truncates = fake.observed.truncates.len();
    assert_eq!(truncates, 0);
    assert!(!user_item.is_empty());
    assert_eq!(fake.observed.audio_bytes(), audio.len() as u64);
}

#[tokio::test]
async fn errors_leave_the_session_open() {
    let fake = FakeOpenAiRealtime::start("k").await.unwrap();
    let mut ws = dial(&fake, Some("k"), false).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "session.created");
    send(
        &mut ws,
        json!({"type": "response.cancel", "event_id": "evt_1"}),
    )
    .await;
    let err = next(&mut ws).await;
    assert_eq!(err["error"]["code"], "response_cancel_not_active", "{err}");
    assert_eq!(err["error"]["event_id"], "evt_1");
    send(&mut ws, json!({"type": "no.such.event"})).await;
    assert_eq!(next(&mut ws).await["error"]["param"], "type");
    ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "error");
    // The beta (flat) shape on a GA connection is refused, naming the key.
    send(
        &mut ws,
        json!({"type": "session.update", "session": {"type": "realtime", "input_audio_format": "g711_ulaw"}}),
    )
    .await;
    let err = next(&mut ws).await;
    assert_eq!(err["error"]["code"], "unknown_parameter", "{err}");
    send(
        &mut ws,
        json!({"type": "conversation.item.truncate", "item_id": "item_nope", "content_index": 0, "audio_end_ms": 10}),
    )
    .await;
    assert_eq!(next(&mut ws).await["error"]["param"], "item_id");
    send(&mut ws, json!({"type": "input_audio_buffer.commit"})).await;
    let err = next(&mut ws).await;
    assert_eq!(err["error"]["code"], "input_audio_buffer_commit_empty");
    // Still usable: the greeting plays.
    send(&mut ws, json!({"type": "response.create"})).await;
    let (seen, done) = until(&mut ws, "response.done").await;
    assert_eq!(done["response"]["status"], "completed");
    assert!(seen.iter().any(|s| s == "response.output_audio.delta"));
    let types = fake.observed.event_types(0);
    assert_eq!(types.first().map(String::as_str), Some("response.cancel"));
    assert_eq!(types.last().map(String::as_str), Some("response.create"));
}
