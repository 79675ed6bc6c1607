//! `GET /twilio/media`: the Media Streams WebSocket.
//!
//! The handler upgrades the connection and splits it into three tasks joined by bounded
//! channels — a reader that only forwards frames, the [`CallSession`] that owns the call, and a
//! writer that only writes — in the spirit of mini-redis' connection/frame split. When the
//! inbound queue is full the reader stops reading, and TCP pushes back on Twilio; the session
//! itself never waits on the socket. This module holds no call state.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::{debug, error, warn};

use super::client_ip::Client;
use super::{AppState, guard};
use crate::call::outbox::Outgoing;
use crate::call::session::{CallSession, Inbound};
use crate::metrics;

/// Largest single WebSocket frame accepted (Twilio sends small frames; fragments add up to
/// at most `limits.max_message_bytes`).
const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Calls whose task panicked.
pub use crate::metrics::CALL_PANICS;

/// Read buffer per socket: the most one read takes from the socket. A Twilio media message
/// is about 350 bytes, so this holds two or three. Kept small because the WebSocket codec
/// zero-fills this much before every read, also the read that finds the socket empty (two
/// per frame, 100 a second per call); a larger message grows the buffer as it arrives.
const SOCKET_BUFFER_BYTES: usize = 1024;

/// How long the writer may take to flush and close after the session ends.
const WRITER_DRAIN: Duration = Duration::from_secs(5);
/// How long the peer has to answer our close frame before the socket is dropped.
const PEER_CLOSE_WAIT: Duration = Duration::from_secs(2);

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    client: Option<Extension<Client>>,
    uri: Uri,
    ws: WebSocketUpgrade,
) -> Response {
    if state.draining.is_cancelled() {
        metrics::call_refused("draining");
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    // The call's place is taken before the upgrade is accepted, and held for its life (it moves
    // into run_connection): concurrent upgrades can never exceed limits.max_calls.
    let Ok(permit) = Arc::clone(&state.admission.call_permits).try_acquire_owned() else {
        metrics::call_refused("max_calls");
        return (StatusCode::SERVICE_UNAVAILABLE, "too many calls\n").into_response();
    };
    let path = uri.path_and_query().map_or("/twilio/media", |p| p.as_str());
    let client = client.map(|Extension(c)| c);
    if !guard::signed(&state, &headers, client.as_ref(), path, &[], true) {
        warn!("media stream refused: bad or missing X-Twilio-Signature");
        metrics::call_refused("bad_signature");
        return guard::refuse(StatusCode::FORBIDDEN, "bad_signature");
    }
    let max = state.config.limits.max_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max.min(MAX_FRAME_BYTES))
        // Twilio's messages are ~300 bytes: small socket buffers keep memory per call low
        // (tungstenite's defaults are 128 KiB each way); they grow if a message needs it.
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(0)
        .on_failed_upgrade(|e| debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| run_connection(socket, state, permit))
}

/// Drive one call from upgrade to close.
async fn run_connection(socket: WebSocket, state: Arc<AppState>, permit: OwnedSemaphorePermit) {
    let _permit = permit; // one of limits.max_calls, released when the call ends
    let _guard = state.calls.enter(&state.metrics);
    let limits = &state.config.limits;
    let (sink, stream) = socket.split();
    let (in_tx, in_rx) = mpsc::channel(limits.inbound_queue);
    let (out_tx, out_rx) = mpsc::channel(limits.outbound_queue);

    let reader = tokio::spawn(read_loop(stream, in_tx));
    let writer = tokio::spawn(write_loop(sink, out_rx, state.metrics.frames_sent.clone()));
    // Kept to close the socket with 1011 if the session panics; dropped right after.
    let out_close = out_tx.clone();
    let session = CallSession::new(
        Arc::clone(&state.config),
        Arc::clone(&state.services),
        state.metrics.clone(),
        state.quality.clone(),
        out_tx,
    );
    // The session runs in its own task so that a panic in it ends this call only.
    let run = tokio::spawn(session.run(in_rx, state.force_close.child_token()));
    let summary = match run.await {
        Ok(summary) => Some(summary),
        Err(e) => {
            ::metrics::counter!(CALL_PANICS).increment(1);
            error!(error = %e, "call task panicked; the call is closed, other calls are unaffected");
            let _ = out_close.try_send(Outgoing::Close(1011, "internal error"));
            None
        }
    };
    drop(out_close);
    // The session dropped its sender: the writer drains what is queued, closes, and ends —
    // unless the peer stopped reading, in which case it is cut off after a grace period.
    let writer_abort = writer.abort_handle();
    if tokio::time::timeout(WRITER_DRAIN, writer).await.is_err() {
        writer_abort.abort();
    }
    // Our close frame is out: the handshake ends with the peer's (the reader stops at it).
    // Dropping the socket before would reset the connection under the peer's last frames.
    let reader_abort = reader.abort_handle();
    if tokio::time::timeout(PEER_CLOSE_WAIT, reader).await.is_err() {
        debug!("peer did not answer our close frame in time; dropping the socket");
        reader_abort.abort();
    }
    if let Some(summary) = summary {
        state.calls.publish(summary);
    }
}

/// Socket → session. Forwards frames as they are; parsing is the session's job.
async fn read_loop(mut stream: SplitStream<WebSocket>, tx: mpsc::Sender<Inbound>) {
    loop {
        let inbound = match stream.next().await {
            Some(Ok(Message::Text(text))) => Inbound::Text(text),
            Some(Ok(Message::Binary(_))) => Inbound::Binary,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) => Inbound::Closed { abrupt: false },
            Some(Err(e)) if is_capacity_error(&e) => Inbound::TooLarge,
            Some(Err(e)) => {
                debug!(error = %e, "websocket read error");
                Inbound::Closed { abrupt: true }
            }
            None => Inbound::Closed { abrupt: true },
        };
        let last = matches!(inbound, Inbound::TooLarge | Inbound::Closed { .. });
        if last {
            let _ = tx.send(inbound).await;
            return;
        }
        if tx.send(inbound).await.is_err() {
            // The session is over and our close frame is on its way: read on until the peer's
            // close (or the end), so the handshake completes (bounded by the caller).
            while let Some(Ok(m)) = stream.next().await {
                if matches!(m, Message::Close(_)) {
                    return;
                }
            }
            return;
        }
    }
}

/// axum wraps tungstenite's errors opaquely; a capacity error is recognised by its message
/// ("Space limit exceeded: Message too long: …").
fn is_capacity_error(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("too long") || text.contains("too big")
}

/// Session → socket. Ends when the session drops its sender or asks to close.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outgoing>,
    frames_sent: ::metrics::Counter,
) {
    while let Some(out) = rx.recv().await {
        match out {
            Outgoing::Text(text) => {
                if let Err(e) = sink.send(Message::Text(text.into())).await {
                    debug!(error = %e, "websocket write failed");
                    return;
                }
            }
            Outgoing::Media(text) => {
                if let Err(e) = sink.send(Message::Text(text.into())).await {
                    debug!(error = %e, "websocket write failed");
                    return;
                }
                frames_sent.increment(1);
            }
            Outgoing::Close(code, reason) => return close(sink, code, reason).await,
        }
    }
    // The session ended normally (stop, or the peer closed): close with 1000.
    close(sink, 1000, "stream ended").await;
}

/// Send our close frame — or, when the peer closed first, the reply to theirs, which the
/// WebSocket layer queued when it read it — and flush it out.
async fn close(mut sink: SplitSink<WebSocket, Message>, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    // Refused once the peer's close has been read: the queued reply goes out with the flush.
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}
