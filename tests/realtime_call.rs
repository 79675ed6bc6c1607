//! The OpenAI Realtime engine end to end: the real server, `sim` as Twilio, and the fake
//! Realtime server speaking the provider's protocol (GA by default).

mod common;

use std::time::Duration;

use common::*;
use voxbridge::call::services::CallServices;
use voxbridge::config::{AgentKind, Config};
use voxbridge::fakes::openai_realtime::{FakeOpenAiRealtime, RealtimeFault, Script, Turn};
use voxbridge::server::Server;
use voxbridge::sim::{SimCall, SimReport, Step};

const KEY: &str = "rt-test-key";

struct Stack {
    fake: FakeOpenAiRealtime,
    server: Server,
}

async fn stack(tweak: impl FnOnce(&mut Config)) -> Stack {
    let fake = FakeOpenAiRealtime::start(KEY).await.expect("fake realtime");
    let mut config = Config::from_toml_str("[server]\nlisten = \"127.0.0.1:0\"").expect("config");
    config.agent.kind = AgentKind::OpenaiRealtime;
    config.realtime.base_url = fake.url();
    config.realtime.transcription_model = "gpt-4o-mini-transcribe".into();
    tweak(&mut config);
    let env = |var: &str| (var == "OPENAI_API_KEY").then(|| KEY.to_owned());
    let services = CallServices::from_config(&config, env)
        .await
        .expect("services");
    let server = Server::bind_with(config, services).await.expect("server");
    Stack { fake, server }
}

fn heard_ms(report: &SimReport) -> u64 {
    report.bytes_received / 8
}

/// Audible reply audio (above -45 dBFS) the caller heard after `from_ms` into the call.
fn audible_after(report: &SimReport, from_ms: u64) -> u64 {
    let start = (from_ms as usize * 8).min(report.heard.len());
    let loud = report.heard[start..]
        .chunks(160)
        .filter(|f| {
            let pcm = decode(f);
            pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len().max(1) as f32 > 10f32.powf(-4.5)
        })
        .count();
    loud as u64 * 20
}

#[tokio::test]
async fn two_turn_conversation_with_greeting_and_goodbye_through_the_tool() {
    let s = stack(|_| {}).await;
    let mut summaries = Summaries::of(&s.server);
    let hello = fixture("hello-8k.wav");
    let call = SimCall::new(s.server.media_url())
        .step(Step::WaitForReplyEnd(Duration::from_secs(10)))
        .step(Step::Speak(hello.clone()))
        .step(Step::WaitForReplyEnd(Duration::from_secs(10)))
        .step(Step::Speak(hello))
        .step(Step::WaitForReplyEnd(Duration::from_secs(10)))
        .step(Step::Silence(Duration::from_secs(5)));
    let sid = call.call_sid.clone();
    let report = call.run().await.expect("call");
    println!("{report}");
    // Greeting, the first answer, and the goodbye: three replies heard.
    assert!(
        report.reply_starts_ms.len() >= 3,
        "greeting + two replies expected:\n{report}"
    );
    for (i, start) in report.reply_starts_ms.iter().enumerate() {
        assert!(
            audible_after(&report, *start) > 500,
            "reply {i} barely audible"
        );
    }
    // The goodbye played, then the tool hung up (close 1000 from us, before the caller's 5 s).
    let summary = summaries.get(&sid).await;
    assert_eq!(summary.end_reason.as_str(), "agent_hangup", "{summary:?}");
    assert_eq!(summary.actions, vec!["end_call".to_string()]);
    assert_eq!(report.closed_by_server.as_ref().map(|c| c.0), Some(1000));
    let last = *report.reply_starts_ms.last().unwrap_or(&0);
    assert!(
        report.duration.as_millis() as u64 > last + 1000,
        "the goodbye was heard before the hang-up"
    );
    // The model got the function's output and was asked for the goodbye.
    let outputs = s.fake.observed.function_outputs.snapshot();
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    // Both sides' words in the summary; latency measured like the cascade's.
    let said: Vec<_> = summary.transcript.iter().map(|l| l.text.clone()).collect();
    assert!(
        said.iter().any(|t| t.contains("order")),
        "caller transcript: {said:?}"
    );
    assert!(
        said.iter().any(|t| t.contains("shipped")),
        "agent transcript: {said:?}"
    );
    assert!(
        !summary.turn_latencies.is_empty() && summary.response_latencies_ms.len() >= 2,
        "{:?}",
        summary.turn_latencies
    );
    let agent = summary.agent.as_ref().expect("agent");
    assert_eq!(agent.engine, "openai_realtime");
    // μ-law both ways, GA shape: the session update asked for audio/pcmu.
    let (_, update) = &s.fake.observed.session_updates.snapshot()[0];
    assert_eq!(update["audio"]["input"]["format"]["type"], "audio/pcmu");
    assert_eq!(update["audio"]["output"]["format"]["type"], "audio/pcmu");
}

