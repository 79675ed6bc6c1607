//! One caller turn against the configured servers: request, retries before streaming, one
//! resume of a stream that broke, fallback, and streaming the reply to the session (policy in
//! the parent module's doc). Runs on its own task; dropping it drops the HTTP response (that
//! is how cancellation works).
//!
//! Every failed attempt is counted once and reported once to the session, as
//! [`AgentEvent::Warning`]; the reply then goes on (retry, resume, fallback) or ends with
//! `Failed`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout, timeout_at};
use tracing::{debug, warn};

use super::history::ReplyTools;
use super::wire::{ChatMessage, ReplyDecoder, SseEvent, SseParser, ToolUse, request_body};
use super::{Endpoint, Inner, MAX_RETRIES, PROVIDER};
use crate::agent::AgentEvent;
use crate::provider::{ProviderError, count_error};

const MAX_BACKOFF: Duration = Duration::from_secs(8);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// After `[DONE]`, how long to wait for the body's end so the connection can be reused.
const DRAIN: Duration = Duration::from_secs(1);

/// Why an attempt stopped early.
enum Stop {
    /// The session dropped the receiver: nobody listens.
    Gone,
    Failed(Failure),
}

struct Failure {
    err: ProviderError,
    /// A 200 stream had started.
    streamed: bool,
    retry_after: Option<Duration>,
    /// A resumed stream said something else than the caller already heard: not a provider
    /// fault (not counted), but the reply cannot go on.
    diverged: bool,
}

impl Stop {
    fn before_stream(err: ProviderError, retry_after: Option<Duration>) -> Self {
        Stop::Failed(Failure {
            err,
            streamed: false,
            retry_after,
            diverged: false,
        })
    }

    fn in_stream(err: ProviderError) -> Self {
        Stop::Failed(Failure {
            err,
            streamed: true,
            retry_after: None,
            diverged: false,
        })
    }

    fn diverged() -> Self {
        Stop::Failed(Failure {
            err: ProviderError::Disconnected(
                "the resumed reply differs from what the caller already heard".into(),
            ),
            streamed: true,
            retry_after: None,
            diverged: true,
        })
    }
}

/// What the session has been sent of the reply, across attempts.
#[derive(Debug, Default)]
struct Said {
    pieces: Vec<String>,
    /// How many of `pieces` the current attempt has said again (not sent twice).
    repeated: usize,
}

/// One caller turn's request, run on its own task.
pub(super) struct Turn {
    pub inner: Arc<Inner>,
    pub call_sid: String,
    pub messages: Vec<ChatMessage>,
    pub tx: mpsc::Sender<AgentEvent>,
    /// Where the reply's tool calls are left for the history.
    pub tools: Arc<Mutex<ReplyTools>>,
}

impl Turn {
    /// The reply, then (once) a follow-up request when it only recorded an outcome: a reply
    /// of nothing but `set_outcome` calls would leave the caller in silence, so their results
    /// go back to the model, whose next reply is what the caller hears. Then `Done`.
    pub async fn run(mut self) {
        let mut tools = ReplyTools::default();
        loop {
            let Some((response, calls, said_any)) = self.reply().await else {
                return;
            };
            let outcome_only = !calls.is_empty() && calls.iter().all(|c| c.name == "set_outcome");
            if !said_any && outcome_only && tools.answered.is_empty() {
                debug!(
                    call_sid = self.call_sid,
                    "reply only set an outcome; asking again"
                );
                drain(response).await;
                let step = ReplyTools {
                    answered: Vec::new(),
                    last: calls.clone(),
                };
                self.messages.extend(step.messages(None, false));
                tools.answered = calls;
                self.keep(&tools);
                continue;
            }
            tools.last = calls;
            self.keep(&tools);
            if self.tx.send(AgentEvent::Done).await.is_err() {
                return;
            }
            drop(self.tx); // The channel ends now; finishing the body is our business.
            drain(response).await;
            return;
        }
    }

    /// Leave the reply's tool calls for the history.
    fn keep(&self, tools: &ReplyTools) {
        if let Ok(mut slot) = self.tools.lock() {
            *slot = tools.clone();
        }
    }

