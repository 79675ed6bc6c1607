//! A fake OpenAI Chat Completions server (`POST /v1/chat/completions`, streamed SSE) for tests,
//! demos and load runs: Bearer auth, replies from a queue the test fills (or a short echo of
//! the caller's last message), exact `data: …\n\n` framing with a role delta, content deltas,
//! fragmented tool-call arguments, a finish chunk, a usage chunk and `data: [DONE]`
//! (providers.md §3 and its fake-server checklist).
//!
//! It records every request ([`SeenRequest`]: model, `messages`, tool names) and how each
//! stream ended ([`StreamEnd`]) — in particular whether the client went away early, observed
//! by a guard inside the streaming body whose `Drop` runs when hyper drops the body.
//! Faults, one per request: `Status(code)` (OpenAI error JSON; 429 carries `retry-after: 0`),
//! `DisconnectAfter(n)` (n events, then the body ends with an error), `Malformed` (one
//! `data: {broken` event after the role delta, then carry on), `Stall(d)` (nothing at all for
//! `d`), `ErrorAfter(n)` (n events, then an `event: error` with OpenAI's error JSON, and the
//! body ends). It must only ever listen on 127.0.0.1 and never answers without the configured
//! key.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::mpsc;

mod wire;

use self::wire::{default_reply, error, sse_events};
use super::{FakeServer, Fault, Faults, Observed};

/// One scripted reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FakeReply {
    /// Content pieces, each streamed as its own delta.
    pub content: Vec<String>,
    /// Tool calls `(name, JSON arguments)` after the content (parallel calls: index 0, 1, …);
    /// each one's arguments are split over several fragments.
    pub tool_calls: Vec<(String, String)>,
    /// Pause between chunks, ms.
    pub delay_ms: u64,
}

impl FakeReply {
    /// `text` streamed word by word (each word keeps its following space).
    pub fn text(text: &str) -> Self {
        Self {
            content: text.split_inclusive(' ').map(str::to_string).collect(),
            ..Self::default()
        }
    }

    /// This reply with (another) tool call after the content.
    pub fn with_tool(mut self, name: &str, json_args: &str) -> Self {
        self.tool_calls
            .push((name.to_string(), json_args.to_string()));
        self
    }

    /// This reply with `delay_ms` between chunks.
    pub fn with_delay(mut self, delay_ms: u64) -> Self {
        self.delay_ms = delay_ms;
        self
    }
}

/// A request the fake received (any auth, any fault).
#[derive(Debug, Clone, PartialEq)]
pub struct SeenRequest {
    pub model: String,
    /// The request's `messages` array, as sent.
    pub messages: Vec<Value>,
    /// Names of the offered tools.
    pub tools: Vec<String>,
    /// Whether the Bearer key matched.
    pub authorized: bool,
}

/// How a streamed (or stalled) response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// Everything up to `[DONE]` was handed to the connection.
    Completed,
    /// The client went away first (response dropped before the end).
    Cancelled,
    /// A `DisconnectAfter` fault cut it.
    Disconnected,
}

/// `streams` entry: which request (index into `requests`) ended how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOutcome {
    pub request: usize,
    pub end: StreamEnd,
}

struct Shared {
    api_key: String,
    faults: Faults,
    requests: Observed<SeenRequest>,
    streams: Observed<StreamOutcome>,
    replies: Mutex<VecDeque<FakeReply>>,
    counter: Mutex<usize>,
}

/// The running fake; stops when dropped.
pub struct FakeOpenAiChat {
    pub server: FakeServer,
    /// Faults for the next requests, one each.
    pub faults: Faults,
    /// Every request, in arrival order.
    pub requests: Observed<SeenRequest>,
    /// How each stream ended, in the order they ended.
    pub streams: Observed<StreamOutcome>,
    shared: Arc<Shared>,
}

impl FakeOpenAiChat {
    /// Serve on a free 127.0.0.1 port, accepting `Authorization: Bearer {api_key}`.
    pub async fn start(api_key: &str) -> std::io::Result<Self> {
        Self::start_on(api_key, 0).await
    }

