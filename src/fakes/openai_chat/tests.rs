use super::*;

const KEY: &str = "sk-test";

fn body(user: &str) -> Value {
    json!({"model": "gpt-test", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": user}],
        "tools": [{"type": "function", "function": {"name": "end_call", "parameters": {}}}]})
}

async fn post(fake: &FakeOpenAiChat, key: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", fake.url()))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The `data:` payloads of a complete SSE body, checking the exact framing on the way.
fn payloads(text: &str) -> Vec<String> {
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    text.split_terminator("\n\n")
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("bad event {e:?}"))
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn streams_exact_sse_with_role_content_tool_finish_usage_done() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    fake.push_reply(FakeReply::text("Sure thing.").with_tool("end_call", r#"{"reason":"bye"}"#));
    let resp = post(&fake, KEY, &body("bye")).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = payloads(&resp.text().await.unwrap());
    let json: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(json[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(json[1]["choices"][0]["delta"]["content"], "Sure ");
    assert_eq!(json[2]["choices"][0]["delta"]["content"], "thing.");
    let first = &json[3]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["function"]["name"], "end_call");
    assert_eq!(first["id"], "call_chatcmpl-fake0");
    let args: String = json[4..]
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, r#"{"reason":"bye"}"#);
    let finish = json
        .iter()
        .position(|c| c["choices"][0]["finish_reason"] == "tool_calls")
        .unwrap();
    assert!(finish >= 6, "arguments come in several fragments");
    let usage = json.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(events.last().unwrap(), "[DONE]");

    let seen = fake.requests.snapshot();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].model, "gpt-test");
    assert_eq!(seen[0].messages[1]["content"], "bye");
    assert_eq!(seen[0].tools, vec!["end_call"]);
    assert_eq!(
        fake.stream_end(0, Duration::from_secs(2)).await,
        Some(StreamEnd::Completed)
    );
}

#[tokio::test]
async fn default_reply_echoes_the_last_user_message() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    let text = post(&fake, KEY, &body("hello there"))
        .await
        .text()
        .await
        .unwrap();
    let content: String = payloads(&text)
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(content, "You said: hello there.");
}

#[tokio::test]
async fn bad_key_and_status_faults_return_openai_errors() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    let resp = post(&fake, "sk-wrong", &body("hi")).await;
    assert_eq!(resp.status(), 401);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_api_key");
    assert!(!fake.requests.snapshot()[0].authorized);

    fake.faults.push(Fault::Status(429));
    let resp = post(&fake, KEY, &body("hi")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "0");
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "rate_limit_exceeded"
    );

    fake.faults.push(Fault::Status(500));
    let resp = post(&fake, KEY, &body("hi")).await;
    assert_eq!(resp.status(), 500);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["type"],
        "server_error"
    );
    assert_eq!(
        post(&fake, KEY, &body("hi")).await.status(),
        200,
        "faults are one per request"
    );
}

#[tokio::test]
async fn disconnect_after_n_events_ends_the_body_with_an_error() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    fake.faults.push(Fault::DisconnectAfter(2));
    fake.push_reply(FakeReply::text("one two three four"));
    let mut resp = post(&fake, KEY, &body("hi")).await;
    let mut got = Vec::new();
    let err = loop {
        match resp.chunk().await {
            Ok(Some(b)) => got.extend_from_slice(&b),
            Ok(None) => panic!("clean end after {:?}", String::from_utf8_lossy(&got)),
            Err(e) => break e,
        }
    };
    assert!(err.is_body() || err.is_decode(), "{err:?}");
    assert_eq!(String::from_utf8_lossy(&got).matches("\n\n").count(), 2);
    assert_eq!(
        fake.stream_end(0, Duration::from_secs(2)).await,
        Some(StreamEnd::Disconnected)
    );
}

#[tokio::test]
async fn malformed_inserts_one_broken_event_and_carries_on() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    fake.faults.push(Fault::Malformed);
    let text = post(&fake, KEY, &body("hi")).await.text().await.unwrap();
    let events = payloads(&text);
    assert_eq!(events[1], "{broken");
    assert_eq!(
        events
            .iter()
            .filter(|e| serde_json::from_str::<Value>(e).is_err())
            .count(),
        2
    ); // + [DONE]
}

#[tokio::test]
async fn a_client_going_away_is_observed_as_cancelled() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    fake.push_reply(FakeReply::text("a b c d e f g h i j k l").with_delay(30));
    let mut resp = post(&fake, KEY, &body("hi")).await;
    assert!(resp.chunk().await.unwrap().is_some());
    drop(resp);
    assert_eq!(
        fake.stream_end(0, Duration::from_secs(3)).await,
        Some(StreamEnd::Cancelled)
    );

    fake.faults.push(Fault::Stall(Duration::from_secs(30)));
    let client = reqwest::Client::new();
    let slow = client
        .post(format!("{}/chat/completions", fake.url()))
        .bearer_auth(KEY)
        .json(&body("x"))
        .send();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), slow)
            .await
            .is_err()
    );
    assert_eq!(
        fake.stream_end(1, Duration::from_secs(3)).await,
        Some(StreamEnd::Cancelled)
    );
}
