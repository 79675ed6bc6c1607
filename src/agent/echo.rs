//! The echo agent, voxbridge's zero-configuration default: at the end of each caller turn it
//! says the caller's words back — their own audio when no STT runs, or their transcript
//! through the TTS when one does. It proves the whole media path with no LLM. It keeps no
//! history beyond a count.

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Agent, AgentEvent, AgentSession, CallerTurn};
use crate::provider::CallIds;

/// Plays each caller turn back.
#[derive(Debug, Default, Clone)]
pub struct EchoAgent {
    /// Said at stream start (through the TTS), if set.
    pub greeting: Option<String>,
}

impl Agent for EchoAgent {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn start_call(&self, _call: &CallIds) -> Box<dyn AgentSession> {
        Box::new(EchoSession {
            greeting: self.greeting.clone(),
            replies: 0,
        })
    }
}

struct EchoSession {
    greeting: Option<String>,
    replies: u64,
}

impl AgentSession for EchoSession {
    fn greeting(&mut self) -> Option<String> {
        self.greeting.take()
    }

    fn respond(
        &mut self,
        turn: CallerTurn,
        _cancel: CancellationToken,
    ) -> mpsc::Receiver<AgentEvent> {
        self.replies += 1;
        // The whole reply is known at once: two events, so a capacity of 2 never blocks.
        let (tx, rx) = mpsc::channel(2);
        let reply = match turn {
            CallerTurn::Audio(audio) => AgentEvent::Audio(audio),
            CallerTurn::Speech(text) => AgentEvent::Text(text),
            CallerTurn::Dtmf(digits) => AgentEvent::Text(format!("You pressed {digits}.")),
        };
        let _ = tx.try_send(reply);
        let _ = tx.try_send(AgentEvent::Done);
        rx
    }

    fn reply_heard(&mut self, _heard: &str, _interrupted: bool) {}
}

impl EchoAgent {
    /// The response to a finished caller turn when no STT runs: the caller's own audio.
    pub fn echo_audio(utterance: Vec<u8>) -> Bytes {
        Bytes::from(utterance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echoes_audio_text_and_digits() {
        let agent = EchoAgent::default();
        let mut s = agent.start_call(&CallIds::default());
        assert_eq!(s.greeting(), None);
        let mut rx = s.respond(
            CallerTurn::Audio(Bytes::from_static(&[1, 2])),
            CancellationToken::new(),
        );
        assert_eq!(
            rx.recv().await,
            Some(AgentEvent::Audio(Bytes::from_static(&[1, 2])))
        );
        assert_eq!(rx.recv().await, Some(AgentEvent::Done));
        let mut rx = s.respond(
            CallerTurn::Speech("hi there".into()),
            CancellationToken::new(),
        );
        assert_eq!(rx.recv().await, Some(AgentEvent::Text("hi there".into())));
        let mut rx = s.respond(CallerTurn::Dtmf("42".into()), CancellationToken::new());
        assert_eq!(
            rx.recv().await,
            Some(AgentEvent::Text("You pressed 42.".into()))
        );
    }
}
