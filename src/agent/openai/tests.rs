use serde_json::{Value, json};

use super::turn::{retry_after, retryable};
use super::*;
use crate::agent::CallAction;
use crate::config::AgentKind;
use crate::fakes::Fault;
use crate::fakes::openai_chat::{FakeOpenAiChat, FakeReply, StreamEnd};
use reqwest::header::HeaderMap;
use tokio::time::Instant;

const KEY: &str = "sk-primary-secret";
const FALLBACK_KEY: &str = "sk-fallback-secret";
const LIMIT: Duration = Duration::from_secs(8);

fn cfg(base_url: &str, greeting: &str, timeout_ms: u64) -> AgentConfig {
    AgentConfig {
        kind: AgentKind::Openai,
        base_url: base_url.to_string(),
        model: "gpt-test".into(),
        system_prompt: "You are a test.".into(),
        greeting: greeting.into(),
        timeout_ms,
        fallback_base_url: String::new(),
        fallback_model: String::new(),
        flow_file: String::new(),
        apology: String::new(),
        reprompt: String::new(),
    }
}

fn agent_with(cfg: AgentConfig, fallback: Option<&FakeOpenAiChat>) -> OpenAiAgent {
    let fallback = fallback.map(|f| {
        (
            f.url(),
            "gpt-fallback".to_string(),
            Secret::new(FALLBACK_KEY),
        )
    });
    let mut agent = OpenAiAgent::new(&cfg, Secret::new(KEY), fallback).unwrap();
    Arc::get_mut(&mut agent.inner).unwrap().backoff_base = Duration::from_millis(20);
    agent
}

fn agent(fake: &FakeOpenAiChat) -> OpenAiAgent {
    agent_with(cfg(&fake.url(), "", 3000), None)
}

fn session(agent: &OpenAiAgent) -> Box<dyn AgentSession> {
    agent.start_call(&CallIds {
        call_sid: "CAtest".into(),
        stream_sid: "MZtest".into(),
    })
}

/// Every event until the channel ends.
async fn collect(mut rx: mpsc::Receiver<AgentEvent>) -> Vec<AgentEvent> {
    let mut out = Vec::new();
    while let Some(ev) = tokio::time::timeout(LIMIT, rx.recv())
        .await
        .expect("channel hung")
    {
        out.push(ev);
    }
    out
}

async fn say(s: &mut Box<dyn AgentSession>, text: &str) -> Vec<AgentEvent> {
    collect(s.respond(CallerTurn::Speech(text.into()), CancellationToken::new())).await
}

fn text(t: &str) -> AgentEvent {
    AgentEvent::Text(t.into())
}

fn kind(ev: Option<&AgentEvent>) -> &'static str {
    match ev {
        Some(AgentEvent::Failed(e)) => e.kind(),
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// The kinds of the warnings among `events`, and the other events.
fn split(events: Vec<AgentEvent>) -> (Vec<&'static str>, Vec<AgentEvent>) {
    let mut warnings = Vec::new();
    let mut rest = Vec::new();
    for ev in events {
        match ev {
            AgentEvent::Warning(e) => warnings.push(e.kind()),
            other => rest.push(other),
        }
    }
    (warnings, rest)
}

fn msg(role: &str, content: &str) -> Value {
    json!({"role": role, "content": content})
}

#[tokio::test]
async fn streamed_reply_arrives_as_sentences_in_order_then_done() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    fake.push_reply(
        FakeReply::text("Hello there. How can I help you today? I am a test.").with_delay(40),
    );
    let mut s = session(&agent(&fake));
    let mut rx = s.respond(CallerTurn::Speech("hi".into()), CancellationToken::new());
    let first = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap();
    assert_eq!(first, Some(text("Hello there.")));
    assert!(
        fake.streams.is_empty(),
        "the first piece came before the stream ended"
    );
    let rest = collect(rx).await;
    assert_eq!(
        rest,
        vec![
            text("How can I help you today?"),
            text("I am a test."),
            AgentEvent::Done
        ]
    );
    let req = &fake.requests.snapshot()[0];
    assert_eq!(req.model, "gpt-test");
    assert_eq!(
        req.tools,
        vec!["end_call", "transfer_call", "set_outcome", "opt_out"]
    );
    assert_eq!(fake.stream_end(0, LIMIT).await, Some(StreamEnd::Completed));
}

