//! ElevenLabs TTS over the WebSocket `stream-input` API (providers.md §2a): one socket per
//! response, text pieces in as they come, 8 kHz μ-law out as soon as ElevenLabs sends it.
//!
//! Each piece is followed by `flush:true` so generation starts at once (our pieces are whole
//! sentences or clauses); closing the text channel sends `{"text":""}` and the response ends at
//! `isFinal`. While the agent is slow to produce text a `{"text":" "}` keep-alive stops the
//! server's inactivity timeout. This module must not buffer a whole reply, must not log the API
//! key or the text, and must not retry: failing over is [`super::fallback`]'s job.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::common::{Stop, describe_error_body, emit_audio, spawn_response, speakable};
use super::{TextToSpeech, TtsEvent};
use crate::config::TtsConfig;
use crate::provider::{ProviderError, Secret, count_error};

/// Provider name (logs, metrics).
pub const NAME: &str = "elevenlabs_ws";
/// How long a cancelled response may take to close its socket politely before it is dropped.
const CANCEL_GRACE: Duration = Duration::from_millis(200);
/// Send `{"text":" "}` after this long without sending anything (server default timeout: 20 s).
const KEEPALIVE: Duration = Duration::from_secs(10);
/// Longest wait for our close frame to go out.
const CLOSE_WAIT: Duration = Duration::from_millis(200);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// ElevenLabs `stream-input` client; cheap to share, one socket per [`TextToSpeech::speak`].
#[derive(Debug, Clone)]
pub struct ElevenLabsWs {
    /// The stream-input URL, or why the configured base URL is unusable.
    url: Result<String, String>,
    api_key: Secret,
    timeout: Duration,
}

impl ElevenLabsWs {
    /// A client for `cfg.elevenlabs_*` (http(s) base URLs become ws(s)); `timeout_ms` bounds
    /// connecting, the first audio after the first text, and silence after the last text.
    pub fn new(cfg: &TtsConfig, api_key: Secret) -> Self {
        Self {
            url: stream_input_url(cfg),
            api_key,
            timeout: Duration::from_millis(cfg.timeout_ms.max(1)),
        }
    }
}

impl TextToSpeech for ElevenLabsWs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn speak(
        &self,
        text: mpsc::Receiver<String>,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<TtsEvent> {
        let this = self.clone();
        let token = cancel.clone();
        spawn_response(NAME, cancel, CANCEL_GRACE, move |tx| async move {
            let url = this.url.clone().map_err(ProviderError::Connect)?;
            let mut socket = tokio::select! {
                () = token.cancelled() => return Err(Stop::Cancelled),
                socket = this.connect(&url) => socket?,
            };
            let result = Utterance::new(this.timeout, tx, token)
                .run(&mut socket, text)
                .await;
            close_quietly(&mut socket).await;
            result
        })
    }
}

/// `{base → ws(s)}/v1/text-to-speech/{voice}/stream-input?model_id=…&output_format=ulaw_8000`
fn stream_input_url(cfg: &TtsConfig) -> Result<String, String> {
    let bad = |what: &str| format!("invalid elevenlabs_base_url ({what})");
    let mut url = reqwest::Url::parse(&cfg.elevenlabs_base_url).map_err(|e| bad(&e.to_string()))?;
    let scheme = match url.scheme() {
        "https" | "wss" => "wss",
        "http" | "ws" => "ws",
        _ => return Err(bad("scheme must be http(s) or ws(s)")),
    };
    url.set_scheme(scheme).map_err(|()| bad("scheme"))?;
    url.path_segments_mut()
        .map_err(|()| bad("not a base URL"))?
        .pop_if_empty()
        .extend([
            "v1",
            "text-to-speech",
            &cfg.elevenlabs_voice_id,
            "stream-input",
        ]);
    url.query_pairs_mut()
        .append_pair("model_id", &cfg.elevenlabs_model)
        .append_pair("output_format", "ulaw_8000");
    Ok(url.into())
}