    /// One request's reply: primary (with retries and one resume), then the fallback if
    /// nothing was heard yet. `(response, its tool calls, whether it said anything)`; `None`
    /// when the session went away or every server failed (then `Failed` was sent).
    async fn reply(&self) -> Option<(reqwest::Response, Vec<ToolUse>, bool)> {
        let mut said = Said::default();
        let mut last_err: Option<ProviderError> = None;
        for server in &self.inner.servers {
            if !said.pieces.is_empty() {
                break; // The caller already heard part of the previous server's reply.
            }
            if let Some(err) = &last_err {
                warn!(call_sid = self.call_sid, server = server.label, model = server.model,
                    after = %err, "agent failing over");
            }
            match self.run_server(server, &mut said).await {
                Ok((response, calls)) => return Some((response, calls, !said.pieces.is_empty())),
                Err(Stop::Gone) => return None,
                Err(Stop::Failed(f)) => last_err = Some(f.err),
            }
        }
        if let Some(err) = last_err {
            let _ = self.tx.send(AgentEvent::Failed(err)).await;
        }
        None
    }

    /// Attempts against one server: transient failures before streaming are retried; a
    /// stream that broke is resumed once (what was already said is not said again).
    async fn run_server(
        &self,
        server: &Endpoint,
        said: &mut Said,
    ) -> Result<(reqwest::Response, Vec<ToolUse>), Stop> {
        let mut attempt = 0;
        let mut resumed = false;
        loop {
            said.repeated = 0;
            let f = match self.attempt(server, said).await {
                Err(Stop::Failed(f)) => f,
                other => return other,
            };
            if f.diverged {
                warn!(call_sid = self.call_sid, server = server.label, error = %f.err,
                    "agent reply cannot be resumed");
                return Err(Stop::Failed(f));
            }
            count_error(PROVIDER, &f.err);
            let resume = f.streamed && !resumed && resumable(&f.err);
            let retry = !f.streamed && attempt < MAX_RETRIES && retryable(&f.err);
            warn!(call_sid = self.call_sid, server = server.label, model = server.model, attempt,
                kind = f.err.kind(), error = %f.err, retry, resume, "agent request failed");
            self.send(AgentEvent::Warning(f.err.clone())).await?;
            if resume {
                resumed = true;
                continue;
            }
            if !retry {
                return Err(Stop::Failed(f));
            }
            let backoff = (self.inner.backoff_base * 2u32.pow(attempt)).min(MAX_BACKOFF);
            sleep(
                f.retry_after
                    .filter(|d| *d <= MAX_RETRY_AFTER)
                    .unwrap_or(backoff),
            )
            .await;
            attempt += 1;
        }
    }

    /// One request: send, check the status, stream the reply to the session. Returns the
    /// response (the reply complete, `Done` not yet sent) so the caller can finish reading
    /// it, and the reply's tool calls.
    async fn attempt(
        &self,
        server: &Endpoint,
        said: &mut Said,
    ) -> Result<(reqwest::Response, Vec<ToolUse>), Stop> {
        let deadline = Instant::now() + self.inner.timeout;
        let timed_out =
            || ProviderError::Timeout(format!("no reply within {:?}", self.inner.timeout));
        let request = self
            .inner
            .client
            .post(&server.url)
            .bearer_auth(server.key.expose())
            .json(&request_body(&server.model, &self.messages))
            .send();
        let mut response = match timeout_at(deadline, request).await {
            Err(_) => return Err(Stop::before_stream(timed_out(), None)),
            Ok(Err(e)) if e.is_timeout() => return Err(Stop::before_stream(timed_out(), None)),
            Ok(Err(e)) => {
                return Err(Stop::before_stream(
                    ProviderError::Connect(describe(e)),
                    None,
                ));
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            let body = timeout_at(deadline, response.text()).await;
            let body = body.ok().and_then(Result::ok).unwrap_or_default();
            let err = ProviderError::from_status(status.as_u16(), &body);
            return Err(Stop::before_stream(err, retry_after));
        }
        let mut parser = SseParser::default();
        let mut decoder = ReplyDecoder::default();
        loop {
            let until = match decoder.got_token() {
                true => Instant::now() + self.inner.timeout,
                false => deadline,
            };
            let bytes = match timeout_at(until, response.chunk()).await {
                Err(_) => return Err(Stop::in_stream(timed_out())),
                Ok(Err(e)) => {
                    return Err(Stop::in_stream(ProviderError::Disconnected(describe(e))));
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(bytes))) => bytes,
            };
            for event in parser.push(&bytes).map_err(Stop::in_stream)? {
                self.forward(&mut decoder, event, said).await?;
            }
            if decoder.is_done() {
                break;
            }
        }
        if let Some(event) = parser.finish() {
            self.forward(&mut decoder, event, said).await?;
        }
        if !decoder.is_complete() {
            let err = ProviderError::Disconnected("stream ended before the reply finished".into());
            return Err(Stop::in_stream(err));
        }
        let tools = decoder.tool_uses();
        let done = decoder.finish().map_err(Stop::in_stream)?;
        for tool in done.unknown {
            warn!(call_sid = self.call_sid, tool, "unknown tool call ignored");
        }
        for err in done.malformed {
            count_error(PROVIDER, &err);
            warn!(call_sid = self.call_sid, error = %err, "tool call skipped");
            self.send(AgentEvent::Warning(err)).await?;
        }
        for out in done.events {
            self.piece(out, said).await?;
        }
        if said.repeated < said.pieces.len() {
            return Err(Stop::diverged()); // The resumed reply is shorter than what was said.
        }
        Ok((response, tools))
    }

