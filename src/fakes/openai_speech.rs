//! A local fake of OpenAI's speech endpoint (providers.md §4): `POST /v1/audio/speech` with
//! Bearer auth, answering [`synth_speech`] of `input` as raw 24 kHz s16le mono PCM, sent in
//! chunks of an odd byte size ([`CHUNK_BYTES`]) so that clients must carry split samples.
//!
//! Refusals use OpenAI's error JSON (`invalid_api_key` 401, `rate_limit_exceeded` 429, 5xx
//! `server_error`, 400 `invalid_request_error`). Faults and observations work as in the other
//! fakes. Test infrastructure only: loopback, no real synthesis, never logs the key.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::time::Instant;

use super::elevenlabs::{PacedRecord, paced_body};
use super::{FakeServer, Fault, Faults, Observed, synth_speech};

/// Size of each body chunk: odd, so 16-bit samples straddle chunk boundaries.
pub const CHUNK_BYTES: usize = 4801;
/// Output sample rate of `response_format: "pcm"`.
pub const PCM_RATE: u32 = 24_000;
/// Longest accepted `input`.
const MAX_INPUT_CHARS: usize = 4096;

/// What the fake saw in one request (recorded when it ends).
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechRequest {
    /// The body's `model`.
    pub model: String,
    /// The body's `voice`.
    pub voice: String,
    /// The body's `input` (the text).
    pub input: String,
    /// The body's `response_format` (`mp3` when absent).
    pub response_format: String,
    /// 200 or the refusal status.
    pub status: u16,
    /// The fault applied to this request, if any.
    pub fault: Option<Fault>,
    /// Body chunks sent.
    pub chunks_sent: usize,
    /// PCM bytes sent.
    pub bytes_sent: usize,
    /// The whole body was sent.
    pub completed: bool,
    /// The client went away before the end.
    pub cancelled: bool,
}

/// The fake; it serves until dropped.
pub struct FakeOpenAiSpeech {
    /// The running server (127.0.0.1).
    pub server: FakeServer,
    /// Faults for the next requests, one each.
    pub faults: Faults,
    /// One entry per finished request.
    pub requests: Observed<SpeechRequest>,
}

#[derive(Clone)]
struct AppState {
    key: Arc<str>,
    faults: Faults,
    requests: Observed<SpeechRequest>,
}

impl FakeOpenAiSpeech {
    /// Serve on a free 127.0.0.1 port, accepting only `Bearer {api_key}`.
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
            .route("/v1/audio/speech", post(speech))
            .with_state(state.clone());
        Ok(Self {
            server: FakeServer::start(router, port).await?,
            faults: state.faults,
            requests: state.requests,
        })
    }

    /// The base URL to configure (`openai_base_url`), ending in `/v1`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.http_url())
    }

    /// Wait (up to `within`) until `n` requests have finished; returns them all.
    pub async fn wait_for_requests(&self, n: usize, within: Duration) -> Vec<SpeechRequest> {
        let deadline = Instant::now() + within;
        while self.requests.len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.requests.snapshot()
    }
}

