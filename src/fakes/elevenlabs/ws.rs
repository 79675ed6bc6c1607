//! The fake's WebSocket `stream-input` endpoint: init check, chunk-schedule buffering,
//! paced audio messages, `isFinal` and close 1000, inactivity error and close 1008, and the
//! faults (stall, drop after n audio messages, error message and close 1011 after n, one
//! malformed message).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::time::{Instant, sleep_until};

use super::{
    AppState, DEFAULT_SCHEDULE, ElevenLabsRequest, Format, PACE, Transport, admit, error_response,
    new_record,
};
use crate::fakes::Fault;

/// `GET /v1/text-to-speech/{voice_id}/stream-input`: check, then upgrade to a [`Session`].
pub(super) async fn stream_input(
    State(state): State<AppState>,
    Path(voice_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let mut rec = new_record(Transport::WebSocket, voice_id, &query);
    let format = match admit(&state, &headers, &mut rec) {
        Ok(format) => format,
        Err(status) => return error_response(status),
    };
    let inactivity = query
        .get("inactivity_timeout")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(20)
        .clamp(1, 180);
    rec.status = 101;
    ws.read_buffer_size(crate::provider::WS_READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            let session = Session {
                rec,
                format,
                inactivity: Duration::from_secs(inactivity),
                schedule: DEFAULT_SCHEDULE.to_vec(),
                next_schedule: 0,
                buffer: String::new(),
                pending: VecDeque::new(),
            };
            let rec = session.run(socket).await;
            state.requests.push(rec);
        })
}

/// One WebSocket stream-input connection.
struct Session {
    rec: ElevenLabsRequest,
    format: Format,
    inactivity: Duration,
    schedule: Vec<usize>,
    next_schedule: usize,
    buffer: String,
    pending: VecDeque<Vec<u8>>,
}

