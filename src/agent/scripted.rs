//! The scripted agent: a deterministic conversation flow (states, prompts, keyword and DTMF
//! transitions) loaded from TOML, for IVR-style lines and for demos and tests that need an
//! agent with no LLM. Given the same turns it always says the same things.
//!
//! Flow format:
//! ```toml
//! start = "menu"                       # the state whose `say` is the greeting
//!
//! [states.menu]
//! say = "Press 1 or say order to check an order."
//! fallback = "Sorry, I did not get that."  # said when nothing matches (stay); default: `say` again
//!
//! [[states.menu.on]]                   # transitions, tried in order
//! keywords = ["order", "status"]       # whole words (or phrases), case-insensitive
//! dtmf = "1"                           # keys: exact, else the longest prefix of what was pressed
//! to = "order"
//!
//! [states.order]
//! say = "Please key in your order number, then press pound."
//! [[states.order.on]]
//! digits = true                        # any digits, pressed or spoken
//! to = "done"
//!
//! [states.done]
//! say = "Your order {digits} will arrive tomorrow. Goodbye."  # {digits}: "1 2 3", spaced
//! end = true                           # hang up after saying it (or `transfer = "+1555…"`)
//! outcome = "order_checked"            # the call's outcome, recorded on reaching the state
//!
//! [states.stop]                        # e.g. reached on keywords ["stop calling", "remove me"]
//! say = "Understood, we will not call you again. Goodbye."
//! opt_out = true                       # outcome `opted_out` (the dialer puts the number on
//!                                      # the do-not-call list), hang up after saying it
//! ```
//! An `outcome` is a label: 1-64 lower-case letters, digits or `_` (the last one a call
//! reaches wins). `opt_out` cannot go with `outcome` or `transfer`; the start state can carry
//! none of `end`, `transfer`, `outcome`, `opt_out`.
//! For a spoken turn, keywords are tried first, then a `dtmf` equal to the digits spoken, then
//! `digits = true`. Digits are ASCII digits only (STT writes spoken numbers as digits). Raw
//! audio turns (no STT) are ignored. The flow is validated on load; errors name the state.
//!
//! Must not: do I/O after loading, call any provider, or keep history (it has none).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::sentences::SentenceSplitter;
use super::{Agent, AgentEvent, AgentSession, CallAction, CallerTurn};
use crate::dialer::model::OPTED_OUT;
use crate::provider::CallIds;

mod validate;
use self::validate::validate;

/// The number the demo flow transfers to (a reserved 555 number; replace in a real flow).
pub const DEMO_TRANSFER_TO: &str = "+15555550100";

/// The built-in flow used when `agent.flow_file` is empty (`src/agent/scripted/demo.toml`).
pub const DEMO_FLOW: &str = include_str!("scripted/demo.toml");

