//! The conversation side of a call: one agent session, the TTS, and the response in progress.
//!
//! Each response is a *generation*: the agent's text streams into the TTS piece by piece, the
//! TTS's audio streams into [`Playout`](crate::call::playout::Playout) the moment it arrives
//! ([`reply`] applies the providers' events). Barge-in cancels the generation's token — which
//! stops the agent's HTTP stream and the TTS socket.
//!
//! The agent's history records only what the caller heard: the heard prefix after a barge-in
//! (estimated from the playout position), the apology when the caller heard that instead of
//! the reply, nothing (but the reply's tool calls) when a reply produced no audio. When the
//! agent or every TTS fails, a short apology is played: never dead air. Text the engine says
//! itself (a reprompt, the STT-down apology) is told to the agent as such.
//!
//! Owned by the [`Cascade`](super::Cascade) engine; its audio goes out through [`EngineIo`].
//! No I/O of its own beyond the provider tasks it starts, no clocks read except through the
//! instants it is given.

mod reply;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::agent::{AgentEvent, AgentSession, CallerTurn};
use crate::call::latency::TurnTiming;
use crate::call::playout::Cleared;
use crate::engine::EngineIo;
use crate::tts::{TextToSpeech, TtsEvent};

use reply::Generation;
pub use reply::heard_prefix;

/// Text pieces waiting for the TTS task (a reply is a handful of sentences).
const TEXT_QUEUE: usize = 32;

/// What the providers produced, for the session's select loop.
#[derive(Debug)]
pub enum ConvEvent {
    Agent(Option<AgentEvent>),
    Tts(Option<TtsEvent>),
}

/// Something the session must act on after handling an event.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Nothing,
    /// A provider failed (already counted in the metric); log it and count it in the call.
    ProviderFailed {
        provider: &'static str,
        error: String,
    },
}

/// A reply fully sent, waiting for its mark.
struct Sent {
    playout_id: u64,
    text: String,
    timing: TurnTiming,
    /// Said by the engine itself, not a reply of the agent.
    own: bool,
}

/// The fixed things a conversation may say on its own.
struct Apology {
    text: String,
    /// Pre-rendered, for when no TTS can say it.
    audio: Option<Bytes>,
}

pub struct Conversation {
    agent: Box<dyn AgentSession>,
    agent_name: &'static str,
    tts: Option<Arc<dyn TextToSpeech>>,
    apology: Apology,
    current: Option<Generation>,
    sent: Option<Sent>,
}

impl Conversation {
    pub fn new(
        agent: Box<dyn AgentSession>,
        agent_name: &'static str,
        tts: Option<Arc<dyn TextToSpeech>>,
        apology_text: String,
        apology_audio: Option<Bytes>,
    ) -> Self {
        Self {
            agent,
            agent_name,
            tts,
            apology: Apology {
                text: apology_text,
                audio: apology_audio,
            },
            current: None,
            sent: None,
        }
    }

