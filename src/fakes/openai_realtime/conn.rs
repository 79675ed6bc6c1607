//! The socket loop of one fake Realtime connection: connection-level faults (stall, close
//! 3000, drops, session expiry), then client events into the [`Session`] and its queued
//! server events out, with the response's timed steps in between.
//!
//! It owns the socket and the clock; protocol behaviour lives in `session.rs`.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::time::{Instant, sleep, sleep_until, timeout};

use super::events::Out;
use super::session::Session;
use super::shapes::Api;
use super::{EndSeen, Ended, Pacing, RealtimeFault, RealtimeObserved, Script};

/// Everything a connection starts with.
pub struct Setup {
    pub conn: usize,
    pub api: Api,
    pub model: String,
    pub fault: Option<RealtimeFault>,
    pub script: Script,
    pub pacing: Pacing,
    pub observed: RealtimeObserved,
    /// When the upgrade was accepted.
    pub accepted: Instant,
}

/// Serve one upgraded connection until it closes, drops, or the client goes.
pub async fn serve(mut ws: WebSocket, setup: Setup) {
    let (conn, observed) = (setup.conn, setup.observed.clone());
    match setup.fault {
        Some(RealtimeFault::Stall(d)) => sleep(d).await,
        Some(RealtimeFault::InvalidKeyClose) => {
            observed.ends.push(EndSeen {
                conn,
                ended: Ended::Closed(3000),
                audio_bytes: 0,
                appends: 0,
            });
            close(&mut ws, 3000, "invalid_request_error.invalid_api_key").await;
            return;
        }
        _ => {}
    }
    let drop_after = match setup.fault {
        Some(RealtimeFault::DisconnectAfter(n)) => Some(n),
        _ => None,
    };
    let mut expires = match setup.fault {
        Some(RealtimeFault::SessionExpiresAfter(d)) => Some(setup.accepted + d),
        _ => None,
    };
    let mut session = Session::new(setup);
    let mut sent = 0usize;
    let far = Instant::now() + Duration::from_secs(86400);
    let end = loop {
        if let Some(end) = flush(&mut ws, &mut session, &mut sent, drop_after).await {
            break end;
        }
        let due = session.due();
        tokio::select! {
            msg = ws.recv() => match msg {
                Some(Ok(Message::Text(text))) => session.on_client(&text, Instant::now()),
                Some(Ok(Message::Binary(_))) => session.on_binary(),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break End::ClientGone,
                Some(Ok(_)) => {}
            },
            _ = sleep_until(due.unwrap_or(far)), if due.is_some() => {
                session.on_timer(Instant::now());
            }
            _ = sleep_until(expires.unwrap_or(far)), if expires.is_some() => {
                expires = None;
                session.expire();
            }
        }
    };
    let ended = match end {
        End::Close(code, _) => Ended::Closed(code),
        End::Dropped => Ended::Dropped,
        End::ClientGone => Ended::ClientGone,
    };
    // Recorded before the close frame goes, so a client that saw the close can assert on it.
    observed.ends.push(EndSeen {
        conn,
        ended,
        audio_bytes: session.audio_bytes,
        appends: session.appends,
    });
    if let End::Close(code, reason) = end {
        close(&mut ws, code, reason).await;
    }
    // Otherwise dropping `ws` drops the TCP connection without a close frame.
}

/// How the loop ended.
enum End {
    Close(u16, &'static str),
    Dropped,
    ClientGone,
}

/// Send what the session queued; `Some(end)` when the connection is over.
async fn flush(
    ws: &mut WebSocket,
    session: &mut Session,
    sent: &mut usize,
    drop_after: Option<usize>,
) -> Option<End> {
    while let Some(out) = session.emit.out.pop_front() {
        match out {
            Out::Text(text) => {
                if ws.send(Message::text(text)).await.is_err() {
                    return Some(End::ClientGone);
                }
                *sent += 1;
                if drop_after.is_some_and(|n| *sent >= n) {
                    return Some(End::Dropped);
                }
            }
            Out::Close(code, reason) => return Some(End::Close(code, reason)),
            Out::Drop => return Some(End::Dropped),
        }
    }
    None
}

/// Send a close frame and give the client a moment to answer it.
async fn close(ws: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if ws.send(Message::Close(Some(frame))).await.is_ok() {
        let _ = timeout(Duration::from_secs(1), async {
            while let Some(Ok(_)) = ws.recv().await {}
        })
        .await;
    }
}
