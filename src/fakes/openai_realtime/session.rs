//! One connection's state in the fake Realtime server: the accepted session, the audio and
//! VAD, the conversation's items, the response in flight; client events in, server events
//! out (queued as [`Out`] for the socket loop in `conn.rs`). Responses are run in
//! `respond.rs`, conversation items (create, truncate, delete) in `items.rs`.
//!
//! It must not touch the socket; time only comes in as the `now` it is handed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::RealtimeFault;
use super::conn::Setup;
use super::events::{ApiError, Emitter, Out};
use super::response::{Ids, Reply, Timed};
use super::shapes::{self, Api, Settings};
use super::vad::{Vad, VadEvent, VadSettings};

/// What an item in the conversation is.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemKind {
    UserAudio,
    /// An assistant message with `audio_bytes` of generated audio.
    AssistantAudio {
        audio_bytes: usize,
    },
    FunctionCall,
    Other,
}

/// The conversation as the fake keeps it.
#[derive(Default)]
pub struct Conversation {
    pub items: HashMap<String, ItemKind>,
    pub last_item: Option<String>,
    /// Calls awaiting their output: call_id → the script turn that made them.
    pub calls: HashMap<String, usize>,
    /// The turn whose call output arrived: the next response speaks its `after_call`.
    pub after_call: Option<usize>,
    /// A committed caller turn not answered yet (script index).
    pub unanswered: Option<usize>,
    pub next_turn: usize,
    /// The user item being spoken (between speech_started and speech_stopped).
    pub speaking: Option<String>,
    /// An input transcription to send with the next `response.created`.
    pub transcript: Option<(String, String)>,
}

/// The response in flight.
pub struct Active {
    pub id: String,
    pub steps: VecDeque<Timed>,
    pub due: Instant,
    pub output: Vec<Value>,
    pub reply: Reply,
    pub turn: Option<usize>,
}

/// One connection.
pub struct Session {
    pub setup: Setup,
    pub emit: Emitter,
    pub session: Value,
    pub settings: Settings,
    pub vad: Vad,
    pub convo: Conversation,
    pub active: Option<Active>,
    /// Audio bytes since the last commit or clear.
    pub buffered: usize,
    pub audio_bytes: usize,
    pub appends: usize,
    /// Audio deltas sent in the first response (for `DropMidResponse`).
    pub first_deltas: usize,
    pub responses: usize,
}

impl Session {
    /// A new connection; `session.created` (and a malformed message, if so faulted) queued.
    pub fn new(setup: Setup) -> Self {
        let api = setup.api;
        let mut emit = Emitter::new(api);
        let id = emit.next_id("sess");
        let expires_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() + 3600)
            .unwrap_or(0);
        let session = shapes::default_session(api, &id, &setup.model, expires_at);
        let settings = shapes::settings(api, &session).unwrap_or(Settings {
            input: super::vad::InputCoding::Pcm24k,
            output: super::vad::InputCoding::Pcm24k,
            turn: None,
            transcription: false,
        });
        emit.emit("session.created", json!({"session": session}));
        if setup.fault == Some(RealtimeFault::Malformed) {
            let broken = format!(r#"{{"type":"{}","delta":"#, api.audio_delta());
            emit.out.push_back(Out::Text(broken));
        }
        let vad_settings = settings.turn.map(|t| t.vad).unwrap_or_default();
        Self {
            vad: Vad::new(vad_settings, settings.input),
            setup,
            emit,
            session,
            settings,
            convo: Conversation::default(),
            active: None,
            buffered: 0,
            audio_bytes: 0,
            appends: 0,
            first_deltas: 0,
            responses: 0,
        }
    }

    /// When the response in flight has its next step due.
    pub fn due(&self) -> Option<Instant> {
        self.active.as_ref().map(|a| a.due)
    }

    /// The session's maximum duration is over: `session_expired`, then close 1001.
    pub fn expire(&mut self) {
        let err = ApiError::invalid(
            Some("session_expired"),
            "Your session hit the maximum duration of 60 minutes.",
        );
        self.emit.error(err, None);
        self.emit.out.push_back(Out::Close(
            1001,
            "Your session hit the maximum duration of 60 minutes.",
        ));
    }

