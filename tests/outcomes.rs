//! The agent's verdict on a call (issue 14), end to end through the real server with records
//! on (a temp SQLite file): the cascade's LLM calls `set_outcome` — alone, so the caller would
//! hear nothing without the follow-up request — or `opt_out`, against the Deepgram, OpenAI chat
//! and ElevenLabs fakes; the record read back through the API carries the outcome.

mod common;
mod store_support;

use std::time::Duration;

use common::stack::*;
use common::{Summaries, fixture};
use serde_json::Value;
use voxbridge::fakes::openai_chat::FakeReply;
use voxbridge::server::Server;
use voxbridge::sim::{SimCall, Step};
use voxbridge::store::CallRecord;

/// The cascade stack with records in a fresh SQLite file.
async fn recorded_stack(tag: &str) -> Stack {
    let url = format!(
        "sqlite://{}/records.db",
        store_support::temp_dir(tag).display()
    );
    stack(|c| c.store.url = url).await
}

/// The record of `sid` once the writer has written it, through the API.
async fn fetch(server: &Server, sid: &str) -> CallRecord {
    let writer = server.state().records.as_ref().expect("records on");
    assert!(
        writer.flush(Duration::from_secs(10)).await,
        "record not written"
    );
    let res = reqwest::get(format!("http://{}/api/calls/{sid}", server.local_addr()))
        .await
        .expect("GET");
    assert_eq!(res.status().as_u16(), 200);
    let body = res.text().await.expect("body");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("record JSON: {e}\n{body}"))
}

/// `(role, content, tool call names, tool_call_id)`.
type Message = (String, String, Vec<String>, String);

/// Every message of LLM request `n`.
fn messages(s: &Stack, n: usize) -> Vec<Message> {
    let requests = s.chat.requests.snapshot();
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    requests[n]
        .messages
        .iter()
        .map(|m| {
            let calls = m["tool_calls"].as_array().into_iter().flatten();
            (
                str_of(&m["role"]),
                str_of(&m["content"]),
                calls.map(|c| str_of(&c["function"]["name"])).collect(),
                str_of(&m["tool_call_id"]),
            )
        })
        .collect()
}

/// A reply that only calls `set_outcome` gets one follow-up request carrying the tool result;
/// its words are what the caller hears, the record's outcome is the model's, and the next
/// turn's history has the tool call followed by its result.
#[tokio::test]
async fn set_outcome_alone_is_recorded_and_the_caller_still_hears_a_reply() {
    let s = recorded_stack("outcome-set").await;
    s.deepgram.transcripts.push("Yes, I am interested");
    s.deepgram.transcripts.push("Thanks");
    s.chat
        .push_reply(FakeReply::default().with_tool("set_outcome", r#"{"outcome":"interested"}"#));
    s.chat
        .push_reply(FakeReply::text("Great, I will send you the details today."));
    s.chat.push_reply(FakeReply::text("You are welcome."));
    let call = call_saying(s.server.media_url(), &["hello-8k.wav", "question-8k.wav"]);
    let sid = call.call_sid.clone();
    let mut summaries = Summaries::of(&s.server);
    let report = call.run().await.expect("call");
    println!("{report}");
    let summary = summaries.get(&sid).await;
    assert_eq!(report.timeouts, 0, "{report}");
    // Never dead air: the caller heard a reply after both turns.
    assert_heard_after_every_turn(&report, 2, 500);
    assert_eq!(summary.outcome.as_deref(), Some("interested"));

    let record = fetch(&s.server, &sid).await;
    assert_eq!(record.outcome.as_deref(), Some("interested"));
    let agent_turns: Vec<&str> = record
        .events
        .turns
        .iter()
        .filter(|t| t.role == voxbridge::store::events::Role::Agent)
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(
        agent_turns,
        [
            "Great, I will send you the details today.",
            "You are welcome."
        ]
    );

    // Three requests: the turn, its follow-up with the tool result, the next turn.
    let requests = s.chat.requests.snapshot();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests[0].tools.iter().any(|t| t == "set_outcome"));
    assert!(requests[0].tools.iter().any(|t| t == "opt_out"));
    let follow_up = messages(&s, 1);
    let n = follow_up.len();
    assert_eq!(follow_up[n - 3].0, "user");
    assert_eq!(follow_up[n - 2].0, "assistant");
    assert_eq!(follow_up[n - 2].2, ["set_outcome"]);
    assert_eq!(follow_up[n - 1].0, "tool");
    assert!(follow_up[n - 1].1.contains("interested"), "{follow_up:?}");
    let call_id = requests[1].messages[n - 2]["tool_calls"][0]["id"].clone();
    assert_eq!(requests[1].messages[n - 1]["tool_call_id"], call_id);
    // The next turn: the same two messages, then what the caller heard, then their words.
    let next = messages(&s, 2);
    let tail: Vec<(&str, &str)> = next[next.len() - 5..]
        .iter()
        .map(|(r, c, _, _)| (r.as_str(), c.as_str()))
        .collect();
    assert_eq!(tail[0], ("user", "Yes, I am interested"));
    assert_eq!(tail[1].0, "assistant");
    assert_eq!(tail[2].0, "tool");
    assert_eq!(
        tail[3],
        ("assistant", "Great, I will send you the details today.")
    );
    assert_eq!(tail[4], ("user", "Thanks"));
    assert_eq!(
        requests[2].messages[next.len() - 3]["tool_call_id"],
        call_id
    );
    assert!(
        spoken(&s)
            .iter()
            .any(|t| t.contains("Great, I will send you the details today.")),
        "{:?}",
        spoken(&s)
    );
}

/// `opt_out`: the record's outcome is `opted_out` and the call is hung up once the goodbye has
/// played (not before: the caller hears it).
#[tokio::test]
async fn opt_out_records_opted_out_and_hangs_up_after_the_goodbye() {
    let s = recorded_stack("outcome-optout").await;
    s.deepgram.transcripts.push("Please stop calling me");
    let goodbye = "Understood, we will not call you again. Goodbye.";
    s.chat
        .push_reply(FakeReply::text(goodbye).with_tool("opt_out", "{}"));
    let call = SimCall::new(s.server.media_url())
        .step(Step::Silence(Duration::from_millis(300)))
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::Silence(Duration::from_secs(10)));
    let sid = call.call_sid.clone();
    let mut summaries = Summaries::of(&s.server);
    let report = call.run().await.expect("call");
    println!("{report}");
    let summary = summaries.get(&sid).await;

    assert_eq!(summary.end_reason.as_str(), "agent_hangup", "{summary:?}");
    assert_eq!(summary.actions, ["end_call"], "{summary:?}");
    assert_eq!(report.closed_by_server.as_ref().map(|c| c.0), Some(1000));
    // The goodbye was heard whole before the hang-up (about 50 characters of speech).
    let heard = heard_after_each_turn(&report);
    assert!(heard[0] >= 1000, "heard only {heard:?} ms of the goodbye");
    let spoke_end = report.speech_ends_ms[0];
    assert!(
        (report.duration.as_millis() as u64) < spoke_end + 8000,
        "hung up {} ms after the caller spoke",
        report.duration.as_millis() as u64 - spoke_end
    );
    let updates = s.twilio.snapshot();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].0, sid);
    assert_eq!(updates[0].1["Status"], "completed");

    let record = fetch(&s.server, &sid).await;
    assert_eq!(record.outcome.as_deref(), Some("opted_out"));
    assert_eq!(record.end_reason.as_deref(), Some("agent_hangup"));
    let last = record.events.turns.last().expect("turns");
    assert_eq!(last.text, goodbye);
    assert!(!last.interrupted);
}
