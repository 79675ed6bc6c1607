//! Agents: who answers the caller. The session knows only [`Agent`] / [`AgentSession`];
//! one file per agent: [`echo`] (the default), [`openai`] (any OpenAI-compatible Chat
//! Completions server, streamed), [`scripted`] (a deterministic flow from a file).
//!
//! An agent produces *text* (spoken by the TTS) or, for echo without STT, *audio*. It never
//! touches sockets, playout timing or TTS. Text is handed over in speakable pieces — sentences
//! or clauses — as soon as each is complete ([`sentences`]).

pub mod echo;
pub mod openai;
pub mod scripted;
pub mod sentences;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::provider::{CallIds, ProviderError};

/// Events buffered between an agent's response task and the session.
pub const EVENT_QUEUE: usize = 64;

/// What the caller did this turn.
#[derive(Debug, Clone, PartialEq)]
pub enum CallerTurn {
    /// The final transcript of what they said.
    Speech(String),
    /// DTMF digits pressed.
    Dtmf(String),
    /// Their raw 8 kHz μ-law audio (when no STT runs).
    Audio(Bytes),
}

/// Something the agent wants done to the call (tool calls `end_call`, `transfer_call`).
#[derive(Debug, Clone, PartialEq)]
pub enum CallAction {
    /// Hang up once the current response has played.
    EndCall,
    /// Transfer to this number (E.164) once the current response has played.
    Transfer { to: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// A speakable piece of the reply (sentence or clause), in order.
    Text(String),
    /// Reply audio, 8 kHz μ-law (echo without STT).
    Audio(Bytes),
    /// Do this to the call after the reply.
    Action(CallAction),
    /// The agent's verdict on the call (`set_outcome`, `opt_out`, a flow state's `outcome`),
    /// e.g. `interested` or [`OPTED_OUT`](crate::dialer::model::OPTED_OUT): recorded at once
    /// (a barge-in does not undo it); the last one of a call wins.
    Outcome(String),
    /// The reply is complete.
    Done,
    /// A provider failure the agent met (a failed attempt it retried or failed over from, a
    /// malformed event it skipped, or the one that ends the reply): one event per failure,
    /// already counted in `voxbridge_provider_errors_total` — listeners count failures by these.
    Warning(ProviderError),
    /// The reply failed; no more events follow. What caused it was reported as a `Warning`
    /// just before (a reply that cannot go on without a provider fault behind it, e.g. a
    /// retried stream that said something else, has none).
    Failed(ProviderError),
}

/// The longest outcome label kept (the call record keeps as much).
pub const MAX_OUTCOME_CHARS: usize = 64;

/// An agent's outcome as a label: trimmed, lower case, spaces and hyphens as `_`
/// (`"Callback requested"` → `callback_requested`); `None` when empty, longer than
/// [`MAX_OUTCOME_CHARS`] or holding anything but letters, digits and `_`.
pub fn outcome_label(raw: &str) -> Option<String> {
    let label: String = raw
        .trim()
        .chars()
        .map(|c| match c {
            ' ' | '-' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    let ok = !label.is_empty()
        && label.chars().count() <= MAX_OUTCOME_CHARS
        && label.chars().all(|c| c.is_alphanumeric() || c == '_');
    ok.then_some(label)
}

/// An agent: a factory of per-call conversations.
pub trait Agent: Send + Sync + 'static {
    /// Name for logs and the `provider` metric label.
    fn name(&self) -> &'static str;
    /// A new conversation for one call.
    fn start_call(&self, call: &CallIds) -> Box<dyn AgentSession>;
}

/// One call's conversation: owns its history and flow state.
pub trait AgentSession: Send {
    /// What to say when the stream starts, if anything.
    fn greeting(&mut self) -> Option<String>;
    /// Answer the caller's turn. Cancelling `cancel` (barge-in) abandons the reply: the task
    /// must stop promptly (drop the HTTP stream so the provider sees the cancellation).
    fn respond(
        &mut self,
        turn: CallerTurn,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<AgentEvent>;
    /// How the last reply ended: the text the caller actually heard (all of it unless
    /// `interrupted`; the apology when the caller heard that instead). The history keeps
    /// exactly this, and the reply's tool calls unless the caller cut it short.
    fn reply_heard(&mut self, heard: &str, interrupted: bool);
    /// The engine itself said `text` to the caller (a reprompt when no words were recognised,
    /// an apology when speech-to-text is down): not a reply of this agent, but part of the
    /// conversation. Agents with a history may note it.
    fn said(&mut self, _text: &str) {}
}