/// OpenAI's error JSON for a refusal.
fn error_response(status: u16, message: &str) -> Response {
    let (kind, code) = match status {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        429 => ("requests", Some("rate_limit_exceeded")),
        500..=599 => ("server_error", None),
        _ => ("invalid_request_error", None),
    };
    let body = serde_json::json!({
        "error": {"message": message, "type": kind, "param": null, "code": code}
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

fn default_message(status: u16) -> &'static str {
    match status {
        401 => "Incorrect API key provided.",
        429 => "Rate limit reached for requests. Please try again later.",
        500..=599 => "The server had an error while processing your request.",
        _ => "Invalid request.",
    }
}

#[derive(serde::Deserialize, Default)]
struct Body {
    #[serde(default)]
    model: String,
    #[serde(default)]
    voice: String,
    #[serde(default)]
    input: String,
    #[serde(default)]
    response_format: Option<String>,
}

async fn speech(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed = serde_json::from_slice::<Body>(&body);
    let fields = parsed.as_ref().ok();
    let mut rec = SpeechRequest {
        model: fields.map(|b| b.model.clone()).unwrap_or_default(),
        voice: fields.map(|b| b.voice.clone()).unwrap_or_default(),
        input: fields.map(|b| b.input.clone()).unwrap_or_default(),
        response_format: fields
            .and_then(|b| b.response_format.clone())
            .unwrap_or_else(|| "mp3".to_owned()),
        status: 200,
        fault: None,
        chunks_sent: 0,
        bytes_sent: 0,
        completed: false,
        cancelled: false,
    };
    let bearer = format!("Bearer {}", state.key);
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(bearer.as_str());
    let refusal = if !authorized {
        Some((401, default_message(401).to_owned()))
    } else if let Some(fault) = state.faults.next() {
        rec.fault = Some(fault.clone());
        match fault {
            Fault::Status(status) => Some((status, default_message(status).to_owned())),
            _ => None,
        }
    } else {
        None
    };
    let refusal = refusal.or_else(|| invalid(&parsed, &rec));
    if let Some((status, message)) = refusal {
        rec.status = status;
        state.requests.push(rec);
        return error_response(status, &message);
    }
    if let Some(Fault::Stall(d)) = rec.fault {
        tokio::time::sleep(d).await;
    }
    if rec.fault == Some(Fault::Malformed) {
        rec.completed = true;
        state.requests.push(rec);
        let page = "<html><body>502 Bad Gateway</body></html>";
        return ([(header::CONTENT_TYPE, "text/html")], page).into_response();
    }
    let pcm: Vec<u8> = synth_speech(&rec.input, PCM_RATE)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let chunks = pcm.chunks(CHUNK_BYTES).map(<[u8]>::to_vec).collect();
    let body = paced_body(chunks, rec, move |rec| state.requests.push(rec));
    ([(header::CONTENT_TYPE, "audio/pcm")], body).into_response()
}

/// A 400 for a body the real API would reject.
fn invalid(parsed: &Result<Body, serde_json::Error>, rec: &SpeechRequest) -> Option<(u16, String)> {
    if let Err(e) = parsed {
        return Some((
            400,
            format!("We could not parse the JSON body of your request: {e}"),
        ));
    }
    if rec.model.is_empty() || rec.voice.is_empty() {
        return Some((400, "`model` and `voice` are required.".to_owned()));
    }
    if rec.input.trim().is_empty() || rec.input.chars().count() > MAX_INPUT_CHARS {
        return Some((400, "`input` must be 1 to 4096 characters.".to_owned()));
    }
    if rec.response_format != "pcm" {
        return Some((
            400,
            "This fake only produces response_format \"pcm\".".to_owned(),
        ));
    }
    None
}

impl PacedRecord for SpeechRequest {
    fn disconnect_after(&self) -> Option<usize> {
        match self.fault {
            Some(Fault::DisconnectAfter(n)) => Some(n),
            _ => None,
        }
    }

    fn progress(&mut self, sent: Option<usize>) {
        match sent {
            Some(len) => {
                self.chunks_sent += 1;
                self.bytes_sent += len;
            }
            None => self.cancelled = true,
        }
    }

    fn finish(&mut self, consumed: bool) {
        self.completed = consumed;
        self.cancelled = !consumed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(
        fake: &FakeOpenAiSpeech,
        key: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/audio/speech", fake.base_url()))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    fn body(input: &str) -> serde_json::Value {
        serde_json::json!({"model": "tts-1", "voice": "alloy", "input": input, "response_format": "pcm"})
    }

    #[tokio::test]
    async fn streams_odd_sized_pcm_chunks() {
        let fake = FakeOpenAiSpeech::start("k").await.unwrap();
        let mut response = post(&fake, "k", body("hello there")).await;
        assert_eq!(response.status(), 200);
        let mut total = 0;
        let mut sizes = Vec::new();
        while let Some(chunk) = response.chunk().await.unwrap() {
            total += chunk.len();
            sizes.push(chunk.len());
        }
        assert_eq!(total, synth_speech("hello there", PCM_RATE).len() * 2);
        assert!(sizes.iter().any(|s| s % 2 == 1), "{sizes:?}");
        let recs = fake.wait_for_requests(1, Duration::from_secs(2)).await;
        assert!(recs[0].completed && !recs[0].cancelled);
        assert_eq!(recs[0].input, "hello there");
    }

    #[tokio::test]
    async fn refusals_use_openai_error_json() {
        let fake = FakeOpenAiSpeech::start("k").await.unwrap();
        let response = post(&fake, "wrong", body("hi")).await;
        assert_eq!(response.status(), 401);
        let json: serde_json::Value = response.json().await.unwrap();
        assert_eq!(json["error"]["code"], "invalid_api_key");
        assert_eq!(json["error"]["type"], "invalid_request_error");
        fake.faults.push(Fault::Status(429));
        let response = post(&fake, "k", body("hi")).await;
        assert_eq!(response.status(), 429);
        let json: serde_json::Value = response.json().await.unwrap();
        assert_eq!(json["error"]["code"], "rate_limit_exceeded");
        let mut mp3 = body("hi");
        mp3["response_format"] = "mp3".into();
        assert_eq!(post(&fake, "k", mp3).await.status(), 400);
    }
}
