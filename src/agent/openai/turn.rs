//! One caller turn against the configured servers: request, retries before streaming,
//! fallback, and streaming the reply to the session (policy in the parent module's doc).
//! Runs on its own task; dropping it drops the HTTP response (that is how cancellation works).

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout, timeout_at};
use tracing::warn;

use super::wire::{ChatMessage, ReplyDecoder, SseEvent, SseParser, request_body};
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
    /// Events already reached the session (no fallback: the caller heard this server).
    emitted: bool,
    /// A 200 stream had started (never retried).
    streamed: bool,
    retry_after: Option<Duration>,
}

impl Stop {
    fn before_stream(err: ProviderError, retry_after: Option<Duration>) -> Self {
        Stop::Failed(Failure {
            err,
            emitted: false,
            streamed: false,
            retry_after,
        })
    }

    fn in_stream(err: ProviderError, emitted: bool) -> Self {
        Stop::Failed(Failure {
            err,
            emitted,
            streamed: true,
            retry_after: None,
        })
    }
}

/// One caller turn's request, run on its own task.
pub(super) struct Turn {
    pub inner: Arc<Inner>,
    pub call_sid: String,
    pub messages: Vec<ChatMessage>,
    pub tx: mpsc::Sender<AgentEvent>,
}

impl Turn {
    /// Primary (with retries), then the fallback if nothing was heard yet; `Failed` if all fail.
    pub async fn run(self) {
        let mut last_err: Option<ProviderError> = None;
        let mut answered = None;
        for server in &self.inner.servers {
            if let Some(err) = &last_err {
                warn!(call_sid = self.call_sid, server = server.label, model = server.model,
                    after = %err, "agent failing over");
            }
            match self.run_server(server).await {
                Ok(response) => {
                    answered = Some(response);
                    break;
                }
                Err(Stop::Gone) => return,
                Err(Stop::Failed(f)) => {
                    last_err = Some(f.err);
                    if f.emitted {
                        break; // The caller already heard part of this server's reply.
                    }
                }
            }
        }
        match (answered, last_err) {
            (Some(mut response), _) => {
                drop(self.tx); // The channel ends now; finishing the body is our business.
                let drain = async { while let Ok(Some(_)) = response.chunk().await {} };
                let _ = timeout(DRAIN, drain).await;
            }
            (None, Some(err)) => {
                let _ = self.tx.send(AgentEvent::Failed(err)).await;
            }
            (None, None) => {}
        }
    }

    /// Attempts against one server, retrying transient failures before streaming starts.
    async fn run_server(&self, server: &Endpoint) -> Result<reqwest::Response, Stop> {
        let mut attempt = 0;
        loop {
            let f = match self.attempt(server).await {
                Err(Stop::Failed(f)) => f,
                other => return other,
            };
            count_error(PROVIDER, &f.err);
            warn!(call_sid = self.call_sid, server = server.label, model = server.model, attempt,
                kind = f.err.kind(), error = %f.err, "agent request failed");
            if f.streamed || attempt >= MAX_RETRIES || !retryable(&f.err) {
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
    /// response (after `Done`) so the caller can finish reading it.
    async fn attempt(&self, server: &Endpoint) -> Result<reqwest::Response, Stop> {
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
        let mut emitted = false;
        loop {
            let until = match decoder.got_token() {
                true => Instant::now() + self.inner.timeout,
                false => deadline,
            };
            let fail = move |err| Stop::in_stream(err, emitted);
            let bytes = match timeout_at(until, response.chunk()).await {
                Err(_) => return Err(fail(timed_out())),
                Ok(Err(e)) => return Err(fail(ProviderError::Disconnected(describe(e)))),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(bytes))) => bytes,
            };
            for event in parser.push(&bytes).map_err(fail)? {
                emitted |= self.forward(&mut decoder, event, emitted).await?;
            }
            if decoder.is_done() {
                break;
            }
        }
        if let Some(event) = parser.finish() {
            emitted |= self.forward(&mut decoder, event, emitted).await?;
        }
        let fail = move |err| Stop::in_stream(err, emitted);
        if !decoder.is_complete() {
            let err = ProviderError::Disconnected("stream ended before the reply finished".into());
            return Err(fail(err));
        }
        let (events, unknown) = decoder.finish().map_err(fail)?;
        for tool in unknown {
            warn!(call_sid = self.call_sid, tool, "unknown tool call ignored");
        }
        for out in events {
            self.send(out).await?;
        }
        self.send(AgentEvent::Done).await?;
        Ok(response)
    }

    /// Decode one event and pass its pieces on; whether any were sent.
    async fn forward(
        &self,
        decoder: &mut ReplyDecoder,
        event: SseEvent,
        emitted: bool,
    ) -> Result<bool, Stop> {
        let pieces = decoder
            .event(event)
            .map_err(|e| Stop::in_stream(e, emitted))?;
        let any = !pieces.is_empty();
        for piece in pieces {
            self.send(piece).await?;
        }
        Ok(any)
    }

    async fn send(&self, event: AgentEvent) -> Result<(), Stop> {
        self.tx.send(event).await.map_err(|_| Stop::Gone)
    }
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
