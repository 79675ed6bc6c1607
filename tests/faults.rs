//! Faults never cost the caller a turn (issue 10): one end-to-end test per defect, through the
//! real server and the simulated Twilio leg, against the project's fakes of Deepgram, OpenAI
//! and ElevenLabs with faults injected. Each asserts on what the caller heard after every
//! turn, on what the fakes received, and on how the call ended.

mod common;

use std::time::Duration;

use common::stack::*;
use common::*;
use voxbridge::call::events::Role;
use voxbridge::fakes::Fault;
use voxbridge::fakes::deepgram::Ended;
use voxbridge::fakes::openai_chat::FakeReply;
use voxbridge::sim::{SimCall, Step};

/// A request or connection that behaves, to place a fault on a later one.
const BEHAVE: Fault = Fault::Stall(Duration::ZERO);
const APOLOGY: &str = "Sorry, I am having trouble right now. Could you say that again?";
const REPROMPT: &str = "Sorry, I didn't catch that. Could you say it again?";

/// Defect 1: an answer that is only an `end_call` (or `transfer_call`) tool call, with no
/// content, is carried out at once, and the history keeps the tool call and its result.
#[tokio::test]
async fn a_reply_that_is_only_a_tool_call_acts_at_once_and_stays_in_the_history() {
    let s = stack(|_| {}).await;
    for words in [
        "Hello there",
        "Put me through to a person",
        "Thanks, goodbye",
    ] {
        s.deepgram.transcripts.push(words);
    }
    s.chat.push_reply(FakeReply::text("Hi! How can I help?"));
    s.chat
        .push_reply(FakeReply::default().with_tool("transfer_call", r#"{"to":"+15550100200"}"#));
    s.chat
        .push_reply(FakeReply::default().with_tool("end_call", "{}"));
    let call = SimCall::new(s.server.media_url())
        .step(Step::Silence(Duration::from_millis(300)))
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Silence(Duration::from_millis(400)))
        .step(Step::Speak(fixture("question-8k.wav")))
        .step(Step::Silence(Duration::from_millis(2500)))
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::Silence(Duration::from_secs(8)));
    let (report, summary) = run(&s.server, call).await;
    println!("{report}");

    // The goodbye was carried out at once: a hang-up through Twilio REST, the stream closed.
    assert_eq!(summary.end_reason.as_str(), "agent_hangup");
    assert_eq!(
        summary.actions,
        ["transfer_call +15550100200", "end_call"],
        "{summary:?}"
    );
    assert_eq!(report.closed_by_server.as_ref().map(|c| c.0), Some(1000));
    let last_words_end = report.speech_ends_ms[2];
    assert!(
        (report.duration.as_millis() as u64) < last_words_end + 3000,
        "hung up {} ms after the goodbye",
        report.duration.as_millis() as u64 - last_words_end
    );
    let updates = s.twilio.snapshot();
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert!(
        updates
            .iter()
            .all(|(sid, _)| *sid == summary.call_sid.clone().unwrap())
    );
    assert!(
        updates[0].1["Twiml"].contains("+15550100200"),
        "{updates:?}"
    );
    assert_eq!(updates[1].1["Status"], "completed");
    let heard = heard_after_each_turn(&report);
    assert!(heard[0] >= 500, "{heard:?}");

    // The third request's history: the tool-only reply as an assistant tool call, its result.
    let requests = s.chat.requests.snapshot();
    assert_eq!(requests.len(), 3);
    let m = &requests[2].messages;
    let roles: Vec<&str> = m.iter().map(|m| m["role"].as_str().unwrap_or("")).collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "user",
            "assistant",
            "tool",
            "user"
        ]
    );
    assert_eq!(m[4]["content"], serde_json::Value::Null);
    assert_eq!(m[4]["tool_calls"][0]["function"]["name"], "transfer_call");
    assert_eq!(m[5]["tool_call_id"], m[4]["tool_calls"][0]["id"]);
    assert_eq!(m[6]["content"], "Thanks, goodbye");
}