#[tokio::test]
async fn history_holds_system_greeting_and_both_turns() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    let mut s = session(&agent_with(
        cfg(&fake.url(), "Hi, this is the test line.", 3000),
        None,
    ));
    assert_eq!(s.greeting().as_deref(), Some("Hi, this is the test line."));
    assert_eq!(s.greeting(), None, "once");
    s.reply_heard("Hi, this is the test line.", false);
    assert_eq!(
        say(&mut s, "what time is it").await,
        vec![
            text("You said:"),
            text("what time is it."),
            AgentEvent::Done
        ]
    );
    s.reply_heard("You said: what time is it.", false);
    say(&mut s, "thanks").await;
    let reqs = fake.requests.snapshot();
    assert_eq!(
        reqs[1].messages,
        vec![
            msg("system", "You are a test."),
            msg("assistant", "Hi, this is the test line."),
            msg("user", "what time is it"),
            msg("assistant", "You said: what time is it."),
            msg("user", "thanks"),
        ]
    );
}

#[tokio::test]
async fn dtmf_becomes_a_user_message_and_audio_is_ignored() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    let mut s = session(&agent(&fake));
    let audio = CallerTurn::Audio(bytes::Bytes::from_static(&[0xff; 160]));
    assert_eq!(
        collect(s.respond(audio, CancellationToken::new())).await,
        vec![AgentEvent::Done]
    );
    assert!(fake.requests.is_empty());
    collect(s.respond(CallerTurn::Dtmf("12#".into()), CancellationToken::new())).await;
    let last = fake.requests.snapshot()[0].messages.last().cloned();
    assert_eq!(
        last,
        Some(msg("user", "(The caller pressed the keys: 1 2 #)"))
    );
}

