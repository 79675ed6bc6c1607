//! The OpenAI Realtime engine: one provider socket per call, μ-law in and out.
//!
//! Caller audio goes to the model as it arrives (the carrier's base64 text, never re-encoded);
//! the model's audio deltas go out through [`EngineIo`] as they arrive, one response per
//! generation. The model's own turn detection decides turns: its `speech_started` is a
//! barge-in — we clear what is buffered at the caller and truncate the model's item at what the
//! caller actually heard, so its context holds only that. Tools (`end_call`, `transfer_call`,
//! `set_outcome`) come back as function calls; a hang-up waits for the goodbye to play.
//!
//! Failures never leave dead air: a refused key, a rate limit or a dropped socket ends in the
//! pre-rendered apology and a clean hang-up; an expired session opens a new one carrying the
//! transcript so far. Server events are handled in [`super::reply`]; this file holds the
//! engine's state and its life cycle.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::{info, warn};

use super::PROVIDER;
use super::client::{ConnectError, Connection, RealtimeSender};
use super::setup::RealtimeSetup;
use super::wire::server::ServerEvent;
use super::wire::{Base64Audio, ClientEvent, Role};
use crate::agent::CallAction;
use crate::call::context::CallContext;
use crate::call::events::{AudioFrame, StageProviders};
use crate::call::latency::TurnTiming;
use crate::call::services::AgentServices;
use crate::engine::{Engine, EngineInput, EngineIo};
use crate::provider::CallIds;

/// Lines of the conversation kept to seed a new session after the old one expired.
const HISTORY_LINES: usize = 64;

type Connecting = Pin<Box<dyn Future<Output = Result<Connection, ConnectError>> + Send>>;

pub(super) enum Link {
    Connecting(Connecting),
    Open(Connection),
    Down,
}

/// What the engine's socket produced.
pub enum RealtimeEvent {
    Connected(Result<Connection, ConnectError>),
    Server(Option<ServerEvent>),
}

/// The model response being received.
pub(super) struct Reply {
    pub response_id: String,
    /// The assistant audio item (what a truncate names).
    pub item_id: Option<String>,
    /// Our generation for its audio (opened at the first delta).
    pub resp: Option<u64>,
    /// μ-law bytes received for it.
    pub received: usize,
    pub text: String,
    pub timing: TurnTiming,
    /// It called a function: answer with the output and ask for the next response.
    pub made_call: bool,
}

/// The caller's side of the turn, as the model's detector reported it.
#[derive(Default)]
pub(super) struct CallerSide {
    /// When the first caller audio went to the model (its audio clock's zero).
    pub audio_t0: Option<Instant>,
    pub speech_start: Option<Instant>,
    pub speech_end: Option<Instant>,
    /// When the model's detector said the speech stopped (the turn's end).
    pub turn_end: Option<Instant>,
    /// The timing of a turn whose answer continues in the next response (after a function
    /// call that said nothing).
    pub carried: Option<TurnTiming>,
}

pub struct RealtimeEngine {
    pub(super) setup: RealtimeSetup,
    pub(super) services: Arc<AgentServices>,
    pub(super) ids: CallIds,
    pub(super) link: Link,
    pub(super) reply: Option<Reply>,
    /// Finished replies waiting for their mark: (generation, what was said).
    pub(super) sent: Vec<(u64, String)>,
    pub(super) caller: CallerSide,
    /// Function names by call id, and the action due after the next response.
    pub(super) calls: Vec<(String, String)>,
    pub(super) after_next: Option<CallAction>,
    /// The conversation so far (for a new session after expiry), bounded.
    pub(super) history: Vec<(Role, String)>,
    /// A `response.create` is owed (refused while another was active).
    pub(super) want_response: bool,
    /// The apology is playing and the call will end: ignore the model from now on.
    pub(super) ending: bool,
}

impl RealtimeEngine {
    /// `preconnected`: a socket opened when the webhook served the TwiML, if any.
    pub fn new(
        services: Arc<AgentServices>,
        setup: RealtimeSetup,
        ctx: &CallContext,
        preconnected: Option<super::preconnect::Pending>,
    ) -> Self {
        let ids = CallIds {
            call_sid: ctx.call_sid.clone(),
            stream_sid: ctx.stream_sid.clone(),
        };
        let link = match preconnected {
            Some(pending) => Link::Connecting(Box::pin(pending.connection())),
            None => Link::Connecting(connect(&setup, &ids)),
        };
        Self {
            setup,
            services,
            ids,
            link,
            reply: None,
            sent: Vec::new(),
            caller: CallerSide::default(),
            calls: Vec::new(),
            after_next: None,
            history: Vec::new(),
            want_response: false,
            ending: false,
        }
    }

    pub(super) fn tx(&self) -> Option<&RealtimeSender> {
        match &self.link {
            Link::Open(conn) => Some(&conn.tx),
            _ => None,
        }
    }

    /// Send a control event without waiting (the queue holds seconds of them).
    pub(super) fn send(&self, event: ClientEvent, io: &EngineIo<'_>) {
        if let Some(tx) = self.tx()
            && let Err(e) = tx.try_send(event)
        {
            warn!(parent: io.span(), provider = PROVIDER, error = %e, "realtime event not sent");
        }
    }

