//! The conversation history as the OpenAI-compatible server receives it: `system`, `user`,
//! `assistant` (with the `tool_calls` a reply made) and `tool` messages. Plain data with its
//! serialisation; which messages go in is the session's business (the parent module).

use serde::Serialize;

/// One message of the conversation history as sent to the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct ChatMessage {
    pub role: &'static str,
    /// `null` for an assistant message that only called tools.
    pub content: Option<String>,
    /// The tools an assistant message called.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallMessage>,
    /// For a `tool` message: the call it answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: &'static str, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// An assistant message that said `content` (if anything) and called `calls`.
    pub fn assistant_calling(content: Option<String>, calls: &[ToolUse]) -> Self {
        let tool_calls = calls
            .iter()
            .map(|c| ToolCallMessage {
                id: c.id.clone(),
                kind: "function",
                function: FunctionCall {
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                },
            })
            .collect();
        Self {
            role: "assistant",
            content,
            tool_calls,
            tool_call_id: None,
        }
    }

    /// The result of tool call `id`.
    pub fn tool_result(id: &str, content: impl Into<String>) -> Self {
        Self {
            role: "tool",
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: Some(id.to_owned()),
        }
    }
}

/// A tool call as written back into the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct ToolCallMessage {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct FunctionCall {
    name: String,
    arguments: String,
}

/// A call-control tool the model called in a reply (id, name, JSON arguments).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ToolUse {
    pub id: String,
    pub name: String,
    pub arguments: String,
}
