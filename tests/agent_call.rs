//! A voice agent end to end: the real server with the real Deepgram, OpenAI and ElevenLabs
//! clients pointed at local fakes that speak those services' wire protocols, driven by the
//! simulated Twilio leg. Conversation, barge-in, faults, and the offline scripted agent.

mod common;

use std::time::Duration;

use common::*;
use voxbridge::call::services::CallServices;
use voxbridge::config::{AgentKind, Config, SttProvider, TtsProvider};
use voxbridge::fakes::Fault;
use voxbridge::fakes::deepgram::FakeDeepgram;
use voxbridge::fakes::elevenlabs::FakeElevenLabs;
use voxbridge::fakes::openai_chat::{FakeOpenAiChat, FakeReply, StreamEnd};
use voxbridge::server::Server;
use voxbridge::sim::{SimCall, SimReport, Step};

/// Fakes of every cloud service, and a server wired to them.
struct Stack {
    deepgram: FakeDeepgram,
    chat: FakeOpenAiChat,
    elevenlabs: FakeElevenLabs,
    server: Server,
}

fn keys(var: &str) -> Option<String> {
    match var {
        "DEEPGRAM_API_KEY" => Some("dg-test-key".into()),
        "OPENAI_API_KEY" => Some("oa-test-key".into()),
        "ELEVENLABS_API_KEY" => Some("el-test-key".into()),
        _ => None,
    }
}

async fn stack(tweak: impl FnOnce(&mut Config)) -> Stack {
    let deepgram = FakeDeepgram::start("dg-test-key")
        .await
        .expect("fake deepgram");
    let chat = FakeOpenAiChat::start("oa-test-key")
        .await
        .expect("fake openai");
    let elevenlabs = FakeElevenLabs::start("el-test-key")
        .await
        .expect("fake elevenlabs");
    let mut config = Config::from_toml_str("[server]\nlisten = \"127.0.0.1:0\"").expect("config");
    config.stt.provider = SttProvider::Deepgram;
    config.stt.base_url = deepgram.url();
    config.agent.kind = AgentKind::Openai;
    config.agent.base_url = chat.url();
    config.agent.timeout_ms = 3000;
    config.tts.provider = TtsProvider::ElevenlabsWs;
    config.tts.elevenlabs_base_url = elevenlabs.base_url();
    tweak(&mut config);
    let services = CallServices::from_config(&config, keys)
        .await
        .expect("services");
    let server = Server::bind_with(config, services).await.expect("server");
    Stack {
        deepgram,
        chat,
        elevenlabs,
        server,
    }
}

