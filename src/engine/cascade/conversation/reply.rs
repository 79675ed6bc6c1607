//! One generation (response) of the conversation: its provider channels, what it handed the
//! TTS, the audio it produced, and how each provider event changes it.
//!
//! `text` is always what the caller is being played, as words: the reply's pieces as they go
//! to the TTS; once no voice can say the rest (every TTS failed), the part of the reply its
//! audio covered plus the apology that replaced the rest; after the agent failed mid-reply,
//! what was said plus the apology. A reply that said nothing and produced no audio (only a
//! tool call) ends at once, so its actions need not wait for a mark that never comes.
//!
//! No I/O beyond [`EngineIo`]; no clock.

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Apology, ConvEvent, Outcome};
use crate::agent::AgentEvent;
use crate::call::latency::TurnTiming;
use crate::engine::EngineIo;
use crate::tts::TtsEvent;
use crate::tts::fallback::MS_PER_CHAR;

pub(super) struct Generation {
    playout_id: u64,
    cancel: CancellationToken,
    agent_rx: Option<mpsc::Receiver<AgentEvent>>,
    text_tx: Option<mpsc::Sender<String>>,
    tts_rx: Option<mpsc::Receiver<TtsEvent>>,
    /// What the caller is being played, as text (see the module doc).
    text: String,
    /// Audio appended to the playout so far (μ-law bytes).
    audio_bytes: usize,
    timing: TurnTiming,
    /// The apology is part of this response (through the TTS or as the clip).
    apologised: bool,
    /// No voice is left: agent text is no longer spoken.
    voiceless: bool,
    /// Said by the engine itself, not the agent's reply.
    own: bool,
}

impl Generation {
    pub fn new(
        playout_id: u64,
        cancel: CancellationToken,
        agent_rx: mpsc::Receiver<AgentEvent>,
        text_tx: Option<mpsc::Sender<String>>,
        tts_rx: Option<mpsc::Receiver<TtsEvent>>,
        timing: TurnTiming,
        own: bool,
    ) -> Self {
        Self {
            playout_id,
            cancel,
            agent_rx: Some(agent_rx),
            text_tx,
            tts_rx,
            text: String::new(),
            audio_bytes: 0,
            timing,
            apologised: false,
            voiceless: false,
            own,
        }
    }

    pub fn playout_id(&self) -> u64 {
        self.playout_id
    }

    pub fn timing_mut(&mut self) -> &mut TurnTiming {
        &mut self.timing
    }

    pub fn is_own(&self) -> bool {
        self.own
    }

    /// Stop the providers' work for this generation.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Both providers are done with it.
    pub fn is_complete(&self) -> bool {
        self.agent_rx.is_none() && self.tts_rx.is_none()
    }

    /// `(playout id, text, timing, own, audio bytes)`.
    pub fn into_parts(self) -> (u64, String, TurnTiming, bool, usize) {
        (
            self.playout_id,
            self.text,
            self.timing,
            self.own,
            self.audio_bytes,
        )
    }

    /// Wait for the next provider event.
    pub async fn next(&mut self) -> ConvEvent {
        tokio::select! {
            ev = recv_opt(&mut self.agent_rx) => ConvEvent::Agent(ev),
            ev = recv_opt(&mut self.tts_rx) => ConvEvent::Tts(ev),
        }
    }

