//! What the fake OpenAI chat server writes: the SSE events of a reply (exact framing, role
//! delta, content deltas, fragmented tool call, finish chunk, usage chunk, `[DONE]`), its
//! default echo reply, and OpenAI-style error responses. Pure: no sockets, no timing.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::FakeReply;

/// "You said: …" for the last user message.
pub(super) fn default_reply(messages: &[Value]) -> FakeReply {
    let last = messages.iter().rev().find(|m| m["role"] == "user");
    let said = last
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .trim();
    if said.is_empty() {
        return FakeReply::text("Hello! How can I help?");
    }
    let stop = if said.ends_with(['.', '!', '?']) {
        ""
    } else {
        "."
    };
    FakeReply::text(&format!("You said: {said}{stop}"))
}

/// Every SSE event of a reply, framed, in order.
pub(super) fn sse_events(
    id: &str,
    model: &str,
    reply: &FakeReply,
    usage: bool,
    messages: &[Value],
) -> Vec<String> {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": model, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if usage {
            c["usage"] = Value::Null;
        }
        format!("data: {c}\n\n")
    };
    let mut out = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    for piece in &reply.content {
        out.push(chunk(json!({"content": piece}), Value::Null));
    }
    let mut completion = reply.content.len();
    for (index, (name, args)) in reply.tool_calls.iter().enumerate() {
        let call_id = match index {
            0 => format!("call_{id}"),
            n => format!("call_{id}_{n}"),
        };
        let call = json!({"index": index, "id": call_id, "type": "function",
            "function": {"name": name, "arguments": ""}});
        out.push(chunk(json!({"tool_calls": [call]}), Value::Null));
        for part in thirds(args) {
            let frag = json!({"index": index, "function": {"arguments": part}});
            out.push(chunk(json!({"tool_calls": [frag]}), Value::Null));
            completion += 1;
        }
    }
    let finish = if !reply.tool_calls.is_empty() {
        "tool_calls"
    } else {
        "stop"
    };
    out.push(chunk(json!({}), json!(finish)));
    if usage {
        let prompt: usize = messages
            .iter()
            .map(|m| {
                m["content"]
                    .as_str()
                    .unwrap_or("")
                    .split_whitespace()
                    .count()
            })
            .sum();
        let u = json!({"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion});
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": [], "usage": u});
        out.push(format!("data: {c}\n\n"));
    }
    out.push("data: [DONE]\n\n".to_string());
    out
}

/// An in-stream error, as OpenAI sends one when it fails after the 200 (`event: error`).
pub(super) fn error_event() -> String {
    let err = json!({"error": {"message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error", "param": null, "code": null}});
    format!("event: error\ndata: {err}\n\n")
}

/// `s` in up to three non-empty parts, cut on character boundaries.
fn thirds(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let size = chars.len().div_ceil(3).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// An OpenAI-style error response.
pub(super) fn error(status: u16, message: &str) -> Response {
    let (kind, code) = match status {
        401 => ("invalid_request_error", json!("invalid_api_key")),
        429 => ("requests", json!("rate_limit_exceeded")),
        500..=599 => ("server_error", Value::Null),
        404 => ("invalid_request_error", json!("unknown_url")),
        _ => ("invalid_request_error", Value::Null),
    };
    let message = match status {
        429 => "Rate limit reached for requests. Please try again in 0s.",
        500..=599 => "The server had an error while processing your request. Sorry about that!",
        _ => message,
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("0"));
    }
    response
}