#[tokio::test]
async fn tool_calls_become_actions_and_stay_in_the_history_with_their_results() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    fake.push_reply(FakeReply::text("Goodbye!").with_tool("end_call", "{}"));
    fake.push_reply(FakeReply::default().with_tool("transfer_call", r#"{"to":"+15550100200"}"#));
    fake.push_reply(FakeReply::default().with_tool("end_call", "{}"));
    let mut s = session(&agent(&fake));
    assert_eq!(
        say(&mut s, "bye").await,
        vec![
            text("Goodbye!"),
            AgentEvent::Action(CallAction::EndCall),
            AgentEvent::Done
        ]
    );
    s.reply_heard("Goodbye!", false);
    let transfer = CallAction::Transfer {
        to: "+15550100200".into(),
    };
    assert_eq!(
        say(&mut s, "a human please").await,
        vec![AgentEvent::Action(transfer), AgentEvent::Done]
    );
    // Nothing was said: only the tool call.
    s.reply_heard("", false);
    say(&mut s, "hello?").await;
    // Cut short by the caller: the action was dropped, so is the call.
    s.reply_heard("", true);
    say(&mut s, "still there?").await;
    let messages = &fake.requests.snapshot()[3].messages;
    let call_id = |m: &Value| m["tool_calls"][0]["id"].as_str().unwrap_or("").to_owned();
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(messages[2]["content"], "Goodbye!");
    assert_eq!(messages[2]["tool_calls"][0]["function"]["name"], "end_call");
    assert_eq!(messages[2]["tool_calls"][0]["type"], "function");
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(
        messages[3]["tool_call_id"].as_str(),
        Some(call_id(&messages[2]).as_str())
    );
    assert_eq!(messages[4], msg("user", "a human please"));
    assert_eq!(messages[5]["content"], Value::Null);
    let transfer_call = &messages[5]["tool_calls"][0]["function"];
    assert_eq!(transfer_call["name"], "transfer_call");
    assert_eq!(transfer_call["arguments"], r#"{"to":"+15550100200"}"#);
    assert_eq!(messages[6]["role"], "tool");
    assert_eq!(messages[7], msg("user", "hello?"));
    assert_eq!(messages[8], msg("user", "still there?"));
    assert_eq!(messages.len(), 9);
}

#[tokio::test]
async fn a_reply_that_only_sets_an_outcome_is_followed_up_once() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    fake.push_reply(FakeReply::default().with_tool("set_outcome", r#"{"outcome":"Interested"}"#));
    fake.push_reply(FakeReply::text("Great, I will send the details."));
    // Next turn: outcome-only twice; the follow-up is not repeated.
    fake.push_reply(FakeReply::default().with_tool("set_outcome", r#"{"outcome":"a"}"#));
    fake.push_reply(FakeReply::default().with_tool("set_outcome", r#"{"outcome":"b"}"#));
    fake.push_reply(
        FakeReply::text("Understood. Goodbye.")
            .with_tool("set_outcome", r#"{"outcome":"not_interested"}"#)
            .with_tool("opt_out", "{}"),
    );
    let mut s = session(&agent(&fake));
    assert_eq!(
        say(&mut s, "yes please").await,
        vec![
            AgentEvent::Outcome("interested".into()),
            text("Great, I will send the details."),
            AgentEvent::Done
        ]
    );
    let requests = fake.requests.snapshot();
    assert_eq!(requests.len(), 2);
    let follow_up = &requests[1].messages;
    let n = follow_up.len();
    assert_eq!(
        follow_up[n - 2]["tool_calls"][0]["function"]["name"],
        "set_outcome"
    );
    assert_eq!(follow_up[n - 1]["role"], "tool");
    assert_eq!(
        follow_up[n - 1]["tool_call_id"],
        follow_up[n - 2]["tool_calls"][0]["id"]
    );
    s.reply_heard("Great, I will send the details.", false);

    assert_eq!(
        say(&mut s, "hmm").await,
        vec![
            AgentEvent::Outcome("a".into()),
            AgentEvent::Outcome("b".into()),
            AgentEvent::Done
        ]
    );
    assert_eq!(fake.requests.snapshot().len(), 4);
    s.reply_heard("", false);

    assert_eq!(
        say(&mut s, "stop calling me").await,
        vec![
            text("Understood."),
            text("Goodbye."),
            AgentEvent::Outcome("not_interested".into()),
            AgentEvent::Outcome("opted_out".into()),
            AgentEvent::Action(CallAction::EndCall),
            AgentEvent::Done
        ]
    );
    s.reply_heard("Understood. Goodbye.", false);
    say(&mut s, "bye").await;
    // The history is valid: every assistant tool call has its result right after it.
    let messages = &fake.requests.snapshot()[5].messages;
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "tool",
            "assistant",
            "user",
            "assistant",
            "tool",
            "assistant",
            "tool",
            "user",
            "assistant",
            "tool",
            "tool",
            "user"
        ]
    );
    for (i, m) in messages.iter().enumerate() {
        for (k, call) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
            assert_eq!(
                messages[i + 1 + k]["tool_call_id"],
                call["id"],
                "{messages:?}"
            );
        }
    }
    assert_eq!(messages[4]["content"], "Great, I will send the details.");
    assert_eq!(messages[11]["content"], "Understood. Goodbye.");
}

#[tokio::test]
async fn unauthorized_fails_without_retry() {
    let fake = FakeOpenAiChat::start("sk-other").await.unwrap();
    let mut s = session(&agent(&fake));
    let (warnings, rest) = split(say(&mut s, "hi").await);
    assert_eq!(warnings, ["unauthorized"]);
    assert_eq!(rest.len(), 1);
    assert_eq!(kind(rest.first()), "unauthorized");
    assert_eq!(fake.requests.len(), 1);
}

#[tokio::test]
async fn rate_limited_then_success_after_retry() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    fake.faults.push(Fault::Status(429));
    let mut s = session(&agent(&fake));
    assert_eq!(
        split(say(&mut s, "hi").await),
        (
            vec!["rate_limited"],
            vec![text("You said:"), text("hi."), AgentEvent::Done]
        )
    );
    assert_eq!(fake.requests.len(), 2);
}

#[tokio::test]
async fn server_errors_fail_over_to_the_fallback() {
    let primary = FakeOpenAiChat::start(KEY).await.unwrap();
    let fallback = FakeOpenAiChat::start(FALLBACK_KEY).await.unwrap();
    for _ in 0..3 {
        primary.faults.push(Fault::Status(500));
    }
    fallback.push_reply(FakeReply::text("Fallback here."));
    let mut s = session(&agent_with(cfg(&primary.url(), "", 3000), Some(&fallback)));
    assert_eq!(
        split(say(&mut s, "hi").await),
        (
            vec!["server_error"; 1 + MAX_RETRIES as usize],
            vec![text("Fallback here."), AgentEvent::Done]
        )
    );
    assert_eq!(primary.requests.len(), 1 + MAX_RETRIES as usize);
    let seen = fallback.requests.snapshot();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].authorized);
    assert_eq!(seen[0].model, "gpt-fallback");
    assert_eq!(seen[0].messages, primary.requests.snapshot()[0].messages);
}

#[tokio::test]
async fn a_stream_broken_mid_reply_is_resumed_without_repeating_what_was_said() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    let reply = FakeReply::text("One. Two. Three. Four.");
    fake.faults.push(Fault::DisconnectAfter(4)); // role delta + three sentences
    fake.push_reply(reply.clone());
    fake.push_reply(reply);
    let mut s = session(&agent(&fake));
    assert_eq!(
        split(say(&mut s, "count").await),
        (
            vec!["disconnected"],
            vec![
                text("One."),
                text("Two."),
                text("Three."),
                text("Four."),
                AgentEvent::Done
            ]
        )
    );
    assert_eq!(fake.requests.len(), 2);
    // The same for an in-stream `error` event.
    fake.faults.push(Fault::ErrorAfter(3));
    fake.push_reply(FakeReply::text("Five. Six. Seven."));
    fake.push_reply(FakeReply::text("Five. Six. Seven."));
    let (warnings, rest) = split(say(&mut s, "more").await);
    assert_eq!(warnings, ["server_error"]);
    assert_eq!(
        rest,
        vec![
            text("Five."),
            text("Six."),
            text("Seven."),
            AgentEvent::Done
        ]
    );
}

#[tokio::test]
async fn a_resumed_stream_that_says_something_else_fails_the_turn_once() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    let fallback = FakeOpenAiChat::start(FALLBACK_KEY).await.unwrap();
    fake.faults.push(Fault::DisconnectAfter(4));
    fake.push_reply(FakeReply::text("One. Two. Three. Four."));
    let mut s = session(&agent_with(cfg(&fake.url(), "", 3000), Some(&fallback)));
    let (warnings, rest) = split(say(&mut s, "count").await);
    // The resume got the default reply ("You said: count."): it cannot go on.
    assert_eq!(
        warnings,
        ["disconnected"],
        "the divergence is no provider fault"
    );
    assert_eq!(&rest[..3], &[text("One."), text("Two."), text("Three.")]);
    assert_eq!(kind(rest.get(3)), "disconnected");
    assert_eq!(rest.len(), 4);
    assert_eq!(fake.requests.len(), 2, "one resume");
    assert!(
        fallback.requests.is_empty(),
        "the caller already heard the primary"
    );
}