    /// Decode one event and pass its pieces on. One malformed event is skipped (counted and
    /// reported), like the ElevenLabs client does: losing a few words beats losing the reply.
    async fn forward(
        &self,
        decoder: &mut ReplyDecoder,
        event: SseEvent,
        said: &mut Said,
    ) -> Result<(), Stop> {
        match decoder.event(event) {
            Ok(pieces) => {
                for piece in pieces {
                    self.piece(piece, said).await?;
                }
                Ok(())
            }
            Err(err @ ProviderError::Malformed(_)) => {
                count_error(PROVIDER, &err);
                warn!(call_sid = self.call_sid, error = %err, "skipping a malformed agent event");
                self.send(AgentEvent::Warning(err)).await
            }
            Err(err) => Err(Stop::in_stream(err)),
        }
    }

    /// Send one piece of the reply, unless a resumed stream is saying again what the caller
    /// already heard; a resumed stream that says something else cannot go on.
    async fn piece(&self, event: AgentEvent, said: &mut Said) -> Result<(), Stop> {
        let AgentEvent::Text(text) = event else {
            return self.send(event).await;
        };
        if let Some(heard) = said.pieces.get(said.repeated) {
            if *heard != text {
                return Err(Stop::diverged());
            }
            said.repeated += 1;
            return Ok(());
        }
        said.pieces.push(text.clone());
        said.repeated += 1;
        self.send(AgentEvent::Text(text)).await
    }

    async fn send(&self, event: AgentEvent) -> Result<(), Stop> {
        self.tx.send(event).await.map_err(|_| Stop::Gone)
    }
}

/// Finish reading a complete reply's body (bounded) so the connection can be reused.
async fn drain(mut response: reqwest::Response) {
    let body = async { while let Ok(Some(_)) = response.chunk().await {} };
    let _ = timeout(DRAIN, body).await;
}

/// A broken stream worth one resume: a dropped connection or an in-stream server error (not
/// a timeout: waiting again would only double the silence).
fn resumable(err: &ProviderError) -> bool {
    matches!(
        err,
        ProviderError::Disconnected(_) | ProviderError::Server { .. }
    )
}

/// A reqwest error with its causes (its Display alone hides them), without the URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Worth another attempt at the same server (before any stream started).
pub(super) fn retryable(err: &ProviderError) -> bool {
    match err {
        ProviderError::Connect(_) | ProviderError::Server { .. } => true,
        ProviderError::RateLimited(body) => !body.contains("insufficient_quota"),
        _ => false,
    }
}

/// `retry-after-ms` or `retry-after` (seconds; HTTP dates are not honoured).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    let secs = get("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| get("retry-after"))?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}
