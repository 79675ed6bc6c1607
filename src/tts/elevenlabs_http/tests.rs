//! The HTTP streaming provider against [`FakeElevenLabs`].

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::fakes::elevenlabs::{FakeElevenLabs, Transport};
use crate::fakes::{Fault, synth_speech};
use crate::tts::common::testing::{assert_near, collect, peak, speak_all, tts_config};

const KEY: &str = "xi-test-key";

async fn setup() -> (FakeElevenLabs, ElevenLabsHttp) {
    let fake = FakeElevenLabs::start(KEY).await.unwrap();
    let mut cfg = tts_config();
    cfg.elevenlabs_base_url = fake.base_url();
    (fake, ElevenLabsHttp::new(&cfg, Secret::new(KEY)))
}

#[tokio::test]
async fn streams_each_piece_in_order() {
    let (fake, tts) = setup().await;
    let pieces = ["Hello there.", "How are you today?"];
    let spoken = speak_all(&tts, &pieces).await;
    assert_eq!(spoken.end, Some(TtsEvent::Done));
    let expected: usize = pieces.iter().map(|p| synth_speech(p, 8000).len()).sum();
    assert_near(spoken.audio.len(), expected, 10);
    assert!(spoken.chunks >= 4, "not streamed: {} chunks", spoken.chunks);
    assert!(peak(&spoken.audio) > 8000);
    let recs = fake.wait_for_requests(2, Duration::from_secs(2)).await;
    assert_eq!(recs.len(), 2);
    for (rec, piece) in recs.iter().zip(pieces) {
        assert_eq!(rec.transport, Transport::Http);
        assert_eq!(rec.texts, [piece]);
        assert_eq!(rec.output_format, "ulaw_8000");
        assert_eq!(rec.model_id, tts_config().elevenlabs_model);
        assert!(rec.completed, "{rec:?}");
    }
}

#[tokio::test]
async fn first_audio_arrives_while_the_body_streams() {
    let (_fake, tts) = setup().await;
    let (tx, rx) = mpsc::channel(4);
    let mut events = tts.speak(rx, CancellationToken::new());
    tx.send("This sentence takes a while to say out loud.".into())
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(2), events.recv()).await;
    assert!(matches!(first, Ok(Some(TtsEvent::Audio(_)))), "{first:?}");
    drop(tx);
    assert_eq!(collect(&mut events).await.end, Some(TtsEvent::Done));
}

#[tokio::test]
async fn bad_key_is_unauthorized() {
    let fake = FakeElevenLabs::start(KEY).await.unwrap();
    let mut cfg = tts_config();
    cfg.elevenlabs_base_url = fake.base_url();
    let tts = ElevenLabsHttp::new(&cfg, Secret::new("wrong"));
    match speak_all(&tts, &["Hi."]).await.end {
        Some(TtsEvent::Failed(ProviderError::Unauthorized { status, message })) => {
            assert_eq!(status, 401);
            assert_eq!(message, "invalid_api_key: Invalid API key");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn refusals_classify() {
    let (fake, tts) = setup().await;
    fake.faults.push(Fault::Status(429));
    fake.faults.push(Fault::Status(500));
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
    assert!(!spoken.audio.is_empty());
}

#[tokio::test]
async fn html_instead_of_audio_is_malformed() {
    let (fake, tts) = setup().await;
    fake.faults.push(Fault::Malformed);
    assert_eq!(speak_all(&tts, &["Hi."]).await.failure_kind(), "malformed");
}

#[tokio::test]
async fn stall_times_out() {
    let fake = FakeElevenLabs::start(KEY).await.unwrap();
    let mut cfg = tts_config();
    cfg.elevenlabs_base_url = fake.base_url();
    cfg.timeout_ms = 300;
    let tts = ElevenLabsHttp::new(&cfg, Secret::new(KEY));
    fake.faults.push(Fault::Stall(Duration::from_secs(2)));
    assert_eq!(speak_all(&tts, &["Hi."]).await.failure_kind(), "timeout");
}

#[tokio::test]
async fn cancel_drops_the_response_promptly() {
    let (fake, tts) = setup().await;
    let (tx, rx) = mpsc::channel(4);
    let cancel = CancellationToken::new();
    let mut events = tts.speak(rx, cancel.clone());
    let long = "This is a rather long sentence that keeps the fake busy for several seconds.";
    tx.send(long.into()).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(3), events.recv()).await;
    assert!(matches!(first, Ok(Some(TtsEvent::Audio(_)))), "{first:?}");
    cancel.cancel();
    let ended = tokio::time::timeout(Duration::from_millis(300), async {
        while events.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "channel still open after cancel");
    let recs = fake.wait_for_requests(1, Duration::from_secs(2)).await;
    assert!(recs[0].cancelled && !recs[0].completed, "{:?}", recs[0]);
}