    /// A binary frame: the Realtime API only speaks JSON text.
    pub fn on_binary(&mut self) {
        let err = ApiError::invalid(
            Some("invalid_event"),
            "Binary messages are not supported; send JSON text events.",
        );
        self.emit.error(err, None);
    }

    /// One client event (JSON text).
    pub fn on_client(&mut self, text: &str, now: Instant) {
        let Ok(event) = serde_json::from_str::<Value>(text) else {
            let err = ApiError::invalid(
                Some("invalid_json"),
                "The server could not parse the event: it is not valid JSON.",
            );
            return self.emit.error(err, None);
        };
        let event_id = event["event_id"].as_str().map(String::from);
        let Some(ty) = event["type"].as_str() else {
            let err = ApiError::invalid(
                Some("missing_required_parameter"),
                "Missing required parameter: 'type'.",
            );
            return self.emit.error(err.param("type"), event_id);
        };
        let observed = &self.setup.observed;
        observed
            .client_events
            .push((self.setup.conn, ty.to_string()));
        match ty {
            "session.update" => self.session_update(&event, event_id),
            "input_audio_buffer.append" => self.append(&event, event_id, now),
            "input_audio_buffer.commit" => self.commit(event_id),
            "input_audio_buffer.clear" => {
                self.buffered = 0;
                self.emit.emit("input_audio_buffer.cleared", json!({}));
            }
            "conversation.item.create" => self.item_create(&event, event_id),
            "conversation.item.truncate" => self.truncate(&event, event_id),
            "conversation.item.delete" => self.item_delete(&event, event_id),
            "response.create" => match &self.active {
                Some(active) => {
                    let err = ApiError::invalid(
                        Some("conversation_already_has_active_response"),
                        format!(
                            "Conversation already has an active response in progress: {}. Wait until the response is finished before creating a new one.",
                            active.id
                        ),
                    );
                    self.emit.error(err, event_id);
                }
                None => self.start_response(now),
            },
            "response.cancel" => {
                if self.active.is_some() {
                    self.cancel("client_cancelled");
                } else {
                    let err = ApiError::invalid(
                        Some("response_cancel_not_active"),
                        "Cancellation failed: no active response found",
                    );
                    self.emit.error(err, event_id);
                }
            }
            other => {
                let err = ApiError::invalid(
                    Some("invalid_value"),
                    format!(
                        "Invalid value: '{other}'. Supported values are: 'session.update', 'input_audio_buffer.append', 'input_audio_buffer.commit', 'input_audio_buffer.clear', 'conversation.item.create', 'conversation.item.truncate', 'conversation.item.delete', 'response.create', and 'response.cancel'."
                    ),
                );
                self.emit.error(err.param("type"), event_id);
            }
        }
    }

    fn session_update(&mut self, event: &Value, event_id: Option<String>) {
        let update = &event["session"];
        let observed = &self.setup.observed;
        observed
            .session_updates
            .push((self.setup.conn, update.clone()));
        let api = self.setup.api;
        let mut merged = match shapes::merge_session(api, &self.session, update) {
            Ok(merged) => merged,
            Err(err) => return self.emit.error(err, event_id),
        };
        if self.setup.fault == Some(RealtimeFault::IgnoreAudioFormat) {
            shapes::reset_formats(api, &mut merged);
        }
        match shapes::settings(api, &merged) {
            Ok(settings) => {
                let vad = settings
                    .turn
                    .map(|t| t.vad)
                    .unwrap_or(VadSettings::default());
                self.vad.configure(vad, settings.input);
                self.settings = settings;
                self.session = merged;
                let session = self.session.clone();
                self.emit
                    .emit("session.updated", json!({"session": session}));
            }
            Err(err) => self.emit.error(err, event_id),
        }
    }

