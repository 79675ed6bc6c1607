//! ElevenLabs TTS over HTTP streaming (providers.md §2c): one `POST …/stream` per text piece,
//! in order, asking for `ulaw_8000` so the chunked body is already Twilio's audio format and
//! goes out chunk by chunk as it arrives.
//!
//! Simpler than the WebSocket provider (no per-response socket, each sentence is independent)
//! at the cost of one request per piece. This module must not buffer a whole body, must not
//! log the API key or the text, and must not retry: failing over is [`super::fallback`]'s job.

use std::time::Duration;

use reqwest::header::HeaderValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::common::{
    Stop, emit_audio, http_client, next_chunk, open_stream, spawn_response, speakable,
};
use super::{TextToSpeech, TtsEvent};
use crate::config::TtsConfig;
use crate::provider::{ProviderError, Secret};

/// Provider name (logs, metrics).
pub const NAME: &str = "elevenlabs_http";

/// ElevenLabs HTTP streaming client; cheap to share (one connection pool).
#[derive(Debug, Clone)]
pub struct ElevenLabsHttp {
    client: Result<reqwest::Client, String>,
    /// The stream URL, or why the configured base URL is unusable.
    url: Result<reqwest::Url, String>,
    model: String,
    api_key: Secret,
    timeout: Duration,
}

impl ElevenLabsHttp {
    /// A client for `cfg.elevenlabs_*`; `timeout_ms` bounds connecting, each response head and
    /// each wait for the next chunk.
    pub fn new(cfg: &TtsConfig, api_key: Secret) -> Self {
        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        Self {
            client: http_client(timeout),
            url: stream_url(cfg),
            model: cfg.elevenlabs_model.clone(),
            api_key,
            timeout,
        }
    }

    /// One piece: POST it and pass the body on as it streams in.
    async fn speak_piece(
        &self,
        client: &reqwest::Client,
        url: &reqwest::Url,
        piece: &str,
        tx: &mpsc::Sender<TtsEvent>,
        cancel: &CancellationToken,
    ) -> Result<(), Stop> {
        let mut key = HeaderValue::from_str(self.api_key.expose())
            .map_err(|_| ProviderError::Connect("API key is not a valid header value".into()))?;
        key.set_sensitive(true);
        let request = client
            .post(url.clone())
            .header("xi-api-key", key)
            .json(&serde_json::json!({"text": piece, "model_id": self.model}));
        let mut response = open_stream(request, self.timeout).await?;
        while let Some(chunk) = next_chunk(&mut response, self.timeout).await? {
            emit_audio(tx, chunk, cancel).await?;
        }
        Ok(())
    }
}

impl TextToSpeech for ElevenLabsHttp {
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
            let url = this.url.clone().map_err(ProviderError::Connect)?;
            while let Some(piece) = text.recv().await {
                if speakable(&piece) {
                    this.speak_piece(&client, &url, &piece, &tx, &token).await?;
                }
            }
            Ok(())
        })
    }
}

/// `{base}/v1/text-to-speech/{voice}/stream?output_format=ulaw_8000`
fn stream_url(cfg: &TtsConfig) -> Result<reqwest::Url, String> {
    let bad = |what: &str| format!("invalid elevenlabs_base_url ({what})");
    let mut url = reqwest::Url::parse(&cfg.elevenlabs_base_url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("scheme must be http or https"));
    }
    url.path_segments_mut()
        .map_err(|()| bad("not a base URL"))?
        .pop_if_empty()
        .extend(["v1", "text-to-speech", &cfg.elevenlabs_voice_id, "stream"]);
    url.query_pairs_mut()
        .append_pair("output_format", "ulaw_8000");
    Ok(url)
}

#[cfg(test)]
mod tests;