fn two_turns(url: String) -> SimCall {
    SimCall::new(url)
        .step(Step::Silence(Duration::from_millis(300)))
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Silence(Duration::from_millis(300)))
        .step(Step::Speak(fixture("question-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Silence(Duration::from_millis(300)))
}

fn content(message: &serde_json::Value) -> (&str, &str) {
    (
        message["role"].as_str().unwrap_or_default(),
        message["content"].as_str().unwrap_or_default(),
    )
}

/// Seconds of audible audio the caller heard.
fn heard_secs(report: &SimReport) -> f64 {
    let frames = report.heard.chunks(160).filter(|f| {
        let pcm = decode(f);
        pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len() as f32 > 1e-4
    });
    frames.count() as f64 * 0.02
}

#[tokio::test]
async fn two_turn_conversation_with_transcripts_and_spoken_replies() {
    let s = stack(|_| {}).await;
    s.deepgram
        .transcripts
        .push("I would like to check the status of my order");
    s.deepgram.transcripts.push("When will it arrive?");
    s.chat
        .push_reply(FakeReply::text("Of course. It shipped yesterday."));
    s.chat
        .push_reply(FakeReply::text("It will arrive tomorrow morning."));
    let mut summaries = Summaries::of(&s.server);
    let call = two_turns(s.server.media_url());
    let sid = call.call_sid.clone();
    let report = call.run().await.expect("call");
    println!("{report}");

    assert_eq!(report.timeouts, 0, "{report}");
    assert_eq!(report.response_latencies_ms.len(), 2, "{report}");
    assert!(
        heard_secs(&report) > 2.0,
        "heard {:.1} s",
        heard_secs(&report)
    );

    // The agent saw both transcripts, and its own first reply, in order.
    let requests = s.chat.requests.snapshot();
    assert_eq!(requests.len(), 2);
    let history: Vec<(&str, &str)> = requests[1].messages.iter().map(content).collect();
    assert_eq!(history[0].0, "system");
    assert_eq!(
        history[1],
        ("user", "I would like to check the status of my order")
    );
    assert_eq!(
        history[2],
        ("assistant", "Of course. It shipped yesterday.")
    );
    assert_eq!(history[3], ("user", "When will it arrive?"));

    // The TTS spoke each reply's sentences.
    let spoken: Vec<String> = s
        .elevenlabs
        .requests
        .snapshot()
        .iter()
        .flat_map(|r| r.texts.clone())
        .collect();
    assert!(
        spoken.join(" ").contains("It shipped yesterday."),
        "{spoken:?}"
    );

    let summary = summaries.get(&sid).await;
    assert_eq!(summary.turns, 2);
    assert_eq!(summary.responses_played, 2);
    assert_eq!(summary.turn_latencies.len(), 2);
    for l in &summary.turn_latencies {
        assert!(
            l.stt_ms.is_some() && l.agent_ms.is_some() && l.tts_ms.is_some(),
            "{l:?}"
        );
        let server = l.server_ms.expect("server stage");
        assert!(server < 50.0, "server added {server} ms");
    }
    println!("turn latencies: {:?}", summary.turn_latencies);
    let body = http_get(&s.server, "/metrics").await.1;
    assert!(
        body.contains("voxbridge_turn_stage_seconds_bucket{stage=\"agent\",provider=\"openai\"")
    );
}

#[tokio::test]
async fn barge_in_cancels_generation_and_history_keeps_what_was_heard() {
    let s = stack(|_| {}).await;
    s.deepgram.transcripts.push("Tell me about my order");
    s.deepgram.transcripts.push("Stop, when will it arrive?");
    let long = [
        "Your order contains three items.",
        "The first item is a blue kettle with a two year warranty.",
        "The second item is a set of four ceramic mugs in assorted colours.",
        "The third item is a pack of premium loose leaf green tea.",
        "All three items were packed together in one box.",
        "The box left our warehouse yesterday afternoon.",
    ];
    s.chat.push_reply(FakeReply {
        content: long.iter().map(|p| format!("{p} ")).collect(),
        tool_calls: Vec::new(),
        delay_ms: 400,
    });
    s.chat.push_reply(FakeReply::text("Tomorrow."));
    let mut summaries = Summaries::of(&s.server);
    let call = SimCall::new(s.server.media_url())
        .step(Step::Silence(Duration::from_millis(300)))
        .step(Step::Speak(fixture("question-8k.wav")))
        .step(Step::WaitForReply(Duration::from_secs(10)))
        .step(Step::Silence(Duration::from_millis(800)))
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Silence(Duration::from_millis(300)));
    let sid = call.call_sid.clone();
    let report = call.run().await.expect("call");
    println!("{report}");
    assert_eq!(report.timeouts, 0);
    assert!(report.clears_received >= 1, "no clear on barge-in");

    // The fakes saw the first reply cancelled: the LLM stream and the TTS socket.
    assert_eq!(
        s.chat.stream_end(0, Duration::from_secs(5)).await,
        Some(StreamEnd::Cancelled)
    );
    let tts = s
        .elevenlabs
        .wait_for_requests(2, Duration::from_secs(5))
        .await;
    assert!(
        tts.iter().any(|r| r.cancelled),
        "TTS not cancelled: {tts:?}"
    );

    // The history holds only the part of the first reply the caller heard.
    let requests = s.chat.requests.snapshot();
    assert_eq!(requests.len(), 2);
    let full = long.join(" ");
    let heard = requests[1]
        .messages
        .iter()
        .map(content)
        .find(|(role, _)| *role == "assistant")
        .map(|(_, c)| c.to_owned())
        .unwrap_or_default();
    assert!(
        heard.len() < full.len(),
        "history kept the whole reply: {heard}"
    );
    assert!(
        full.starts_with(&heard),
        "history {heard:?} is not a prefix of the reply"
    );

    let summary = summaries.get(&sid).await;
    assert_eq!(summary.barge_ins, 1);
    assert_eq!(summary.responses_interrupted, 1);
    assert_eq!(summary.responses_played, 1);
}

/// One turn under a fault; the caller must still hear a reply.
async fn faulted_turn(
    s: &Stack,
) -> (
    SimReport,
    std::sync::Arc<voxbridge::call::summary::CallSummary>,
) {
    let mut summaries = Summaries::of(&s.server);
    let call = SimCall::new(s.server.media_url())
        .step(Step::Silence(Duration::from_millis(300)))
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(20)))
        .step(Step::Silence(Duration::from_millis(300)));
    let sid = call.call_sid.clone();
    let report = call.run().await.expect("call");
    let summary = summaries.get(&sid).await;
    assert_eq!(report.timeouts, 0, "no reply heard:\n{report}");
    assert!(
        heard_secs(&report) > 0.5,
        "heard only {:.2} s",
        heard_secs(&report)
    );
    assert_eq!(summary.end_reason.as_str(), "stop");
    (report, summary)
}

#[tokio::test]
async fn stt_disconnect_reconnects_and_loses_no_speech() {
    let s = stack(|_| {}).await;
    s.deepgram.faults.push(Fault::DisconnectAfter(40));
    s.deepgram
        .transcripts
        .push("I would like to check the status of my order");
    s.chat
        .push_reply(FakeReply::text("Sure, let me look that up for you."));
    let (_, summary) = faulted_turn(&s).await;
    assert!(summary.stt_reconnects >= 1);
    let asked = s.chat.requests.snapshot();
    let last_user = asked[0]
        .messages
        .iter()
        .map(content)
        .rfind(|(r, _)| *r == "user");
    assert_eq!(
        last_user.map(|(_, c)| c),
        Some("I would like to check the status of my order")
    );
}

