//! A fake Deepgram live-transcription server (`GET /v1/listen` WebSocket), faithful to
//! shared/reference/providers.md §1 and its fake-server checklist, so the real
//! [`crate::stt::deepgram::Deepgram`] client runs against it unchanged.
//!
//! It checks `Authorization: Token <key>` and the audio format before upgrading, turns the
//! received μ-law into `SpeechStarted` / interim and final `Results` / `UtteranceEnd` with an
//! energy VAD in audio time ([`recognizer`]), answers `CloseStream` with the last final,
//! `Metadata` and close 1000, and closes 1011 `NET-0001` after an idle period. Transcripts
//! come from a queue the test fills, then from a cycle each connection walks on its own
//! ([`Transcripts`]). It must not bind anything but 127.0.0.1 (see
//! [`FakeServer`]) and must not depend on wall-clock timing for results.

pub mod recognizer;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use super::{FakeServer, Fault, Faults, Observed};
use recognizer::Recognizer;
pub use recognizer::{Settings, Transcripts};

/// Real Deepgram closes an idle stream (no audio, no KeepAlive) after about this long.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Refused before the upgrade with this HTTP status.
    Refused(u16),
    /// The fake sent a close frame with this code.
    Closed(u16),
    /// The fake dropped the TCP connection without a close frame (`Fault::DisconnectAfter`).
    Dropped,
    /// The client closed or vanished first.
    ClientGone,
}

/// What the fake saw on one connection attempt; recorded when it ends, before the fake's own
/// close frame is sent, so a client that saw the close can assert on it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeepgramConnection {
    /// The query parameters as received.
    pub query: HashMap<String, String>,
    /// The endpointing, utterance-end, interim and VAD settings read from the query.
    pub settings: Settings,
    pub audio_bytes: usize,
    pub audio_frames: usize,
    /// Zero-length binary frames (a client bug: real Deepgram closes the stream).
    pub empty_frames: usize,
    pub keepalives: usize,
    pub close_stream: bool,
    /// Final transcripts produced, in order.
    pub finals: Vec<String>,
    pub ended: Ended,
}

/// The running fake. Drop it to stop the server.
pub struct FakeDeepgram {
    pub server: FakeServer,
    /// Misbehaviour, one consumed per connection attempt.
    pub faults: Faults,
    /// The queue of transcripts to return.
    pub transcripts: Transcripts,
    /// One record per connection attempt, pushed when it ends.
    pub observed: Observed<DeepgramConnection>,
    idle_ms: Arc<AtomicU64>,
}

#[derive(Clone)]
struct Shared {
    api_key: Arc<str>,
    faults: Faults,
    transcripts: Transcripts,
    observed: Observed<DeepgramConnection>,
    idle_ms: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

impl FakeDeepgram {
    /// Serve on a free 127.0.0.1 port, accepting `Authorization: Token <api_key>`.
    pub async fn start(api_key: &str) -> std::io::Result<FakeDeepgram> {
        let shared = Shared {
            api_key: api_key.into(),
            faults: Faults::default(),
            transcripts: Transcripts::default(),
            observed: Observed::default(),
            idle_ms: Arc::new(AtomicU64::new(DEFAULT_IDLE_TIMEOUT.as_millis() as u64)),
            requests: Arc::new(AtomicU64::new(0)),
        };
        let router = Router::new()
            .route("/v1/listen", get(listen))
            .with_state(shared.clone());
        Ok(FakeDeepgram {
            server: FakeServer::start(router, 0).await?,
            faults: shared.faults,
            transcripts: shared.transcripts,
            observed: shared.observed,
            idle_ms: shared.idle_ms,
        })
    }

    /// `ws://127.0.0.1:PORT/v1/listen`, for `stt.base_url`.
    pub fn url(&self) -> String {
        format!("{}/v1/listen", self.server.ws_url())
    }

    /// Close streams idle this long with 1011 `NET-0001` (default 10 s; new connections).
    pub fn set_idle_timeout(&self, idle: Duration) {
        self.idle_ms
            .store(idle.as_millis() as u64, Ordering::Relaxed);
    }