#[tokio::test]
async fn barge_in_clears_and_truncates_at_what_the_caller_heard() {
    let s = stack(|_| {}).await;
    // A long answer to interrupt.
    s.fake.set_script(Script {
        greeting: "Hi.".into(),
        turns: vec![Turn::say(
            "tell me everything",
            "Let me tell you about every one of our plans in detail, starting with the basic plan, \
             then the family plan, then the business plan, and finally the premium plan.",
        )],
    });
    let hello = fixture("hello-8k.wav");
    let call = SimCall::new(s.server.media_url())
        .step(Step::WaitForReplyEnd(Duration::from_secs(10)))
        .step(Step::Speak(hello.clone()))
        .step(Step::WaitForReply(Duration::from_secs(10)))
        .step(Step::Silence(Duration::from_millis(1500)))
        .step(Step::Speak(hello))
        .step(Step::Silence(Duration::from_secs(2)));
    let report = call.run().await.expect("call");
    println!("{report}");
    // The second reply was cut by the caller: a clear within 1 s of the caller starting to speak.
    let barge = report.speech_starts_ms[1];
    let clear = *report
        .clear_times_ms
        .iter()
        .find(|&&t| t >= barge)
        .expect("a clear after the barge-in");
    assert!(
        clear - barge < 1000,
        "clear {} ms after barge-in",
        clear - barge
    );
    // The truncate names what the caller had heard of that reply (within 100 ms).
    let truncates = s.fake.observed.truncates.snapshot();
    let t = truncates.last().expect("a truncate");
    assert!(t.accepted, "{t:?}");
    let reply_start = report.reply_starts_ms[1];
    let heard = clear - reply_start;
    assert!(
        t.audio_end_ms.abs_diff(heard) <= 100,
        "truncated at {} ms, the caller heard {heard} ms",
        t.audio_end_ms
    );
    assert!(t.audio_end_ms <= t.generated_ms);
}

async fn faulted_call(fault: RealtimeFault) -> (SimReport, String) {
    let s = stack(|_| {}).await;
    let mut summaries = Summaries::of(&s.server);
    s.fake.faults.push(fault);
    let call = SimCall::new(s.server.media_url())
        .step(Step::WaitForReply(Duration::from_secs(10)))
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::WaitForReply(Duration::from_secs(10)))
        .step(Step::Silence(Duration::from_secs(6)));
    let sid = call.call_sid.clone();
    let report = call.run().await.expect("call");
    let summary = summaries.get(&sid).await;
    (report, summary.end_reason.as_str().to_owned())
}

#[tokio::test]
async fn every_provider_failure_ends_in_an_audible_apology() {
    for fault in [
        RealtimeFault::Refuse(401),
        RealtimeFault::Refuse(403),
        RealtimeFault::Refuse(429),
        RealtimeFault::InvalidKeyClose,
        RealtimeFault::DisconnectAfter(3),
        RealtimeFault::DropMidResponse(2),
        RealtimeFault::RateLimited,
        RealtimeFault::IgnoreAudioFormat,
    ] {
        let (report, end) = faulted_call(fault.clone()).await;
        assert!(
            heard_ms(&report) > 500 && audible_after(&report, 0) > 500,
            "{fault:?}: the caller heard only {} ms:\n{report}",
            heard_ms(&report)
        );
        assert_eq!(end, "agent_hangup", "{fault:?}: the call ends cleanly");
        assert_eq!(
            report.closed_by_server.as_ref().map(|c| c.0),
            Some(1000),
            "{fault:?}"
        );
        println!("{fault:?}: heard {} ms, then hung up", heard_ms(&report));
    }
}