/// What a client message asks the session to do next.
enum Step {
    Continue,
    /// Send this error message and close 1008.
    Refuse(&'static str, String),
}

impl Session {
    async fn run(mut self, mut socket: WebSocket) -> ElevenLabsRequest {
        if let Some(Fault::Stall(d)) = self.rec.fault {
            tokio::time::sleep(d).await;
        }
        let disconnect_after = match self.rec.fault {
            Some(Fault::DisconnectAfter(n)) => Some(n),
            _ => None,
        };
        let error_after = match self.rec.fault {
            Some(Fault::ErrorAfter(n)) => Some(n),
            _ => None,
        };
        let mut malformed = matches!(self.rec.fault, Some(Fault::Malformed));
        let mut last_input = Instant::now();
        let mut next_send = Instant::now();
        loop {
            if disconnect_after.is_some_and(|n| self.rec.audio_messages >= n) {
                return self.rec; // dropped without a close frame
            }
            if error_after.is_some_and(|n| self.rec.audio_messages >= n) {
                let message = "An internal error occurred.";
                self.fail(&mut socket, "internal_server_error", message, 1011)
                    .await;
                return self.rec;
            }
            if self.rec.ended && self.pending.is_empty() {
                let _ = self
                    .send(
                        &mut socket,
                        serde_json::json!({"isFinal": true}).to_string(),
                    )
                    .await;
                self.rec.completed = close(&mut socket, 1000, "").await;
                return self.rec;
            }
            let idle = self.pending.is_empty() && !self.rec.ended;
            tokio::select! {
                message = socket.recv() => {
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                            self.rec.cancelled = true;
                            return self.rec;
                        }
                        Some(Ok(_)) => continue,
                    };
                    last_input = Instant::now();
                    if let Step::Refuse(error, message) = self.on_text(text.as_str()) {
                        self.refuse(&mut socket, error, &message).await;
                        return self.rec;
                    }
                }
                () = sleep_until(next_send), if !self.pending.is_empty() => {
                    if std::mem::take(&mut malformed) {
                        let _ = self.send(&mut socket, "{\"audio\": <oops".to_owned()).await;
                    }
                    if let Some(chunk) = self.pending.pop_front() {
                        let json = serde_json::json!({"audio": STANDARD.encode(&chunk), "isFinal": null, "normalizedAlignment": null});
                        if self.send(&mut socket, json.to_string()).await.is_err() {
                            self.rec.cancelled = true;
                            return self.rec;
                        }
                        self.rec.audio_messages += 1;
                        self.rec.audio_bytes += chunk.len();
                    }
                    next_send = Instant::now() + PACE;
                }
                () = sleep_until(last_input + self.inactivity), if idle => {
                    let secs = self.inactivity.as_secs();
                    let message = format!("Have not received a new text input within the timeout of {secs} seconds. Closing the connection.");
                    self.refuse(&mut socket, "input_timeout_exceeded", &message).await;
                    return self.rec;
                }
            }
        }
    }

    fn on_text(&mut self, raw: &str) -> Step {
        let Ok(json) = serde_json::from_str::<serde_json::Value>(raw) else {
            return Step::Refuse("invalid_json", "The message is not valid JSON.".into());
        };
        let Some(text) = json.get("text").and_then(|t| t.as_str()) else {
            return Step::Refuse(
                "invalid_message",
                "Every message needs a `text` field.".into(),
            );
        };
        if self.rec.init.is_none() {
            if text != " " {
                let why = "The first message must initialise the stream with text \" \".";
                return Step::Refuse("invalid_initial_message", why.into());
            }
            if let Some(schedule) = json
                .pointer("/generation_config/chunk_length_schedule")
                .and_then(|s| serde_json::from_value::<Vec<usize>>(s.clone()).ok())
                .filter(|s| !s.is_empty())
            {
                self.schedule = schedule;
            }
            self.rec.init = Some(json);
            return Step::Continue;
        }
        if text.is_empty() {
            self.rec.ended = true;
            self.generate();
            return Step::Continue;
        }
        if !text.trim().is_empty() {
            self.rec.texts.push(text.to_owned());
        }
        self.buffer.push_str(text);
        let flag = |name: &str| json.get(name).and_then(|f| f.as_bool()) == Some(true);
        if flag("flush") {
            self.rec.flushes += 1;
            self.generate();
        } else if flag("try_trigger_generation") || self.schedule_reached() {
            self.generate();
        }
        Step::Continue
    }

    fn schedule_reached(&self) -> bool {
        let at = self.schedule[self.next_schedule.min(self.schedule.len() - 1)];
        self.buffer.chars().count() >= at
    }

    /// Speak the buffered text (queued for pacing) and advance the schedule.
    fn generate(&mut self) {
        let text = std::mem::take(&mut self.buffer);
        if text.trim().is_empty() {
            return;
        }
        self.pending.extend(self.format.speak(&text));
        self.next_schedule += 1;
    }

    async fn send(&mut self, socket: &mut WebSocket, text: String) -> Result<(), axum::Error> {
        socket.send(Message::text(text)).await?;
        self.rec.messages_sent += 1;
        Ok(())
    }

    async fn refuse(&mut self, socket: &mut WebSocket, error: &'static str, message: &str) {
        self.fail(socket, error, message, 1008).await;
    }

    /// ElevenLabs' error message, then a close with `code`.
    async fn fail(
        &mut self,
        socket: &mut WebSocket,
        error: &'static str,
        message: &str,
        code: u16,
    ) {
        self.rec.error = Some(error.to_owned());
        let json = serde_json::json!({"message": message, "error": error, "code": code});
        let _ = self.send(socket, json.to_string()).await;
        close(socket, code, error).await;
    }
}

/// Send a close frame; true if it went out.
async fn close(socket: &mut WebSocket, code: u16, reason: &str) -> bool {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    socket.send(Message::Close(Some(frame))).await.is_ok()
}