    /// Audio bytes received over all connections so far.
    pub fn audio_bytes(&self) -> usize {
        self.observed.snapshot().iter().map(|c| c.audio_bytes).sum()
    }
}

/// A Deepgram-style refusal: status, `dg-error` / `dg-request-id` headers, error JSON.
fn refuse(shared: &Shared, mut conn: DeepgramConnection, status: u16, why: &str) -> Response {
    let (code, msg) = match status {
        401 => ("INVALID_AUTH", "Invalid credentials."),
        400 => ("Bad Request", why),
        429 => (
            "TOO_MANY_REQUESTS",
            "Too many requests. Please try again later.",
        ),
        _ => ("INTERNAL_SERVER_ERROR", "The fake was told to fail."),
    };
    conn.ended = Ended::Refused(status);
    shared.observed.push(conn);
    let id = request_id(shared);
    let body = serde_json::json!({"err_code": code, "err_msg": msg, "request_id": id});
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = [("dg-error", msg.to_string()), ("dg-request-id", id)];
    (status, headers, body.to_string()).into_response()
}

fn request_id(shared: &Shared) -> String {
    let n = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    format!("00000000-0000-4000-8000-{n:012x}")
}

async fn listen(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let fault = shared.faults.next();
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "true");
    let ms = |k: &str| query.get(k).and_then(|v| v.parse::<u64>().ok());
    let settings = Settings {
        // Deepgram's default endpointing is 10 ms; `endpointing=false` turns it off.
        endpointing_ms: match query.get("endpointing").map(String::as_str) {
            Some("false") => None,
            Some(_) => ms("endpointing"),
            None => Some(10),
        },
        utterance_end_ms: ms("utterance_end_ms"),
        interim_results: flag("interim_results"),
        vad_events: flag("vad_events"),
    };
    let conn = DeepgramConnection {
        query: query.clone(),
        settings: settings.clone(),
        audio_bytes: 0,
        audio_frames: 0,
        empty_frames: 0,
        keepalives: 0,
        close_stream: false,
        finals: Vec::new(),
        ended: Ended::ClientGone,
    };
    if let Some(Fault::Status(code)) = fault {
        return refuse(&shared, conn, code, "fault");
    }
    let expected = format!("Token {}", shared.api_key);
    if headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return refuse(&shared, conn, 401, "");
    }
    let param = |k: &str| query.get(k).map(String::as_str);
    if param("encoding") != Some("mulaw") || param("sample_rate") != Some("8000") {
        return refuse(
            &shared,
            conn,
            400,
            "encoding=mulaw and sample_rate=8000 required",
        );
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let id = request_id(&shared);
    ws.on_upgrade(move |socket| serve(socket, shared, conn, Recognizer::new(settings, id), fault))
}