/// Why a flow could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlowError {
    #[error("cannot read flow file {path}: {message}")]
    Read { path: String, message: String },
    #[error("invalid flow TOML: {0}")]
    Toml(String),
    #[error("start state `{0}` is not defined under [states]")]
    MissingStart(String),
    #[error(
        "start state `{0}` cannot end or transfer the call, opt out or set an outcome (a greeting carries no action)"
    )]
    StartHasAction(String),
    #[error("state `{state}`: transition {index} goes to unknown state `{to}`")]
    UnknownTarget {
        state: String,
        index: usize,
        to: String,
    },
    #[error("state `{state}`: transition {index} has no keywords, dtmf or digits")]
    EmptyTransition { state: String, index: usize },
    #[error("state `{state}`: transition {index} has an empty keyword")]
    EmptyKeyword { state: String, index: usize },
    #[error("state `{state}`: dtmf `{dtmf}` may hold only 0-9, * and #")]
    BadDtmf { state: String, dtmf: String },
    #[error("state `{state}`: transfer number `{number}` is not E.164 (+ and 8-15 digits)")]
    BadTransfer { state: String, number: String },
    #[error("state `{0}`: `end` and `transfer` cannot both be set")]
    EndAndTransfer(String),
    #[error("state `{state}`: outcome `{outcome}` must be 1-64 lower-case letters, digits or `_`")]
    BadOutcome { state: String, outcome: String },
    #[error("state `{0}`: `opt_out` cannot go with `outcome` or `transfer`")]
    OptOutConflict(String),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Flow {
    start: String,
    #[serde(default)]
    states: BTreeMap<String, State>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    say: String,
    #[serde(default)]
    end: bool,
    transfer: Option<String>,
    fallback: Option<String>,
    /// The call's outcome, recorded when the flow reaches this state.
    outcome: Option<String>,
    /// The person opted out: outcome `opted_out`, and hang up after `say`.
    #[serde(default)]
    opt_out: bool,
    #[serde(default)]
    on: Vec<Transition>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Transition {
    #[serde(default)]
    keywords: Vec<String>,
    dtmf: Option<String>,
    #[serde(default)]
    digits: bool,
    to: String,
}

/// A deterministic agent running one flow; every call starts at the flow's start state.
#[derive(Debug, Clone)]
pub struct ScriptedAgent {
    flow: Arc<Flow>,
}

impl ScriptedAgent {
    /// Load and validate a flow file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, FlowError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| FlowError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text)
    }

    /// Parse and validate a flow.
    pub fn from_toml(text: &str) -> Result<Self, FlowError> {
        let flow: Flow = toml::from_str(text).map_err(|e| FlowError::Toml(e.to_string()))?;
        validate(&flow)?;
        Ok(Self {
            flow: Arc::new(flow),
        })
    }

    /// The built-in demo flow ([`DEMO_FLOW`]): an order line that can hang up or transfer.
    pub fn demo() -> Self {
        Self::from_toml(DEMO_FLOW).unwrap_or_else(|e| {
            tracing::error!(error = %e, "built-in demo flow is invalid; using a one-line flow");
            let state = State {
                say: "Hello.".into(),
                end: false,
                transfer: None,
                fallback: None,
                outcome: None,
                opt_out: false,
                on: Vec::new(),
            };
            let states = BTreeMap::from([("start".to_string(), state)]);
            Self {
                flow: Arc::new(Flow {
                    start: "start".into(),
                    states,
                }),
            }
        })
    }
}

impl Agent for ScriptedAgent {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn start_call(&self, call: &CallIds) -> Box<dyn AgentSession> {
        Box::new(ScriptedSession {
            flow: self.flow.clone(),
            state: self.flow.start.clone(),
            greeted: false,
            call_sid: call.call_sid.clone(),
        })
    }
}

struct ScriptedSession {
    flow: Arc<Flow>,
    state: String,
    greeted: bool,
    call_sid: String,
}

impl AgentSession for ScriptedSession {
    fn greeting(&mut self) -> Option<String> {
        if std::mem::replace(&mut self.greeted, true) {
            return None;
        }
        let say = self.flow.states.get(&self.flow.start)?.say.trim();
        (!say.is_empty()).then(|| say.to_string())
    }

    fn respond(
        &mut self,
        turn: CallerTurn,
        _cancel: CancellationToken,
    ) -> mpsc::Receiver<AgentEvent> {
        let events = self.step(&turn);
        // The whole reply is known at once: a channel exactly that big never blocks.
        let (tx, rx) = mpsc::channel(events.len().max(1));
        for event in events {
            let _ = tx.try_send(event);
        }
        rx
    }

    fn reply_heard(&mut self, _heard: &str, _interrupted: bool) {}
}

