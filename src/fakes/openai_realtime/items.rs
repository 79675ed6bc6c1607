//! The fake Realtime server's conversation-item client events: `conversation.item.create`
//! (function outputs, text messages), `conversation.item.truncate` (validated against the
//! audio generated for the item, as the real service does) and `conversation.item.delete`.
//!
//! Part of the connection state in `session.rs`; no I/O.

use serde_json::{Value, json};

use super::events::ApiError;
use super::session::{ItemKind, Session};
use super::shapes::Api;
use super::{FunctionOutputSeen, MessageSeen, TruncateSeen};

impl Session {
    pub(super) fn item_create(&mut self, event: &Value, event_id: Option<String>) {
        let item = &event["item"];
        let id = match item["id"].as_str() {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => super::response::Ids::next_id(&mut self.emit, "item"),
        };
        let conn = self.setup.conn;
        let kind = match item["type"].as_str() {
            Some("function_call_output") => {
                let call_id = item["call_id"].as_str().unwrap_or_default().to_string();
                let Some(turn) = self.convo.calls.remove(&call_id) else {
                    let err = ApiError::invalid(
                        Some("invalid_value"),
                        format!("Tool call ID '{call_id}' not found in conversation."),
                    );
                    return self.emit.error(err.param("item.call_id"), event_id);
                };
                self.convo.after_call = Some(turn);
                let output = item["output"].as_str().unwrap_or_default().to_string();
                self.setup
                    .observed
                    .function_outputs
                    .push(FunctionOutputSeen {
                        conn,
                        call_id,
                        output,
                    });
                ItemKind::Other
            }
            Some("message") => match self.message(item) {
                Ok(seen) => {
                    self.setup.observed.messages.push(seen);
                    ItemKind::Other
                }
                Err(err) => return self.emit.error(err, event_id),
            },
            Some("function_call") => ItemKind::FunctionCall,
            other => {
                let err = ApiError::invalid(
                    Some("invalid_value"),
                    format!(
                        "Invalid value: '{}'. Supported values are: 'message', 'function_call', and 'function_call_output'.",
                        other.unwrap_or("null")
                    ),
                );
                return self.emit.error(err.param("item.type"), event_id);
            }
        };
        let mut stored = item.clone();
        stored["id"] = json!(id);
        stored["object"] = json!("realtime.item");
        stored["status"] = json!("completed");
        self.convo.items.insert(id.clone(), kind);
        let previous = self.convo.last_item.replace(id);
        self.item_added(previous, stored);
    }

    /// A text message item, checked the way the service checks content types.
    fn message(&self, item: &Value) -> Result<MessageSeen, ApiError> {
        let role = item["role"].as_str().unwrap_or_default();
        let expected: &[&str] = match (role, self.emit.api) {
            ("user" | "system", _) => &["input_text", "input_audio"],
            ("assistant", Api::Ga) => &["output_text", "output_audio"],
            ("assistant", Api::Beta) => &["text", "audio"],
            _ => {
                return Err(ApiError::invalid(
                    Some("invalid_value"),
                    format!("Invalid value: '{role}'. Supported values are: 'user', 'assistant', and 'system'."),
                )
                .param("item.role"));
            }
        };
        let mut text = String::new();
        for part in item["content"].as_array().into_iter().flatten() {
            let ty = part["type"].as_str().unwrap_or_default();
            if !expected.contains(&ty) {
                return Err(ApiError::invalid(
                    Some("invalid_value"),
                    format!(
                        "Invalid value: '{ty}'. Supported values are: {}.",
                        expected.join(", ")
                    ),
                )
                .param("item.content[0].type"));
            }
            text.push_str(part["text"].as_str().unwrap_or_default());
        }
        Ok(MessageSeen {
            conn: self.setup.conn,
            role: role.to_string(),
            text,
        })
    }

    pub(super) fn truncate(&mut self, event: &Value, event_id: Option<String>) {
        let item_id = event["item_id"].as_str().unwrap_or_default().to_string();
        let Some(audio_end_ms) = event["audio_end_ms"].as_u64() else {
            let err = ApiError::invalid(
                Some("missing_required_parameter"),
                "Missing required parameter: 'audio_end_ms'.",
            );
            return self.emit.error(err.param("audio_end_ms"), event_id);
        };
        let per_ms = self.settings.output.bytes_per_ms() as usize;
        let generated = match self.convo.items.get(&item_id) {
            None => {
                let err = ApiError::invalid(
                    Some("invalid_value"),
                    format!("Conversation item with id '{item_id}' not found."),
                );
                return self.emit.error(err.param("item_id"), event_id);
            }
            Some(ItemKind::AssistantAudio { audio_bytes }) => *audio_bytes,
            Some(_) => {
                let err =
                    ApiError::invalid(None, "Only model output audio messages can be truncated");
                return self.emit.error(err, event_id);
            }
        };
        let generated_ms = (generated / per_ms) as u64;
        let accepted = audio_end_ms <= generated_ms;
        self.setup.observed.truncates.push(TruncateSeen {
            conn: self.setup.conn,
            item_id: item_id.clone(),
            audio_end_ms,
            generated_ms,
            accepted,
            at: self.setup.accepted.elapsed(),
        });
        if !accepted {
            // As observed: no code, and no event_id even when the client sent one.
            let err = ApiError::invalid(
                None,
                format!(
                    "Audio content of {generated_ms}ms is already shorter than {audio_end_ms}ms"
                ),
            );
            return self.emit.error(err, None);
        }
        let kept = audio_end_ms as usize * per_ms;
        self.convo.items.insert(
            item_id.clone(),
            ItemKind::AssistantAudio { audio_bytes: kept },
        );
        let content_index = event["content_index"].as_u64().unwrap_or(0);
        self.emit.emit(
            "conversation.item.truncated",
            json!({"item_id": item_id, "content_index": content_index,
                "audio_end_ms": audio_end_ms}),
        );
    }

    pub(super) fn item_delete(&mut self, event: &Value, event_id: Option<String>) {
        let item_id = event["item_id"].as_str().unwrap_or_default().to_string();
        if self.convo.items.remove(&item_id).is_none() {
            let err = ApiError::invalid(
                Some("invalid_value"),
                format!("Conversation item with id '{item_id}' not found."),
            );
            return self.emit.error(err.param("item_id"), event_id);
        }
        self.emit
            .emit("conversation.item.deleted", json!({"item_id": item_id}));
    }
}
