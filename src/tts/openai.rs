//! OpenAI TTS (providers.md §4): one `POST {openai_base_url}/audio/speech` per text piece with
//! `response_format: "pcm"`; the body is raw 24 kHz s16le mono in arbitrary chunks, converted
//! as it streams in to 8 kHz μ-law (one resampler per response, stateful across chunks and
//! pieces, flushed at the end; a sample split across chunks is carried over).
//!
//! Works with OpenAI-compatible servers under the same path. This module must not buffer a
//! whole body, must not log the API key or the text, and must not retry: failing over is
//! [`super::fallback`]'s job.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::common::{
    MulawEncoder, Stop, emit_audio, http_client, next_chunk, open_stream, spawn_response, speakable,
};
use super::{TextToSpeech, TtsEvent};
use crate::config::TtsConfig;
use crate::provider::{ProviderError, Secret};

/// Provider name (logs, metrics).
pub const NAME: &str = "openai";
/// Sample rate of `response_format: "pcm"`.
pub const PCM_RATE: u32 = 24_000;
/// Longest `input` the API accepts; longer pieces are split at word boundaries.
const MAX_INPUT_CHARS: usize = 4096;

/// OpenAI speech client; cheap to share (one connection pool).
#[derive(Debug, Clone)]
pub struct OpenAiTts {
    client: Result<reqwest::Client, String>,
    url: String,
    model: String,
    voice: String,
    api_key: Secret,
    timeout: Duration,
}

impl OpenAiTts {
    /// A client for `cfg.openai_*`; `timeout_ms` bounds connecting, each response head and
    /// each wait for the next chunk.
    pub fn new(cfg: &TtsConfig, api_key: Secret) -> Self {
        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        Self {
            client: http_client(timeout),
            url: format!("{}/audio/speech", cfg.openai_base_url.trim_end_matches('/')),
            model: cfg.openai_model.clone(),
            voice: cfg.openai_voice.clone(),
            api_key,
            timeout,
        }
    }

    /// One request: POST `input`, convert and pass the body on as it streams in.
    async fn speak_input(
        &self,
        client: &reqwest::Client,
        input: &str,
        encoder: &mut MulawEncoder,
        tx: &mpsc::Sender<TtsEvent>,
        cancel: &CancellationToken,
    ) -> Result<(), Stop> {
        let request = client
            .post(&self.url)
            .bearer_auth(self.api_key.expose())
            .json(&serde_json::json!({
                "model": self.model,
                "voice": self.voice,
                "input": input,
                "response_format": "pcm",
            }));
        let mut response = open_stream(request, self.timeout).await?;
        while let Some(chunk) = next_chunk(&mut response, self.timeout).await? {
            let audio = encoder.push_s16le(&chunk)?;
            emit_audio(tx, audio, cancel).await?;
        }
        if encoder.drop_odd_byte() {
            debug!(provider = NAME, "body ended with half a sample; dropped");
        }
        Ok(())
    }
}

impl TextToSpeech for OpenAiTts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn speak(
        &self,
        mut text: mpsc::Receiver<String>,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<TtsEvent> {
        let this = self.clone();
        let token = cancel.clone();
        spawn_response(NAME, cancel, Duration::ZERO, move |tx| async move {
            let client = this.client.clone().map_err(ProviderError::Connect)?;
            let mut encoder = MulawEncoder::new(PCM_RATE)?;
            while let Some(piece) = text.recv().await {
                if !speakable(&piece) {
                    continue;
                }
                for input in split_input(&piece, MAX_INPUT_CHARS) {
                    this.speak_input(&client, input, &mut encoder, &tx, &token)
                        .await?;
                }
            }
            let tail = encoder.flush()?;
            emit_audio(&tx, tail, &token).await
        })
    }
}

/// Split `text` into pieces of at most `max` characters, at whitespace where possible.
fn split_input(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while rest.chars().count() > max {
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let cut = rest[..limit]
            .rfind(char::is_whitespace)
            .filter(|&i| i > 0)
            .unwrap_or(limit);
        parts.push(rest[..cut].trim_end());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts
}

#[cfg(test)]
mod tests;