impl ScriptedSession {
    /// Move through the flow for one turn; the reply's events, ending with `Done`.
    fn step(&mut self, turn: &CallerTurn) -> Vec<AgentEvent> {
        let Some(current) = self.flow.states.get(&self.state) else {
            return vec![AgentEvent::Done];
        };
        let (next, digits) = match turn {
            CallerTurn::Dtmf(keys) => (match_dtmf(current, keys), ascii_digits(keys)),
            CallerTurn::Speech(text) => (match_speech(current, text), ascii_digits(text)),
            CallerTurn::Audio(_) => return vec![AgentEvent::Done],
        };
        let mut out = Vec::new();
        match next.and_then(|to| Some((to, self.flow.states.get(to)?))) {
            Some((to, target)) => {
                tracing::debug!(
                    call_sid = self.call_sid,
                    from = self.state,
                    to,
                    "flow transition"
                );
                self.state = to.to_string();
                let outcome = match target.opt_out {
                    true => Some(OPTED_OUT),
                    false => target.outcome.as_deref(),
                };
                // First: recorded even if the caller cuts the words short.
                out.extend(outcome.map(|o| AgentEvent::Outcome(o.to_owned())));
                out.extend(pieces(&render(&target.say, &digits)));
                if target.end || target.opt_out {
                    out.push(AgentEvent::Action(CallAction::EndCall));
                } else if let Some(to) = &target.transfer {
                    out.push(AgentEvent::Action(CallAction::Transfer { to: to.clone() }));
                }
            }
            None => out.extend(pieces(current.fallback.as_deref().unwrap_or(&current.say))),
        }
        out.push(AgentEvent::Done);
        out
    }
}

/// Keys: an exact `dtmf`, else the longest `dtmf` the keys start with, else `digits = true`.
fn match_dtmf<'a>(state: &'a State, keys: &str) -> Option<&'a str> {
    let keys = keys.trim();
    let dtmf = |t: &&Transition| t.dtmf.as_deref().is_some_and(|d| keys == d);
    let exact = state.on.iter().find(dtmf);
    let prefix = || {
        state
            .on
            .iter()
            .filter(|t| t.dtmf.as_deref().is_some_and(|d| keys.starts_with(d)))
            .max_by_key(|t| t.dtmf.as_deref().map_or(0, str::len))
    };
    let digits = || {
        state
            .on
            .iter()
            .find(|t| t.digits && !ascii_digits(keys).is_empty())
    };
    exact.or_else(prefix).or_else(digits).map(|t| t.to.as_str())
}

/// Speech: keywords (in order), then a `dtmf` equal to the digits said, then `digits = true`.
fn match_speech<'a>(state: &'a State, text: &str) -> Option<&'a str> {
    let said = words(text);
    let has = |phrase: &Vec<String>| said.windows(phrase.len()).any(|w| w == phrase.as_slice());
    let keyword = state
        .on
        .iter()
        .find(|t| t.keywords.iter().any(|k| has(&words(k))));
    let spoken = ascii_digits(text);
    let dtmf = || {
        state
            .on
            .iter()
            .find(|t| !spoken.is_empty() && t.dtmf.as_deref() == Some(spoken.as_str()))
    };
    let digits = || state.on.iter().find(|t| t.digits && !spoken.is_empty());
    keyword.or_else(dtmf).or_else(digits).map(|t| t.to.as_str())
}

/// Lower-case words (letters, digits, apostrophes).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn ascii_digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// `say` with `{digits}` replaced by the digits, spaced so they are read one by one.
fn render(say: &str, digits: &str) -> String {
    if !say.contains("{digits}") {
        return say.to_string();
    }
    let spaced: Vec<String> = digits.chars().map(String::from).collect();
    let text = say.replace("{digits}", &spaced.join(" "));
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` as speakable pieces.
fn pieces(text: &str) -> Vec<AgentEvent> {
    let mut splitter = SentenceSplitter::new();
    let mut out = splitter.push(text);
    out.extend(splitter.finish());
    out.into_iter().map(AgentEvent::Text).collect()
}

#[cfg(test)]
mod tests;