    /// Serve on 127.0.0.1:`port` (0: any free port).
    pub async fn start_on(api_key: &str, port: u16) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            api_key: api_key.to_string(),
            faults: Faults::default(),
            requests: Observed::default(),
            streams: Observed::default(),
            replies: Mutex::new(VecDeque::new()),
            counter: Mutex::new(0),
        });
        let router = Router::new()
            .route("/v1/chat/completions", post(chat))
            .fallback(|| async { error(404, "Unknown request URL.") })
            .with_state(shared.clone());
        Ok(Self {
            server: FakeServer::start(router, port).await?,
            faults: shared.faults.clone(),
            requests: shared.requests.clone(),
            streams: shared.streams.clone(),
            shared,
        })
    }

    /// The base URL clients use: `http://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> String {
        format!("{}/v1", self.server.http_url())
    }

    /// Queue the reply for the next request that streams.
    pub fn push_reply(&self, reply: FakeReply) {
        if let Ok(mut q) = self.shared.replies.lock() {
            q.push_back(reply);
        }
    }

    /// Wait (up to `within`) until request number `request` has ended; `None` if it has not.
    pub async fn stream_end(&self, request: usize, within: Duration) -> Option<StreamEnd> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let found = self
                .streams
                .snapshot()
                .into_iter()
                .find(|o| o.request == request);
            if let Some(o) = found {
                return Some(o.end);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn chat(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "We could not parse the JSON body of your request.");
    };
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", s.api_key));
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let tools = req["tools"].as_array().into_iter().flatten();
    let tools = tools
        .filter_map(|t| t["function"]["name"].as_str().map(String::from))
        .collect();
    let model = req["model"].as_str().unwrap_or("").to_string();
    let seen = SeenRequest {
        model: model.clone(),
        messages: messages.clone(),
        tools,
        authorized,
    };
    let index = match s.counter.lock() {
        Ok(mut n) => {
            s.requests.push(seen); // Under the lock: `index` is the position in `requests`.
            *n += 1;
            *n - 1
        }
        Err(_) => return error(500, "poisoned"),
    };
    let fault = s.faults.next();
    if let Some(Fault::Status(code)) = fault {
        return error(code, "Injected fault.");
    }
    if !authorized {
        return error(401, "Incorrect API key provided.");
    }
    if messages.is_empty() || req["stream"] != json!(true) {
        return error(400, "This fake needs `messages` and `stream: true`.");
    }
    let guard = StreamGuard {
        request: index,
        streams: s.streams.clone(),
        ended: false,
    };
    if let Some(Fault::Stall(d)) = fault {
        tokio::time::sleep(d).await; // Dropped here if the client goes away: `Cancelled`.
    }
    let reply = s.replies.lock().ok().and_then(|mut q| q.pop_front());
    let reply = reply.unwrap_or_else(|| default_reply(&messages));
    let usage = req["stream_options"]["include_usage"] == json!(true);
    let mut events = sse_events(
        &format!("chatcmpl-fake{index}"),
        &model,
        &reply,
        usage,
        &messages,
    );
    if fault == Some(Fault::Malformed) {
        events.insert(1, "data: {broken\n\n".to_string());
    }
    if let Some(Fault::ErrorAfter(n)) = fault {
        events.truncate(n);
        events.push(wire::error_event());
    }
    let cut = match fault {
        Some(Fault::DisconnectAfter(n)) => Some(n.min(events.len())),
        _ => None,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(produce(
        events,
        cut,
        Duration::from_millis(reply.delay_ms),
        tx,
    ));
    let body = futures_util::stream::unfold((rx, guard), |(mut rx, mut guard)| async move {
        match rx.recv().await {
            Some(Ok(bytes)) => Some((Ok(bytes), (rx, guard))),
            Some(Err(e)) => {
                guard.end(StreamEnd::Disconnected);
                Some((Err(e), (rx, guard)))
            }
            None => {
                guard.end(StreamEnd::Completed);
                None
            }
        }
    });
    (
        [
            (
                header::CONTENT_TYPE,
                "text/event-stream; charset=utf-8".to_string(),
            ),
            (header::CACHE_CONTROL, "no-cache".to_string()),
            (
                header::HeaderName::from_static("x-request-id"),
                format!("req_fake{index}"),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Hands the events to the body one by one; stops when the body is gone.
async fn produce(
    events: Vec<String>,
    cut: Option<usize>,
    delay: Duration,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    for (i, event) in events.into_iter().enumerate() {
        if cut == Some(i) {
            break;
        }
        if i > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if tx.send(Ok(Bytes::from(event))).await.is_err() {
            return;
        }
    }
    if cut.is_some() {
        let err = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected disconnect");
        let _ = tx.send(Err(err)).await;
    }
}

/// Records how a stream ended; dropped before `end`, it records `Cancelled`.
struct StreamGuard {
    request: usize,
    streams: Observed<StreamOutcome>,
    ended: bool,
}

impl StreamGuard {
    fn end(&mut self, end: StreamEnd) {
        if !std::mem::replace(&mut self.ended, true) {
            self.streams.push(StreamOutcome {
                request: self.request,
                end,
            });
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.end(StreamEnd::Cancelled);
    }
}

#[cfg(test)]
mod tests;
