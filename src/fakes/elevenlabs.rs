//! A local fake of ElevenLabs TTS (providers.md §2a and §2c): the WebSocket `stream-input`
//! endpoint and the HTTP `stream` endpoint, speaking [`synth_speech`] in the requested
//! `output_format` (`ulaw_8000`, or `pcm_16000/22050/24000/44100` s16le).
//!
//! WebSocket: `xi-api-key` is checked before the upgrade (401 with ElevenLabs' error JSON); the
//! first message must be the `{"text":" "}` init (else an error message and close 1008); text is
//! buffered until the chunk schedule, `flush`, `try_trigger_generation` or the final `""`; audio
//! goes out as ~100 ms `{"audio":…}` messages paced [`PACE`] apart; `""` → remaining audio,
//! `{"isFinal":true}`, close 1000; `inactivity_timeout` (s, default 20) without input → the
//! `input_timeout_exceeded` error and close 1008. HTTP: raw audio in ~100 ms chunks, paced.
//!
//! Test infrastructure only: loopback, no real synthesis, no persistence, and it must never
//! log the key it was given.

mod http;
mod ws;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::time::Instant;

use super::{FakeServer, Fault, Faults, Observed, synth_speech};
use crate::audio::mulaw;

pub(crate) use http::{PacedRecord, paced_body};

/// Delay between two audio messages or chunks, so that streaming and cancellation show.
pub const PACE: Duration = Duration::from_millis(10);
/// ElevenLabs' default chunk schedule (characters buffered before generating).
const DEFAULT_SCHEDULE: [usize; 4] = [120, 160, 250, 290];

/// Which endpoint a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `GET …/stream-input` upgraded to a WebSocket.
    WebSocket,
    /// `POST …/stream`.
    Http,
}

/// What the fake saw on one connection or request (recorded when it ends).
#[derive(Debug, Clone, PartialEq)]
pub struct ElevenLabsRequest {
    /// Which endpoint.
    pub transport: Transport,
    /// The `{voice_id}` path segment.
    pub voice_id: String,
    /// `model_id` from the query (WebSocket) or the JSON body (HTTP).
    pub model_id: String,
    /// `output_format` from the query (`mp3_44100` when absent).
    pub output_format: String,
    /// 101 (upgraded), 200, or the refusal status.
    pub status: u16,
    /// The fault applied to this connection/request, if any.
    pub fault: Option<Fault>,
    /// The WebSocket init message, once accepted.
    pub init: Option<serde_json::Value>,
    /// Every non-blank text received, as sent (HTTP: the body's `text`).
    pub texts: Vec<String>,
    /// `flush:true` messages received.
    pub flushes: usize,
    /// The WebSocket end-of-input `{"text":""}` arrived.
    pub ended: bool,
    /// Audio messages (WebSocket) or body chunks (HTTP) sent.
    pub audio_messages: usize,
    /// Raw audio bytes sent (before base64).
    pub audio_bytes: usize,
    /// Every message sent on the socket, audio included.
    pub messages_sent: usize,
    /// `isFinal` sent and closed 1000 / whole body sent.
    pub completed: bool,
    /// The client went away before the end.
    pub cancelled: bool,
    /// The `error` of an error message the fake sent.
    pub error: Option<String>,
}

/// The fake; it serves until dropped.
pub struct FakeElevenLabs {
    /// The running server (127.0.0.1).
    pub server: FakeServer,
    /// Faults for the next connections/requests, one each.
    pub faults: Faults,
    /// One entry per finished connection/request.
    pub requests: Observed<ElevenLabsRequest>,
}

#[derive(Clone)]
struct AppState {
    key: Arc<str>,
    faults: Faults,
    requests: Observed<ElevenLabsRequest>,
}

impl FakeElevenLabs {
    /// Serve on a free 127.0.0.1 port, accepting only `api_key`.
    pub async fn start(api_key: impl Into<String>) -> std::io::Result<Self> {
        Self::start_on(api_key, 0).await
    }

    /// Serve on 127.0.0.1:`port` (0: any free port).
    pub async fn start_on(api_key: impl Into<String>, port: u16) -> std::io::Result<Self> {
        let state = AppState {
            key: Arc::from(api_key.into()),
            faults: Faults::default(),
            requests: Observed::default(),
        };
        let router = Router::new()
            .route(
                "/v1/text-to-speech/{voice_id}/stream-input",
                get(ws::stream_input),
            )
            .route(
                "/v1/text-to-speech/{voice_id}/stream",
                post(http::stream_http),
            )
            .with_state(state.clone());
        Ok(Self {
            server: FakeServer::start(router, port).await?,
            faults: state.faults,
            requests: state.requests,
        })
    }

