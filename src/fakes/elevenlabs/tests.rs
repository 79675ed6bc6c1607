//! The fake's protocol, checked with a bare WebSocket / HTTP client.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;

const KEY: &str = "xi-key";

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(
    fake: &FakeElevenLabs,
    query: &str,
    key: &str,
) -> Result<Client, tungstenite::Error> {
    let url = format!(
        "{}/v1/text-to-speech/voice/stream-input?{query}",
        fake.server.ws_url()
    );
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("xi-api-key", key.parse().unwrap());
    Ok(tokio_tungstenite::connect_async(request).await?.0)
}

async fn send(ws: &mut Client, json: serde_json::Value) {
    ws.send(WsMessage::text(json.to_string())).await.unwrap();
}

/// Read until the close: (decoded audio bytes, JSON messages without audio, close code).
async fn drain(ws: &mut Client) -> (usize, Vec<serde_json::Value>, Option<u16>) {
    let (mut audio, mut others) = (0, Vec::new());
    let read = async {
        while let Some(Ok(message)) = ws.next().await {
            match message {
                WsMessage::Text(text) => {
                    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
                    match json["audio"].as_str() {
                        Some(b64) => audio += STANDARD.decode(b64).unwrap().len(),
                        None => others.push(json),
                    }
                }
                WsMessage::Close(frame) => return frame.map(|f| u16::from(f.code)),
                _ => {}
            }
        }
        None
    };
    let code = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap();
    (audio, others, code)
}

#[tokio::test]
async fn buffers_until_end_then_final_and_close_1000() {
    let fake = FakeElevenLabs::start(KEY).await.unwrap();
    let mut ws = connect(&fake, "model_id=m&output_format=ulaw_8000", KEY)
        .await
        .unwrap();
    send(&mut ws, serde_json::json!({"text": " "})).await;
    send(&mut ws, serde_json::json!({"text": "Short text. "})).await;
    // Below the 120-character schedule and no flush: nothing yet.
    let quiet = tokio::time::timeout(Duration::from_millis(150), ws.next()).await;
    assert!(quiet.is_err(), "audio before the schedule: {quiet:?}");
    send(&mut ws, serde_json::json!({"text": ""})).await;
    let (audio, others, code) = drain(&mut ws).await;
    assert_eq!(audio, synth_speech("Short text. ", 8000).len());
    assert_eq!(others, [serde_json::json!({"isFinal": true})]);
    assert_eq!(code, Some(1000));
    let rec = &fake.wait_for_requests(1, Duration::from_secs(1)).await[0];
    assert!(rec.completed && rec.ended && !rec.cancelled, "{rec:?}");
    assert_eq!(rec.model_id, "m");
}

#[tokio::test]
async fn pcm_formats_are_s16le() {
    let fake = FakeElevenLabs::start(KEY).await.unwrap();
    let mut ws = connect(&fake, "output_format=pcm_16000", KEY)
        .await
        .unwrap();
    send(&mut ws, serde_json::json!({"text": " "})).await;
    send(
        &mut ws,
        serde_json::json!({"text": "Hello world. ", "flush": true}),
    )
    .await;
    send(&mut ws, serde_json::json!({"text": ""})).await;
    let (audio, _, code) = drain(&mut ws).await;
    assert_eq!(audio, 2 * synth_speech("Hello world. ", 16_000).len());
    assert_eq!(code, Some(1000));
}

#[tokio::test]
async fn missing_init_is_an_error_and_close_1008() {
    let fake = FakeElevenLabs::start(KEY).await.unwrap();
    let mut ws = connect(&fake, "output_format=ulaw_8000", KEY)
        .await
        .unwrap();
    send(&mut ws, serde_json::json!({"text": "Hello. "})).await;
    let (audio, others, code) = drain(&mut ws).await;
    assert_eq!(audio, 0);
    assert_eq!(others[0]["code"], 1008);
    assert_eq!(others[0]["error"], "invalid_initial_message");
    assert_eq!(code, Some(1008));
}

#[tokio::test]
async fn inactivity_timeout_is_an_error_and_close_1008() {
    let fake = FakeElevenLabs::start(KEY).await.unwrap();
    let mut ws = connect(&fake, "output_format=ulaw_8000&inactivity_timeout=1", KEY)
        .await
        .unwrap();
    send(&mut ws, serde_json::json!({"text": " "})).await;
    let (_, others, code) = drain(&mut ws).await;
    assert_eq!(others[0]["error"], "input_timeout_exceeded");
    assert!(
        others[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Have not received")
    );
    assert_eq!(code, Some(1008));
}

#[tokio::test]
async fn bad_key_is_refused_before_the_upgrade() {
    let fake = FakeElevenLabs::start(KEY).await.unwrap();
    match connect(&fake, "output_format=ulaw_8000", "nope").await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401);
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["detail"]["status"], "invalid_api_key");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn http_streams_chunks_of_100_ms() {
    let fake = FakeElevenLabs::start(KEY).await.unwrap();
    let url = format!(
        "{}/v1/text-to-speech/voice/stream?output_format=ulaw_8000",
        fake.base_url()
    );
    let mut response = reqwest::Client::new()
        .post(url)
        .header("xi-api-key", KEY)
        .json(&serde_json::json!({"text": "Hello there, friend.", "model_id": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut sizes = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        sizes.push(chunk.len());
    }
    assert_eq!(
        sizes.iter().sum::<usize>(),
        synth_speech("Hello there, friend.", 8000).len()
    );
    assert!(sizes.len() > 5 && sizes[0] == 800, "{sizes:?}");
    let rec = &fake.wait_for_requests(1, Duration::from_secs(1)).await[0];
    assert_eq!(rec.texts, ["Hello there, friend."]);
    assert_eq!(rec.model_id, "m");
    assert!(rec.completed);
}
