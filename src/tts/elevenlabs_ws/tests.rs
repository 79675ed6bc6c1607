//! The WebSocket provider against [`FakeElevenLabs`].

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::fakes::elevenlabs::{FakeElevenLabs, Transport};
use crate::fakes::{Fault, synth_speech};
use crate::tts::common::testing::{assert_near, collect, peak, speak_all, tts_config};

const KEY: &str = "xi-test-key";

async fn setup() -> (FakeElevenLabs, ElevenLabsWs) {
    let fake = FakeElevenLabs::start(KEY).await.unwrap();
    let mut cfg = tts_config();
    cfg.elevenlabs_base_url = fake.base_url();
    (fake, ElevenLabsWs::new(&cfg, Secret::new(KEY)))
}

#[test]
fn url_uses_the_websocket_scheme() {
    let mut cfg = tts_config();
    cfg.elevenlabs_base_url = "https://api.elevenlabs.io/".into();
    cfg.elevenlabs_voice_id = "v1ce".into();
    cfg.elevenlabs_model = "eleven_flash_v2_5".into();
    assert_eq!(
        stream_input_url(&cfg).unwrap(),
        "wss://api.elevenlabs.io/v1/text-to-speech/v1ce/stream-input?model_id=eleven_flash_v2_5&output_format=ulaw_8000"
    );
    cfg.elevenlabs_base_url = "http://127.0.0.1:9".into();
    assert!(
        stream_input_url(&cfg)
            .unwrap()
            .starts_with("ws://127.0.0.1:9/v1/")
    );
}

#[tokio::test]
async fn streams_audio_before_the_last_piece() {
    let (fake, tts) = setup().await;
    let (tx, rx) = mpsc::channel(4);
    let mut events = tts.speak(rx, CancellationToken::new());
    tx.send("Hello there.".into()).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(3), events.recv()).await;
    let Ok(Some(TtsEvent::Audio(first))) = first else {
        panic!("no audio before the last piece: {first:?}")
    };
    tx.send("How are you today?".into()).await.unwrap();
    drop(tx);
    let rest = collect(&mut events).await;
    assert_eq!(rest.end, Some(TtsEvent::Done));
    let total = first.len() + rest.audio.len();
    let expected =
        synth_speech("Hello there. ", 8000).len() + synth_speech("How are you today? ", 8000).len();
    assert_near(total, expected, 10);
    assert!(peak(&rest.audio) > 8000);

    let recs = fake.wait_for_requests(1, Duration::from_secs(2)).await;
    let rec = &recs[0];
    assert_eq!(rec.transport, Transport::WebSocket);
    assert_eq!(rec.texts, ["Hello there. ", "How are you today? "]);
    assert_eq!(rec.flushes, 2);
    assert!(rec.ended && rec.completed && !rec.cancelled, "{rec:?}");
    assert_eq!(rec.output_format, "ulaw_8000");
    assert_eq!(rec.model_id, tts_config().elevenlabs_model);
    let init = rec.init.as_ref().unwrap();
    assert_eq!(init["generation_config"]["chunk_length_schedule"][0], 120);
    assert!(init["voice_settings"].is_object());
}

#[tokio::test]
async fn no_text_is_done_without_audio() {
    let (_fake, tts) = setup().await;
    let spoken = speak_all(&tts, &[]).await;
    assert_eq!(spoken.end, Some(TtsEvent::Done));
    assert!(spoken.audio.is_empty());
}

#[tokio::test]
async fn bad_key_is_unauthorized() {
    let fake = FakeElevenLabs::start(KEY).await.unwrap();
    let mut cfg = tts_config();
    cfg.elevenlabs_base_url = fake.base_url();
    let tts = ElevenLabsWs::new(&cfg, Secret::new("wrong"));
    let spoken = speak_all(&tts, &["Hi."]).await;
    match spoken.end {
        Some(TtsEvent::Failed(ProviderError::Unauthorized { status, message })) => {
            assert_eq!(status, 401);
            assert!(message.contains("invalid_api_key"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn refusals_classify() {
    let (fake, tts) = setup().await;
    fake.faults.push(Fault::Status(429));
    fake.faults.push(Fault::Status(503));
    assert_eq!(
        speak_all(&tts, &["Hi."]).await.failure_kind(),
        "rate_limited"
    );
    assert_eq!(
        speak_all(&tts, &["Hi."]).await.failure_kind(),
        "server_error"
    );
}

#[tokio::test]
async fn mid_stream_disconnect_fails() {
    let (fake, tts) = setup().await;
    fake.faults.push(Fault::DisconnectAfter(2));
    let spoken = speak_all(&tts, &["Hello there, how are you doing today?"]).await;
    assert_eq!(spoken.failure_kind(), "disconnected", "{:?}", spoken.end);
    assert_eq!(spoken.chunks, 2);
}

#[tokio::test]
async fn malformed_message_is_skipped() {
    let (fake, tts) = setup().await;
    fake.faults.push(Fault::Malformed);
    let spoken = speak_all(&tts, &["Hello there."]).await;
    assert_eq!(spoken.end, Some(TtsEvent::Done));
    assert_near(
        spoken.audio.len(),
        synth_speech("Hello there.", 8000).len(),
        10,
    );
}

#[tokio::test]
async fn stall_times_out() {
    let fake = FakeElevenLabs::start(KEY).await.unwrap();
    let mut cfg = tts_config();
    cfg.elevenlabs_base_url = fake.base_url();
    cfg.timeout_ms = 300;
    let tts = ElevenLabsWs::new(&cfg, Secret::new(KEY));
    fake.faults.push(Fault::Stall(Duration::from_secs(3)));
    let started = std::time::Instant::now();
    let (tx, rx) = mpsc::channel(4);
    let mut events = tts.speak(rx, CancellationToken::new());
    tx.send("Hello.".into()).await.unwrap();
    let spoken = collect(&mut events).await;
    assert_eq!(spoken.failure_kind(), "timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn cancel_closes_the_socket_promptly() {
    let (fake, tts) = setup().await;
    let (tx, rx) = mpsc::channel(4);
    let cancel = CancellationToken::new();
    let mut events = tts.speak(rx, cancel.clone());
    let long = "This is a rather long sentence that keeps the fake busy for several seconds.";
    tx.send(long.into()).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(3), events.recv()).await;
    assert!(matches!(first, Ok(Some(TtsEvent::Audio(_)))), "{first:?}");
    cancel.cancel();
    let ended = tokio::time::timeout(Duration::from_millis(500), async {
        while events.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "channel still open after cancel");
    let recs = fake.wait_for_requests(1, Duration::from_secs(2)).await;
    assert!(recs[0].cancelled && !recs[0].completed, "{:?}", recs[0]);
    let all = synth_speech(long, 8000).len();
    assert!(recs[0].audio_bytes < all, "fake sent everything");
}