impl ElevenLabsWs {
    async fn connect(&self, url: &str) -> Result<Socket, ProviderError> {
        let mut request = url
            .into_client_request()
            .map_err(|e| ProviderError::Connect(format!("bad request: {e}")))?;
        let mut key = HeaderValue::from_str(self.api_key.expose())
            .map_err(|_| ProviderError::Connect("API key is not a valid header value".into()))?;
        key.set_sensitive(true);
        request.headers_mut().insert("xi-api-key", key);
        let connect = tokio_tungstenite::connect_async(request);
        match tokio::time::timeout(self.timeout, connect).await {
            Err(_) => Err(ProviderError::Timeout(format!(
                "connect not done within {:?}",
                self.timeout
            ))),
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                Err(ProviderError::from_status(
                    response.status().as_u16(),
                    &describe_error_body(&body),
                ))
            }
            Ok(Err(e)) => Err(ProviderError::Connect(e.to_string())),
        }
    }
}

/// One message from the server: audio, the final marker, or an error. Alignment is ignored.
#[derive(Debug, Deserialize)]
struct ServerMessage {
    audio: Option<String>,
    #[serde(rename = "isFinal")]
    is_final: Option<bool>,
    error: Option<String>,
    message: Option<String>,
    code: Option<u16>,
}

/// What a server message means for the response.
enum Next {
    Continue,
    Final,
}

/// The state of one response (utterance) on its socket.
struct Utterance {
    timeout: Duration,
    tx: mpsc::Sender<TtsEvent>,
    cancel: CancellationToken,
    first_text_at: Option<Instant>,
    ended_at: Option<Instant>,
    audio_seen: bool,
    last_heard: Instant,
    last_sent: Instant,
}

impl Utterance {
    fn new(timeout: Duration, tx: mpsc::Sender<TtsEvent>, cancel: CancellationToken) -> Self {
        let now = Instant::now();
        Self {
            timeout,
            tx,
            cancel,
            first_text_at: None,
            ended_at: None,
            audio_seen: false,
            last_heard: now,
            last_sent: now,
        }
    }

    async fn run(
        &mut self,
        socket: &mut Socket,
        mut text: mpsc::Receiver<String>,
    ) -> Result<(), Stop> {
        let init = serde_json::json!({
            "text": " ",
            "voice_settings": {"stability": 0.5, "similarity_boost": 0.8, "style": 0,
                               "use_speaker_boost": true, "speed": 1.0},
            "generation_config": {"chunk_length_schedule": [120, 160, 250, 290]},
        });
        self.send(socket, init).await?;
        let mut text_open = true;
        loop {
            let deadline = self.deadline();
            let far = Instant::now() + Duration::from_secs(86_400);
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(Stop::Cancelled),
                message = socket.next() => {
                    if let Next::Final = self.on_message(message).await? {
                        return Ok(());
                    }
                }
                piece = text.recv(), if text_open => match piece {
                    Some(piece) if speakable(&piece) => {
                        self.first_text_at.get_or_insert_with(Instant::now);
                        let mut piece = piece;
                        if !piece.ends_with(' ') {
                            piece.push(' ');
                        }
                        self.send(socket, serde_json::json!({"text": piece})).await?;
                        self.send(socket, serde_json::json!({"text": " ", "flush": true})).await?;
                    }
                    Some(_) => {}
                    None => {
                        text_open = false;
                        self.ended_at = Some(Instant::now());
                        self.send(socket, serde_json::json!({"text": ""})).await?;
                    }
                },
                () = sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                    let what = if self.audio_seen { "no audio" } else { "no first audio" };
                    return Err(ProviderError::Timeout(format!("{what} within {:?}", self.timeout)).into());
                }
                () = sleep_until(self.last_sent + KEEPALIVE), if text_open => {
                    self.send(socket, serde_json::json!({"text": " "})).await?;
                }
            }
        }
    }

    /// First audio due `timeout` after the first text; after the end of input, the server must
    /// say something at least every `timeout`.
    fn deadline(&self) -> Option<Instant> {
        match (self.audio_seen, self.first_text_at, self.ended_at) {
            (false, Some(first), _) => Some(first + self.timeout),
            (_, _, Some(ended)) => Some(ended.max(self.last_heard) + self.timeout),
            _ => None,
        }
    }

    async fn send(&mut self, socket: &mut Socket, json: serde_json::Value) -> Result<(), Stop> {
        self.last_sent = Instant::now();
        socket
            .send(Message::text(json.to_string()))
            .await
            .map_err(|e| ProviderError::Disconnected(format!("send: {e}")).into())
    }

    async fn on_message(
        &mut self,
        message: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<Next, Stop> {
        self.last_heard = Instant::now();
        let message = match message {
            None => return Err(disconnected("socket closed before isFinal")),
            Some(Err(e)) => return Err(disconnected(&e.to_string())),
            Some(Ok(message)) => message,
        };
        match message {
            Message::Text(text) => self.on_text(text.as_str()).await,
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                match (code, self.ended_at) {
                    (1000, Some(_)) => Ok(Next::Final),
                    (1000, None) => Err(disconnected("closed (1000) before the end of input")),
                    _ => Err(server_error(&reason, &reason, code).into()),
                }
            }
            _ => Ok(Next::Continue),
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<Next, Stop> {
        let parsed: ServerMessage = match serde_json::from_str(text) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.skip_malformed(&format!("not a server message: {e}"))
                    .await?;
                return Ok(Next::Continue);
            }
        };
        if let Some(error) = parsed.error.as_deref() {
            let message = parsed.message.as_deref().unwrap_or_default();
            return Err(server_error(error, message, parsed.code.unwrap_or(1008)).into());
        }
        if let Some(audio) = parsed.audio.as_deref().filter(|a| !a.is_empty()) {
            match STANDARD.decode(audio) {
                Ok(bytes) => {
                    self.audio_seen = true;
                    emit_audio(&self.tx, Bytes::from(bytes), &self.cancel).await?;
                }
                Err(e) => {
                    self.skip_malformed(&format!("audio is not base64: {e}"))
                        .await?
                }
            }
        }
        Ok(if parsed.is_final == Some(true) {
            Next::Final
        } else {
            Next::Continue
        })
    }
}

