//! One response of the fake Realtime server as a timed plan: the events the real service
//! streams for a spoken reply (`response.output_item.added`, content part, audio deltas with
//! transcript deltas interleaved, the `.done` events) and for a function call (arguments in
//! fragments), each step with the delay after the previous one, so audio arrives somewhat
//! faster than real time. The session executes the plan; cancelling drops what is left.
//!
//! Pure: builds data, never touches a socket or the clock.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Value, json};

use super::shapes::Api;
use super::vad::InputCoding;
use super::{Pacing, ToolCall};
use crate::audio::mulaw;

/// What a response says and does.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub say: String,
    pub call: Option<ToolCall>,
}

/// One thing to send.
#[derive(Debug)]
pub enum Step {
    /// A plain event (type, body without `type` / `event_id`).
    Event(&'static str, Value),
    /// `response.output_item.added` (and the conversation's item added event).
    ItemAdded { output_index: usize, item: Value },
    /// An audio delta for the message item; counts towards its generated audio.
    Audio {
        item_id: String,
        output_index: usize,
        bytes: Vec<u8>,
    },
    /// `response.output_item.done` (and GA's `conversation.item.done`).
    ItemDone { output_index: usize, item: Value },
    /// `response.done` `completed`.
    Finish,
}

/// A step and the delay before it (after the previous one was sent).
#[derive(Debug)]
pub struct Timed {
    pub after: Duration,
    pub step: Step,
}

/// Identifiers handed out by the connection.
pub trait Ids {
    fn next_id(&mut self, prefix: &str) -> String;
}

/// The plan of a response `response_id`.
pub fn plan(
    api: Api,
    response_id: &str,
    reply: &Reply,
    output: InputCoding,
    pacing: &Pacing,
    ids: &mut impl Ids,
) -> VecDeque<Timed> {
    let mut steps = VecDeque::new();
    let now = |step| Timed {
        after: Duration::ZERO,
        step,
    };
    let mut first_wait = Some(pacing.first_audio);
    let mut output_index = 0;
    if !reply.say.trim().is_empty() {
        let item_id = ids.next_id("item");
        let item = |status: &str, content: Value| {
            json!({"id": item_id, "object": "realtime.item", "type": "message",
                "status": status, "role": "assistant", "content": content})
        };
        let part = |transcript: &str| json!({"type": api.audio_part(), "transcript": transcript});
        let at = json!({"response_id": response_id, "item_id": item_id,
            "output_index": output_index, "content_index": 0});
        steps.push_back(now(Step::ItemAdded {
            output_index,
            item: item("in_progress", json!([])),
        }));
        let mut added = at.clone();
        added["part"] = part("");
        steps.push_back(now(Step::Event("response.content_part.added", added)));

        let audio = encode(&reply.say, output);
        let chunk = (pacing.chunk_ms * output.bytes_per_ms()).max(1) as usize;
        let chunks: Vec<&[u8]> = audio.chunks(chunk).collect();
        let words: Vec<&str> = reply.say.split_inclusive(' ').collect();
        let gap = Duration::from_secs_f64(pacing.chunk_ms as f64 / 1000.0 / pacing.speed.max(0.1));
        let mut word = 0;
        for (i, bytes) in chunks.iter().enumerate() {
            let after = first_wait.take().unwrap_or(gap);
            steps.push_back(Timed {
                after,
                step: Step::Audio {
                    item_id: item_id.clone(),
                    output_index,
                    bytes: bytes.to_vec(),
                },
            });
            // Words spread over the audio: word w goes out with chunk w × chunks / words.
            while word < words.len() && word * chunks.len() / words.len() <= i {
                let mut delta = at.clone();
                delta["delta"] = json!(words[word]);
                steps.push_back(now(Step::Event(api.transcript_delta(), delta)));
                word += 1;
            }
        }
        steps.push_back(now(Step::Event(api.audio_done(), at.clone())));
        let mut done = at.clone();
        done["transcript"] = json!(reply.say);
        steps.push_back(now(Step::Event(api.transcript_done(), done)));
        let mut part_done = at.clone();
        part_done["part"] = part(&reply.say);
        steps.push_back(now(Step::Event("response.content_part.done", part_done)));
        steps.push_back(now(Step::ItemDone {
            output_index,
            item: item("completed", json!([part(&reply.say)])),
        }));
        output_index += 1;
    }
    if let Some(call) = &reply.call {
        let item_id = ids.next_id("item");
        let call_id = ids.next_id("call");
        let item = |status: &str, arguments: &str| {
            json!({"id": item_id, "object": "realtime.item", "type": "function_call",
                "status": status, "name": call.name, "call_id": call_id, "arguments": arguments})
        };
        steps.push_back(Timed {
            after: first_wait.take().unwrap_or(Duration::ZERO),
            step: Step::ItemAdded {
                output_index,
                item: item("in_progress", ""),
            },
        });
        let at = json!({"response_id": response_id, "item_id": item_id,
            "output_index": output_index, "call_id": call_id});
        for fragment in fragments(&call.arguments) {
            let mut delta = at.clone();
            delta["delta"] = json!(fragment);
            steps.push_back(now(Step::Event(
                "response.function_call_arguments.delta",
                delta,
            )));
        }
        let mut done = at.clone();
        done["name"] = json!(call.name);
        done["arguments"] = json!(call.arguments);
        steps.push_back(now(Step::Event(
            "response.function_call_arguments.done",
            done,
        )));
        steps.push_back(now(Step::ItemDone {
            output_index,
            item: item("completed", &call.arguments),
        }));
    }
    steps.push_back(Timed {
        after: first_wait.take().unwrap_or(Duration::ZERO),
        step: Step::Finish,
    });
    steps
}

/// The reply's speech in the session's output format.
fn encode(text: &str, output: InputCoding) -> Vec<u8> {
    match output {
        InputCoding::Mulaw8k => crate::fakes::synth_speech(text, 8000)
            .into_iter()
            .map(mulaw::encode)
            .collect(),
        InputCoding::Pcm24k => crate::fakes::synth_speech(text, 24000)
            .into_iter()
            .flat_map(i16::to_le_bytes)
            .collect(),
    }
}

/// JSON arguments in three fragments (split on char boundaries), as the service streams them.
fn fragments(arguments: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = arguments.char_indices().collect();
    if chars.len() < 3 {
        return vec![arguments];
    }
    let a = chars[chars.len() / 3].0;
    let b = chars[2 * chars.len() / 3].0;
    vec![&arguments[..a], &arguments[a..b], &arguments[b..]]
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u32);
    impl Ids for Counter {
        fn next_id(&mut self, prefix: &str) -> String {
            self.0 += 1;
            format!("{prefix}_{}", self.0)
        }
    }