#[tokio::test]
async fn stt_refused_falls_back_to_the_local_vad() {
    let s = stack(|_| {}).await;
    for _ in 0..10 {
        s.deepgram.faults.push(Fault::Status(401));
    }
    let (_, summary) = faulted_turn(&s).await;
    assert!(summary.provider_failures >= 1);
    let body = http_get(&s.server, "/metrics").await.1;
    assert!(
        body.contains(
            "voxbridge_provider_errors_total{provider=\"deepgram\",kind=\"unauthorized\"}"
        )
    );
}

#[tokio::test]
async fn llm_failures_end_in_an_apology_not_silence() {
    let s = stack(|_| {}).await;
    s.deepgram.transcripts.push("Hello there");
    for _ in 0..3 {
        s.chat.faults.push(Fault::Status(500));
    }
    let (_, summary) = faulted_turn(&s).await;
    assert!(summary.provider_failures >= 1);
    let spoken: Vec<String> = s
        .elevenlabs
        .requests
        .snapshot()
        .iter()
        .flat_map(|r| r.texts.clone())
        .collect();
    assert!(
        spoken.join(" ").contains("Sorry"),
        "apology not spoken: {spoken:?}"
    );
}

#[tokio::test]
async fn llm_mid_stream_disconnect_and_timeout_keep_the_call_audible() {
    let s = stack(|c| c.agent.timeout_ms = 1000).await;
    s.deepgram.transcripts.push("Hello there");
    s.deepgram.transcripts.push("Are you there?");
    s.chat.faults.push(Fault::DisconnectAfter(3));
    s.chat
        .push_reply(FakeReply::text("First part. Second part. Third part."));
    faulted_turn(&s).await;
    s.chat.faults.push(Fault::Stall(Duration::from_secs(5)));
    s.chat.faults.push(Fault::Stall(Duration::from_secs(5)));
    s.chat.faults.push(Fault::Stall(Duration::from_secs(5)));
    let (_, summary) = faulted_turn(&s).await;
    assert!(summary.provider_failures >= 1);
}

#[tokio::test]
async fn tts_failure_falls_back_to_the_second_provider() {
    let s = stack(|c| c.tts.fallback = "espeak".into()).await;
    s.deepgram.transcripts.push("Hello there");
    s.chat.push_reply(FakeReply::text("Hello, how can I help?"));
    s.elevenlabs.faults.push(Fault::Status(500));
    let (_, summary) = faulted_turn(&s).await;
    assert!(summary.provider_failures >= 1 || summary.responses_played == 1);
    let body = http_get(&s.server, "/metrics").await.1;
    assert!(
        body.contains(
            "voxbridge_provider_errors_total{provider=\"elevenlabs_ws\",kind=\"server_error\"}"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn every_tts_failing_plays_the_local_apology() {
    let s = stack(|_| {}).await;
    s.deepgram.transcripts.push("Hello there");
    s.chat.push_reply(FakeReply::text("Hello, how can I help?"));
    s.elevenlabs.faults.push(Fault::DisconnectAfter(0));
    faulted_turn(&s).await;
}

#[tokio::test]
async fn scripted_agent_with_espeak_completes_a_call_offline() {
    let mut config = Config::from_toml_str("[server]\nlisten = \"127.0.0.1:0\"").expect("config");
    config.agent.kind = AgentKind::Scripted;
    config.tts.provider = TtsProvider::Espeak;
    let services = CallServices::from_config(&config, |_| None)
        .await
        .expect("services");
    let server = Server::bind_with(config, services).await.expect("server");
    let mut summaries = Summaries::of(&server);
    let call = SimCall::new(server.media_url())
        .step(Step::WaitForReplyEnd(Duration::from_secs(20)))
        .step(Step::Dtmf("1".into()))
        .step(Step::WaitForReplyEnd(Duration::from_secs(20)))
        .step(Step::Dtmf("4".into()))
        .step(Step::Dtmf("2".into()))
        .step(Step::WaitForReplyEnd(Duration::from_secs(20)))
        .step(Step::Silence(Duration::from_secs(5)));
    let sid = call.call_sid.clone();
    let report = call.run().await.expect("call");
    println!("{report}");
    let summary = summaries.get(&sid).await;
    assert!(report.response_latencies_ms.is_empty() || report.reply_starts_ms.len() >= 2);
    assert!(
        report.reply_starts_ms.len() >= 3,
        "greeting and two replies expected:\n{report}"
    );
    assert!(heard_secs(&report) > 3.0);
    assert_eq!(
        summary.end_reason.as_str(),
        "agent_hangup",
        "{:?}",
        summary.actions
    );
    assert_eq!(summary.actions, vec!["end_call".to_string()]);
    assert_eq!(report.closed_by_server.as_ref().map(|c| c.0), Some(1000));
}
