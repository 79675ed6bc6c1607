//! Deepgram live speech-to-text over a WebSocket (shared/reference/providers.md §1): one socket
//! per call, the caller's 8 kHz μ-law forwarded as is, `Results` / `SpeechStarted` /
//! `UtteranceEnd` turned into [`SttEvent`]s.
//!
//! The per-call task also keeps the socket alive while the caller is silent (`KeepAlive`),
//! ends gracefully (`CloseStream`, then the remaining results, then Deepgram's close 1000,
//! waiting at most [`CLOSE_WAIT`]) when the session drops its audio sender, and survives
//! mid-stream failures: it reconnects with exponential backoff and jitter, within a failure
//! budget per time window ([`backoff`]), and replays the buffered audio Deepgram had not yet
//! finalised. A spent budget ends the stream (`Error { reconnecting: false }`).
//!
//! Replay rule: every final `Results` confirms the audio up to its `start + duration`, and the
//! engine may settle audio it has already answered ([`super::Settled`]); after a reconnect the
//! task replays every buffered frame that ends after the later of the two points (the whole
//! buffer when nothing was finalised). At most one partly confirmed frame is sent twice, so a
//! word may rarely repeat; losing speech is worse. Audio older than `replay_ms` is gone.
//!
//! What it must not do: block the session (audio is drained also while disconnected),
//! allocate per frame beyond the `Bytes` it is handed, send a zero-length binary frame, or
//! log the API key.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{AUDIO_QUEUE, Settled, SpeechToText, SttEvent, SttStream};
use crate::config::SttConfig;
use crate::provider::{CallIds, ProviderError, Secret, count_error};

pub mod backoff;
mod replay;
#[cfg(test)]
mod tests;
mod wire;

use backoff::Backoff;
use replay::ReplayBuffer;
use wire::{CLOSE_STREAM, KEEPALIVE, Ws};

const PROVIDER: &str = "deepgram";
/// Events the session has not read yet (a handful per second at most).
const EVENT_QUEUE: usize = 64;
/// μ-law at 8 kHz: one byte per sample.
const BYTES_PER_SEC: f64 = 8000.0;
/// How long to wait for the last results and the close after `CloseStream`.
pub const CLOSE_WAIT: Duration = Duration::from_millis(1500);

/// The Deepgram live recogniser; cheap to share, one task per [`SpeechToText::start`].
#[derive(Debug, Clone)]
pub struct Deepgram {
    opts: Arc<Options>,
}

#[derive(Debug, Clone)]
struct Options {
    url: String,
    api_key: Secret,
    keepalive: Option<Duration>,
    replay_bytes: usize,
    connect_timeout: Duration,
    max_reconnects: u32,
}

impl Deepgram {
    /// A recogniser for `cfg` (`base_url`, model, endpointing, keep-alive, replay, reconnects:
    /// `max_reconnects` failures allowed per [`backoff::WINDOW`]) authenticating with
    /// `api_key`. `keepalive_secs = 0` disables keep-alives.
    pub fn new(cfg: &SttConfig, api_key: Secret) -> Self {
        let sep = if cfg.base_url.contains('?') { '&' } else { '?' };
        let url = format!(
            "{}{sep}model={}&encoding=mulaw&sample_rate=8000&channels=1&interim_results=true\
             &endpointing={}&utterance_end_ms={}&vad_events=true&smart_format=true",
            cfg.base_url, cfg.model, cfg.endpointing_ms, cfg.utterance_end_ms
        );
        let keepalive = (cfg.keepalive_secs > 0).then(|| Duration::from_secs(cfg.keepalive_secs));
        let opts = Options {
            url,
            api_key,
            keepalive,
            replay_bytes: cfg.replay_ms as usize * 8,
            connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
            max_reconnects: cfg.max_reconnects,
        };
        Self {
            opts: Arc::new(opts),
        }
    }

    /// Send `KeepAlive` after `every` without audio instead of `keepalive_secs` (tests).
    pub fn with_keepalive(mut self, every: Duration) -> Self {
        Arc::make_mut(&mut self.opts).keepalive = Some(every);
        self
    }
}

