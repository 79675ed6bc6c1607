//! The OpenAI agent: any OpenAI-compatible Chat Completions server (OpenAI, Groq, Ollama, vLLM,
//! llama.cpp), streamed over SSE (providers.md §3). Each call keeps its own history (system
//! prompt, then user/assistant turns); each caller turn is one streamed request whose text is
//! handed to the session sentence by sentence, and whose `end_call` / `transfer_call` tool
//! calls become [`CallAction`]s; `set_outcome` becomes an [`AgentEvent::Outcome`] (recorded
//! on the call, read by the dialer), `opt_out` the outcome `opted_out` and an end of the call
//! after the goodbye. A reply that did nothing but `set_outcome` gets one follow-up request
//! with the tool results, so the caller hears the model's next words instead of silence.
//!
//! Failure policy, per turn:
//! - before a 200 stream starts, connection errors, 429 (not `insufficient_quota`) and 5xx are
//!   retried up to [`MAX_RETRIES`] times, waiting 0.5 s·2ⁿ (or `retry-after` when ≤ 60 s);
//!   401/403/other 4xx and timeouts are not retried;
//! - a stream that breaks (connection reset, an in-stream `error` event) is resumed once: the
//!   same request again, whose pieces the caller already heard are not sent twice; if the new
//!   reply says something else, the turn ends with `Failed` (the session apologises);
//! - no content or tool token within `timeout_ms` of sending, or no bytes for `timeout_ms`
//!   after that, is a timeout (not retried: it would double the silence);
//! - when the primary server fails before anything reached the session, the fallback server
//!   (if configured) gets the same request; otherwise the turn ends with `Failed`;
//! - one unparseable event is skipped (like the ElevenLabs client does) and the reply goes on;
//! - every failed attempt and skipped event is counted once in
//!   `voxbridge_provider_errors_total{provider="openai"}` and reported once as
//!   [`AgentEvent::Warning`](super::AgentEvent::Warning).
//!
//! History: [`AgentSession::reply_heard`] records only what the caller heard, so the model's
//! context matches the call — the heard prefix after a barge-in, the apology when the caller
//! heard that instead. A reply's tool calls are kept as the assistant message's `tool_calls`,
//! each followed by its `tool` result (unless the caller cut the reply short, which drops the
//! action too; outcome calls stay, the outcome was recorded). Text the engine said itself ([`AgentSession::said`])
//! is kept as an assistant message. Barge-in: cancelling the turn drops the HTTP response at
//! once (the server sees the client go away) and ends the event channel.
//!
//! Must not: log API keys or conversation text, touch TTS or playout, or block the session.

mod history;
mod turn;
mod wire;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use self::history::ReplyTools;
use self::turn::Turn;
use self::wire::ChatMessage;
#[cfg(doc)]
use super::CallAction;
use super::{Agent, AgentEvent, AgentSession, CallerTurn, EVENT_QUEUE};
use crate::config::AgentConfig;
use crate::provider::{CallIds, ProviderError, Secret};

/// Retries after the first attempt, per server, for transient failures before streaming.
pub const MAX_RETRIES: u32 = 2;
/// The history keeps the system prompt plus at most this many recent messages.
pub const MAX_HISTORY: usize = 64;
const PROVIDER: &str = "openai";

/// One OpenAI-compatible server.
#[derive(Debug, Clone)]
struct Endpoint {
    label: &'static str,
    url: String,
    model: String,
    key: Secret,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    servers: Vec<Endpoint>,
    system_prompt: String,
    greeting: Option<String>,
    timeout: Duration,
    backoff_base: Duration,
}

/// Answers callers with an OpenAI-compatible chat model; one shared HTTP client for all calls.
#[derive(Debug, Clone)]
pub struct OpenAiAgent {
    inner: Arc<Inner>,
}

impl OpenAiAgent {
    /// An agent for `cfg.base_url` / `cfg.model` (system prompt, greeting and `timeout_ms` from
    /// `cfg`), with an optional fallback server `(base_url, model, key)`. Base URLs end in
    /// `/v1` (the `/chat/completions` path is appended).
    pub fn new(
        cfg: &AgentConfig,
        api_key: Secret,
        fallback: Option<(String, String, Secret)>,
    ) -> Result<Self, ProviderError> {
        let mut servers = vec![endpoint("primary", &cfg.base_url, &cfg.model, api_key)?];
        if let Some((url, model, key)) = fallback {
            servers.push(endpoint("fallback", &url, &model, key)?);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ProviderError::Connect(format!("HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                servers,
                system_prompt: cfg.system_prompt.clone(),
                greeting: Some(cfg.greeting.trim().to_string()).filter(|g| !g.is_empty()),
                timeout: Duration::from_millis(cfg.timeout_ms.max(1)),
                backoff_base: Duration::from_millis(500),
            }),
        })
    }
}