impl Utterance {
    /// A message we cannot use costs at most one chunk of audio: count it, log it, report it
    /// downstream, carry on.
    async fn skip_malformed(&mut self, what: &str) -> Result<(), Stop> {
        let error = ProviderError::Malformed(what.to_owned());
        count_error(NAME, &error);
        warn!(provider = NAME, %error, "skipping a server message");
        let warning = TtsEvent::Warning {
            provider: NAME,
            error,
        };
        super::common::emit(&self.tx, warning, &self.cancel).await
    }
}

fn disconnected(what: &str) -> Stop {
    Stop::Failed(ProviderError::Disconnected(what.to_owned()))
}

/// Classify an error message (or close reason) from the server.
fn server_error(error: &str, message: &str, code: u16) -> ProviderError {
    let text: String = if message.is_empty() || message == error {
        format!("{error} (close {code})")
    } else {
        format!("{error}: {message} (close {code})")
    };
    let e = error.to_ascii_lowercase();
    if ["api_key", "auth", "quota", "permission"]
        .iter()
        .any(|k| e.contains(k))
    {
        ProviderError::Unauthorized {
            status: 401,
            message: text,
        }
    } else if ["too_many", "rate", "busy", "concurrent"]
        .iter()
        .any(|k| e.contains(k))
    {
        ProviderError::RateLimited(text)
    } else if e.contains("timeout") {
        ProviderError::Timeout(text)
    } else if matches!(code, 1011..=1014) {
        ProviderError::Server {
            status: code,
            message: text,
        }
    } else {
        ProviderError::Rejected {
            status: code,
            message: text,
        }
    }
}

/// Close with 1000 if the socket is still open; never waits long, never fails.
async fn close_quietly(socket: &mut Socket) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    match tokio::time::timeout(CLOSE_WAIT, socket.close(Some(frame))).await {
        Ok(Ok(())) | Ok(Err(tungstenite::Error::ConnectionClosed)) => {}
        Ok(Err(e)) => debug!(provider = NAME, error = %e, "close"),
        Err(_) => debug!(provider = NAME, "close timed out"),
    }
}

#[cfg(test)]
mod tests;
