//! How the fake Realtime server writes events: the outgoing queue with event and object ids
//! ([`Emitter`]), `error` bodies ([`ApiError`]) and `response` objects.
//!
//! Pure: no sockets, no timing.

use std::collections::VecDeque;

use serde_json::{Map, Value, json};

use super::response::Ids;
use super::shapes::Api;

/// What the socket loop should do next.
#[derive(Debug)]
pub enum Out {
    Text(String),
    Close(u16, &'static str),
    /// Drop the TCP connection without a close frame.
    Drop,
}

/// The outgoing queue, with event and object ids.
pub struct Emitter {
    pub api: Api,
    pub out: VecDeque<Out>,
    events: u64,
    ids: u64,
}

impl Ids for Emitter {
    fn next_id(&mut self, prefix: &str) -> String {
        self.ids += 1;
        format!("{prefix}_Fake{:017}", self.ids)
    }
}

impl Emitter {
    pub fn new(api: Api) -> Self {
        Self {
            api,
            out: VecDeque::new(),
            events: 0,
            ids: 0,
        }
    }

    /// Queue a server event: `type` and `event_id` first, then `body`'s fields.
    pub fn emit(&mut self, ty: &str, body: Value) {
        self.events += 1;
        let mut map = Map::new();
        map.insert("type".into(), ty.into());
        map.insert(
            "event_id".into(),
            format!("event_Fake{:017}", self.events).into(),
        );
        if let Value::Object(fields) = body {
            map.extend(fields);
        }
        self.out
            .push_back(Out::Text(Value::Object(map).to_string()));
    }

    pub fn error(&mut self, mut error: ApiError, event_id: Option<String>) {
        error.event_id = event_id;
        self.emit("error", json!({"error": error.to_json()}));
    }
}

/// An `error` event's `error` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub message: String,
    pub param: Option<&'static str>,
    /// The client event it answers, when that event had an `event_id`.
    pub event_id: Option<String>,
}

impl ApiError {
    pub fn invalid(code: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            kind: "invalid_request_error",
            code,
            message: message.into(),
            param: None,
            event_id: None,
        }
    }

    pub fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn to_json(&self) -> Value {
        json!({"type": self.kind, "code": self.code, "message": self.message,
            "param": self.param, "event_id": self.event_id})
    }
}

/// A `response` object for `response.created` / `response.done`.
pub fn response_object(id: &str, status: &str, details: Value, output: Vec<Value>) -> Value {
    let usage = if status == "in_progress" {
        Value::Null
    } else {
        json!({"total_tokens": 0, "input_tokens": 0, "output_tokens": 0,
            "input_token_details": {"text_tokens": 0, "audio_tokens": 0, "cached_tokens": 0},
            "output_token_details": {"text_tokens": 0, "audio_tokens": 0}})
    };
    let mut map = Map::new();
    map.insert("object".into(), "realtime.response".into());
    map.insert("id".into(), id.into());
    map.insert("status".into(), status.into());
    map.insert("status_details".into(), details);
    map.insert("output".into(), Value::Array(output));
    map.insert("usage".into(), usage);
    Value::Object(map)
}