#[tokio::test]
async fn an_expired_session_is_renewed_with_the_transcript_so_far() {
    let s = stack(|_| {}).await;
    s.fake
        .faults
        .push(RealtimeFault::SessionExpiresAfter(Duration::from_secs(13)));
    let hello = fixture("hello-8k.wav");
    // Greeting (~3 s), a turn and its answer (~8 s), then the session expires in the pause.
    let call = SimCall::new(s.server.media_url())
        .step(Step::WaitForReplyEnd(Duration::from_secs(10)))
        .step(Step::Speak(hello.clone()))
        .step(Step::WaitForReplyEnd(Duration::from_secs(10)))
        .step(Step::Silence(Duration::from_secs(6)))
        .step(Step::Speak(hello))
        .step(Step::WaitForReply(Duration::from_secs(10)))
        .step(Step::Silence(Duration::from_secs(1)));
    let report = call.run().await.expect("call");
    println!("{report}");
    let conns = s.fake.observed.connections.snapshot();
    assert_eq!(conns.len(), 2, "a second session: {conns:?}");
    let carried = s.fake.observed.messages.snapshot();
    assert!(
        carried
            .iter()
            .any(|m| m.conn == 1 && m.text.contains("shipped")),
        "the new session starts with the transcript: {carried:?}"
    );
    assert!(
        report.reply_starts_ms.len() >= 3,
        "answered after the renewal:\n{report}"
    );
}

#[tokio::test]
async fn echo_and_realtime_calls_side_by_side_by_profile() {
    let s = stack(|c| {
        c.agent.kind = AgentKind::Echo;
        c.agents.insert(
            "rt".into(),
            voxbridge::config::profiles::AgentProfile {
                kind: Some(AgentKind::OpenaiRealtime),
                ..Default::default()
            },
        );
    })
    .await;
    let mut summaries = Summaries::of(&s.server);
    let hello = fixture("hello-8k.wav");
    let echo = SimCall::new(s.server.media_url())
        .step(Step::Speak(hello.clone()))
        .step(Step::WaitForReplyEnd(Duration::from_secs(10)));
    let mut rt = SimCall::new(s.server.media_url());
    rt.custom_parameters.push(("agent".into(), "rt".into()));
    let rt = rt
        .step(Step::WaitForReplyEnd(Duration::from_secs(10)))
        .step(Step::Speak(hello.clone()))
        .step(Step::WaitForReplyEnd(Duration::from_secs(10)));
    let (echo_sid, rt_sid) = (echo.call_sid.clone(), rt.call_sid.clone());
    let (echo, rt) = tokio::join!(echo.run(), rt.run());
    let (echo, rt) = (echo.expect("echo"), rt.expect("rt"));
    let (_, corr) = best_alignment(trim_silence(&decode(&hello)), &decode(&echo.heard));
    assert!(corr > 0.9, "echo heard its own words back: {corr}");
    assert!(rt.reply_starts_ms.len() >= 2, "greeting and answer:\n{rt}");
    let engine = |s: &voxbridge::call::summary::CallSummary| {
        s.agent.as_ref().map(|a| a.engine).unwrap_or_default()
    };
    assert_eq!(engine(&*summaries.get(&echo_sid).await), "echo");
    assert_eq!(engine(&*summaries.get(&rt_sid).await), "openai_realtime");
}

#[tokio::test]
async fn the_webhook_opens_the_socket_before_the_stream_arrives() {
    let s = stack(|_| {}).await;
    let resp = reqwest::Client::new()
        .post(format!("http://{}/twilio/voice", s.server.local_addr()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("CallSid=CApre1&From=%2B15551110000&To=%2B15552220000")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 200);
    // The fake sees the connection before any stream exists.
    for _ in 0..50 {
        if !s.fake.observed.connections.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.fake.observed.connections.len(), 1, "preconnected");
    // The stream for that call claims it: no second connection.
    let mut call = SimCall::new(s.server.media_url());
    call.call_sid = "CApre1".into();
    let report = call
        .step(Step::WaitForReplyEnd(Duration::from_secs(10)))
        .run()
        .await
        .expect("call");
    assert!(!report.reply_starts_ms.is_empty(), "greeted:\n{report}");
    assert_eq!(
        s.fake.observed.connections.len(),
        1,
        "the preconnected socket was used"
    );
}
