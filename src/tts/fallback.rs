//! [`FallbackTts`]: a [`TextToSpeech`] that never leaves the caller in silence. It speaks with
//! the primary provider; if that fails it hands the text to the secondary; if there is none or
//! it fails too, it plays the pre-rendered apology clip and ends with `Done`.
//!
//! What the secondary gets: if the primary failed before any audio, every piece so far; if it
//! failed after some audio, the pieces it had not finished, estimated from the audio received
//! at [`MS_PER_CHAR`] per character (a little slow on purpose, so that a sentence is repeated
//! rather than skipped); then the rest of the text as it comes. A piece the primary was half
//! way through is replayed from its start.
//!
//! Every provider failure reaches the listener once, as the provider's own
//! [`TtsEvent::Warning`] (passed through; the session's summary counts it); the apology clip
//! comes as [`TtsEvent::Apology`], so the conversation knows the rest of the reply was never
//! heard. With no clip to play, the last failure is passed on as `Failed`.
//!
//! This module must not talk to any service itself, must not retry the same provider, and does
//! not count the failing provider's error again (each provider counts its own failures); it
//! counts the switch in [`TTS_FALLBACKS`].

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use metrics::counter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::common::emit;
use super::{EVENT_QUEUE, TextToSpeech, TtsEvent};
use crate::provider::{ProviderError, count_error};

/// `voxbridge_tts_fallbacks_total{to="secondary"|"apology"}`: switches away from a failed
/// provider.
pub use crate::metrics::TTS_FALLBACKS;
/// Estimated speech duration per character, for deciding which pieces were spoken.
pub const MS_PER_CHAR: u64 = 70;
/// Text pieces queued towards one provider.
const TEXT_QUEUE: usize = 16;

/// A primary provider, an optional secondary, and an optional apology clip (8 kHz μ-law).
pub struct FallbackTts {
    primary: Arc<dyn TextToSpeech>,
    secondary: Option<Arc<dyn TextToSpeech>>,
    apology: Option<Bytes>,
}

impl FallbackTts {
    /// `apology` is played when every provider failed (render it at startup, e.g. with
    /// [`super::espeak::Espeak::render`]).
    pub fn new(
        primary: Arc<dyn TextToSpeech>,
        secondary: Option<Arc<dyn TextToSpeech>>,
        apology: Option<Bytes>,
    ) -> Self {
        Self {
            primary,
            secondary,
            apology,
        }
    }
}

impl TextToSpeech for FallbackTts {
    fn name(&self) -> &'static str {
        self.primary.name()
    }

    fn speak(
        &self,
        text: mpsc::Receiver<String>,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<TtsEvent> {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let leg = Leg::start(&self.primary, &cancel, VecDeque::new());
        let run = Run {
            secondary: self.secondary.clone(),
            apology: self.apology.clone(),
            tx,
            cancel,
            pieces: Vec::new(),
        };
        tokio::spawn(run.drive(text, leg));
        rx
    }
}

/// One provider speaking (part of) the response.
struct Leg {
    name: &'static str,
    /// `None` once the provider was told the text is complete.
    text: Option<mpsc::Sender<String>>,
    /// Pieces waiting for room in the provider's text queue.
    queue: VecDeque<String>,
    events: mpsc::Receiver<TtsEvent>,
    cancel: CancellationToken,
    audio_bytes: u64,
}

impl Leg {
    fn start(
        tts: &Arc<dyn TextToSpeech>,
        parent: &CancellationToken,
        queue: VecDeque<String>,
    ) -> Self {
        let (text, rx) = mpsc::channel(TEXT_QUEUE);
        let cancel = parent.child_token();
        let events = tts.speak(rx, cancel.clone());
        Self {
            name: tts.name(),
            text: Some(text),
            queue,
            events,
            cancel,
            audio_bytes: 0,
        }
    }
}