/// Defect 2: an LLM stream that breaks mid-reply (reset, an in-stream `error` event, one
/// malformed event) still ends in complete speech: resumed, followed by the apology, or the
/// bad event skipped. Each fault is counted once.
#[tokio::test]
async fn an_llm_stream_broken_mid_reply_still_ends_in_a_complete_sentence() {
    let s = stack(|_| {}).await;
    for words in ["Hello there", "When will it arrive", "Thank you"] {
        s.deepgram.transcripts.push(words);
    }
    // Turn 1: reset after "You said:", resumed. Turn 2: an error event after "Let me check.",
    // and the resumed stream says something else: the apology follows. Turn 3: one bad event.
    for fault in [
        Fault::DisconnectAfter(3),
        BEHAVE,
        Fault::ErrorAfter(4),
        BEHAVE,
        Fault::Malformed,
    ] {
        s.chat.faults.push(fault);
    }
    for reply in [
        "You said: hello there.",
        "You said: hello there.",
        "Let me check. It ships on Monday.",
        "Something else entirely.",
        "Happy to help.",
    ] {
        s.chat.push_reply(FakeReply::text(reply));
    }
    let call = call_saying(
        s.server.media_url(),
        &["hello-8k.wav", "question-8k.wav", "hello-8k.wav"],
    );
    let (report, summary) = run(&s.server, call).await;
    println!("{report}");
    let heard = assert_heard_after_every_turn(&report, 3, 500);
    println!("heard after each turn (ms): {heard:?}");

    let said = spoken(&s);
    assert_eq!(said.len(), 3, "{said:?}");
    assert_eq!(
        said[0].trim(),
        "You said: hello there.",
        "resumed, not repeated"
    );
    assert!(said[1].starts_with("Let me check."), "{said:?}");
    assert!(said[1].trim().ends_with(APOLOGY), "{said:?}");
    assert!(!said[1].contains("Something else"), "{said:?}");
    assert_eq!(said[2].trim(), "Happy to help.");

    // The history holds what was played.
    let h = history(&s, 4);
    assert_eq!(h[2], ("assistant".into(), "You said: hello there.".into()));
    assert_eq!(
        h[4],
        ("assistant".into(), format!("Let me check. {APOLOGY}"))
    );
    // Three faults, each counted once (the diverging resume is no provider fault).
    assert_eq!(summary.provider_failures, 3, "{summary:?}");
    assert_eq!(summary.end_reason.as_str(), "stop");
}

/// Defect 3: turns spoken while the STT is refused (429) are answered: the local turn detector
/// runs from the first frame; with no transcript the caller hears the apology.
#[tokio::test]
async fn turns_spoken_while_the_stt_is_refused_are_answered() {
    let s = stack(|c| c.stt.max_reconnects = 100).await;
    for _ in 0..100 {
        s.deepgram.faults.push(Fault::Status(429));
    }
    let (report, summary) = run(&s.server, two_turns(s.server.media_url())).await;
    println!("{report}");
    let heard = assert_heard_after_every_turn(&report, 2, 800);
    println!("heard after each turn (ms): {heard:?}");
    assert_eq!(summary.turns, 2);
    assert_eq!(summary.turns_unrecognised, 2);
    let said = spoken(&s);
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(said.iter().all(|t| t.trim() == APOLOGY), "{said:?}");
    assert!(s.chat.requests.is_empty(), "no words, no LLM request");
    // Refusals are retried with backoff, not hammered.
    let attempts = s.deepgram.observed.len();
    assert!(
        (3..=12).contains(&attempts),
        "{attempts} connection attempts"
    );
    assert!(summary.provider_failures >= 3);
    assert!(summary.provider_failures as usize <= attempts);
}

/// Defect 3, the STT coming back: a turn is answered exactly once, whichever path answers it.
#[tokio::test]
async fn an_stt_outage_over_the_first_turn_never_answers_a_turn_twice() {
    let s = stack(|_| {}).await;
    for _ in 0..4 {
        s.deepgram.faults.push(Fault::Status(503));
    }
    s.deepgram.transcripts.push("When will it arrive");
    s.deepgram.transcripts.push("When will it arrive");
    let (report, summary) = run(&s.server, two_turns(s.server.media_url())).await;
    println!("{report}");
    assert_heard_after_every_turn(&report, 2, 800);
    assert_eq!(summary.turns, 2, "{summary:?}");
    assert!(s.chat.requests.len() <= 2);
    assert_eq!(
        spoken(&s).len() as u64,
        summary.turns,
        "one reply per turn: {:?}",
        spoken(&s)
    );
}

