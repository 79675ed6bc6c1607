use super::*;

fn ev(data: &str) -> SseEvent {
    SseEvent {
        event: None,
        data: data.to_string(),
    }
}

fn content(text: &str) -> SseEvent {
    ev(
        &json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
            .to_string(),
    )
}

#[test]
fn sse_framing_handles_splits_comments_crlf_and_multiline_data() {
    let mut p = SseParser::default();
    let mut got = Vec::new();
    let stream =
        ": keep-alive\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nevent: error\ndata: x\n\ndata:[DONE]\n\n";
    for b in stream.as_bytes().chunks(3) {
        got.extend(p.push(b).unwrap());
    }
    assert_eq!(
        got,
        vec![
            ev("{\"a\":\n1}"),
            SseEvent {
                event: Some("error".into()),
                data: "x".into()
            },
            ev("[DONE]")
        ]
    );
    assert_eq!(p.finish(), None);
}

#[test]
fn sse_keeps_multibyte_characters_split_across_reads() {
    let mut p = SseParser::default();
    let bytes = "data: héllo\n\n".as_bytes();
    assert!(p.push(&bytes[..8]).unwrap().is_empty());
    assert_eq!(p.push(&bytes[8..]).unwrap(), vec![ev("héllo")]);
}

#[test]
fn sse_delivers_an_unterminated_last_event() {
    let mut p = SseParser::default();
    assert!(p.push(b"data: [DONE]").unwrap().is_empty());
    assert_eq!(p.finish(), Some(ev("[DONE]")));
}

#[test]
fn sse_rejects_endless_lines() {
    let mut p = SseParser::default();
    assert!(p.push(&vec![b'x'; MAX_LINE_BYTES + 1]).is_err());
}

#[test]
fn content_becomes_sentence_pieces() {
    let mut d = ReplyDecoder::default();
    assert!(
        d.event(ev(
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":null}"#
        ))
        .unwrap()
        .is_empty()
    );
    assert!(!d.got_token());
    assert!(d.event(content("Hi there.")).unwrap().is_empty());
    assert!(d.got_token());
    assert_eq!(
        d.event(content(" How")).unwrap(),
        vec![AgentEvent::Text("Hi there.".into())]
    );
    d.event(ev(
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
    ))
    .unwrap();
    d.event(ev(r#"{"choices":null,"usage":{"total_tokens":3}}"#))
        .unwrap();
    d.event(ev(r#"{"usage":{"total_tokens":3},"x_unknown":[1]}"#))
        .unwrap();
    assert!(d.is_complete() && !d.is_done());
    d.event(ev("[DONE]")).unwrap();
    assert!(d.is_done());
    let (out, unknown) = d.finish().unwrap();
    assert_eq!(out, vec![AgentEvent::Text("How".into())]);
    assert!(unknown.is_empty());
}

#[test]
fn fragmented_tool_calls_accumulate_by_index() {
    let mut d = ReplyDecoder::default();
    let frag = |v: Value| {
        ev(&json!({"choices": [{"index": 0, "delta": {"tool_calls": [v]}}]}).to_string())
    };
    d.event(frag(json!({"index": 0, "id": "call_1", "type": "function", "function": {"name": "transfer_call", "arguments": ""}}))).unwrap();
    d.event(frag(json!({"index": 1, "id": "call_2", "type": "function", "function": {"name": "end_call", "arguments": ""}}))).unwrap();
    d.event(frag(
        json!({"index": 0, "function": {"arguments": "{\"to\":\"+1 555"}}),
    ))
    .unwrap();
    d.event(frag(
        json!({"index": 0, "function": {"arguments": "-010-0100\"}"}}),
    ))
    .unwrap();
    d.event(ev(
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
    ))
    .unwrap();
    let (out, _) = d.finish().unwrap();
    assert_eq!(
        out,
        vec![
            AgentEvent::Action(CallAction::Transfer {
                to: "+15550100100".into()
            }),
            AgentEvent::Action(CallAction::EndCall)
        ]
    );
}

#[test]
fn whole_tool_call_in_one_delta_and_object_arguments() {
    let mut d = ReplyDecoder::default();
    d.event(ev(r#"{"choices":[{"delta":{"tool_calls":[{"id":"c","function":{"name":"transfer_call","arguments":{"to":"+442071838750"}}}]},"finish_reason":"tool_calls"}]}"#)).unwrap();
    assert!(d.got_token());
    let (out, _) = d.finish().unwrap();
    assert_eq!(
        out,
        vec![AgentEvent::Action(CallAction::Transfer {
            to: "+442071838750".into()
        })]
    );
}

#[test]
fn bad_tool_calls() {
    for args in [
        r#"{"to":"555"}"#,
        r#"{"to":"+1abc5550100"}"#,
        "{\"to\":",
        "{}",
    ] {
        let mut d = ReplyDecoder::default();
        let v = json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "transfer_call", "arguments": args}}]}}]});
        d.event(ev(&v.to_string())).unwrap();
        assert_eq!(d.finish().unwrap_err().kind(), "malformed", "{args}");
    }
    let mut d = ReplyDecoder::default();
    d.event(ev(r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c9","function":{"name":"get_weather","arguments":"{}"}}]}}]}"#)).unwrap();
    assert_eq!(
        d.finish().unwrap(),
        (vec![], vec!["get_weather (c9)".to_string()])
    );
}

#[test]
fn errors_in_the_stream() {
    let mut d = ReplyDecoder::default();
    let err = d
        .event(ev(
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
        ))
        .unwrap_err();
    assert_eq!(err.kind(), "server_error");
    assert!(err.to_string().contains("overloaded"));
    let mut d = ReplyDecoder::default();
    let err = d
        .event(SseEvent {
            event: Some("error".into()),
            data: "boom".into(),
        })
        .unwrap_err();
    assert_eq!(err.kind(), "server_error");
    let mut d = ReplyDecoder::default();
    assert_eq!(d.event(ev("{broken")).unwrap_err().kind(), "malformed");
    let mut d = ReplyDecoder::default();
    assert!(
        d.event(ev(r#"{"error":null,"choices":[]}"#))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn request_body_has_stream_usage_history_and_tools() {
    let body = request_body(
        "m",
        &[
            ChatMessage::new("system", "be brief"),
            ChatMessage::new("user", "hi"),
        ],
    );
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(
        body["messages"][1],
        json!({"role": "user", "content": "hi"})
    );
    let tools: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, vec!["end_call", "transfer_call"]);
    assert_eq!(
        body["tools"][1]["function"]["parameters"]["required"],
        json!(["to"])
    );
}