    fn append(&mut self, event: &Value, event_id: Option<String>, now: Instant) {
        let audio = event["audio"].as_str().map(|a| STANDARD.decode(a));
        let Some(Ok(audio)) = audio else {
            let err = ApiError::invalid(
                Some("invalid_value"),
                "Invalid 'audio'. Expected base64-encoded audio bytes.",
            );
            return self.emit.error(err.param("audio"), event_id);
        };
        self.appends += 1;
        self.audio_bytes += audio.len();
        self.buffered += audio.len();
        let total = &self.setup.observed.audio_bytes;
        total.fetch_add(audio.len() as u64, Ordering::Relaxed);
        let Some(turn) = self.settings.turn else {
            return;
        };
        let mut events = Vec::new();
        self.vad.push(&audio, &mut events);
        for event in events {
            match event {
                VadEvent::Started { audio_start_ms } => {
                    let item_id = self.emit.next_id("item");
                    self.convo.speaking = Some(item_id.clone());
                    self.emit.emit(
                        "input_audio_buffer.speech_started",
                        json!({"audio_start_ms": audio_start_ms, "item_id": item_id}),
                    );
                    if self.active.is_some() && turn.interrupt_response {
                        self.cancel("turn_detected");
                    }
                }
                VadEvent::Stopped { audio_end_ms } => {
                    let speaking = self.convo.speaking.take();
                    let item_id = speaking.unwrap_or_else(|| self.emit.next_id("item"));
                    self.emit.emit(
                        "input_audio_buffer.speech_stopped",
                        json!({"audio_end_ms": audio_end_ms, "item_id": item_id}),
                    );
                    self.commit_item(item_id);
                    if turn.create_response && self.active.is_none() {
                        self.start_response(now);
                    }
                    self.send_transcript();
                }
            }
        }
    }

    /// Manual commit (any turn detection): needs 100 ms of buffered audio.
    fn commit(&mut self, event_id: Option<String>) {
        let ms = self.buffered as f64 / self.settings.input.bytes_per_ms() as f64;
        if ms < 100.0 {
            let err = ApiError::invalid(
                Some("input_audio_buffer_commit_empty"),
                format!(
                    "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has {ms:.2}ms of audio."
                ),
            );
            return self.emit.error(err, event_id);
        }
        let item_id = self.emit.next_id("item");
        self.commit_item(item_id);
        self.send_transcript();
    }

    /// The buffered audio becomes a user item; the script moves to the next turn.
    fn commit_item(&mut self, item_id: String) {
        self.buffered = 0;
        let previous = self.convo.last_item.replace(item_id.clone());
        self.emit.emit(
            "input_audio_buffer.committed",
            json!({"previous_item_id": previous, "item_id": item_id}),
        );
        let item = json!({"id": item_id, "object": "realtime.item", "type": "message",
            "status": "completed", "role": "user",
            "content": [{"type": "input_audio", "transcript": null}]});
        self.item_added(previous, item);
        self.convo
            .items
            .insert(item_id.clone(), ItemKind::UserAudio);
        let turns = self.setup.script.turns.len();
        if turns > 0 {
            let turn = self.convo.next_turn % turns;
            self.convo.next_turn = (turn + 1) % turns;
            self.convo.unanswered = Some(turn);
            if self.settings.transcription {
                let heard = self.setup.script.turns[turn].heard.clone();
                self.convo.transcript = Some((item_id, heard));
            }
        }
    }

    /// `conversation.item.added`/`created` (GA adds `conversation.item.done`).
    pub fn item_added(&mut self, previous: Option<String>, item: Value) {
        let api = self.emit.api;
        let body = json!({"previous_item_id": previous, "item": item});
        self.emit.emit(api.item_added(), body);
        if api == Api::Ga {
            self.emit
                .emit("conversation.item.done", json!({"item": item}));
        }
    }

    /// The input transcription, if one is pending (async in the real service).
    fn send_transcript(&mut self) {
        if let Some((item_id, transcript)) = self.convo.transcript.take() {
            self.emit.emit(
                "conversation.item.input_audio_transcription.completed",
                json!({"item_id": item_id, "content_index": 0, "transcript": transcript}),
            );
        }
    }
}
