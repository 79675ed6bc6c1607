//! Engines and agent profiles end to end: which engine answers a call is decided per call from
//! its stream parameters and called number, and calls with different engines run side by side.

mod common;

use std::time::Duration;

use common::*;
use voxbridge::call::services::CallServices;
use voxbridge::config::Config;
use voxbridge::server::Server;
use voxbridge::sim::{SimCall, Step};

/// A server whose default profile is echo and whose `menu` profile is the scripted agent
/// speaking with espeak-ng (offline); `+15550009999` is the menu's number.
async fn two_profile_server() -> Server {
    let config = Config::from_toml_str(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [agents.menu]\nkind = \"scripted\"\ntts_provider = \"espeak\"\n\
         [numbers]\n\"+15550009999\" = \"menu\"\n",
    )
    .expect("config");
    let services = CallServices::from_config(&config, |_| None)
        .await
        .expect("services");
    Server::bind_with(config, services).await.expect("server")
}

fn with_param(call: SimCall, name: &str, value: &str) -> SimCall {
    let mut call = call;
    call.custom_parameters.push((name.into(), value.into()));
    call
}

#[tokio::test]
async fn two_calls_with_different_profiles_at_once() {
    let server = two_profile_server().await;
    let mut summaries = Summaries::of(&server);
    let hello = fixture("hello-8k.wav");
    // The echo call (default profile) and a menu call chosen by the `agent` parameter.
    let echo = SimCall::new(server.media_url())
        .step(Step::Speak(hello.clone()))
        .step(Step::WaitForReplyEnd(Duration::from_secs(10)));
    // (espeak-ng renders the greeting sentence by sentence: listen for a few seconds.)
    let menu = with_param(SimCall::new(server.media_url()), "agent", "menu")
        .step(Step::WaitForReply(Duration::from_secs(20)))
        .step(Step::Silence(Duration::from_secs(4)));
    // And one chosen by the number it called.
    let by_number = with_param(SimCall::new(server.media_url()), "To", "+15550009999")
        .step(Step::WaitForReply(Duration::from_secs(20)))
        .step(Step::Silence(Duration::from_secs(4)));
    let (echo_sid, menu_sid, number_sid) = (
        echo.call_sid.clone(),
        menu.call_sid.clone(),
        by_number.call_sid.clone(),
    );
    let (echo, menu, by_number) = tokio::join!(echo.run(), menu.run(), by_number.run());
    let (echo, menu, by_number) = (
        echo.expect("echo"),
        menu.expect("menu"),
        by_number.expect("by number"),
    );

    // The echo caller heard their own words back.
    let said = decode(&hello);
    let heard = decode(&echo.heard);
    let (_, corr) = best_alignment(trim_silence(&said), &heard);
    assert!(corr > 0.9, "echo correlation {corr}");
    let s = summaries.get(&echo_sid).await;
    let agent = s.agent.as_ref().expect("agent used");
    assert_eq!((agent.profile.as_str(), agent.engine), ("default", "echo"));
    // Its transcript: the caller's turn, then the echo heard after it, with offsets in the
    // call that match what the simulated caller saw.
    let lines: Vec<_> = s
        .transcript
        .iter()
        .map(|l| (l.role, l.interrupted))
        .collect();
    use voxbridge::call::events::Role;
    assert_eq!(lines, vec![(Role::Caller, false), (Role::Agent, false)]);
    let (caller, reply) = (&s.transcript[0], &s.transcript[1]);
    let spoke = caller.start_ms.expect("caller start");
    assert!(spoke < caller.end_ms && caller.end_ms < reply.start_ms.expect("reply start"));
    let said_end = echo.speech_ends_ms[0];
    assert!(
        caller.end_ms.abs_diff(said_end) < 120,
        "caller speech ended at {} ms by the record, {said_end} ms by the caller",
        caller.end_ms
    );
    let heard_at = echo.reply_starts_ms[0];
    let start = reply.start_ms.unwrap_or_default();
    assert!(
        start.abs_diff(heard_at) < 150,
        "reply heard from {start} ms by the record, {heard_at} ms by the caller"
    );

    // The menu callers heard the scripted greeting, spoken (not their own audio: they said
    // nothing), from the cascade engine.
    for (report, sid) in [(&menu, &menu_sid), (&by_number, &number_sid)] {
        assert!(
            !report.reply_starts_ms.is_empty(),
            "no greeting heard:\n{report}"
        );
        assert!(
            report.bytes_received > 16000,
            "greeting too short:\n{report}"
        );
        let s = summaries.get(sid).await;
        let agent = s.agent.as_ref().expect("agent used");
        assert_eq!((agent.profile.as_str(), agent.engine), ("menu", "cascade"));
        assert!(
            s.transcript.iter().any(|l| !l.text.is_empty()),
            "the greeting is in the transcript: {:?}",
            s.transcript
        );
    }
}

#[tokio::test]
async fn voice_webhook_carries_the_agent_profile_into_the_stream() {
    let server = two_profile_server().await;
    let resp = reqwest::Client::new()
        .post(format!(
            "http://{}/twilio/voice?agent=menu",
            server.local_addr()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("CallSid=CA77&From=%2B15551110000&To=%2B15552220000")
        .send()
        .await
        .expect("POST");
    let twiml = resp.text().await.expect("body");
    assert!(
        twiml.contains(r#"<Parameter name="agent" value="menu"/>"#),
        "{twiml}"
    );
}