    /// Apply one provider event.
    pub fn handle(
        &mut self,
        event: ConvEvent,
        io: &mut EngineIo<'_>,
        apology: &Apology,
        agent: &'static str,
        tts: &'static str,
    ) -> Outcome {
        let now = io.now();
        match event {
            ConvEvent::Agent(Some(AgentEvent::Text(piece))) => {
                self.timing.agent_first.get_or_insert(now);
                self.timing.tts_first_text.get_or_insert(now);
                if !self.voiceless {
                    self.speak(piece);
                }
            }
            ConvEvent::Agent(Some(AgentEvent::Audio(audio))) => {
                self.timing.agent_first.get_or_insert(now);
                self.timing.tts_first_audio.get_or_insert(now);
                self.play(io, &audio);
            }
            ConvEvent::Agent(Some(AgentEvent::Action(action))) => {
                io.after_played(self.playout_id, action)
            }
            ConvEvent::Agent(Some(AgentEvent::Outcome(outcome))) => {
                tracing::info!(parent: io.span(), provider = agent, outcome = %outcome, "agent set the call's outcome");
                io.outcome(&outcome);
            }
            ConvEvent::Agent(Some(AgentEvent::Warning(e))) => {
                return Outcome::ProviderFailed {
                    provider: agent,
                    error: e.to_string(),
                };
            }
            ConvEvent::Agent(Some(AgentEvent::Done)) | ConvEvent::Agent(None) => {
                self.agent_rx = None;
                self.text_tx = None; // end of the TTS input
                if self.text.is_empty() && self.audio_bytes == 0 && !self.apologised {
                    // Nothing to say (only a tool call): no audio will come; end it now.
                    self.cancel.cancel();
                    self.tts_rx = None;
                }
                if self.tts_rx.is_none() {
                    io.end_response(self.playout_id);
                }
            }
            ConvEvent::Agent(Some(AgentEvent::Failed(e))) => {
                // Already reported (as a warning) where it happened.
                warn!(parent: io.span(), provider = agent, error = %e, "agent reply failed; apologising");
                self.agent_rx = None;
                if !self.apologised && !self.voiceless {
                    // Whatever was said, the caller hears a complete sentence after it.
                    self.apologised = true;
                    self.speak(apology.text.clone());
                }
                self.text_tx = None;
                if self.tts_rx.is_none() {
                    self.replace_with_apology(io, apology);
                    io.end_response(self.playout_id);
                }
            }
            ConvEvent::Tts(Some(TtsEvent::Audio(audio))) => {
                self.timing.tts_first_audio.get_or_insert(now);
                self.play(io, &audio);
            }
            ConvEvent::Tts(Some(TtsEvent::Warning { provider, error })) => {
                return Outcome::ProviderFailed {
                    provider,
                    error: error.to_string(),
                };
            }
            ConvEvent::Tts(Some(TtsEvent::Apology(clip))) => {
                self.timing.tts_first_audio.get_or_insert(now);
                self.replace_text_with_apology(&apology.text);
                self.play(io, &clip);
            }
            ConvEvent::Tts(Some(TtsEvent::Failed(e))) => {
                warn!(parent: io.span(), provider = tts, error = %e, "tts failed; apologising");
                self.tts_rx = None;
                self.replace_with_apology(io, apology);
                io.end_response(self.playout_id);
            }
            ConvEvent::Tts(Some(TtsEvent::Done)) | ConvEvent::Tts(None) => {
                self.tts_rx = None;
                io.end_response(self.playout_id);
            }
        }
        Outcome::Nothing
    }

    /// Hand a piece to the TTS and note it as said.
    fn speak(&mut self, piece: String) {
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        self.text.push_str(piece.trim());
        if let Some(tx) = &self.text_tx {
            // Bounded and a reply is a handful of pieces; if the TTS is this far behind,
            // dropping text is better than stalling the call.
            let _ = tx.try_send(piece);
        }
    }

    fn play(&mut self, io: &mut EngineIo<'_>, audio: &[u8]) {
        self.audio_bytes += audio.len();
        io.audio(self.playout_id, audio);
    }

    /// No voice is left: play the pre-rendered apology (if any) in place of the rest.
    fn replace_with_apology(&mut self, io: &mut EngineIo<'_>, apology: &Apology) {
        if self.voiceless {
            return;
        }
        self.replace_text_with_apology(&apology.text);
        if let Some(clip) = &apology.audio {
            let clip: Bytes = clip.clone();
            self.play(io, &clip);
        }
    }

    /// From here on the caller hears the apology: the text keeps what the audio so far covered.
    fn replace_text_with_apology(&mut self, apology: &str) {
        self.voiceless = true;
        self.apologised = true;
        self.text_tx = None;
        let mut kept = spoken_estimate(&self.text, self.audio_bytes).to_owned();
        if !kept.ends_with(apology.trim()) && !apology.trim().is_empty() {
            if !kept.is_empty() {
                kept.push(' ');
            }
            kept.push_str(apology.trim());
        }
        self.text = kept;
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The part of `text` that `audio_bytes` of speech covers, at [`MS_PER_CHAR`] per character,
/// cut back to a word boundary.
fn spoken_estimate(text: &str, audio_bytes: usize) -> &str {
    let chars = (audio_bytes as u64 / 8 / MS_PER_CHAR) as usize;
    cut_at_word(text, chars)
}

/// The first `keep` characters of `text`, cut back to a word boundary.
fn cut_at_word(text: &str, keep: usize) -> &str {
    let byte_end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    let prefix = &text[..byte_end];
    if byte_end == text.len() || text[byte_end..].starts_with(' ') {
        return prefix.trim_end();
    }
    prefix.rfind(' ').map_or("", |i| prefix[..i].trim_end())
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
    cut_at_word(text, keep)
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

    #[test]
    fn the_spoken_estimate_follows_the_audio() {
        let text = "Your order ships tomorrow morning.";
        assert_eq!(spoken_estimate(text, 0), "");
        // 16 characters' worth of audio: "Your order ships".
        let bytes = 16 * MS_PER_CHAR as usize * 8;
        assert_eq!(spoken_estimate(text, bytes), "Your order ships");
        assert_eq!(spoken_estimate(text, usize::MAX / 2), text);
    }
}
