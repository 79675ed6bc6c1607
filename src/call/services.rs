//! The providers a call uses — STT, agent, TTS, the apology, the Twilio REST client — built
//! once at start-up and shared by every call through an `Arc`. Holds no per-call state.

use std::sync::Arc;

use bytes::Bytes;

use crate::agent::Agent;
use crate::agent::echo::EchoAgent;
use crate::config::TurnSource;
use crate::stt::SpeechToText;
use crate::tts::TextToSpeech;

pub struct CallServices {
    pub stt: Option<Arc<dyn SpeechToText>>,
    pub agent: Arc<dyn Agent>,
    pub tts: Option<Arc<dyn TextToSpeech>>,
    /// Said through the TTS when the agent fails before saying anything.
    pub apology_text: String,
    /// Played when every TTS fails too (pre-rendered at start-up), if available.
    pub apology_audio: Option<Bytes>,
    /// What ends the caller's turn (`auto` resolved).
    pub turn_source: TurnSource,
}

impl CallServices {
    /// The zero-configuration default: echo agent, local VAD, no speech providers.
    pub fn echo() -> Self {
        Self {
            stt: None,
            agent: Arc::new(EchoAgent::default()),
            tts: None,
            apology_text: String::new(),
            apology_audio: None,
            turn_source: TurnSource::Vad,
        }
    }
}
