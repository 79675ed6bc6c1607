//! What a Realtime agent profile needs at call time, built once at start-up: the client (the
//! `[realtime]` settings and `OPENAI_API_KEY`), the session each call asks for (the profile's
//! instructions, voice and tools), and the greeting. Holds no per-call state.

use super::client::RealtimeClient;
use super::wire::{SessionSpec, Tool};
use crate::config::Config;
use crate::config::profiles::ResolvedProfile;
use crate::provider::Secret;

#[derive(Clone)]
pub struct RealtimeSetup {
    pub client: RealtimeClient,
    pub spec: SessionSpec,
    /// Instructions for the greeting response when the stream starts.
    pub greeting: Option<String>,
}

impl RealtimeSetup {
    pub fn new(config: &Config, profile: &ResolvedProfile, key: Secret) -> Self {
        let greeting = profile.agent.greeting.trim();
        let greeting = if greeting.is_empty() {
            None
        } else {
            Some(format!("Greet the caller by saying: \"{greeting}\""))
        };
        Self {
            client: RealtimeClient::new(&config.realtime, key),
            spec: SessionSpec {
                instructions: profile.agent.system_prompt.clone(),
                tools: Tool::ALL.to_vec(),
                voice: profile.voice.clone(),
            },
            greeting,
        }
    }
}