/// Defect 4: a Deepgram connection that keeps dropping: backoff, little replay, a failure
/// budget, then the local detector for the rest of the call.
#[tokio::test]
async fn a_flapping_stt_backs_off_replays_little_and_gives_way_to_the_local_detector() {
    let s = stack(|_| {}).await; // max_reconnects = 5 per minute
    for _ in 0..40 {
        s.deepgram.faults.push(Fault::DisconnectAfter(50)); // 1 s of audio each
    }
    for _ in 0..4 {
        s.deepgram
            .transcripts
            .push("I would like to check my order");
    }
    let (report, summary) = run(&s.server, two_turns(s.server.media_url())).await;
    println!("{report}");
    let heard = assert_heard_after_every_turn(&report, 2, 800);
    println!("heard after each turn (ms): {heard:?}");
    let conns = s.deepgram.observed.snapshot();
    println!(
        "{} connections, {} bytes of audio sent to the STT for {} bytes of call",
        conns.len(),
        s.deepgram.audio_bytes(),
        report.frames_sent * 160
    );
    assert!(conns.len() <= 6, "{} connections", conns.len());
    assert!(
        s.deepgram.audio_bytes() as u64 <= report.frames_sent * 160,
        "replayed too much"
    );
    let dropped = conns.iter().filter(|c| c.ended == Ended::Dropped).count() as u64;
    assert_eq!(summary.provider_failures, dropped, "each drop counted once");
    assert_eq!(summary.turns, 2);
    let second = report
        .response_latencies_ms
        .get(1)
        .copied()
        .unwrap_or(u64::MAX);
    assert!(second < 2500, "second-turn latency {second} ms");
}

/// Defect 5: at call end the STT gets `CloseStream`, its last results reach the call record,
/// and it closes with 1000.
#[tokio::test]
async fn call_end_closes_the_stt_gracefully_and_keeps_the_last_words() {
    let s = stack(|_| {}).await;
    s.deepgram.transcripts.push("Hello there");
    s.deepgram.transcripts.push("When will it arrive");
    // The caller's last words go straight into the hang-up: only CloseStream finalises them.
    let call = SimCall::new(s.server.media_url())
        .step(Step::Silence(Duration::from_millis(300)))
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Silence(Duration::from_millis(400)))
        .step(Step::Speak(fixture("question-8k.wav")));
    let (report, summary) = run(&s.server, call).await;
    println!("{report}");
    let conns = s.deepgram.observed.snapshot();
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert!(conns[0].close_stream, "no CloseStream");
    assert_eq!(conns[0].ended, Ended::Closed(1000));
    assert_eq!(conns[0].finals, ["Hello there", "When will it arrive"]);
    let caller: Vec<&str> = summary
        .transcript
        .iter()
        .filter(|l| l.role == Role::Caller)
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(
        caller,
        ["Hello there", "When will it arrive"],
        "{summary:?}"
    );
    assert_eq!(
        summary.turns, 1,
        "the last words end no turn: the call is over"
    );
}

/// Defect 6: when the TTS fails, the history holds what the caller heard — the apology, or
/// the part of the reply spoken before the apology — not the reply.
#[tokio::test]
async fn after_a_tts_failure_the_history_holds_what_was_played() {
    let s = stack(|_| {}).await;
    for words in ["Hello there", "What is in it", "Thank you"] {
        s.deepgram.transcripts.push(words);
    }
    let second = "Your order number is one two three four five six. It contains three items.";
    for reply in [
        "Of course. It shipped yesterday and arrives tomorrow.",
        second,
        "You are welcome.",
    ] {
        s.chat.push_reply(FakeReply::text(reply));
    }
    // Reply 1: refused outright. Reply 2: the socket drops after about a second of audio.
    s.elevenlabs.faults.push(Fault::Status(401));
    s.elevenlabs.faults.push(Fault::DisconnectAfter(10));
    let call = call_saying(
        s.server.media_url(),
        &["hello-8k.wav", "question-8k.wav", "hello-8k.wav"],
    );
    let (report, summary) = run(&s.server, call).await;
    println!("{report}");
    let heard = assert_heard_after_every_turn(&report, 3, 500);
    println!("heard after each turn (ms): {heard:?}");
    let h = history(&s, 2);
    assert_eq!(h[2], ("assistant".into(), APOLOGY.into()), "{h:?}");
    let (role, played) = &h[4];
    assert_eq!(role, "assistant");
    let prefix = played
        .strip_suffix(APOLOGY)
        .unwrap_or_else(|| panic!("{played:?}"))
        .trim();
    assert!(
        !prefix.is_empty() && second.starts_with(prefix),
        "{played:?}"
    );
    assert!(prefix.len() < second.len() / 2, "{played:?}");
    assert_eq!(summary.provider_failures, 2, "{summary:?}");
}

