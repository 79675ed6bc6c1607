//! Helpers for the providers' tests: collecting a response, loudness, tolerances.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::audio::mulaw;
use crate::config::{Config, TtsConfig};
use crate::tts::{TextToSpeech, TtsEvent};

/// Everything a response produced.
#[derive(Debug, Default)]
pub(crate) struct Spoken {
    pub audio: Vec<u8>,
    pub chunks: usize,
    /// `Done` or `Failed`; `None` if the channel just ended.
    pub end: Option<TtsEvent>,
    /// `(provider, kind)` of every warning, in order.
    pub warnings: Vec<(&'static str, &'static str)>,
    /// Bytes of the apology clip among `audio`.
    pub apology_bytes: usize,
}

impl Spoken {
    /// The failure's kind, `"done"`, or `"none"`.
    pub fn failure_kind(&self) -> &'static str {
        match &self.end {
            Some(TtsEvent::Failed(e)) => e.kind(),
            Some(TtsEvent::Done) => "done",
            _ => "none",
        }
    }
}

/// Default TTS config with a 2 s timeout.
pub(crate) fn tts_config() -> TtsConfig {
    let mut cfg = Config::default().tts;
    cfg.timeout_ms = 2_000;
    cfg
}

/// Read events until the end (panics after 8 s).
pub(crate) async fn collect(events: &mut mpsc::Receiver<TtsEvent>) -> Spoken {
    let mut spoken = Spoken::default();
    let read = async {
        while let Some(event) = events.recv().await {
            match event {
                TtsEvent::Audio(audio) => {
                    spoken.chunks += 1;
                    spoken.audio.extend_from_slice(&audio);
                }
                TtsEvent::Apology(audio) => {
                    spoken.apology_bytes += audio.len();
                    spoken.audio.extend_from_slice(&audio);
                }
                TtsEvent::Warning { provider, error } => {
                    spoken.warnings.push((provider, error.kind()));
                }
                end => {
                    spoken.end = Some(end);
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(8), read)
        .await
        .expect("response did not end within 8 s");
    spoken
}

/// Speak `pieces` (all sent at once, then the end of text) and collect the result.
pub(crate) async fn speak_all(tts: &dyn TextToSpeech, pieces: &[&str]) -> Spoken {
    let (tx, rx) = mpsc::channel(16);
    let mut events = tts.speak(rx, CancellationToken::new());
    for piece in pieces {
        tx.send((*piece).to_owned()).await.unwrap();
    }
    drop(tx);
    collect(&mut events).await
}

/// Largest decoded magnitude of μ-law audio.
pub(crate) fn peak(audio: &[u8]) -> i32 {
    audio
        .iter()
        .map(|&c| i32::from(mulaw::decode(c)).abs())
        .max()
        .unwrap_or(0)
}

/// `actual` within `pct` % of `expected`.
pub(crate) fn assert_near(actual: usize, expected: usize, pct: usize) {
    let slack = expected * pct / 100;
    assert!(
        actual + slack >= expected && actual <= expected + slack,
        "{actual} not within {pct}% of {expected}"
    );
}