#[tokio::test]
async fn a_malformed_event_is_skipped_and_the_reply_goes_on() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    fake.faults.push(Fault::Malformed);
    let mut s = session(&agent(&fake));
    assert_eq!(
        split(say(&mut s, "hi").await),
        (
            vec!["malformed"],
            vec![text("You said:"), text("hi."), AgentEvent::Done]
        )
    );
    assert_eq!(fake.requests.len(), 1);
}

#[tokio::test]
async fn stall_times_out_and_the_server_sees_the_client_leave() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    fake.faults.push(Fault::Stall(Duration::from_secs(20)));
    let mut s = session(&agent_with(cfg(&fake.url(), "", 300), None));
    let started = Instant::now();
    let (warnings, rest) = split(say(&mut s, "hi").await);
    assert_eq!(warnings, ["timeout"]);
    assert_eq!(kind(rest.first()), "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests.len(), 1, "timeouts are not retried");
    assert_eq!(fake.stream_end(0, LIMIT).await, Some(StreamEnd::Cancelled));
}

#[tokio::test]
async fn cancel_mid_stream_drops_the_stream_and_ends_the_channel() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    let long = "First sentence here. ".to_string() + &"and then more words ".repeat(20);
    fake.push_reply(FakeReply::text(&long).with_delay(50));
    let mut s = session(&agent(&fake));
    let cancel = CancellationToken::new();
    let mut rx = s.respond(CallerTurn::Speech("talk".into()), cancel.clone());
    assert_eq!(
        tokio::time::timeout(LIMIT, rx.recv()).await.unwrap(),
        Some(text("First sentence here."))
    );
    cancel.cancel();
    let end = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
    assert_eq!(end.expect("channel ends promptly"), None);
    assert_eq!(
        fake.stream_end(0, Duration::from_secs(3)).await,
        Some(StreamEnd::Cancelled)
    );
}

#[tokio::test]
async fn interrupted_reply_keeps_exactly_what_was_heard() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    fake.push_reply(FakeReply::text(
        "I can help with that. Let me check your order now.",
    ));
    let mut s = session(&agent(&fake));
    say(&mut s, "where is my order").await;
    s.reply_heard("I can help with that. Let me", true);
    s.reply_heard("ignored: no reply pending", false);
    say(&mut s, "stop").await;
    assert_eq!(
        fake.requests.snapshot()[1].messages,
        vec![
            msg("system", "You are a test."),
            msg("user", "where is my order"),
            msg("assistant", "I can help with that. Let me"),
            msg("user", "stop"),
        ]
    );
}

