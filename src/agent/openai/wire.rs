//! The OpenAI Chat Completions streaming wire format (providers.md §3): the request body, SSE
//! framing, and turning `chat.completion.chunk` events into agent events (sentence pieces,
//! tool-call actions). Pure and synchronous: no I/O, no retries, no timing.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::agent::sentences::SentenceSplitter;
use crate::agent::{AgentEvent, CallAction, outcome_label};
use crate::dialer::model::OPTED_OUT;
use crate::provider::ProviderError;

pub(super) use super::history::{ChatMessage, ToolUse};

/// The tools the agent offers and acts on; any other name is ignored (and logged).
pub(super) const TOOLS: [&str; 4] = ["end_call", "transfer_call", "set_outcome", "opt_out"];

/// A line longer than this without a line break is not SSE.
const MAX_LINE_BYTES: usize = 1 << 20;

/// The streamed request: the history plus the call-control tools (`end_call`,
/// `transfer_call`, `set_outcome`, `opt_out`).
pub(super) fn request_body(model: &str, messages: &[ChatMessage]) -> Value {
    json!({
        "model": model,
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": messages,
        "tools": [
            {"type": "function", "function": {
                "name": "end_call",
                "description": "Hang up after saying goodbye.",
                "parameters": {"type": "object", "properties": {}}}},
            {"type": "function", "function": {
                "name": "transfer_call",
                "description": "Transfer the caller to a human at this number.",
                "parameters": {"type": "object",
                    "properties": {"to": {"type": "string",
                        "description": "The phone number in E.164 format, e.g. +15551234567."}},
                    "required": ["to"]}}},
            {"type": "function", "function": {
                "name": "set_outcome",
                "description": "Record the outcome of the call, e.g. interested, not_interested, \
                    callback_requested. Keep talking to the caller as usual.",
                "parameters": {"type": "object",
                    "properties": {"outcome": {"type": "string",
                        "description": "The call's outcome, a short snake_case label."}},
                    "required": ["outcome"]}}},
            {"type": "function", "function": {
                "name": "opt_out",
                "description": "The person asks not to be called again: confirm briefly and say \
                    goodbye; their number is put on the do-not-call list and the call ends \
                    after the goodbye.",
                "parameters": {"type": "object", "properties": {}}}}
        ]
    })
}

/// One server-sent event: its `event:` type (if any) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Incremental SSE parser (LF or CRLF line ends; `:` comments; multi-line `data:`).
#[derive(Debug, Default)]
pub(super) struct SseParser {
    buf: Vec<u8>,
    data: String,
    has_data: bool,
    event: Option<String>,
}

impl SseParser {
    /// Feed received bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, ProviderError> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(off) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + off;
            let line = self.buf[start..end]
                .strip_suffix(b"\r")
                .unwrap_or(&self.buf[start..end]);
            let line = std::str::from_utf8(line)
                .map_err(|_| ProviderError::Malformed("stream is not UTF-8".into()))?
                .to_string();
            events.extend(self.line(&line));
            start = end + 1;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(ProviderError::Malformed("SSE line too long".into()));
        }
        Ok(events)
    }

    /// The body ended: an unterminated last event is still delivered (lenient).
    pub fn finish(&mut self) -> Option<SseEvent> {
        let rest = std::mem::take(&mut self.buf);
        if let Ok(line) = std::str::from_utf8(&rest) {
            let line = line.trim_end_matches('\r');
            if !line.is_empty() {
                let _ = self.line(line);
            }
        }
        self.line("")
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take();
            if !std::mem::take(&mut self.has_data) {
                return None;
            }
            return Some(SseEvent {
                event,
                data: std::mem::take(&mut self.data),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
            _ => {} // id, retry, unknown: ignorable.
        }
        None
    }
}

#[derive(Debug, Deserialize)]
struct Chunk {
    choices: Option<Vec<Choice>>,
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    index: Option<u64>,
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    content: Option<String>,
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Debug, Deserialize)]
struct ToolCallDelta {
    index: Option<u64>,
    id: Option<String>,
    function: Option<FunctionDelta>,
}

#[derive(Debug, Deserialize)]
struct FunctionDelta {
    name: Option<String>,
    /// A string to concatenate; some servers send a whole JSON object instead.
    arguments: Option<Value>,
}

#[derive(Debug, Default)]
struct ToolCall {
    id: String,
    name: String,
    arguments: String,
}

/// Turns the events of one streamed reply into agent events.
#[derive(Debug, Default)]
pub(super) struct ReplyDecoder {
    splitter: SentenceSplitter,
    tools: BTreeMap<u64, ToolCall>,
    finish_reason: Option<String>,
    done: bool,
    got_token: bool,
}

impl ReplyDecoder {
    /// Whether a content or tool-call token has arrived (the first-token timeout stops).
    pub fn got_token(&self) -> bool {
        self.got_token
    }

    /// Whether `data: [DONE]` arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the reply can be completed: `[DONE]` or a `finish_reason` was seen.
    pub fn is_complete(&self) -> bool {
        self.done || self.finish_reason.is_some()
    }

