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

impl ToolUse {
    /// Whether it records the call's outcome (kept in the history even when the caller cut
    /// the reply short: the outcome was recorded anyway).
    pub fn records_outcome(&self) -> bool {
        matches!(self.name.as_str(), "set_outcome" | "opt_out")
    }

    /// What the tool did, as its `tool` message says.
    pub fn result(&self) -> String {
        match self.name.as_str() {
            "end_call" => "The call is being ended.".to_owned(),
            "set_outcome" => match super::wire::outcome_arg(&self.arguments) {
                Ok(outcome) => format!("Outcome recorded: {outcome}. Carry on with the call."),
                Err(e) => format!("Not recorded: {e}."),
            },
            "opt_out" => "The number is on the do-not-call list.".to_owned(),
            _ => "The call is being transferred.".to_owned(),
        }
    }
}

/// The tool calls of one caller turn's reply, for the history.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct ReplyTools {
    /// `set_outcome` calls of a reply that said nothing else: their results were sent in a
    /// follow-up request (whose reply the caller heard), so they precede it in the history.
    pub answered: Vec<ToolUse>,
    /// The calls of the reply the caller heard.
    pub last: Vec<ToolUse>,
}

impl ReplyTools {
    /// The history messages for a reply whose heard text is `content`: each assistant
    /// message with `tool_calls` is followed by one `tool` result per call. After a barge-in
    /// (`interrupted`) only the outcome calls of the heard reply are kept (its actions were
    /// dropped).
    pub fn messages(self, content: Option<String>, interrupted: bool) -> Vec<ChatMessage> {
        let mut out = Vec::new();
        let mut step = |content: Option<String>, calls: &[ToolUse]| {
            if calls.is_empty() {
                out.extend(content.map(|c| ChatMessage::new("assistant", c)));
                return;
            }
            out.push(ChatMessage::assistant_calling(content, calls));
            for call in calls {
                out.push(ChatMessage::tool_result(&call.id, call.result()));
            }
        };
        step(None, &self.answered);
        let mut last = self.last;
        if interrupted {
            last.retain(ToolUse::records_outcome);
        }
        step(content, &last);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str, name: &str, arguments: &str) -> ToolUse {
        ToolUse {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    /// `(role, content, tool call ids, tool_call_id)`.
    type Shape<'a> = (&'a str, Option<&'a str>, Vec<&'a str>, Option<&'a str>);

    fn shape(messages: &[ChatMessage]) -> Vec<Shape<'_>> {
        messages
            .iter()
            .map(|m| {
                let json = serde_json::to_value(m).unwrap();
                let ids = m
                    .tool_calls
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>();
                assert_eq!(json["tool_calls"].as_array().map_or(0, Vec::len), ids.len());
                (m.role, m.content.as_deref(), ids, m.tool_call_id.as_deref())
            })
            .collect()
    }

    #[test]
    fn every_tool_call_is_followed_by_its_result() {
        let tools = ReplyTools {
            answered: vec![call("c1", "set_outcome", r#"{"outcome":"interested"}"#)],
            last: vec![call("c2", "end_call", "{}")],
        };
        let out = tools.clone().messages(Some("Bye.".into()), false);
        assert_eq!(
            shape(&out),
            [
                ("assistant", None, vec!["c1"], None),
                (
                    "tool",
                    Some("Outcome recorded: interested. Carry on with the call."),
                    vec![],
                    Some("c1")
                ),
                ("assistant", Some("Bye."), vec!["c2"], None),
                ("tool", Some("The call is being ended."), vec![], Some("c2")),
            ]
        );
        // Cut short: the hang-up was dropped, the recorded outcome stays.
        let out = tools.messages(Some("By".into()), true);
        assert_eq!(
            shape(&out),
            [
                ("assistant", None, vec!["c1"], None),
                (
                    "tool",
                    Some("Outcome recorded: interested. Carry on with the call."),
                    vec![],
                    Some("c1")
                ),
                ("assistant", Some("By"), vec![], None),
            ]
        );
        let opt_out = ReplyTools {
            answered: vec![],
            last: vec![call("c3", "opt_out", "{}"), call("c4", "set_outcome", "{}")],
        };
        let out = opt_out.messages(None, true);
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[1].content.as_deref(),
            Some("The number is on the do-not-call list.")
        );
        assert!(
            out[2]
                .content
                .as_deref()
                .unwrap()
                .starts_with("Not recorded:")
        );
        assert!(ReplyTools::default().messages(None, false).is_empty());
    }
}