#[test]
fn keys_never_print_and_retry_rules() {
    let agent = OpenAiAgent::new(
        &cfg("http://127.0.0.1:9/v1", "", 100),
        Secret::new(KEY),
        None,
    )
    .unwrap();
    assert!(!format!("{agent:?}").contains(KEY));
    assert!(OpenAiAgent::new(&cfg("not a url", "", 100), Secret::new(KEY), None).is_err());
    assert!(retryable(&ProviderError::from_status(
        429,
        "rate_limit_exceeded"
    )));
    assert!(!retryable(&ProviderError::from_status(
        429,
        r#"{"code":"insufficient_quota"}"#
    )));
    assert!(retryable(&ProviderError::from_status(503, "")));
    assert!(!retryable(&ProviderError::from_status(400, "")));
    assert!(!retryable(&ProviderError::Timeout("x".into())));
    let mut h = HeaderMap::new();
    h.insert("retry-after", "2".parse().unwrap());
    assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    h.insert("retry-after-ms", "150".parse().unwrap());
    assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
    assert_eq!(retry_after(&HeaderMap::new()), None);
}

/// A server whose 200 stream carries an in-stream `error` event; counts its requests.
async fn erroring_server() -> (
    crate::fakes::FakeServer,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = ": ping\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n\
                            data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n";
                ([("content-type", "text/event-stream")], body)
            }
        }),
    );
    let server = crate::fakes::FakeServer::start(router, 0).await.unwrap();
    (server, hits)
}

#[tokio::test]
async fn in_stream_errors_are_resumed_once_then_fall_back_when_nothing_was_heard() {
    let (server, hits) = erroring_server().await;
    let url = format!("{}/v1", server.http_url());
    let mut s = session(&agent_with(cfg(&url, "", 3000), None));
    let (warnings, rest) = split(say(&mut s, "hi").await);
    assert_eq!(warnings, ["server_error", "server_error"]);
    assert_eq!(kind(rest.first()), "server_error");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "a broken stream is resumed once"
    );

    let fallback = FakeOpenAiChat::start(FALLBACK_KEY).await.unwrap();
    fallback.push_reply(FakeReply::text("Backup."));
    let mut s = session(&agent_with(cfg(&url, "", 3000), Some(&fallback)));
    assert_eq!(
        split(say(&mut s, "hi").await),
        (
            vec!["server_error", "server_error"],
            vec![text("Backup."), AgentEvent::Done]
        )
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[tokio::test]
async fn connection_refused_is_retried_then_fails_over() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fallback = FakeOpenAiChat::start(FALLBACK_KEY).await.unwrap();
    let mut s = session(&agent_with(
        cfg(&format!("http://127.0.0.1:{port}/v1"), "", 3000),
        Some(&fallback),
    ));
    assert_eq!(
        split(say(&mut s, "hello").await),
        (
            vec!["connect"; 1 + MAX_RETRIES as usize],
            vec![text("You said:"), text("hello."), AgentEvent::Done]
        )
    );
    assert_eq!(fallback.requests.len(), 1);
}

#[tokio::test]
async fn what_the_engine_said_is_kept_and_trimming_never_orphans_a_tool_result() {
    let fake = FakeOpenAiChat::start(KEY).await.unwrap();
    let mut s = session(&agent(&fake));
    s.said("Sorry, I didn't catch that.");
    s.said("  ");
    say(&mut s, "hello").await;
    assert_eq!(
        fake.requests.snapshot()[0].messages,
        vec![
            msg("system", "You are a test."),
            msg("assistant", "Sorry, I didn't catch that."),
            msg("user", "hello"),
        ]
    );
    // Fill the history with tool-calling replies until it is trimmed.
    for i in 0..MAX_HISTORY {
        fake.push_reply(FakeReply::default().with_tool("end_call", "{}"));
        say(&mut s, &format!("turn {i}")).await;
        s.reply_heard("", false);
    }
    say(&mut s, "last").await;
    let messages = fake.requests.snapshot().last().unwrap().messages.clone();
    assert_eq!(messages[0]["role"], "system");
    assert_ne!(messages[1]["role"], "tool", "{:?}", messages[1]);
    assert!(messages.len() <= MAX_HISTORY + 1);
    for (i, m) in messages.iter().enumerate() {
        if m["role"] == "tool" {
            assert!(messages[i - 1]["tool_calls"].is_array(), "orphan at {i}");
        }
    }
}
