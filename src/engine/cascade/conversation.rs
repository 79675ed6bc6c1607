//! The conversation side of a call: one agent session, the TTS, and the response in progress.
//!
//! Each response is a *generation*: the agent's text streams into the TTS piece by piece, the
//! TTS's audio streams into [`Playout`] the moment it arrives. Barge-in cancels the generation's
//! token — which stops the agent's HTTP stream and the TTS socket — and the agent's history
//! records only the part of the reply the caller heard, estimated from the playout position.
//! When the agent or every TTS fails, a short apology is played: never dead air.
//!
//! Owned by the [`Cascade`](super::Cascade) engine; its audio goes out through [`EngineIo`].
//! No I/O of its own beyond the provider tasks it starts, no clocks read except through the
//! instants it is given.

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
    /// A provider failed (already counted); log it with the call's ids.
    ProviderFailed {
        provider: &'static str,
        error: String,
    },
}

struct Generation {
    playout_id: u64,
    cancel: CancellationToken,
    agent_rx: Option<mpsc::Receiver<AgentEvent>>,
    text_tx: Option<mpsc::Sender<String>>,
    tts_rx: Option<mpsc::Receiver<TtsEvent>>,
    /// Text handed to the TTS so far, in order.
    text: String,
    /// Audio appended to the playout so far (μ-law bytes).
    audio_bytes: usize,
    timing: TurnTiming,
    apologised: bool,
}

/// A reply fully sent, waiting for its mark.
struct Sent {
    playout_id: u64,
    text: String,
    timing: TurnTiming,
}

pub struct Conversation {
    agent: Box<dyn AgentSession>,
    agent_name: &'static str,
    tts: Option<Arc<dyn TextToSpeech>>,
    apology_text: String,
    apology_audio: Option<Bytes>,
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
            apology_text,
            apology_audio,
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
        let (tx, rx) = mpsc::channel(2);
        let _ = tx.try_send(AgentEvent::Text(text));
        let _ = tx.try_send(AgentEvent::Done);
        self.begin(rx, CancellationToken::new(), io, TurnTiming::new(None, now));
    }

    /// Say a fixed text (e.g. the apology when speech-to-text is down); returns the playout id.
    pub fn say(&mut self, text: String, io: &mut EngineIo<'_>, timing: TurnTiming) -> Option<u64> {
        self.tts.as_ref()?;
        self.abandon();
        let (tx, rx) = mpsc::channel(2);
        let _ = tx.try_send(AgentEvent::Text(text));
        let _ = tx.try_send(AgentEvent::Done);
        Some(self.begin(rx, CancellationToken::new(), io, timing))
    }

    /// Answer the caller's turn (cancelling any generation still running); returns the
    /// response's playout id.
    pub fn respond(&mut self, turn: CallerTurn, io: &mut EngineIo<'_>, timing: TurnTiming) -> u64 {
        self.abandon();
        let cancel = CancellationToken::new();
        let rx = self.agent.respond(turn, cancel.clone());
        self.begin(rx, cancel, io, timing)
    }

    fn begin(
        &mut self,
        agent_rx: mpsc::Receiver<AgentEvent>,
        cancel: CancellationToken,
        io: &mut EngineIo<'_>,
        timing: TurnTiming,
    ) -> u64 {
        let (text_tx, tts_rx) = match &self.tts {
            Some(tts) => {
                let (tx, rx) = mpsc::channel(TEXT_QUEUE);
                (Some(tx), Some(tts.speak(rx, cancel.child_token())))
            }
            None => (None, None),
        };
        let playout_id = io.begin_response();
        self.current = Some(Generation {
            playout_id,
            cancel,
            agent_rx: Some(agent_rx),
            text_tx,
            tts_rx,
            text: String::new(),
            audio_bytes: 0,
            timing,
            apologised: false,
        });
        playout_id
    }

    /// Wait for the next thing a provider produced (pending forever when idle).
    pub async fn next(&mut self) -> ConvEvent {
        let Some(g) = self.current.as_mut() else {
            return std::future::pending().await;
        };
        tokio::select! {
            ev = recv_opt(&mut g.agent_rx) => ConvEvent::Agent(ev),
            ev = recv_opt(&mut g.tts_rx) => ConvEvent::Tts(ev),
        }
    }

    /// Apply a provider event to the generation and the playout.
    pub fn handle(&mut self, event: ConvEvent, io: &mut EngineIo<'_>) -> Outcome {
        let now = io.now();
        let tts_name = self.tts_name();
        let Some(g) = self.current.as_mut() else {
            return Outcome::Nothing;
        };
        let mut outcome = Outcome::Nothing;
        match event {
            ConvEvent::Agent(Some(AgentEvent::Text(piece))) => {
                g.timing.agent_first.get_or_insert(now);
                g.timing.tts_first_text.get_or_insert(now);
                if !g.text.is_empty() {
                    g.text.push(' ');
                }
                g.text.push_str(&piece);
                if let Some(tx) = &g.text_tx {
                    // Bounded and a reply is a handful of pieces; if the TTS is this far
                    // behind, dropping text is better than stalling the call.
                    let _ = tx.try_send(piece);
                }
            }
            ConvEvent::Agent(Some(AgentEvent::Audio(audio))) => {
                g.timing.agent_first.get_or_insert(now);
                g.timing.tts_first_audio.get_or_insert(now);
                g.audio_bytes += audio.len();
                io.audio(g.playout_id, &audio);
            }
            ConvEvent::Agent(Some(AgentEvent::Action(action))) => {
                io.after_played(g.playout_id, action)
            }
            ConvEvent::Agent(Some(AgentEvent::Done)) | ConvEvent::Agent(None) => {
                g.agent_rx = None;
                g.text_tx = None; // end of the TTS input
                if g.tts_rx.is_none() {
                    io.end_response(g.playout_id);
                }
            }
            ConvEvent::Agent(Some(AgentEvent::Failed(e))) => {
                outcome = Outcome::ProviderFailed {
                    provider: self.agent_name,
                    error: e.to_string(),
                };
                g.agent_rx = None;
                if g.text.is_empty() {
                    // Nothing said yet: apologise through the TTS (it has its own fallbacks).
                    g.text.push_str(&self.apology_text);
                    if let Some(tx) = &g.text_tx {
                        let _ = tx.try_send(self.apology_text.clone());
                    }
                }
                g.text_tx = None;
                if g.tts_rx.is_none() {
                    apologise(g, &self.apology_audio, io);
                    io.end_response(g.playout_id);
                }
            }
            ConvEvent::Tts(Some(TtsEvent::Audio(audio))) => {
                g.timing.tts_first_audio.get_or_insert(now);
                g.audio_bytes += audio.len();
                io.audio(g.playout_id, &audio);
            }
            ConvEvent::Tts(Some(TtsEvent::Failed(e))) => {
                outcome = Outcome::ProviderFailed {
                    provider: tts_name,
                    error: e.to_string(),
                };
                g.tts_rx = None;
                if g.audio_bytes == 0 {
                    apologise(g, &self.apology_audio, io);
                }
                io.end_response(g.playout_id);
            }
            ConvEvent::Tts(Some(TtsEvent::Done)) | ConvEvent::Tts(None) => {
                g.tts_rx = None;
                io.end_response(g.playout_id);
            }
        }
        if g.agent_rx.is_none() && g.tts_rx.is_none() {
            self.complete();
        }
        outcome
    }

    /// The generation produced everything; it waits for its mark now.
    fn complete(&mut self) {
        if let Some(g) = self.current.take() {
            self.sent = Some(Sent {
                playout_id: g.playout_id,
                text: g.text,
                timing: g.timing,
            });
        }
    }

    /// Timing of the generation whose first frame just went out.
    pub fn timing_mut(&mut self, playout_id: u64) -> Option<&mut TurnTiming> {
        if let Some(g) = self.current.as_mut().filter(|g| g.playout_id == playout_id) {
            return Some(&mut g.timing);
        }
        self.sent
            .as_mut()
            .filter(|s| s.playout_id == playout_id)
            .map(|s| &mut s.timing)
    }

    /// The reply with this playout id finished playing: the history keeps all of it.
    pub fn played(&mut self, playout_id: u64, io: &mut EngineIo<'_>) {
        if let Some(sent) = self.sent.take_if(|s| s.playout_id == playout_id) {
            self.agent.reply_heard(&sent.text, false);
            if !sent.text.is_empty() {
                io.agent_said(sent.playout_id, &sent.text, false);
            }
        }
    }

    /// Barge-in: stop the generation; the history keeps what the caller heard of it.
    pub fn interrupted(&mut self, cleared: &Cleared, io: &mut EngineIo<'_>) {
        let (id, text, audio_bytes) = match (self.current.take(), self.sent.take()) {
            (Some(g), _) => {
                g.cancel.cancel();
                (g.playout_id, g.text, g.audio_bytes)
            }
            (None, Some(s)) => (s.playout_id, s.text, usize::MAX),
            (None, None) => return,
        };
        let heard = heard_prefix(&text, cleared.heard_bytes, audio_bytes);
        self.agent.reply_heard(heard, true);
        if !heard.is_empty() {
            io.agent_said(id, heard, true);
        }
    }

    /// Drop a generation without a barge-in (a new turn overtook it, or the call ended).
    pub fn abandon(&mut self) {
        if let Some(g) = self.current.take() {
            g.cancel.cancel();
        }
        self.sent = None;
    }
}

