//! The session's side of the bounded queue to the socket writer.
//!
//! The writer queue is bounded (`limits.outbound_queue`). When it is full — a slow client, a
//! congested link — nothing is dropped: messages wait here, in order, and the session stops
//! pulling audio from [`Playout`](super::playout::Playout) until the writer catches up, so the
//! backlog never grows past one playout lead. Each stall is counted once in
//! `voxbridge_outbound_backpressure_total`. Media still waiting when a barge-in clears the
//! response are dropped here too, so a `clear` is never followed by stale audio.

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use std::time::Instant;

use crate::call::frames::CallOutput;
use crate::twilio::codec::MediaStreamsCodec;

/// What the socket writer task is told to do.
#[derive(Debug)]
pub enum Outgoing {
    /// Send this text frame.
    Text(String),
    /// Send this text frame, a media message (counted when written).
    Media(String),
    /// Send a close frame with this code and reason, then stop.
    Close(u16, &'static str),
}

#[derive(Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    /// Messages not yet handed to the writer; audio with the instant the caller hears it.
    pending: VecDeque<(CallOutput, Option<Instant>)>,
    stalled: bool,
    writer_gone: bool,
    /// A close was asked for (the first one counts; the writer stops at it).
    closing: bool,
}

/// What a flush did, for the session's counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct Flushed {
    pub media: u64,
    /// This flush hit a full queue that was not full before.
    pub new_stall: bool,
}

impl Outbox {
    pub fn new(tx: mpsc::Sender<Outgoing>) -> Self {
        Self {
            tx,
            pending: VecDeque::new(),
            stalled: false,
            writer_gone: false,
            closing: false,
        }
    }

    pub fn push(&mut self, msg: CallOutput) {
        self.pending.push_back((msg, None));
    }

    /// Queue audio the caller will hear from `play_at`.
    pub fn push_audio(&mut self, chunk: bytes::Bytes, play_at: Option<Instant>) {
        self.pending.push_back((CallOutput::Audio(chunk), play_at));
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Drop queued media (the response they belong to was cleared); keep control messages.
    pub fn drop_media(&mut self) {
        self.pending
            .retain(|(m, _)| !matches!(m, CallOutput::Audio(_)));
    }

    /// Hand as many messages to the writer as its queue takes, in order, encoded by `codec`.
    /// `sent` sees each audio chunk handed over, with the instant the caller hears it.
    pub fn flush(
        &mut self,
        codec: &MediaStreamsCodec,
        mut sent: impl FnMut(&[u8], Option<Instant>),
    ) -> Flushed {
        let mut flushed = Flushed::default();
        while let Some((msg, play_at)) = self.pending.front() {
            if self.writer_gone {
                self.pending.clear();
                break;
            }
            let permit = match self.tx.try_reserve() {
                Ok(permit) => permit,
                Err(TrySendError::Full(())) => {
                    flushed.new_stall = !self.stalled;
                    self.stalled = true;
                    return flushed;
                }
                Err(TrySendError::Closed(())) => {
                    self.writer_gone = true;
                    continue;
                }
            };
            let mut text = String::new();
            if !codec.encode(msg, &mut text) {
                // No stream to address yet: nothing can be sent.
                self.pending.clear();
                break;
            }
            if let CallOutput::Audio(chunk) = msg {
                flushed.media += 1;
                sent(chunk, *play_at);
                permit.send(Outgoing::Media(text));
            } else {
                permit.send(Outgoing::Text(text));
            }
            self.pending.pop_front();
        }
        self.stalled = false;
        flushed
    }

    /// Wait until the writer has room again (only meaningful while messages are pending).
    pub async fn writable(&self) {
        if let Ok(permit) = self.tx.reserve().await {
            drop(permit);
        } else {
            // Writer gone: never resolve; the session ends through its inbound side.
            std::future::pending::<()>().await;
        }
    }

    /// Ask the writer to close the socket, once (later requests are ignored). Best effort: if
    /// its queue is full it is stuck anyway, and dropping the sender closes the socket when the
    /// writer drains.
    pub fn close(&mut self, code: u16, reason: &'static str) {
        if !std::mem::replace(&mut self.closing, true) {
            let _ = self.tx.try_send(Outgoing::Close(code, reason));
        }
    }
}