impl SpeechToText for Deepgram {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn start(&self, call: CallIds, cancel: CancellationToken) -> SttStream {
        let (audio_tx, audio) = mpsc::channel(AUDIO_QUEUE);
        let (events, events_rx) = mpsc::channel(EVENT_QUEUE);
        let settled = Settled::default();
        let task = Task {
            buffer: ReplayBuffer::new(self.opts.replay_bytes),
            backoff: Backoff::new(self.opts.max_reconnects, backoff::seed(&call.call_sid)),
            opts: self.opts.clone(),
            call,
            cancel,
            audio,
            events,
            audio_done: false,
            confirmed: 0,
            settled: settled.clone(),
            warned_malformed: false,
        };
        tokio::spawn(task.run());
        SttStream {
            audio: audio_tx,
            events: events_rx,
            settled,
        }
    }
}

/// How one connection (or the whole task) ended.
enum Outcome {
    /// Closed as intended, cancelled, or the session went away: stop.
    Finished,
    Failed(ProviderError),
}

/// One call's transcription, across reconnects.
struct Task {
    opts: Arc<Options>,
    call: CallIds,
    cancel: CancellationToken,
    audio: mpsc::Receiver<Bytes>,
    events: mpsc::Sender<SttEvent>,
    buffer: ReplayBuffer,
    /// The session dropped its audio sender.
    audio_done: bool,
    /// Offset up to which Deepgram has returned final results.
    confirmed: u64,
    /// Offset up to which the engine has answered (no replay needed).
    settled: Settled,
    backoff: Backoff,
    warned_malformed: bool,
}