/// Defect 7: settings that guarantee failure are refused at start-up, the key named.
#[test]
fn settings_that_guarantee_failure_keep_the_server_from_starting() {
    let dir = std::env::temp_dir().join(format!("voxbridge-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let base = "[stt]\nprovider = \"deepgram\"\n[tts]\nprovider = \"espeak\"\n\
                [agent]\nkind = \"openai\"\n";
    for (extra, key) in [
        ("model = \"\"", "agent.model"),
        ("apology = \"\"", "agent.apology"),
        ("reprompt = \" \"", "agent.reprompt"),
        ("timeout_ms = 0", "agent.timeout_ms"),
        (
            "fallback_base_url = \"http://127.0.0.1:9/v1\"\nfallback_model = \" \"",
            "agent.fallback_model",
        ),
        ("[agents.sales]\nmodel = \"\"", "agents.sales.model"),
    ] {
        let path = dir.join("bad.toml");
        std::fs::write(&path, format!("{base}{extra}\n")).expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_voxbridge"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .env("DEEPGRAM_API_KEY", "k")
            .env("OPENAI_API_KEY", "k")
            .output()
            .expect("run");
        assert!(!out.status.success(), "{extra}: started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{extra}: {stderr}");
    }
}

/// Defect 8: speech the STT hears as nothing gets a reprompt, counted as unrecognised.
#[tokio::test]
async fn speech_the_stt_hears_as_nothing_gets_a_reprompt() {
    let s = stack(|_| {}).await; // no transcripts: every final is empty
    let before = metric(&s.server, "voxbridge_turns_unrecognised_total").await;
    let (report, summary) = run(&s.server, two_turns(s.server.media_url())).await;
    println!("{report}");
    let heard = assert_heard_after_every_turn(&report, 2, 800);
    println!("heard after each turn (ms): {heard:?}");
    assert_eq!(summary.turns_unrecognised, 2, "{summary:?}");
    let said = spoken(&s);
    assert!(said.iter().all(|t| t.trim() == REPROMPT), "{said:?}");
    assert!(s.chat.requests.is_empty());
    let after = metric(&s.server, "voxbridge_turns_unrecognised_total").await;
    assert!(after >= before + 2.0, "{before} → {after}");
    let conns = s.deepgram.observed.snapshot();
    let finals = &conns[0].finals;
    assert!(
        finals.len() >= 2 && finals.iter().all(String::is_empty),
        "the STT did finalise, with no words: {finals:?}"
    );
}

/// Defect 8: an STT that stays connected but says nothing for seconds of speech is treated as
/// failed: a fresh connection, and the caller is answered meanwhile.
#[tokio::test]
async fn an_stt_that_stops_answering_is_replaced() {
    let s = stack(|_| {}).await;
    s.deepgram
        .faults
        .push(Fault::Stall(Duration::from_secs(30)));
    for _ in 0..3 {
        s.deepgram.transcripts.push("When will it arrive");
    }
    // A long first turn: the watchdog fires within it.
    let mut long = fixture("hello-8k.wav").to_vec();
    long.extend_from_slice(&fixture("hello-8k.wav"));
    let call = SimCall::new(s.server.media_url())
        .step(Step::Silence(Duration::from_millis(300)))
        .step(Step::Speak(long.into()))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Silence(Duration::from_millis(400)))
        .step(Step::Speak(fixture("question-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Silence(Duration::from_millis(400)));
    let (report, summary) = run(&s.server, call).await;
    println!("{report}");
    assert_heard_after_every_turn(&report, 2, 800);
    assert_eq!(summary.stt_reconnects, 1, "{summary:?}");
    assert_eq!(summary.provider_failures, 1, "the stall, counted once");
    let body = http_get(&s.server, "/metrics").await.1;
    assert!(
        body.contains(r#"voxbridge_provider_errors_total{provider="deepgram",kind="timeout"}"#),
        "{body}"
    );
    // The fresh connection heard the second turn.
    let asked = s.chat.requests.snapshot();
    let last_user = asked
        .last()
        .and_then(|r| r.messages.iter().rfind(|m| m["role"] == "user").cloned());
    assert_eq!(
        last_user.and_then(|m| m["content"].as_str().map(String::from)),
        Some("When will it arrive".to_owned())
    );
}

/// Defect 9: `voxbridge fakes` never runs out of words: transcripts cycle per connection.
#[tokio::test]
async fn voxbridge_fakes_keeps_recognising_turn_after_turn() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_voxbridge"))
        .arg("fakes")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn voxbridge fakes");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut urls = std::collections::HashMap::new();
    while urls.len() < 3 {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("voxbridge fakes printed its URLs");
        for word in line.split_whitespace() {
            if let Some((k, v)) = word.split_once('=')
                && v.contains("127.0.0.1")
            {
                urls.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    let mut config = voxbridge::config::Config::from_toml_str("[server]\nlisten = \"127.0.0.1:0\"")
        .expect("config");
    config.stt.provider = voxbridge::config::SttProvider::Deepgram;
    config.stt.base_url = urls["VOXBRIDGE_STT_BASE_URL"].clone();
    config.agent.kind = voxbridge::config::AgentKind::Openai;
    config.agent.base_url = urls["VOXBRIDGE_AGENT_BASE_URL"].clone();
    config.tts.provider = voxbridge::config::TtsProvider::ElevenlabsWs;
    config.tts.elevenlabs_base_url = urls["VOXBRIDGE_TTS_ELEVENLABS_BASE_URL"].clone();
    let services = voxbridge::call::services::CallServices::from_config(&config, |var| {
        var.ends_with("_API_KEY").then(|| "fake-key".to_owned())
    })
    .await
    .expect("services");
    let server = voxbridge::server::Server::bind_with(config, services)
        .await
        .expect("server");
    // Two calls at once, four turns each: more turns than the cycle has phrases.
    let turns = [
        "hello-8k.wav",
        "question-8k.wav",
        "hello-8k.wav",
        "question-8k.wav",
    ];
    let calls = (0..2).map(|_| run(&server, call_saying(server.media_url(), &turns)));
    let results = futures_util::future::join_all(calls).await;
    let _ = child.kill();
    let _ = child.wait();
    for (report, summary) in results {
        assert_heard_after_every_turn(&report, 4, 800);
        let caller: Vec<&str> = summary
            .transcript
            .iter()
            .filter(|l| l.role == Role::Caller)
            .map(|l| l.text.as_str())
            .collect();
        assert_eq!(caller.len(), 4, "{caller:?}");
        assert!(caller.iter().all(|t| !t.is_empty()));
        assert_eq!(
            caller[3], caller[0],
            "the cycle wraps per connection: {caller:?}"
        );
        assert_eq!(summary.turns_unrecognised, 0);
    }
}

/// Defect 10: when a call ends, our close frame is followed by the peer's: no call ends
/// without the close handshake.
#[tokio::test]
async fn every_call_ends_with_a_close_handshake() {
    let server = start_server(|_| {}).await;
    let calls = (0..30).map(|i| {
        let call = SimCall::new(server.media_url())
            .step(Step::Silence(Duration::from_millis(100 + 20 * (i % 5))));
        async move { call.run().await.expect("call") }
    });
    let reports = futures_util::future::join_all(calls).await;
    let bad: Vec<String> = reports
        .iter()
        .filter(|r| {
            r.close_reply.as_ref().map(|c| c.0) != Some(1000)
                || r.closed_by_server.is_some()
                || r.socket_error.is_some()
        })
        .map(|r| {
            format!(
                "{:?} {:?} {:?}",
                r.close_reply, r.closed_by_server, r.socket_error
            )
        })
        .collect();
    assert!(bad.is_empty(), "{} of 30 calls: {bad:?}", bad.len());
}