fn endpoint(
    label: &'static str,
    base: &str,
    model: &str,
    key: Secret,
) -> Result<Endpoint, ProviderError> {
    let url = format!("{}/chat/completions", base.trim().trim_end_matches('/'));
    reqwest::Url::parse(&url)
        .map_err(|e| ProviderError::Connect(format!("{label} base URL: {e}")))?;
    Ok(Endpoint {
        label,
        url,
        model: model.to_string(),
        key,
    })
}

impl Agent for OpenAiAgent {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn start_call(&self, call: &CallIds) -> Box<dyn AgentSession> {
        let mut history = Vec::new();
        if !self.inner.system_prompt.trim().is_empty() {
            history.push(ChatMessage::new("system", self.inner.system_prompt.clone()));
        }
        Box::new(OpenAiSession {
            inner: self.inner.clone(),
            call_sid: call.call_sid.clone(),
            greeting: self.inner.greeting.clone(),
            history,
            last: LastReply::None,
            tools: Arc::default(),
        })
    }
}

/// Which reply a `reply_heard` refers to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LastReply {
    None,
    /// The greeting, already in the history at this index.
    Greeting(usize),
    Response,
}

struct OpenAiSession {
    inner: Arc<Inner>,
    call_sid: String,
    greeting: Option<String>,
    history: Vec<ChatMessage>,
    last: LastReply,
    /// The tool calls of the last reply, left here by its turn task.
    tools: Arc<Mutex<ReplyTools>>,
}

impl AgentSession for OpenAiSession {
    /// The greeting goes into the history as said; `reply_heard` may then shorten it.
    fn greeting(&mut self) -> Option<String> {
        let greeting = self.greeting.take()?;
        self.history
            .push(ChatMessage::new("assistant", greeting.clone()));
        self.last = LastReply::Greeting(self.history.len() - 1);
        Some(greeting)
    }

    fn respond(
        &mut self,
        turn: CallerTurn,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<AgentEvent> {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let text = match turn {
            CallerTurn::Speech(text) => text.trim().to_string(),
            CallerTurn::Dtmf(digits) => {
                let keys: Vec<String> = digits.chars().map(String::from).collect();
                format!("(The caller pressed the keys: {})", keys.join(" "))
            }
            CallerTurn::Audio(_) => String::new(),
        };
        if text.is_empty() {
            let _ = tx.try_send(AgentEvent::Done);
            return rx;
        }
        self.history.push(ChatMessage::new("user", text));
        self.trim_history();
        self.last = LastReply::Response;
        if let Ok(mut tools) = self.tools.lock() {
            *tools = ReplyTools::default();
        }
        let turn = Turn {
            inner: self.inner.clone(),
            call_sid: self.call_sid.clone(),
            messages: self.history.clone(),
            tx,
            tools: self.tools.clone(),
        };
        let call_sid = self.call_sid.clone();
        tokio::spawn(async move {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => debug!(call_sid, "agent reply cancelled"),
                _ = turn.run() => {}
            }
        });
        rx
    }

    fn reply_heard(&mut self, heard: &str, interrupted: bool) {
        let heard = heard.trim();
        match std::mem::replace(&mut self.last, LastReply::None) {
            LastReply::Greeting(i) if i < self.history.len() => {
                if heard.is_empty() {
                    self.history.remove(i);
                } else {
                    self.history[i].content = Some(heard.to_string());
                }
            }
            LastReply::Response => {
                let tools = match self.tools.lock() {
                    Ok(mut t) => std::mem::take(&mut *t),
                    Err(_) => ReplyTools::default(),
                };
                let content = Some(heard.to_string()).filter(|h| !h.is_empty());
                self.history.extend(tools.messages(content, interrupted));
            }
            LastReply::None => debug!(
                call_sid = self.call_sid,
                "reply_heard without a reply; ignored"
            ),
            _ => {}
        }
        debug!(
            call_sid = self.call_sid,
            interrupted,
            heard_chars = heard.chars().count(),
            "reply heard"
        );
    }

    fn said(&mut self, text: &str) {
        let text = text.trim();
        if !text.is_empty() {
            self.history.push(ChatMessage::new("assistant", text));
        }
    }
}

impl OpenAiSession {
    /// Keep the system prompt and the last [`MAX_HISTORY`] messages, never starting them with a
    /// `tool` result whose call was dropped (the server would refuse the request).
    fn trim_history(&mut self) {
        let system = usize::from(self.history.first().is_some_and(|m| m.role == "system"));
        if self.history.len() > system + MAX_HISTORY {
            self.history.drain(system..self.history.len() - MAX_HISTORY);
        }
        while self.history.get(system).is_some_and(|m| m.role == "tool") {
            self.history.remove(system);
        }
    }
}

#[cfg(test)]
mod tests;
