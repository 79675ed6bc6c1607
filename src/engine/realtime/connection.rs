//! A running Realtime connection: one task per socket moving typed events between two
//! bounded channels and the socket until it ends, with a classified [`ProviderError`] as the
//! last event ([`ServerEvent::Closed`]).
//!
//! Bounded both ways: caller audio is never waited for ([`RealtimeSender::append_audio`]
//! drops a frame when the send queue is full, and counts it); control events wait for queue
//! space; server events wait for the engine to read them (so a stalled engine stalls the
//! socket, not memory). It must not re-encode audio or decide what a failure means for the
//! call.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use metrics::counter;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use super::client::{Ws, closed, dropped};
use super::config::ApiShape;
use super::wire::server::{AcceptedSession, Closed, ServerEvent, parse};
use super::wire::{Base64Audio, ClientEvent};
use super::{AUDIO_DROPPED, PROVIDER};
use crate::provider::{CallIds, ProviderError, count_error};

/// Client events waiting for the socket: about 5 s of 20 ms audio frames.
pub const OUT_QUEUE: usize = 256;
/// Server events the engine has not read yet (a response is ~50–100 events).
pub const EVENT_QUEUE: usize = 256;
/// How long closing waits for the server's close frame.
pub(super) const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// Why sending a client event did not work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The outgoing queue is full (the socket is stalled); the event was dropped.
    #[error("realtime send queue full")]
    Full,
    /// The connection has ended.
    #[error("realtime connection closed")]
    Closed,
}

/// The sending half: cheap to clone. Dropping every sender closes the connection (1000).
#[derive(Debug, Clone)]
pub struct RealtimeSender {
    tx: mpsc::Sender<ClientEvent>,
}

impl RealtimeSender {
    /// Forward caller audio now, never waiting: a full queue drops the frame (counted in
    /// `voxbridge_realtime_audio_dropped_total`).
    pub fn append_audio(&self, audio: Base64Audio) -> Result<(), SendError> {
        match self.tx.try_send(ClientEvent::AppendAudio(audio)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                counter!(AUDIO_DROPPED).increment(1);
                Err(SendError::Full)
            }
            Err(TrySendError::Closed(_)) => Err(SendError::Closed),
        }
    }

    /// Send a control event, waiting for queue space (bounded by the socket's progress).
    pub async fn send(&self, event: ClientEvent) -> Result<(), SendError> {
        self.tx.send(event).await.map_err(|_| SendError::Closed)
    }

    /// `conversation.item.truncate` at `audio_end_ms` of `item_id`.
    pub async fn truncate(&self, item_id: &str, audio_end_ms: u64) -> Result<(), SendError> {
        let item_id = item_id.to_string();
        self.send(ClientEvent::Truncate {
            item_id,
            audio_end_ms,
        })
        .await
    }

    /// A function call's result (JSON text). Follow it with [`Self::create_response`] once
    /// the `response.done` of the response that made the call has arrived (earlier gets
    /// `conversation_already_has_active_response`).
    pub async fn function_output(&self, call_id: &str, output: &str) -> Result<(), SendError> {
        self.send(ClientEvent::FunctionOutput {
            call_id: call_id.to_string(),
            output: output.to_string(),
        })
        .await
    }

    /// `response.create` (with instructions for this response only, e.g. the greeting).
    pub async fn create_response(&self, instructions: Option<String>) -> Result<(), SendError> {
        self.send(ClientEvent::CreateResponse { instructions })
            .await
    }

    /// Send a control event without waiting; a full queue refuses it.
    pub fn try_send(&self, event: ClientEvent) -> Result<(), SendError> {
        self.tx.try_send(event).map_err(|e| match e {
            TrySendError::Full(_) => SendError::Full,
            TrySendError::Closed(_) => SendError::Closed,
        })
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A running Realtime session: send with [`Connection::tx`], read [`Connection::events`]
/// until [`ServerEvent::Closed`] (or `None` after this side closed). Dropping it closes.
#[derive(Debug)]
pub struct Connection {
    pub tx: RealtimeSender,
    pub events: mpsc::Receiver<ServerEvent>,
    /// What the server accepted (μ-law both ways, checked).
    pub session: AcceptedSession,
}

impl Connection {
    pub(super) fn spawn(ws: Ws, api: ApiShape, session: AcceptedSession, call: CallIds) -> Self {
        let (tx, out) = mpsc::channel(OUT_QUEUE);
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        tokio::spawn(run(ws, api, out, events_tx, call));
        Self {
            tx: RealtimeSender { tx },
            events,
            session,
        }
    }
}

/// The connection's task: outgoing events to the socket, server events to the engine.
async fn run(
    ws: Ws,
    api: ApiShape,
    mut out: mpsc::Receiver<ClientEvent>,
    events: mpsc::Sender<ServerEvent>,
    call: CallIds,
) {
    let (mut sink, mut source) = ws.split();
    let mut session_expired = false;
    let mut malformed = 0u64;
    let error = loop {
        tokio::select! {
            event = out.recv() => {
                let Some(event) = event else {
                    // Every sender dropped: this side closes.
                    let _ = timeout(CLOSE_WAIT, sink.send(Message::Close(None))).await;
                    let _ = timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = source.next().await {} }).await;
                    debug!(call_sid = %call.call_sid, provider = PROVIDER, "realtime closed by us");
                    return;
                };
                if let Err(e) = sink.send(Message::text(event.to_json(api))).await {
                    break ProviderError::Disconnected(e.to_string());
                }
            }
            msg = source.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => break closed(frame.as_ref()),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break ProviderError::Disconnected(e.to_string()),
                    None => break dropped(),
                };
                match parse(&text) {
                    Ok(event) => {
                        if let ServerEvent::Error(e) = &event {
                            session_expired |= e.is_session_expired();
                            if !e.is_benign() {
                                warn!(call_sid = %call.call_sid, provider = PROVIDER,
                                    code = e.code(), message = %e.message, "realtime error event");
                            }
                        }
                        if events.send(event).await.is_err() {
                            // The engine is gone: close quietly.
                            let _ = timeout(CLOSE_WAIT, sink.send(Message::Close(None))).await;
                            return;
                        }
                    }
                    Err(e) => {
                        count_error(PROVIDER, &e);
                        malformed += 1;
                        if malformed == 1 {
                            warn!(call_sid = %call.call_sid, stream_sid = %call.stream_sid,
                                provider = PROVIDER, error = %e, "skipping malformed realtime message");
                        }
                    }
                }
            }
        }
    };
    if session_expired {
        // Expected at the maximum duration; the engine opens a new session.
        info!(call_sid = %call.call_sid, stream_sid = %call.stream_sid, provider = PROVIDER,
            %error, "realtime session expired");
    } else {
        count_error(PROVIDER, &error);
        warn!(
            call_sid = %call.call_sid, stream_sid = %call.stream_sid, provider = PROVIDER,
            kind = error.kind(), %error, "realtime connection ended"
        );
    }
    let _ = events
        .send(ServerEvent::Closed(Closed {
            error,
            session_expired,
        }))
        .await;
}