    /// The base URL to configure (`elevenlabs_base_url`).
    pub fn base_url(&self) -> String {
        self.server.http_url()
    }

    /// Wait (up to `within`) until `n` connections/requests have finished; returns them all.
    pub async fn wait_for_requests(&self, n: usize, within: Duration) -> Vec<ElevenLabsRequest> {
        let deadline = Instant::now() + within;
        while self.requests.len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.requests.snapshot()
    }
}

/// An `output_format` the fake can produce.
#[derive(Debug, Clone, Copy)]
enum Format {
    Ulaw8000,
    Pcm(u32),
}

impl Format {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "ulaw_8000" => Some(Format::Ulaw8000),
            "pcm_16000" => Some(Format::Pcm(16_000)),
            "pcm_22050" => Some(Format::Pcm(22_050)),
            "pcm_24000" => Some(Format::Pcm(24_000)),
            "pcm_44100" => Some(Format::Pcm(44_100)),
            _ => None,
        }
    }

    /// `text` spoken in this format, cut into ~100 ms chunks.
    fn speak(self, text: &str) -> Vec<Vec<u8>> {
        let (rate, bytes) = match self {
            Format::Ulaw8000 => {
                let samples = synth_speech(text, 8_000);
                let mut codes = vec![mulaw::SILENCE; samples.len()];
                mulaw::encode_into(&samples, &mut codes);
                (8_000, codes)
            }
            Format::Pcm(rate) => {
                let samples = synth_speech(text, rate);
                (rate, samples.iter().flat_map(|s| s.to_le_bytes()).collect())
            }
        };
        let per_sample = if matches!(self, Format::Ulaw8000) {
            1
        } else {
            2
        };
        let chunk = (rate as usize / 10) * per_sample;
        bytes.chunks(chunk.max(2)).map(<[u8]>::to_vec).collect()
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Ulaw8000 => "audio/basic",
            Format::Pcm(_) => "audio/pcm",
        }
    }
}

/// ElevenLabs' error JSON for a refusal status.
fn error_response(status: u16) -> Response {
    let (kind, message) = match status {
        401 => ("invalid_api_key", "Invalid API key"),
        429 => (
            "too_many_concurrent_requests",
            "Too many concurrent requests for your subscription.",
        ),
        503 => ("system_busy", "The system is experiencing heavy traffic."),
        500..=599 => ("internal_server_error", "An internal error occurred."),
        _ => ("invalid_request", "The request was rejected."),
    };
    let body = if status == 422 {
        serde_json::json!({"detail": [{"loc": ["body", "text"], "msg": message, "type": "value_error"}]})
    } else {
        serde_json::json!({"detail": {"status": kind, "message": message}})
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(body)).into_response()
}

fn authorized(headers: &HeaderMap, key: &str) -> bool {
    headers.get("xi-api-key").and_then(|v| v.to_str().ok()) == Some(key)
}

fn new_record(
    transport: Transport,
    voice_id: String,
    query: &HashMap<String, String>,
) -> ElevenLabsRequest {
    ElevenLabsRequest {
        transport,
        voice_id,
        model_id: query.get("model_id").cloned().unwrap_or_default(),
        output_format: query
            .get("output_format")
            .cloned()
            .unwrap_or_else(|| "mp3_44100".to_owned()),
        status: 0,
        fault: None,
        init: None,
        texts: Vec::new(),
        flushes: 0,
        ended: false,
        audio_messages: 0,
        audio_bytes: 0,
        messages_sent: 0,
        completed: false,
        cancelled: false,
        error: None,
    }
}

/// Checks shared by both endpoints: key, queued fault, format. `Err(status)` = refuse now
/// (the refusal is already recorded; answer with [`error_response`]).
fn admit(
    state: &AppState,
    headers: &HeaderMap,
    rec: &mut ElevenLabsRequest,
) -> Result<Format, u16> {
    let status = if !authorized(headers, &state.key) {
        401
    } else {
        rec.fault = state.faults.next();
        match (rec.fault.clone(), Format::parse(&rec.output_format)) {
            (Some(Fault::Status(status)), _) => status,
            (_, Some(format)) => return Ok(format),
            (_, None) => 422,
        }
    };
    rec.status = status;
    state.requests.push(rec.clone());
    Err(status)
}

#[cfg(test)]
mod tests;
