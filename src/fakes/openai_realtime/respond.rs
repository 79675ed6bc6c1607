//! The response side of a fake Realtime connection: which reply a response carries (the
//! answer to a function output, to a caller turn, or the greeting), the rate-limit fault,
//! executing the timed plan step by step, cancelling, and recording how it ended.
//!
//! Part of the connection state in `session.rs`; no I/O.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::events::{Out, response_object};
use super::response::{self, Ids, Reply, Step};
use super::session::{Active, ItemKind, Session};
use super::shapes::Api;
use super::{RealtimeFault, ResponseSeen};

impl Session {
    /// Start the next response: the answer to a function output, to a caller turn, or the
    /// greeting.
    pub(super) fn start_response(&mut self, now: Instant) {
        let script = &self.setup.script;
        let after_call = self.convo.after_call.take();
        let unanswered = self.convo.unanswered.take();
        let (reply, turn) = if let Some(turn) = after_call.and_then(|t| script.turns.get(t)) {
            let say = turn.after_call.clone();
            (Reply { say, call: None }, None)
        } else if let Some((t, turn)) = unanswered.and_then(|t| Some((t, script.turns.get(t)?))) {
            let reply = Reply {
                say: turn.say.clone(),
                call: turn.call.clone(),
            };
            (reply, Some(t))
        } else {
            let say = script.greeting.clone();
            (Reply { say, call: None }, None)
        };
        self.responses += 1;
        let id = self.emit.next_id("resp");
        let created = response_object(&id, "in_progress", Value::Null, vec![]);
        self.emit
            .emit("response.created", json!({"response": created}));
        let remaining = if self.setup.fault == Some(RealtimeFault::RateLimited) {
            0
        } else {
            39000
        };
        self.emit.emit(
            "rate_limits.updated",
            json!({"rate_limits": [
                {"name": "requests", "limit": 100, "remaining": 99, "reset_seconds": 0.6},
                {"name": "tokens", "limit": 40000, "remaining": remaining, "reset_seconds": 1.8}]}),
        );
        if remaining == 0 {
            let error = json!({"type": "tokens", "code": "rate_limit_exceeded",
                "message": "Rate limit reached for gpt-realtime in organization org-fake on tokens per min (TPM): Limit 40000, Used 40000, Requested 1200. Please try again in 1.8s."});
            let details = json!({"type": "failed", "error": error});
            let done = response_object(&id, "failed", details, vec![]);
            self.emit.emit("response.done", json!({"response": done}));
            return self.record(&id, "failed", &reply);
        }
        let pacing = self.setup.pacing;
        let output = self.settings.output;
        let steps = response::plan(self.emit.api, &id, &reply, output, &pacing, &mut self.emit);
        let due = now + steps.front().map_or(Default::default(), |t| t.after);
        self.active = Some(Active {
            id,
            steps,
            due,
            output: Vec::new(),
            reply,
            turn,
        });
    }

    /// Send every step that is due by `now`.
    pub fn on_timer(&mut self, now: Instant) {
        while let Some(active) = self.active.as_mut() {
            if active.due > now {
                return;
            }
            let Some(timed) = active.steps.pop_front() else {
                self.active = None;
                return;
            };
            if let Some(next) = active.steps.front() {
                active.due += next.after;
            }
            self.step(timed.step);
        }
    }

    fn step(&mut self, step: Step) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let response_id = active.id.clone();
        match step {
            Step::Event(ty, body) => self.emit.emit(ty, body),
            Step::ItemAdded { output_index, item } => {
                active.output.push(item.clone());
                let turn = active.turn;
                let id = item["id"].as_str().unwrap_or_default().to_string();
                let kind = if item["type"] == "function_call" {
                    let call_id = item["call_id"].as_str().unwrap_or_default().to_string();
                    self.convo.calls.insert(call_id, turn.unwrap_or(0));
                    ItemKind::FunctionCall
                } else {
                    ItemKind::AssistantAudio { audio_bytes: 0 }
                };
                self.convo.items.insert(id.clone(), kind);
                let previous = self.convo.last_item.replace(id);
                self.emit.emit(
                    "response.output_item.added",
                    json!({"response_id": response_id, "output_index": output_index, "item": item}),
                );
                let api = self.emit.api;
                self.emit.emit(
                    api.item_added(),
                    json!({"previous_item_id": previous, "item": item}),
                );
            }
            Step::Audio {
                item_id,
                output_index,
                bytes,
            } => {
                if let Some(ItemKind::AssistantAudio { audio_bytes }) =
                    self.convo.items.get_mut(&item_id)
                {
                    *audio_bytes += bytes.len();
                }
                let delta = STANDARD.encode(&bytes);
                let api = self.emit.api;
                self.emit.emit(
                    api.audio_delta(),
                    json!({"response_id": response_id, "item_id": item_id,
                        "output_index": output_index, "content_index": 0, "delta": delta}),
                );
                if self.responses == 1 {
                    self.first_deltas += 1;
                    if self.setup.fault == Some(RealtimeFault::DropMidResponse(self.first_deltas)) {
                        self.emit.out.push_back(Out::Drop);
                    }
                }
            }
            Step::ItemDone { output_index, item } => {
                if let Some(slot) = active.output.get_mut(output_index) {
                    *slot = item.clone();
                }
                self.emit.emit(
                    "response.output_item.done",
                    json!({"response_id": response_id, "output_index": output_index, "item": item}),
                );
                if self.emit.api == Api::Ga {
                    self.emit
                        .emit("conversation.item.done", json!({"item": item}));
                }
            }
            Step::Finish => {
                if let Some(active) = self.active.take() {
                    let done = response_object(&active.id, "completed", Value::Null, active.output);
                    self.emit.emit("response.done", json!({"response": done}));
                    self.record(&active.id, "completed", &active.reply);
                }
            }
        }
    }

    /// Cancel the response in flight (`turn_detected` or `client_cancelled`).
    pub fn cancel(&mut self, reason: &str) {
        let Some(mut active) = self.active.take() else {
            return;
        };
        for (index, item) in active.output.iter_mut().enumerate() {
            if item["status"] == "in_progress" {
                item["status"] = json!("incomplete");
                self.emit.emit(
                    "response.output_item.done",
                    json!({"response_id": active.id, "output_index": index, "item": item}),
                );
            }
        }
        let details = json!({"type": "cancelled", "reason": reason});
        let done = response_object(&active.id, "cancelled", details, active.output);
        self.emit.emit("response.done", json!({"response": done}));
        self.record(&active.id, "cancelled", &active.reply);
    }

    fn record(&self, id: &str, status: &str, reply: &Reply) {
        self.setup.observed.responses.push(ResponseSeen {
            conn: self.setup.conn,
            id: id.to_string(),
            status: status.to_string(),
            text: reply.say.clone(),
            call: reply.call.as_ref().map(|c| c.name.clone()),
        });
    }
}