    #[test]
    fn spoken_reply_streams_audio_with_words_and_a_call_after_it() {
        let reply = Reply {
            say: "Goodbye and thanks".into(),
            call: Some(ToolCall {
                name: "end_call".into(),
                arguments: r#"{"reason":"done"}"#.into(),
            }),
        };
        let pacing = Pacing::default();
        let steps = plan(
            Api::Ga,
            "resp_1",
            &reply,
            InputCoding::Mulaw8k,
            &pacing,
            &mut Counter(0),
        );
        let audio: usize = steps
            .iter()
            .map(|t| match &t.step {
                Step::Audio { bytes, .. } => bytes.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(audio, crate::fakes::synth_speech(&reply.say, 8000).len());
        let words: String = steps
            .iter()
            .filter_map(|t| match &t.step {
                Step::Event("response.output_audio_transcript.delta", v) => v["delta"].as_str(),
                _ => None,
            })
            .collect();
        assert_eq!(words, reply.say);
        let args: String = steps
            .iter()
            .filter_map(|t| match &t.step {
                Step::Event("response.function_call_arguments.delta", v) => v["delta"].as_str(),
                _ => None,
            })
            .collect();
        assert_eq!(args, r#"{"reason":"done"}"#);
        // Faster than real time: total delay under the audio's duration.
        let total: Duration = steps.iter().map(|t| t.after).sum();
        let audio_ms = audio as u64 / 8;
        assert!(
            total < Duration::from_millis(audio_ms),
            "{total:?} {audio_ms}"
        );
        assert!(matches!(steps.back().map(|t| &t.step), Some(Step::Finish)));
    }
}
