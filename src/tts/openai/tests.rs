//! The OpenAI provider against [`FakeOpenAiSpeech`].

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::fakes::openai_speech::{CHUNK_BYTES, FakeOpenAiSpeech};
use crate::fakes::{Fault, synth_speech};
use crate::tts::common::testing::{collect, peak, speak_all, tts_config};

const KEY: &str = "sk-test";

async fn setup() -> (FakeOpenAiSpeech, OpenAiTts) {
    let fake = FakeOpenAiSpeech::start(KEY).await.unwrap();
    let mut cfg = tts_config();
    cfg.openai_base_url = fake.base_url();
    (fake, OpenAiTts::new(&cfg, Secret::new(KEY)))
}

#[tokio::test]
async fn odd_chunks_resample_to_exactly_a_third() {
    const { assert!(CHUNK_BYTES % 2 == 1) };
    let (fake, tts) = setup().await;
    let pieces = ["Hello there.", "How are you today?"];
    let spoken = speak_all(&tts, &pieces).await;
    assert_eq!(spoken.end, Some(TtsEvent::Done));
    let samples_24k: usize = pieces.iter().map(|p| synth_speech(p, PCM_RATE).len()).sum();
    assert_eq!(spoken.audio.len(), samples_24k.div_ceil(3));
    assert!(spoken.chunks >= 4, "not streamed: {} chunks", spoken.chunks);
    assert!(peak(&spoken.audio) > 8000, "peak {}", peak(&spoken.audio));
    let recs = fake.wait_for_requests(2, Duration::from_secs(2)).await;
    let inputs: Vec<&str> = recs.iter().map(|r| r.input.as_str()).collect();
    assert_eq!(inputs, pieces);
    let cfg = tts_config();
    assert_eq!(recs[0].model, cfg.openai_model);
    assert_eq!(recs[0].voice, cfg.openai_voice);
    assert_eq!(recs[0].response_format, "pcm");
}

#[tokio::test]
async fn bad_key_is_unauthorized() {
    let fake = FakeOpenAiSpeech::start(KEY).await.unwrap();
    let mut cfg = tts_config();
    cfg.openai_base_url = fake.base_url();
    let tts = OpenAiTts::new(&cfg, Secret::new("sk-wrong"));
    match speak_all(&tts, &["Hi."]).await.end {
        Some(TtsEvent::Failed(ProviderError::Unauthorized { status, message })) => {
            assert_eq!(status, 401);
            assert!(message.starts_with("invalid_api_key"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn refusals_classify() {
    let (fake, tts) = setup().await;
    fake.faults.push(Fault::Status(429));
    fake.faults.push(Fault::Status(502));
    let limited = speak_all(&tts, &["Hi."]).await;
    match &limited.end {
        Some(TtsEvent::Failed(ProviderError::RateLimited(m))) => {
            assert!(m.contains("rate_limit_exceeded"), "{m}")
        }
        other => panic!("{other:?}"),
    }
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

#[tokio::test]
async fn stall_times_out() {
    let fake = FakeOpenAiSpeech::start(KEY).await.unwrap();
    let mut cfg = tts_config();
    cfg.openai_base_url = fake.base_url();
    cfg.timeout_ms = 300;
    let tts = OpenAiTts::new(&cfg, Secret::new(KEY));
    fake.faults.push(Fault::Stall(Duration::from_secs(2)));
    let (tx, rx) = mpsc::channel(1);
    let mut events = tts.speak(rx, CancellationToken::new());
    tx.send("Hi.".into()).await.unwrap();
    assert_eq!(collect(&mut events).await.failure_kind(), "timeout");
}

#[test]
fn long_input_is_split_at_words() {
    let text = "word ".repeat(2000);
    let parts = split_input(&text, MAX_INPUT_CHARS);
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|p| p.chars().count() <= MAX_INPUT_CHARS));
    assert!(
        parts
            .iter()
            .all(|p| p.starts_with("word") && p.ends_with("word"))
    );
    assert_eq!(parts.join(" "), text.trim());
    assert_eq!(split_input("  short  ", 10), ["short"]);
    assert_eq!(split_input("abcdefghij", 4), ["abcd", "efgh", "ij"]);
}
