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
    let done = d.finish().unwrap();
    assert_eq!(done.events, vec![AgentEvent::Text("How".into())]);
    assert!(done.unknown.is_empty() && done.malformed.is_empty());
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
    let out = d.finish().unwrap().events;
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
    let out = d.finish().unwrap().events;
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
        Finished {
            unknown: vec!["get_weather (c9)".to_string()],
            ..Finished::default()
        }
    );
}

/// One streamed chunk holding a tool-call fragment.
fn tool_frag(v: Value) -> SseEvent {
    ev(&json!({"choices": [{"index": 0, "delta": {"tool_calls": [v]}}]}).to_string())
}

#[test]
fn set_outcome_and_opt_out_become_outcomes() {
    let mut d = ReplyDecoder::default();
    d.event(ev(
        r#"{"choices":[{"delta":{"content":"Great, I will note that."}}]}"#,
    ))
    .unwrap();
    d.event(tool_frag(
        json!({"index": 0, "id": "call_a", "type": "function",
        "function": {"name": "set_outcome", "arguments": ""}}),
    ))
    .unwrap();
    for part in [r#"{"outc"#, r#"ome":" Callback"#, r#" requested"}"#] {
        d.event(tool_frag(
            json!({"index": 0, "function": {"arguments": part}}),
        ))
        .unwrap();
    }
    d.event(tool_frag(
        json!({"index": 1, "id": "call_b", "type": "function",
        "function": {"name": "opt_out", "arguments": "{}"}}),
    ))
    .unwrap();
    d.event(ev(
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
    ))
    .unwrap();
    let uses = d.tool_uses();
    assert_eq!(
        uses.iter()
            .map(|u| (u.id.as_str(), u.name.as_str()))
            .collect::<Vec<_>>(),
        [("call_a", "set_outcome"), ("call_b", "opt_out")]
    );
    assert_eq!(uses[0].arguments, r#"{"outcome":" Callback requested"}"#);
    let done = d.finish().unwrap();
    assert_eq!(
        done.events,
        vec![
            AgentEvent::Text("Great, I will note that.".into()),
            AgentEvent::Outcome("callback_requested".into()),
            AgentEvent::Outcome("opted_out".into()),
            AgentEvent::Action(CallAction::EndCall),
        ]
    );
    assert!(done.unknown.is_empty() && done.malformed.is_empty());
}

#[test]
fn a_bad_set_outcome_is_skipped_not_fatal() {
    for args in [
        "{}",
        r#"{"outcome":""}"#,
        r#"{"outcome":7}"#,
        r#"{"outcome":"a;b"}"#,
        r#"{"out"#,
    ] {
        let mut d = ReplyDecoder::default();
        d.event(ev(r#"{"choices":[{"delta":{"content":"Okay."}}]}"#))
            .unwrap();
        d.event(tool_frag(
            json!({"index": 0, "id": "c", "function": {"name": "set_outcome", "arguments": args}}),
        ))
        .unwrap();
        let done = d.finish().unwrap();
        assert_eq!(
            done.events,
            vec![AgentEvent::Text("Okay.".into())],
            "{args}"
        );
        assert_eq!(done.malformed.len(), 1, "{args}");
        assert_eq!(done.malformed[0].kind(), "malformed");
    }
    let long = format!(r#"{{"outcome":"{}"}}"#, "x".repeat(65));
    assert!(outcome_arg(&long).is_err());
    assert_eq!(
        outcome_arg(r#"{"outcome":"Not-Interested"}"#).unwrap(),
        "not_interested"
    );
}

#[test]
fn the_request_offers_the_outcome_tools() {
    let body = request_body("m", &[ChatMessage::new("user", "hi")]);
    let names: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, TOOLS);
    let set = &body["tools"][2]["function"]["parameters"];
    assert_eq!(set["required"], json!(["outcome"]));
    assert_eq!(set["properties"]["outcome"]["type"], "string");
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
    assert_eq!(
        tools,
        vec!["end_call", "transfer_call", "set_outcome", "opt_out"]
    );
    assert_eq!(
        body["tools"][1]["function"]["parameters"]["required"],
        json!(["to"])
    );
}
