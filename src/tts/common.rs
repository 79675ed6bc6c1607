//! Plumbing shared by the TTS providers: the per-response task wrapper (cancellation,
//! failure reporting, the final event), linear PCM → 8 kHz μ-law conversion, and the HTTP
//! streaming helpers of the two HTTP providers.
//!
//! Nothing here knows a provider's wire protocol, and nothing here may log request bodies,
//! headers or keys: error messages are built from status codes and the provider's error JSON.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{EVENT_QUEUE, TtsEvent};
use crate::audio::mulaw;
use crate::audio::resample::{StreamResampler, f32_to_i16, i16_to_f32};
use crate::provider::{ProviderError, count_error};

/// Why a response task stopped early.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The caller cancelled or stopped listening: end quietly.
    Cancelled,
    /// The provider failed: report it.
    Failed(ProviderError),
}

impl From<ProviderError> for Stop {
    fn from(e: ProviderError) -> Self {
        Stop::Failed(e)
    }
}

/// Spawn one response task and return its event channel.
///
/// `run` gets the sender for `Audio` events and returns `Ok` when everything was spoken. The
/// wrapper then sends `Done`, or counts, logs and sends a `Warning` and `Failed`. Cancellation drops `run`
/// (closing its socket or request) `grace` after the token fires; a task that handles
/// cancellation itself (to close a socket politely) returns `Stop::Cancelled` sooner.
pub(crate) fn spawn_response<F, Fut>(
    name: &'static str,
    cancel: CancellationToken,
    grace: Duration,
    run: F,
) -> mpsc::Receiver<TtsEvent>
where
    F: FnOnce(mpsc::Sender<TtsEvent>) -> Fut,
    Fut: Future<Output = Result<(), Stop>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let fut = run(tx.clone());
    tokio::spawn(async move {
        let stopped = async {
            cancel.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        let result = tokio::select! {
            result = fut => result,
            () = stopped => Err(Stop::Cancelled),
        };
        match result {
            Ok(()) => {
                let _ = emit(&tx, TtsEvent::Done, &cancel).await;
            }
            Err(Stop::Cancelled) => debug!(provider = name, "tts response cancelled"),
            Err(Stop::Failed(e)) => {
                count_error(name, &e);
                warn!(provider = name, kind = e.kind(), error = %e, "tts failed");
                let warning = TtsEvent::Warning {
                    provider: name,
                    error: e.clone(),
                };
                if emit(&tx, warning, &cancel).await.is_ok() {
                    let _ = emit(&tx, TtsEvent::Failed(e), &cancel).await;
                }
            }
        }
    });
    rx
}

/// Send one event, giving up when cancelled or when nobody listens any more.
pub(crate) async fn emit(
    tx: &mpsc::Sender<TtsEvent>,
    event: TtsEvent,
    cancel: &CancellationToken,
) -> Result<(), Stop> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(Stop::Cancelled),
        sent = tx.send(event) => sent.map_err(|_| Stop::Cancelled),
    }
}

/// Send audio unless it is empty.
pub(crate) async fn emit_audio(
    tx: &mpsc::Sender<TtsEvent>,
    audio: Bytes,
    cancel: &CancellationToken,
) -> Result<(), Stop> {
    if audio.is_empty() {
        return Ok(());
    }
    emit(tx, TtsEvent::Audio(audio), cancel).await
}

/// Linear PCM at some rate → 8 kHz μ-law, for one response: one resampler (stateful across
/// chunks and text pieces) and the odd byte of a 16-bit sample split across chunks.
pub(crate) struct MulawEncoder {
    resampler: StreamResampler,
    carry: Option<u8>,
    samples: Vec<i16>,
    floats: Vec<f32>,
    resampled: Vec<f32>,
}

impl MulawEncoder {
    pub(crate) fn new(from_hz: u32) -> Result<Self, ProviderError> {
        let resampler = StreamResampler::new(from_hz, 8_000)
            .map_err(|e| ProviderError::Malformed(format!("audio at {from_hz} Hz: {e}")))?;
        Ok(Self {
            resampler,
            carry: None,
            samples: Vec::new(),
            floats: Vec::new(),
            resampled: Vec::new(),
        })
    }