/// One upgraded stream, until it closes, drops or the client goes.
async fn serve(
    mut ws: WebSocket,
    shared: Shared,
    mut conn: DeepgramConnection,
    mut recognizer: Recognizer,
    fault: Option<Fault>,
) {
    let mut drop_after = None;
    let mut error_after = None;
    match fault {
        Some(Fault::Malformed) => {
            let _ = ws
                .send(Message::text(r#"{"type":"Results","channel":{"#))
                .await;
        }
        Some(Fault::Stall(d)) => sleep(d).await,
        Some(Fault::DisconnectAfter(n)) => drop_after = Some(n),
        Some(Fault::ErrorAfter(n)) => error_after = Some(n),
        _ => {}
    }
    let idle = Duration::from_millis(shared.idle_ms.load(Ordering::Relaxed));
    let mut deadline = Instant::now() + idle;
    let mut out = Vec::new();
    let close: Option<(u16, &str)> = loop {
        let msg = tokio::select! {
            msg = ws.recv() => msg,
            _ = sleep_until(deadline) => break Some((1011, "NET-0001")),
        };
        let mut finish = false;
        match msg {
            Some(Ok(Message::Binary(audio))) if audio.is_empty() => {
                // Real Deepgram treats an empty binary frame as the end of the stream.
                conn.empty_frames += 1;
                finish = true;
            }
            Some(Ok(Message::Binary(audio))) => {
                conn.audio_bytes += audio.len();
                conn.audio_frames += 1;
                deadline = Instant::now() + idle;
                recognizer.push(&audio, &shared.transcripts, &mut out);
                if drop_after.is_some_and(|n| conn.audio_frames >= n) {
                    conn.ended = Ended::Dropped;
                    break None;
                }
                if error_after.is_some_and(|n| conn.audio_frames >= n) {
                    // What Deepgram does when its side fails: results so far, then 1011.
                    let _ = send_all(&mut ws, &mut out).await;
                    break Some((1011, "NET-0000"));
                }
            }
            Some(Ok(Message::Text(text))) => {
                let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                match value["type"].as_str() {
                    Some("KeepAlive") => {
                        conn.keepalives += 1;
                        deadline = Instant::now() + idle;
                    }
                    Some("CloseStream") => {
                        conn.close_stream = true;
                        finish = true;
                    }
                    Some("Finalize") => recognizer.flush(&shared.transcripts, &mut out),
                    _ => {}
                }
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break None,
            Some(Ok(_)) => {}
        }
        if finish {
            recognizer.flush(&shared.transcripts, &mut out);
            out.push(recognizer.metadata());
        }
        if !send_all(&mut ws, &mut out).await {
            break None;
        }
        if finish {
            break Some((1000, ""));
        }
    };
    if let Some((code, _)) = close {
        conn.ended = Ended::Closed(code);
    }
    conn.finals = std::mem::take(&mut recognizer.finals);
    shared.observed.push(conn);
    let Some((code, reason)) = close else {
        return; // dropping `ws` drops the TCP connection without a close frame
    };
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if ws.send(Message::Close(Some(frame))).await.is_ok() {
        // Let the client answer the close handshake, briefly.
        let _ = timeout(Duration::from_secs(1), async {
            while let Some(Ok(_)) = ws.recv().await {}
        })
        .await;
    }
}

/// Send queued messages; false when the client is gone.
async fn send_all(ws: &mut WebSocket, out: &mut Vec<String>) -> bool {
    for msg in out.drain(..) {
        if ws.send(Message::text(msg)).await.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::{self, http::HeaderValue};

    type Ws = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    async fn dial(fake: &FakeDeepgram, key: &str, query: &str) -> Result<Ws, tungstenite::Error> {
        let mut req = format!("{}?{query}", fake.url()).into_client_request()?;
        let auth =
            HeaderValue::from_str(&format!("Token {key}")).map_err(tungstenite::Error::from)?;
        req.headers_mut().insert(AUTHORIZATION, auth);
        tokio_tungstenite::connect_async(req)
            .await
            .map(|(ws, _)| ws)
    }

    #[tokio::test]
    async fn refuses_bad_auth_and_bad_format_before_upgrading() {
        let fake = FakeDeepgram::start("right").await.unwrap();
        let Err(tungstenite::Error::Http(resp)) =
            dial(&fake, "wrong", "encoding=mulaw&sample_rate=8000").await
        else {
            panic!("expected 401");
        };
        assert_eq!(resp.status().as_u16(), 401);
        assert_eq!(resp.headers()["dg-error"], "Invalid credentials.");
        let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
        assert!(body.contains("INVALID_AUTH"), "{body}");
        let Err(tungstenite::Error::Http(resp)) =
            dial(&fake, "right", "encoding=linear16&sample_rate=8000").await
        else {
            panic!("expected 400");
        };
        assert_eq!(resp.status().as_u16(), 400);
        let ended: Vec<Ended> = fake
            .observed
            .snapshot()
            .into_iter()
            .map(|c| c.ended)
            .collect();
        assert_eq!(ended, [Ended::Refused(401), Ended::Refused(400)]);
    }

    #[tokio::test]
    async fn idle_stream_closes_1011_net_0001() {
        let fake = FakeDeepgram::start("k").await.unwrap();
        fake.set_idle_timeout(Duration::from_millis(300));
        let mut ws = dial(&fake, "k", "encoding=mulaw&sample_rate=8000")
            .await
            .unwrap();
        ws.send(tungstenite::Message::Binary(vec![0xFF; 160].into()))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let close = loop {
            match timeout(Duration::from_secs(3), ws.next()).await.unwrap() {
                Some(Ok(tungstenite::Message::Close(frame))) => break frame.unwrap(),
                Some(Ok(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(u16::from(close.code), 1011);
        assert_eq!(close.reason.as_str(), "NET-0001");
        assert!(started.elapsed() >= Duration::from_millis(250));
        let conns = fake.observed.snapshot();
        assert_eq!(conns[0].ended, Ended::Closed(1011));
        assert_eq!(conns[0].audio_bytes, 160);
    }
}
