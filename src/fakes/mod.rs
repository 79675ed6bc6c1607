//! Local fakes of the cloud services (speech, LLM, and the Twilio REST API), speaking their real wire protocols
//! (shared/reference/providers.md), so the production clients run unchanged against them in
//! tests, demos (`voxbridge fakes`) and load runs. Only ever bound to 127.0.0.1.
//!
//! Each fake records what it saw ([`Observed`], the most recent [`MAX_OBSERVED`] entries, so a
//! long-running `voxbridge fakes` stays flat in memory) and can be told to misbehave, one
//! connection or request at a time ([`Faults`]): refuse with a status, drop mid-stream, report
//! an in-protocol error, send malformed messages, or stall. Fakes are test infrastructure: they favour being faithful and observable
//! over being fast, and they must never be reachable from outside the machine.

pub mod deepgram;
pub mod elevenlabs;
pub mod openai_chat;
pub mod openai_realtime;
pub mod openai_speech;
pub mod twilio;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A fake server running on 127.0.0.1 until dropped.
pub struct FakeServer {
    pub addr: SocketAddr,
    cancel: CancellationToken,
}

impl FakeServer {
    /// Serve `router` on 127.0.0.1 (port 0: a free port; or the given one).
    pub async fn start(router: Router, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(Self { addr, cancel })
    }

    /// `http://127.0.0.1:PORT`
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:PORT`
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// How the next connection or request should misbehave.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Refuse with this HTTP status (before any upgrade / body), with the provider's error JSON.
    Status(u16),
    /// Accept, send this many messages or chunks, then drop the connection without a close.
    DisconnectAfter(usize),
    /// Accept, send this many messages or chunks, then report an error the way the protocol
    /// does — Deepgram: close 1011; OpenAI: an SSE `error` event; ElevenLabs: an error message
    /// and close 1011 — and stop.
    ErrorAfter(usize),
    /// Send a message that is not valid for the protocol (e.g. broken JSON), then carry on.
    Malformed,
    /// Accept but say nothing for this long (a timeout test).
    Stall(Duration),
}

/// A queue of faults, one consumed per connection/request; empty = behave.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<VecDeque<Fault>>>);

impl Faults {
    pub fn push(&self, fault: Fault) {
        if let Ok(mut q) = self.0.lock() {
            q.push_back(fault);
        }
    }

    /// The fault for the connection/request starting now, if any.
    pub fn next(&self) -> Option<Fault> {
        self.0.lock().ok().and_then(|mut q| q.pop_front())
    }
}

/// Most entries an [`Observed`] log keeps; older ones are forgotten (tests never get near it;
/// load runs against `voxbridge fakes` would otherwise grow without bound).
pub const MAX_OBSERVED: usize = 10_000;

/// A shared, append-only log of what a fake saw, for test assertions (the most recent
/// [`MAX_OBSERVED`] entries).
#[derive(Debug, Clone)]
pub struct Observed<T>(Arc<Mutex<VecDeque<T>>>);

impl<T> Default for Observed<T> {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(VecDeque::new())))
    }
}

impl<T: Clone> Observed<T> {
    pub fn push(&self, item: T) {
        if let Ok(mut v) = self.0.lock() {
            if v.len() >= MAX_OBSERVED {
                v.pop_front();
            }
            v.push_back(item);
        }
    }

    pub fn snapshot(&self) -> Vec<T> {
        self.0
            .lock()
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.0.lock().map(|v| v.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Speech-like audio for `text` at `rate` Hz, 16-bit mono: one voiced burst per word (a
/// 140 Hz glottal-ish harmonic series under a smooth envelope, about 60 ms per letter) and
/// short gaps between words. Loud enough for any VAD, deterministic, and its length follows
/// the text, so tests can tell replies apart by duration.
pub fn synth_speech(text: &str, rate: u32) -> Vec<i16> {
    let rate_f = rate as f32;
    let mut out = Vec::new();
    for (w, word) in text.split_whitespace().enumerate() {
        let letters = word.chars().filter(|c| c.is_alphanumeric()).count().max(1);
        let n = (rate_f * 0.06 * letters as f32) as usize;
        let f0 = 120.0 + 15.0 * (w % 4) as f32;
        for i in 0..n {
            let t = i as f32 / rate_f;
            let env = (std::f32::consts::PI * i as f32 / n as f32).sin();
            let mut s = 0.0;
            for h in 1..=8 {
                let hf = f0 * h as f32;
                if hf < rate_f / 2.2 {
                    s += (2.0 * std::f32::consts::PI * hf * t).sin() / h as f32;
                }
            }
            out.push((s * env * 9000.0).clamp(-32767.0, 32767.0) as i16);
        }
        out.extend(std::iter::repeat_n(0, (rate_f * 0.08) as usize));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synth_speech_is_loud_and_follows_the_text() {
        let short = synth_speech("hi", 8000);
        let long = synth_speech("hello there, how are you today", 8000);
        assert!(long.len() > 4 * short.len());
        let peak = long.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak > 8000, "peak {peak}");
        assert!(synth_speech("", 8000).is_empty());
    }

    #[test]
    fn faults_are_consumed_in_order() {
        let f = Faults::default();
        f.push(Fault::Status(429));
        f.push(Fault::DisconnectAfter(3));
        assert_eq!(f.next(), Some(Fault::Status(429)));
        assert_eq!(f.next(), Some(Fault::DisconnectAfter(3)));
        assert_eq!(f.next(), None);
    }
}