    /// Input rate in Hz.
    pub(crate) fn input_rate(&self) -> u32 {
        self.resampler.from_hz()
    }

    /// Feed raw signed 16-bit little-endian bytes (any split); returns the μ-law ready so far.
    pub(crate) fn push_s16le(&mut self, bytes: &[u8]) -> Result<Bytes, ProviderError> {
        self.samples.clear();
        let mut rest = bytes;
        if let Some(low) = self.carry.take() {
            match rest.split_first() {
                Some((&high, tail)) => {
                    self.samples.push(i16::from_le_bytes([low, high]));
                    rest = tail;
                }
                None => {
                    self.carry = Some(low);
                    return Ok(Bytes::new());
                }
            }
        }
        let pairs = rest.chunks_exact(2);
        self.carry = pairs.remainder().first().copied();
        self.samples
            .extend(pairs.map(|p| i16::from_le_bytes([p[0], p[1]])));
        self.floats.clear();
        i16_to_f32(&self.samples, &mut self.floats);
        self.resample_floats()
    }

    /// Feed samples in [-1, 1]; returns the μ-law ready so far.
    pub(crate) fn push_f32(&mut self, samples: &[f32]) -> Result<Bytes, ProviderError> {
        self.floats.clear();
        self.floats.extend_from_slice(samples);
        self.resample_floats()
    }

    /// Drop a dangling half sample (end of one HTTP body); true if there was one.
    pub(crate) fn drop_odd_byte(&mut self) -> bool {
        self.carry.take().is_some()
    }

    /// End of the response: the resampler's tail.
    pub(crate) fn flush(&mut self) -> Result<Bytes, ProviderError> {
        self.carry = None;
        self.resampled.clear();
        self.resampler
            .flush(&mut self.resampled)
            .map_err(|e| ProviderError::Malformed(format!("resampling: {e}")))?;
        Ok(self.encode_resampled())
    }

    fn resample_floats(&mut self) -> Result<Bytes, ProviderError> {
        self.resampled.clear();
        self.resampler
            .process(&self.floats, &mut self.resampled)
            .map_err(|e| ProviderError::Malformed(format!("resampling: {e}")))?;
        Ok(self.encode_resampled())
    }

    fn encode_resampled(&mut self) -> Bytes {
        self.samples.clear();
        f32_to_i16(&self.resampled, &mut self.samples);
        let mut codes = vec![mulaw::SILENCE; self.samples.len()];
        mulaw::encode_into(&self.samples, &mut codes);
        Bytes::from(codes)
    }
}

/// A short, key-free description of an error body: ElevenLabs `{"detail":{status,message}}`
/// or `{"detail":[{msg}]}`, OpenAI `{"error":{code,message}}`, else the body itself.
pub(crate) fn describe_error_body(body: &str) -> String {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.trim().to_owned();
    };
    let pick = |v: &serde_json::Value, code: &str, msg: &str| {
        let code = v.get(code).and_then(|c| c.as_str()).unwrap_or_default();
        let msg = v.get(msg).and_then(|m| m.as_str()).unwrap_or_default();
        match (code.is_empty(), msg.is_empty()) {
            (true, true) => None,
            (false, true) => Some(code.to_owned()),
            (true, false) => Some(msg.to_owned()),
            (false, false) => Some(format!("{code}: {msg}")),
        }
    };
    let detail = json.get("detail");
    let described = match (detail, json.get("error")) {
        (Some(d @ serde_json::Value::Object(_)), _) => pick(d, "status", "message"),
        (Some(serde_json::Value::Array(items)), _) => {
            items.first().and_then(|item| pick(item, "type", "msg"))
        }
        (_, Some(e)) => pick(e, "code", "message"),
        _ => None,
    };
    described.unwrap_or_else(|| body.trim().to_owned())
}