    pub fn agent_name(&self) -> &'static str {
        self.agent_name
    }

    pub fn tts_name(&self) -> &'static str {
        self.tts.as_ref().map_or("none", |t| t.name())
    }

    /// A generation is producing text or audio.
    pub fn is_generating(&self) -> bool {
        self.current.is_some()
    }

    /// Speak the agent's greeting, if it has one (and there is a voice to speak it with).
    pub fn greet(&mut self, io: &mut EngineIo<'_>, now: Instant) {
        let Some(text) = self.agent.greeting() else {
            return;
        };
        if self.tts.is_none() {
            return;
        }
        let rx = fixed(text);
        self.begin(
            rx,
            CancellationToken::new(),
            io,
            TurnTiming::new(None, now),
            false,
        );
    }

    /// Say a fixed text of the engine's own (a reprompt, the apology when speech-to-text is
    /// down); returns the playout id. The agent is told once it has been heard.
    pub fn say(&mut self, text: String, io: &mut EngineIo<'_>, timing: TurnTiming) -> Option<u64> {
        self.tts.as_ref()?;
        self.abandon();
        Some(self.begin(fixed(text), CancellationToken::new(), io, timing, true))
    }

    /// Answer the caller's turn (cancelling any generation still running); returns the
    /// response's playout id.
    pub fn respond(&mut self, turn: CallerTurn, io: &mut EngineIo<'_>, timing: TurnTiming) -> u64 {
        self.abandon();
        let cancel = CancellationToken::new();
        let rx = self.agent.respond(turn, cancel.clone());
        self.begin(rx, cancel, io, timing, false)
    }

    fn begin(
        &mut self,
        agent_rx: mpsc::Receiver<AgentEvent>,
        cancel: CancellationToken,
        io: &mut EngineIo<'_>,
        timing: TurnTiming,
        own: bool,
    ) -> u64 {
        let (text_tx, tts_rx) = match &self.tts {
            Some(tts) => {
                let (tx, rx) = mpsc::channel(TEXT_QUEUE);
                (Some(tx), Some(tts.speak(rx, cancel.child_token())))
            }
            None => (None, None),
        };
        let playout_id = io.begin_response();
        self.current = Some(Generation::new(
            playout_id, cancel, agent_rx, text_tx, tts_rx, timing, own,
        ));
        playout_id
    }

    /// Wait for the next thing a provider produced (pending forever when idle).
    pub async fn next(&mut self) -> ConvEvent {
        match self.current.as_mut() {
            Some(g) => g.next().await,
            None => std::future::pending().await,
        }
    }

    /// Apply a provider event to the generation and the playout.
    pub fn handle(&mut self, event: ConvEvent, io: &mut EngineIo<'_>) -> Outcome {
        let tts_name = self.tts_name();
        let Some(g) = self.current.as_mut() else {
            return Outcome::Nothing;
        };
        let outcome = g.handle(event, io, &self.apology, self.agent_name, tts_name);
        if g.is_complete() {
            self.complete();
        }
        outcome
    }

    /// The generation produced everything: it waits for its mark now — or, having produced
    /// no audio at all, is over already (the agent learns that nothing was heard).
    fn complete(&mut self) {
        let Some(g) = self.current.take() else {
            return;
        };
        let (playout_id, text, timing, own, audio_bytes) = g.into_parts();
        if audio_bytes == 0 {
            if !own {
                self.agent.reply_heard("", false);
            }
            return;
        }
        self.sent = Some(Sent {
            playout_id,
            text,
            timing,
            own,
        });
    }

    /// Timing of the generation whose first frame just went out.
    pub fn timing_mut(&mut self, playout_id: u64) -> Option<&mut TurnTiming> {
        if let Some(g) = self
            .current
            .as_mut()
            .filter(|g| g.playout_id() == playout_id)
        {
            return Some(g.timing_mut());
        }
        self.sent
            .as_mut()
            .filter(|s| s.playout_id == playout_id)
            .map(|s| &mut s.timing)
    }

    /// The reply with this playout id finished playing: the history keeps all of it.
    pub fn played(&mut self, playout_id: u64, io: &mut EngineIo<'_>) {
        if let Some(sent) = self.sent.take_if(|s| s.playout_id == playout_id) {
            self.heard(sent.playout_id, &sent.text, false, sent.own, io);
        }
    }

    /// Barge-in: stop the generation; the history keeps what the caller heard of it.
    pub fn interrupted(&mut self, cleared: &Cleared, io: &mut EngineIo<'_>) {
        let (id, text, audio_bytes, own) = match (self.current.take(), self.sent.take()) {
            (Some(g), _) => {
                g.cancel();
                let own = g.is_own();
                let (id, text, _, _, audio_bytes) = g.into_parts();
                (id, text, audio_bytes, own)
            }
            (None, Some(s)) => (s.playout_id, s.text, usize::MAX, s.own),
            (None, None) => return,
        };
        let heard = heard_prefix(&text, cleared.heard_bytes, audio_bytes);
        self.heard(id, heard, true, own, io);
    }

    /// Tell the agent (and the transcript) what the caller heard of a response.
    fn heard(&mut self, id: u64, text: &str, interrupted: bool, own: bool, io: &mut EngineIo<'_>) {
        if own {
            self.agent.said(text);
        } else {
            self.agent.reply_heard(text, interrupted);
        }
        if !text.is_empty() {
            io.agent_said(id, text, interrupted);
        }
    }

    /// Drop a generation without a barge-in (a new turn overtook it, or the call ended).
    pub fn abandon(&mut self) {
        if let Some(g) = self.current.take() {
            g.cancel();
        }
        self.sent = None;
    }
}

/// A fixed text as an agent's event stream.
fn fixed(text: String) -> mpsc::Receiver<AgentEvent> {
    let (tx, rx) = mpsc::channel(2);
    let _ = tx.try_send(AgentEvent::Text(text));
    let _ = tx.try_send(AgentEvent::Done);
    rx
}