/// Whatever ends the response, a provider left behind stops too.
impl Drop for Leg {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The state of one response.
struct Run {
    secondary: Option<Arc<dyn TextToSpeech>>,
    apology: Option<Bytes>,
    tx: mpsc::Sender<TtsEvent>,
    cancel: CancellationToken,
    /// Every piece received so far, in order.
    pieces: Vec<String>,
}

/// Wait for room in the provider's text queue (never, if it has none).
async fn reserve(text: Option<mpsc::Sender<String>>) -> Option<mpsc::OwnedPermit<String>> {
    match text {
        Some(text) => text.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

impl Run {
    async fn drive(mut self, mut text: mpsc::Receiver<String>, mut leg: Leg) {
        let mut text_open = true;
        loop {
            if !text_open && leg.queue.is_empty() {
                leg.text = None;
            }
            let can_send = leg.text.is_some() && !leg.queue.is_empty();
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return,
                event = leg.events.recv() => {
                    let failure = match event {
                        Some(TtsEvent::Audio(audio)) => {
                            leg.audio_bytes += audio.len() as u64;
                            if emit(&self.tx, TtsEvent::Audio(audio), &self.cancel).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        Some(TtsEvent::Done) => {
                            let _ = emit(&self.tx, TtsEvent::Done, &self.cancel).await;
                            return;
                        }
                        Some(event @ (TtsEvent::Warning { .. } | TtsEvent::Apology(_))) => {
                            if emit(&self.tx, event, &self.cancel).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        // Already counted and reported (as a warning) by the provider.
                        Some(TtsEvent::Failed(e)) => e,
                        None => {
                            let e = ProviderError::Disconnected(format!("{} ended without Done", leg.name));
                            count_error(leg.name, &e);
                            let warning = TtsEvent::Warning { provider: leg.name, error: e.clone() };
                            if emit(&self.tx, warning, &self.cancel).await.is_err() {
                                return;
                            }
                            e
                        }
                    };
                    leg.cancel.cancel();
                    match self.secondary.take() {
                        Some(secondary) => {
                            let replay = self.unspoken(leg.audio_bytes);
                            warn!(from = leg.name, to = secondary.name(), kind = failure.kind(),
                                  error = %failure, replayed_pieces = replay.len(),
                                  "tts provider failed; switching to the secondary");
                            counter!(TTS_FALLBACKS, "to" => "secondary").increment(1);
                            leg = Leg::start(&secondary, &self.cancel, replay);
                        }
                        None => return self.apologise(leg.name, &failure).await,
                    }
                }
                permit = reserve(leg.text.clone()), if can_send => match (permit, leg.queue.pop_front()) {
                    (Some(permit), Some(piece)) => {
                        permit.send(piece);
                    }
                    (None, piece) => {
                        // The provider stopped reading; its failure event follows.
                        debug!(provider = leg.name, "text queue closed");
                        leg.queue.extend(piece);
                        leg.text = None;
                    }
                    (Some(_), None) => {}
                },
                piece = text.recv(), if text_open => match piece {
                    Some(piece) => {
                        self.pieces.push(piece.clone());
                        leg.queue.push_back(piece);
                    }
                    None => text_open = false,
                },
            }
        }
    }

    /// The pieces not (fully) covered by `audio_bytes` of 8 kHz μ-law, by the estimate.
    fn unspoken(&self, audio_bytes: u64) -> VecDeque<String> {
        let spoken_ms = audio_bytes / 8;
        let mut end_ms = 0;
        let first = self.pieces.iter().position(|piece| {
            end_ms += piece.chars().count() as u64 * MS_PER_CHAR;
            end_ms > spoken_ms
        });
        match first {
            Some(first) => self.pieces[first..].iter().cloned().collect(),
            None => VecDeque::new(),
        }
    }

    /// Last resort: the apology clip, then `Done`; with no clip, the failure itself.
    async fn apologise(self, failed: &'static str, failure: &ProviderError) {
        warn!(provider = failed, kind = failure.kind(), error = %failure,
              has_apology = self.apology.is_some(), "tts failed with no provider left; apologising");
        let Some(apology) = self.apology.clone() else {
            let _ = emit(&self.tx, TtsEvent::Failed(failure.clone()), &self.cancel).await;
            return;
        };
        counter!(TTS_FALLBACKS, "to" => "apology").increment(1);
        if emit(&self.tx, TtsEvent::Apology(apology), &self.cancel)
            .await
            .is_err()
        {
            return;
        }
        let _ = emit(&self.tx, TtsEvent::Done, &self.cancel).await;
    }
}

#[cfg(test)]
mod tests;