    /// Handle one event: the sentence pieces it completes, or the in-stream error.
    pub fn event(&mut self, ev: SseEvent) -> Result<Vec<AgentEvent>, ProviderError> {
        if self.done {
            return Ok(Vec::new());
        }
        let data = ev.data.trim();
        if ev.event.as_deref() == Some("error") {
            return Err(stream_error(
                serde_json::from_str(data).unwrap_or(Value::Null),
                data,
            ));
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(Vec::new());
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
            let start: String = data.chars().take(60).collect();
            ProviderError::Malformed(format!("bad chunk ({e}): {start}"))
        })?;
        if let Some(err) = chunk.error.filter(|e| !e.is_null()) {
            return Err(stream_error(json!({ "error": err }), data));
        }
        let mut out = Vec::new();
        let choices = chunk.choices.unwrap_or_default();
        for choice in choices.into_iter().filter(|c| c.index.unwrap_or(0) == 0) {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    self.got_token = true;
                    out.extend(self.splitter.push(&text).into_iter().map(AgentEvent::Text));
                }
                for (pos, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                    self.got_token = true;
                    self.tool_fragment(pos as u64, call);
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
            }
        }
        Ok(out)
    }

    fn tool_fragment(&mut self, pos: u64, call: ToolCallDelta) {
        let acc = self.tools.entry(call.index.unwrap_or(pos)).or_default();
        if let Some(id) = call.id.filter(|id| !id.is_empty()) {
            acc.id = id;
        }
        let Some(function) = call.function else {
            return;
        };
        if let Some(name) = function.name.filter(|n| !n.is_empty()) {
            acc.name = name;
        }
        match function.arguments {
            Some(Value::String(s)) => acc.arguments.push_str(&s),
            Some(Value::Null) | None => {}
            Some(other) => acc.arguments = other.to_string(),
        }
    }

    /// The recognised call-control tools called so far (ids filled in when the server sent
    /// none), for the history.
    pub fn tool_uses(&self) -> Vec<ToolUse> {
        self.tools
            .iter()
            .filter(|(_, c)| TOOLS.contains(&c.name.as_str()))
            .map(|(index, c)| ToolUse {
                id: if c.id.is_empty() {
                    format!("call_{index}")
                } else {
                    c.id.clone()
                },
                name: c.name.clone(),
                arguments: if c.arguments.trim().is_empty() {
                    "{}".to_owned()
                } else {
                    c.arguments.clone()
                },
            })
            .collect()
    }

    /// The end of the reply: the last text piece, then the events of each recognised tool
    /// call (in index order): an action, or an outcome (`opt_out`: outcome `opted_out`, then
    /// end the call). Unknown tools come back by name (to be logged and ignored), a
    /// `set_outcome` without a usable `outcome` as an error (to be counted; the reply goes on).
    pub fn finish(mut self) -> Result<Finished, ProviderError> {
        let mut done = Finished {
            events: self
                .splitter
                .finish()
                .map(AgentEvent::Text)
                .into_iter()
                .collect(),
            ..Finished::default()
        };
        for call in std::mem::take(&mut self.tools).into_values() {
            match call.name.as_str() {
                "end_call" => done.events.push(AgentEvent::Action(CallAction::EndCall)),
                "transfer_call" => done.events.push(AgentEvent::Action(CallAction::Transfer {
                    to: transfer_target(&call.arguments)?,
                })),
                "set_outcome" => match outcome_arg(&call.arguments) {
                    Ok(outcome) => done.events.push(AgentEvent::Outcome(outcome)),
                    Err(e) => done.malformed.push(e),
                },
                "opt_out" => {
                    done.events.push(AgentEvent::Outcome(OPTED_OUT.to_owned()));
                    done.events.push(AgentEvent::Action(CallAction::EndCall));
                }
                _ => done.unknown.push(format!("{} ({})", call.name, call.id)),
            }
        }
        Ok(done)
    }
}

/// What the end of a reply hands on.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Finished {
    /// The last text piece, then the tool calls' actions and outcomes.
    pub events: Vec<AgentEvent>,
    /// Tools nobody offered, `name (id)`.
    pub unknown: Vec<String>,
    /// `set_outcome` calls that were skipped.
    pub malformed: Vec<ProviderError>,
}

/// The `outcome` of a `set_outcome`, as a label ([`outcome_label`]).
pub(super) fn outcome_arg(arguments: &str) -> Result<String, ProviderError> {
    let args: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
    let raw = args
        .get("outcome")
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::Malformed("set_outcome has no string `outcome`".into()))?;
    outcome_label(raw).ok_or_else(|| {
        ProviderError::Malformed("set_outcome `outcome` must be 1-64 letters, digits or `_`".into())
    })
}

/// An error reported inside a 200 stream (`event: error` or a JSON `error` key).
fn stream_error(value: Value, raw: &str) -> ProviderError {
    let message = value
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| raw.chars().take(200).collect());
    ProviderError::Server {
        status: 500,
        message: format!("error in stream: {message}"),
    }
}

/// The `to` of a `transfer_call`, normalised to E.164 (`+` and 8–15 digits).
fn transfer_target(arguments: &str) -> Result<String, ProviderError> {
    let bad = |why: &str| ProviderError::Malformed(format!("transfer_call {why}"));
    let args: Value = serde_json::from_str(if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    })
    .map_err(|_| bad("arguments are not JSON"))?;
    let to = args
        .get("to")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("has no `to`"))?;
    let digits: String = to
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let valid = digits
        .strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
    if !valid {
        return Err(bad("number is not E.164"));
    }
    Ok(digits)
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
