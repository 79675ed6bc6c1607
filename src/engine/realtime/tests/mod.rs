//! The production Realtime client against the fake server (`crate::fakes::openai_realtime`):
//! handshakes and their failures, a conversation with interruption, truncation and a function
//! call, the error scenarios, and the preconnect registry.

mod conversation;
mod handshake;
mod preconnect;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use tokio::time::timeout;

use super::client::{Connection, RealtimeClient};
use super::config::RealtimeConfig;
use super::wire::server::ServerEvent;
use super::wire::{Base64Audio, ClientEvent, SessionSpec, Tool};
use crate::audio::mulaw;
use crate::config::Config;
use crate::fakes::openai_realtime::{FakeOpenAiRealtime, Pacing};
use crate::provider::{CallIds, Secret};

const KEY: &str = "sk-test";

fn cfg(fake: &FakeOpenAiRealtime) -> RealtimeConfig {
    let mut c = Config::default().realtime;
    c.base_url = fake.url();
    c.connect_timeout_ms = 2000;
    c
}

fn client(c: &RealtimeConfig) -> RealtimeClient {
    RealtimeClient::new(c, Secret::new(KEY))
}

fn spec() -> SessionSpec {
    SessionSpec {
        instructions: "You are a friendly phone agent.".into(),
        tools: Tool::ALL.to_vec(),
        voice: None,
    }
}

fn ids() -> CallIds {
    CallIds {
        call_sid: "CAtest".into(),
        stream_sid: "MZtest".into(),
    }
}

/// A fake whose responses stream `speed` times faster than real time.
async fn fake(speed: f64) -> FakeOpenAiRealtime {
    let fake = FakeOpenAiRealtime::start(KEY).await.unwrap();
    fake.set_pacing(Pacing {
        first_audio: Duration::from_millis(20),
        chunk_ms: 100,
        speed,
    });
    fake
}

async fn connect(fake: &FakeOpenAiRealtime) -> Connection {
    client(&cfg(fake)).connect(&spec(), &ids()).await.unwrap()
}

/// Speech for `text` then `silence_ms` of silence, as 8 kHz μ-law.
fn speech(text: &str, silence_ms: usize) -> Vec<u8> {
    let mut audio: Vec<u8> = crate::fakes::synth_speech(text, 8000)
        .into_iter()
        .map(mulaw::encode)
        .collect();
    audio.extend(std::iter::repeat_n(mulaw::SILENCE, silence_ms * 8));
    audio
}

/// Send audio the way the engine will: Twilio's base64 payloads of 20 ms, passed through.
async fn send_audio(conn: &Connection, audio: &[u8]) {
    for frame in audio.chunks(160) {
        let text = Bytes::from(STANDARD.encode(frame));
        let payload = Base64Audio::new(text).unwrap();
        conn.tx
            .send(ClientEvent::AppendAudio(payload))
            .await
            .unwrap();
    }
}

async fn next(conn: &mut Connection) -> ServerEvent {
    match timeout(Duration::from_secs(10), conn.events.recv()).await {
        Ok(Some(event)) => event,
        other => panic!("no event: {other:?}"),
    }
}

/// Read events until `want` matches one; returns those before it and it.
async fn until(
    conn: &mut Connection,
    want: impl Fn(&ServerEvent) -> bool,
) -> (Vec<ServerEvent>, ServerEvent) {
    let mut seen = Vec::new();
    loop {
        let event = next(conn).await;
        if want(&event) {
            return (seen, event);
        }
        if let ServerEvent::Closed(c) = &event {
            panic!("closed while waiting: {c:?} after {seen:?}");
        }
        seen.push(event);
    }
}

/// μ-law bytes of every audio delta in `events`.
fn audio_of(events: &[ServerEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        if let ServerEvent::AudioDelta { audio, .. } = e {
            out.extend_from_slice(audio);
        }
    }
    out
}