/// Turn a failed HTTP response into the provider error (reads the error body, briefly).
pub(crate) async fn status_error(response: reqwest::Response, timeout: Duration) -> ProviderError {
    let status = response.status().as_u16();
    let body = tokio::time::timeout(timeout, response.text())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    ProviderError::from_status(status, &describe_error_body(&body))
}

/// Classify a reqwest error (never includes headers; URLs here carry no secrets).
pub(crate) fn request_error(e: &reqwest::Error, during_body: bool) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout(e.to_string())
    } else if during_body || e.is_body() || e.is_decode() {
        ProviderError::Disconnected(format!("response body: {e}"))
    } else {
        ProviderError::Connect(e.to_string())
    }
}

/// A 200 response whose body is an error page or JSON instead of audio.
pub(crate) fn check_audio_content_type(response: &reqwest::Response) -> Result<(), ProviderError> {
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("text/") || content_type.starts_with("application/json") {
        return Err(ProviderError::Malformed(format!(
            "expected audio, got {content_type}"
        )));
    }
    Ok(())
}

/// Send one streaming request; `Ok` only for a 2xx response that looks like audio. Waiting
/// longer than `timeout` for the response head is a `Timeout`.
pub(crate) async fn open_stream(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<reqwest::Response, ProviderError> {
    let response = tokio::time::timeout(timeout, request.send())
        .await
        .map_err(|_| ProviderError::Timeout(format!("no response within {timeout:?}")))?
        .map_err(|e| request_error(&e, false))?;
    if !response.status().is_success() {
        return Err(status_error(response, timeout).await);
    }
    check_audio_content_type(&response)?;
    Ok(response)
}

/// The next body chunk as it arrives (`None` at the end). Waiting longer than `timeout` for
/// it is a `Timeout` (no progress); a body cut short is `Disconnected`.
pub(crate) async fn next_chunk(
    response: &mut reqwest::Response,
    timeout: Duration,
) -> Result<Option<Bytes>, ProviderError> {
    tokio::time::timeout(timeout, response.chunk())
        .await
        .map_err(|_| ProviderError::Timeout(format!("no audio for {timeout:?}")))?
        .map_err(|e| request_error(&e, true))
}

/// The HTTP client of one provider (connection pool shared by all its responses). No overall
/// request timeout: bodies stream for as long as the speech lasts; `timeout` bounds connecting.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(timeout)
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
}

/// Text pieces that would be rejected or are empty are skipped.
pub(crate) fn speakable(piece: &str) -> bool {
    !piece.trim().is_empty()
}

/// Helpers for the providers' tests.
#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_byte_is_carried_across_chunks() {
        let samples: Vec<i16> = (0..2400)
            .map(|i| ((i % 100) * 200 - 10_000) as i16)
            .collect();
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut whole = MulawEncoder::new(24_000).unwrap();
        let mut expected = whole.push_s16le(&bytes).unwrap().to_vec();
        expected.extend_from_slice(&whole.flush().unwrap());
        let mut split = MulawEncoder::new(24_000).unwrap();
        let mut got = Vec::new();
        for chunk in bytes.chunks(333) {
            got.extend_from_slice(&split.push_s16le(chunk).unwrap());
        }
        got.extend_from_slice(&split.flush().unwrap());
        assert_eq!(got.len(), 800);
        assert_eq!(got, expected);
    }

    #[test]
    fn error_bodies_are_described() {
        let el = r#"{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}"#;
        assert_eq!(describe_error_body(el), "invalid_api_key: Invalid API key");
        let el422 =
            r#"{"detail":[{"loc":["body","text"],"msg":"field required","type":"missing"}]}"#;
        assert_eq!(describe_error_body(el422), "missing: field required");
        let oa = r#"{"error":{"message":"Rate limit","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(describe_error_body(oa), "rate_limit_exceeded: Rate limit");
        assert_eq!(describe_error_body(" oops "), "oops");
    }
}