fn apologise(g: &mut Generation, apology: &Option<Bytes>, io: &mut EngineIo<'_>) {
    if g.apologised {
        return;
    }
    g.apologised = true;
    if let Some(audio) = apology {
        g.audio_bytes += audio.len();
        io.audio(g.playout_id, audio);
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The part of `text` the caller heard, given how much of its audio was heard: proportional
/// to the audio, cut back to a word boundary. `total_audio` is the audio produced so far
/// (`usize::MAX` when all of it was sent: then `heard_bytes` of it is compared to itself).
pub fn heard_prefix(text: &str, heard_bytes: usize, total_audio: usize) -> &str {
    if total_audio == usize::MAX || total_audio == 0 || heard_bytes >= total_audio {
        return if heard_bytes == 0 && total_audio != usize::MAX {
            ""
        } else {
            text
        };
    }
    let chars = text.chars().count();
    let keep = (chars as f64 * heard_bytes as f64 / total_audio as f64).floor() as usize;
    let byte_end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    let prefix = &text[..byte_end];
    if byte_end == text.len() || text[byte_end..].starts_with(' ') {
        return prefix.trim_end();
    }
    prefix.rfind(' ').map_or("", |i| prefix[..i].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heard_prefix_cuts_at_words() {
        let text = "Your order ships tomorrow morning.";
        assert_eq!(heard_prefix(text, 0, 1000), "");
        assert_eq!(heard_prefix(text, 1000, 1000), text);
        assert_eq!(heard_prefix(text, 500, 1000), "Your order ships");
        assert_eq!(heard_prefix(text, 100, 1000), "");
        assert_eq!(heard_prefix(text, 350, 1000), "Your order");
        assert_eq!(heard_prefix("héllo wörld", 800, 1000), "héllo");
    }
}