    pub(super) fn remember(&mut self, role: Role, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        if self.history.len() == HISTORY_LINES {
            self.history.remove(0);
        }
        self.history.push((role, text.to_owned()));
    }

    fn on_connected(&mut self, result: Result<Connection, ConnectError>, io: &mut EngineIo<'_>) {
        let conn = match result {
            Ok(conn) => conn,
            Err(e) => {
                let error = e.to_provider_error();
                io.provider_failed(PROVIDER, &error.to_string());
                self.link = Link::Down;
                self.apologise_and_end(io);
                return;
            }
        };
        let reconnected = !self.history.is_empty();
        self.link = Link::Open(conn);
        if reconnected {
            // A new session after the old one expired: it starts with what was said.
            info!(parent: io.span(), lines = self.history.len(), "realtime session renewed");
            for (role, text) in self.history.clone() {
                self.send(ClientEvent::Message { role, text }, io);
            }
        } else {
            self.send(
                ClientEvent::CreateResponse {
                    instructions: self.setup.greeting.clone(),
                },
                io,
            );
        }
    }

    /// The provider is gone: the caller hears the apology, then the call ends cleanly.
    pub(super) fn apologise_and_end(&mut self, io: &mut EngineIo<'_>) {
        if self.ending {
            return;
        }
        self.ending = true;
        self.link = Link::Down;
        if let Some(reply) = self.reply.take()
            && let Some(resp) = reply.resp
        {
            io.end_response(resp);
        }
        let id = io.begin_response();
        if let Some(apology) = &self.services.apology_audio {
            io.audio(id, apology);
        }
        io.end_response(id);
        io.after_played(id, CallAction::EndCall);
        if !self.services.apology_text.is_empty() {
            self.sent.push((id, self.services.apology_text.clone()));
        }
        warn!(parent: io.span(), provider = PROVIDER, "realtime unavailable: apologising and ending the call");
    }

    fn on_audio(&mut self, f: &AudioFrame<'_>) {
        let Some(tx) = self.tx() else {
            return;
        };
        let Ok(audio) = Base64Audio::new(Bytes::copy_from_slice(f.payload_b64.as_bytes())) else {
            return;
        };
        // A full queue drops the frame (counted by the sender); the call goes on.
        if tx.append_audio(audio).is_ok() && self.caller.audio_t0.is_none() {
            self.caller.audio_t0 = Some(f.at);
        }
    }
}

fn connect(setup: &RealtimeSetup, ids: &CallIds) -> Connecting {
    let (client, spec, ids) = (setup.client.clone(), setup.spec.clone(), ids.clone());
    Box::pin(async move { client.connect(&spec, &ids).await })
}

impl Engine for RealtimeEngine {
    type Event = RealtimeEvent;

    fn name(&self) -> &'static str {
        "openai_realtime"
    }

    fn providers(&self) -> StageProviders {
        StageProviders {
            stt: PROVIDER,
            agent: PROVIDER,
            tts: PROVIDER,
        }
    }

    fn start(&mut self, _io: &mut EngineIo<'_>) {}

    fn on_input(&mut self, input: EngineInput<'_>, io: &mut EngineIo<'_>) {
        match input {
            EngineInput::Audio(f) => self.on_audio(f),
            // The model has no keypad; the digits are in the call's record.
            EngineInput::Dtmf(_) => {}
            EngineInput::Played(id) => self.played(id, io),
            EngineInput::Cleared(cleared) => self.interrupted(cleared, io),
        }
    }

    async fn next_event(&mut self) -> RealtimeEvent {
        match &mut self.link {
            Link::Connecting(fut) => RealtimeEvent::Connected(fut.await),
            Link::Open(conn) => RealtimeEvent::Server(conn.events.recv().await),
            Link::Down => std::future::pending().await,
        }
    }

    fn on_event(&mut self, event: RealtimeEvent, io: &mut EngineIo<'_>) {
        match event {
            RealtimeEvent::Connected(result) => self.on_connected(result, io),
            RealtimeEvent::Server(Some(ev)) if !self.ending => self.on_server(ev, io),
            RealtimeEvent::Server(Some(_)) => {}
            RealtimeEvent::Server(None) => {
                self.link = Link::Down;
                if !self.ending {
                    io.provider_failed(PROVIDER, "connection ended");
                    self.apologise_and_end(io);
                }
            }
        }
    }

    fn timing(&mut self, id: u64) -> Option<&mut TurnTiming> {
        self.reply
            .as_mut()
            .filter(|r| r.resp == Some(id))
            .map(|r| &mut r.timing)
    }

    /// Closing the sender closes the socket (1000) from the connection's task.
    fn finish(&mut self, _io: &mut EngineIo<'_>) {
        self.link = Link::Down;
    }
}

impl RealtimeEngine {
    /// Reconnect for a new session (the old one expired).
    pub(super) fn renew(&mut self) {
        self.link = Link::Connecting(connect(&self.setup, &self.ids));
    }
}