impl Task {
    async fn run(mut self) {
        let mut reconnected = false;
        loop {
            let connected = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return,
                r = accept_audio_while(
                    &mut self.audio, &mut self.buffer, &mut self.audio_done,
                    wire::connect(&self.opts.url, &self.opts.api_key, self.opts.connect_timeout),
                ) => r,
            };
            let mut connected_at = None;
            let outcome = match connected {
                Ok(ws) => {
                    connected_at = Some(Instant::now());
                    self.stream(ws, reconnected).await
                }
                Err(e) => Outcome::Failed(e),
            };
            let Outcome::Failed(error) = outcome else {
                return;
            };
            count_error(PROVIDER, &error);
            let pending = self.buffer.replay_from(self.replay_point()) < self.buffer.end;
            let wanted = error.is_transient() && (pending || !self.audio_done);
            let delay = if wanted {
                self.backoff.failed(connected_at, Instant::now())
            } else {
                None
            };
            warn!(
                call_sid = %self.call.call_sid, stream_sid = %self.call.stream_sid,
                provider = PROVIDER, kind = error.kind(), %error,
                failures_in_window = self.backoff.recent_failures(),
                retry_in_ms = delay.map(|d| d.as_millis() as u64),
                "stt stream failed"
            );
            let reconnecting = delay.is_some();
            if !self
                .emit(SttEvent::Error {
                    error,
                    reconnecting,
                })
                .await
            {
                return;
            }
            let Some(delay) = delay else {
                return;
            };
            reconnected = true;
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return,
                _ = accept_audio_while(
                    &mut self.audio, &mut self.buffer, &mut self.audio_done, sleep(delay),
                ) => {}
            }
        }
    }

    /// Where a replay starts from: after the audio Deepgram finalised or the engine settled.
    fn replay_point(&self) -> u64 {
        self.confirmed.max(self.settled.get().min(self.buffer.end))
    }

    /// Run one connection: replay, then forward audio and results until it ends.
    async fn stream(&mut self, ws: Ws, reconnected: bool) -> Outcome {
        let (mut sink, mut source) = ws.split();
        let base = self.buffer.replay_from(self.replay_point());
        let mut replayed = 0usize;
        for frame in self.buffer.since(base) {
            replayed += frame.len();
            if let Err(e) = sink.feed(Message::Binary(frame.clone())).await {
                return failed(e);
            }
        }
        if let Err(e) = sink.flush().await {
            return failed(e);
        }
        if reconnected {
            info!(
                call_sid = %self.call.call_sid, stream_sid = %self.call.stream_sid,
                provider = PROVIDER, replayed_ms = replayed / 8, "stt reconnected"
            );
            if !self.emit(SttEvent::Reconnected).await {
                return Outcome::Finished;
            }
        }
        let mut close_by = None;
        if self.audio_done {
            if let Err(e) = sink.send(Message::text(CLOSE_STREAM)).await {
                return failed(e);
            }
            close_by = Some(Instant::now() + CLOSE_WAIT);
        }
        let mut last_sent = Instant::now();
        loop {
            let keepalive = self.opts.keepalive.filter(|_| !self.audio_done);
            let keepalive_at = last_sent + keepalive.unwrap_or(CLOSE_WAIT);
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => {
                    let _ = timeout(Duration::from_millis(100), sink.send(Message::Close(None))).await;
                    return Outcome::Finished;
                }
                msg = source.next() => {
                    let msg = match msg {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => return failed(e),
                        None => return disconnected("connection dropped without a close frame"),
                    };
                    match msg {
                        Message::Text(text) => {
                            let listening = self.on_text(&text, base).await;
                            if !listening {
                                let _ = timeout(Duration::from_millis(100), sink.send(Message::Close(None))).await;
                                return Outcome::Finished;
                            }
                        }
                        Message::Close(frame) => {
                            let (code, reason) = frame
                                .map(|f| (u16::from(f.code), f.reason.to_string()))
                                .unwrap_or((1005, String::new()));
                            if close_by.is_some() && code == 1000 {
                                debug!(call_sid = %self.call.call_sid, "stt stream closed");
                                return Outcome::Finished;
                            }
                            return disconnected(&format!("closed {code} {reason}"));
                        }
                        _ => {}
                    }
                }
                frame = self.audio.recv(), if !self.audio_done => {
                    let sent = match take_frame(frame, &mut self.buffer, &mut self.audio_done) {
                        Some(f) => sink.send(Message::Binary(f)).await,
                        None if self.audio_done => {
                            close_by = Some(Instant::now() + CLOSE_WAIT);
                            sink.send(Message::text(CLOSE_STREAM)).await
                        }
                        None => continue,
                    };
                    if let Err(e) = sent {
                        return failed(e);
                    }
                    last_sent = Instant::now();
                }
                _ = sleep_until(keepalive_at), if keepalive.is_some() => {
                    if let Err(e) = sink.send(Message::text(KEEPALIVE)).await {
                        return failed(e);
                    }
                    last_sent = Instant::now();
                }
                _ = sleep_until(close_by.unwrap_or(last_sent)), if close_by.is_some() => {
                    debug!(call_sid = %self.call.call_sid, "stt close timed out after CloseStream");
                    return Outcome::Finished;
                }
            }
        }
    }

    /// Handle one text message of a connection whose audio started at offset `base`;
    /// false when the session has gone. A malformed message is skipped, counted and reported.
    async fn on_text(&mut self, text: &str, base: u64) -> bool {
        match wire::parse(text) {
            Ok(parsed) => {
                if let Some(end) = parsed.final_end {
                    let end = base + (end.max(0.0) * BYTES_PER_SEC) as u64;
                    self.confirmed = self.confirmed.max(end.min(self.buffer.end));
                }
                match parsed.event {
                    Some(event) => self.emit(event).await,
                    None => true,
                }
            }
            Err(error) => {
                count_error(PROVIDER, &error);
                if !self.warned_malformed {
                    self.warned_malformed = true;
                    warn!(
                        call_sid = %self.call.call_sid, stream_sid = %self.call.stream_sid,
                        provider = PROVIDER, %error, "skipping malformed stt message"
                    );
                }
                self.emit(SttEvent::Warning(error)).await
            }
        }
    }

    /// Send an event to the session; false when it has stopped listening.
    async fn emit(&self, event: SttEvent) -> bool {
        self.events.send(event).await.is_ok()
    }
}

/// Run `work` while buffering whatever audio the session sends meanwhile.
async fn accept_audio_while<T>(
    audio: &mut mpsc::Receiver<Bytes>,
    buffer: &mut ReplayBuffer,
    audio_done: &mut bool,
    work: impl Future<Output = T>,
) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            frame = audio.recv(), if !*audio_done => {
                take_frame(frame, buffer, audio_done);
            }
        }
    }
}

/// Buffer a received frame and return it to send; `None` for an empty frame or the end.
fn take_frame(frame: Option<Bytes>, buffer: &mut ReplayBuffer, done: &mut bool) -> Option<Bytes> {
    match frame {
        None => {
            *done = true;
            None
        }
        Some(f) if f.is_empty() => None,
        Some(f) => {
            buffer.push(f.clone());
            Some(f)
        }
    }
}

fn failed(e: tungstenite::Error) -> Outcome {
    Outcome::Failed(ProviderError::Disconnected(e.to_string()))
}

fn disconnected(why: &str) -> Outcome {
    Outcome::Failed(ProviderError::Disconnected(why.to_string()))
}
