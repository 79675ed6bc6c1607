//! [`FallbackTts`] with real providers against the fakes, and with scripted stand-ins for the
//! mid-response cases.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::fakes::elevenlabs::FakeElevenLabs;
use crate::fakes::openai_speech::FakeOpenAiSpeech;
use crate::fakes::{Fault, synth_speech};
use crate::provider::Secret;
use crate::tts::common::testing::{assert_near, speak_all, tts_config};
use crate::tts::elevenlabs_http::ElevenLabsHttp;
use crate::tts::openai::OpenAiTts;

/// Speaks 60 ms (480 bytes) per character; fails half way through piece `fail_at`.
struct Scripted {
    name: &'static str,
    fail_at: Option<usize>,
    heard: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    fn new(name: &'static str, fail_at: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            name,
            fail_at,
            heard: Arc::default(),
        })
    }

    fn heard(&self) -> Vec<String> {
        self.heard.lock().unwrap().clone()
    }
}

impl TextToSpeech for Scripted {
    fn name(&self) -> &'static str {
        self.name
    }

    fn speak(
        &self,
        mut text: mpsc::Receiver<String>,
        _cancel: CancellationToken,
    ) -> mpsc::Receiver<TtsEvent> {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let (heard, fail_at, name) = (self.heard.clone(), self.fail_at, self.name);
        tokio::spawn(async move {
            let mut index = 0;
            while let Some(piece) = text.recv().await {
                heard.lock().unwrap().push(piece.clone());
                let bytes = piece.chars().count() * 480;
                if fail_at == Some(index) {
                    let _ = tx
                        .send(TtsEvent::Audio(Bytes::from(vec![1; bytes / 2])))
                        .await;
                    let e = ProviderError::Server {
                        status: 500,
                        message: "boom".into(),
                    };
                    let warning = TtsEvent::Warning {
                        provider: name,
                        error: e.clone(),
                    };
                    let _ = tx.send(warning).await;
                    let _ = tx.send(TtsEvent::Failed(e)).await;
                    return;
                }
                let _ = tx.send(TtsEvent::Audio(Bytes::from(vec![2; bytes]))).await;
                index += 1;
            }
            let _ = tx.send(TtsEvent::Done).await;
        });
        rx
    }
}

const PIECES: [&str; 3] = ["Hello there.", "How are you today?", "Bye now."];

#[tokio::test]
async fn primary_500_moves_all_text_to_the_secondary() {
    let elevenlabs = FakeElevenLabs::start("xi").await.unwrap();
    let openai = FakeOpenAiSpeech::start("sk").await.unwrap();
    elevenlabs.faults.push(Fault::Status(500));
    let mut cfg = tts_config();
    cfg.elevenlabs_base_url = elevenlabs.base_url();
    cfg.openai_base_url = openai.base_url();
    let primary = Arc::new(ElevenLabsHttp::new(&cfg, Secret::new("xi")));
    let secondary = Arc::new(OpenAiTts::new(&cfg, Secret::new("sk")));
    let tts = FallbackTts::new(primary, Some(secondary), None);
    assert_eq!(tts.name(), "elevenlabs_http");

    let spoken = speak_all(&tts, &PIECES).await;
    assert_eq!(spoken.end, Some(TtsEvent::Done));
    assert_eq!(spoken.warnings, [("elevenlabs_http", "server_error")]);
    assert_eq!(spoken.apology_bytes, 0);
    let inputs: Vec<String> = openai
        .wait_for_requests(3, Duration::from_secs(2))
        .await
        .into_iter()
        .map(|r| r.input)
        .collect();
    assert_eq!(inputs, PIECES);
    let expected: usize = PIECES.iter().map(|p| synth_speech(p, 8000).len()).sum();
    assert_near(spoken.audio.len(), expected, 10);
}

#[tokio::test]
async fn everything_failing_plays_the_apology_then_done() {
    let elevenlabs = FakeElevenLabs::start("xi").await.unwrap();
    let openai = FakeOpenAiSpeech::start("sk").await.unwrap();
    elevenlabs.faults.push(Fault::Status(503));
    let mut cfg = tts_config();
    cfg.elevenlabs_base_url = elevenlabs.base_url();
    cfg.openai_base_url = openai.base_url();
    let primary = Arc::new(ElevenLabsHttp::new(&cfg, Secret::new("xi")));
    let secondary = Arc::new(OpenAiTts::new(&cfg, Secret::new("wrong")));
    let apology = Bytes::from_static(&[0x80; 1600]);
    let tts = FallbackTts::new(primary, Some(secondary), Some(apology.clone()));

    let (tx, rx) = mpsc::channel(4);
    let mut events = tts.speak(rx, CancellationToken::new());
    tx.send("Hello.".into()).await.unwrap();
    let within = Duration::from_secs(5);
    let mut next = async || tokio::time::timeout(within, events.recv()).await.unwrap();
    let kind = |e: Option<TtsEvent>| match e {
        Some(TtsEvent::Warning { provider, error }) => (provider, error.kind()),
        other => panic!("expected a warning, got {other:?}"),
    };
    assert_eq!(kind(next().await), ("elevenlabs_http", "server_error"));
    assert_eq!(kind(next().await), ("openai", "unauthorized"));
    assert_eq!(next().await, Some(TtsEvent::Apology(apology)));
    assert_eq!(next().await, Some(TtsEvent::Done));
}

#[tokio::test]
async fn no_secondary_and_no_apology_passes_the_failure_on() {
    let primary = Scripted::new("a", Some(0));
    let tts = FallbackTts::new(primary, None, None);
    let spoken = speak_all(&tts, &PIECES).await;
    assert!(
        matches!(spoken.end, Some(TtsEvent::Failed(_))),
        "{spoken:?}"
    );
    assert_eq!(spoken.warnings, [("a", "server_error")]);
}

#[tokio::test]
async fn failure_mid_response_replays_from_the_unfinished_piece() {
    let primary = Scripted::new("a", Some(1));
    let secondary = Scripted::new("b", None);
    let tts = FallbackTts::new(primary.clone(), Some(secondary.clone()), None);
    let spoken = speak_all(&tts, &PIECES).await;
    assert_eq!(spoken.end, Some(TtsEvent::Done));
    assert_eq!(spoken.warnings, [("a", "server_error")]);
    assert_eq!(primary.heard()[..2], PIECES[..2]);
    assert_eq!(secondary.heard(), PIECES[1..]);
    let primary_bytes = (12 + 18 / 2) * 480;
    let secondary_bytes = (18 + 8) * 480;
    assert_eq!(spoken.audio.len(), primary_bytes + secondary_bytes);
}

#[tokio::test]
async fn a_healthy_primary_is_passed_through() {
    let primary = Scripted::new("a", None);
    let secondary = Scripted::new("b", None);
    let tts = FallbackTts::new(primary.clone(), Some(secondary.clone()), None);
    let spoken = speak_all(&tts, &PIECES).await;
    assert_eq!(spoken.end, Some(TtsEvent::Done));
    assert_eq!(primary.heard(), PIECES);
    assert!(secondary.heard().is_empty());
}
