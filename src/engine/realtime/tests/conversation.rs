use std::time::Duration;

use super::handshake::wait_ended;
use super::*;
use crate::engine::realtime::wire::Role;
use crate::engine::realtime::wire::server::{ItemKind, ResponseStatus};
use crate::fakes::openai_realtime::{Ended, RealtimeFault, Script, Turn};

fn is_done(e: &ServerEvent) -> bool {
    matches!(e, ServerEvent::ResponseDone { .. })
}

#[tokio::test]
async fn caller_speech_gets_a_streamed_spoken_reply() {
    let fake = fake(10.0).await;
    let mut conn = connect(&fake).await;
    let audio = speech("I would like to check my order", 1000);
    for frame in audio.chunks(160) {
        let payload = Base64Audio::new(Bytes::from(STANDARD.encode(frame))).unwrap();
        conn.tx.append_audio(payload).unwrap(); // never waits; the queue holds it all
    }
    let (before, started) = until(&mut conn, |e| {
        matches!(e, ServerEvent::SpeechStarted { .. })
    })
    .await;
    assert!(before.is_empty(), "{before:?}");
    let ServerEvent::SpeechStarted {
        audio_start_ms,
        item_id: user_item,
    } = started
    else {
        unreachable!()
    };
    assert!(audio_start_ms < 100, "{audio_start_ms}"); // speech at 0, minus padding
    let (events, done) = until(&mut conn, is_done).await;
    let ServerEvent::ResponseDone { status, .. } = done else {
        unreachable!()
    };
    assert_eq!(status, ResponseStatus::Completed);
    let stopped = events.iter().find_map(|e| match e {
        ServerEvent::SpeechStopped {
            audio_end_ms,
            item_id,
        } => Some((*audio_end_ms, item_id)),
        _ => None,
    });
    let (audio_end_ms, stopped_item) = stopped.expect("speech_stopped");
    assert_eq!(stopped_item, &user_item);
    let speech_ms = (audio.len() / 8 - 1000) as u64;
    assert!(
        audio_end_ms > speech_ms && audio_end_ms <= speech_ms + 800,
        "{audio_end_ms}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ServerEvent::Committed { .. }))
    );
    let heard = events.iter().find_map(|e| match e {
        ServerEvent::InputTranscript { transcript, .. } => Some(transcript.as_str()),
        _ => None,
    });
    let script = Script::default();
    assert_eq!(heard, Some(script.turns[0].heard.as_str()));
    let said = events.iter().find_map(|e| match e {
        ServerEvent::TranscriptDone { transcript, .. } => Some(transcript.as_str()),
        _ => None,
    });
    assert_eq!(said, Some(script.turns[0].say.as_str()));
    // The audio is the reply's speech, byte for byte, in several deltas.
    let deltas = events
        .iter()
        .filter(|e| matches!(e, ServerEvent::AudioDelta { .. }));
    assert!(deltas.count() > 5);
    let expected: Vec<u8> = crate::fakes::synth_speech(&script.turns[0].say, 8000)
        .into_iter()
        .map(mulaw::encode)
        .collect();
    assert_eq!(audio_of(&events), expected);
    assert_eq!(fake.observed.audio_bytes(), audio.len() as u64);
    // Closing from our side ends it cleanly.
    drop(conn);
    assert_eq!(wait_ended(&fake, 0).await, Ended::ClientGone);
}

#[tokio::test]
async fn barge_in_cancels_and_truncates_are_checked_against_generated_audio() {
    let fake = fake(1.0).await; // real time, so there is time to interrupt
    let long = "Our opening hours are nine to five on weekdays and ten to four on Saturdays, \
                and we are closed on Sundays and public holidays";
    fake.set_script(Script {
        greeting: "Hello".into(),
        turns: vec![Turn::say("when are you open", long)],
    });
    let mut conn = connect(&fake).await;
    send_audio(&conn, &speech("when are you open", 700)).await;
    let mut heard = Vec::new();
    let mut item = String::new();
    while heard.len() < 8 * 600 {
        if let ServerEvent::AudioDelta { audio, item_id, .. } = next(&mut conn).await {
            heard.extend_from_slice(&audio);
            item = item_id;
        }
    }
    send_audio(&conn, &speech("wait", 0)).await;
    let (events, _) = until(&mut conn, |e| {
        matches!(e, ServerEvent::SpeechStarted { .. })
    })
    .await;
    heard.extend(audio_of(&events));
    let (events, done) = until(&mut conn, is_done).await;
    heard.extend(audio_of(&events));
    let ServerEvent::ResponseDone { status, reason, .. } = done else {
        unreachable!()
    };
    assert_eq!(status, ResponseStatus::Cancelled);
    assert_eq!(reason.as_deref(), Some("turn_detected"));
    let full_ms = crate::fakes::synth_speech(long, 8000).len() / 8;
    let heard_ms = (heard.len() / 8) as u64;
    assert!(heard_ms < full_ms as u64, "{heard_ms} of {full_ms}");

    // Within what was generated: accepted. Beyond it: an error, and the session carries on.
    let at = heard_ms - 100;
    conn.tx.truncate(&item, at).await.unwrap();
    let (_, truncated) = until(&mut conn, |e| matches!(e, ServerEvent::Truncated { .. })).await;
    assert_eq!(
        truncated,
        ServerEvent::Truncated {
            item_id: item.clone(),
            audio_end_ms: at
        }
    );
    conn.tx.truncate(&item, heard_ms + 5000).await.unwrap();
    let (_, err) = until(&mut conn, |e| matches!(e, ServerEvent::Error(_))).await;
    let ServerEvent::Error(err) = err else {
        unreachable!()
    };
    assert!(err.message.contains("already shorter"), "{err:?}");
    assert_eq!(err.failure(), None);
    let truncates = fake.observed.truncates.snapshot();
    let accepted: Vec<(u64, bool)> = truncates
        .iter()
        .map(|t| (t.audio_end_ms, t.accepted))
        .collect();
    assert_eq!(accepted, [(at, true), (heard_ms + 5000, false)]);
    assert!(truncates[0].generated_ms >= heard_ms);
}

#[tokio::test]
async fn a_function_call_round_trip_ends_in_the_goodbye() {
    let fake = fake(10.0).await;
    fake.set_script(Script {
        greeting: "Hi".into(),
        turns: vec![Turn::call(
            "goodbye",
            "One moment.",
            "end_call",
            r#"{"reason":"caller is done"}"#,
            "Goodbye, have a nice day!",
        )],
    });
    let mut conn = connect(&fake).await;
    send_audio(&conn, &speech("thanks goodbye", 800)).await;
    let (events, done) = until(&mut conn, is_done).await;
    assert!(matches!(
        done,
        ServerEvent::ResponseDone {
            status: ResponseStatus::Completed,
            ..
        }
    ));
    let call = events.iter().find_map(|e| match e {
        ServerEvent::OutputItemAdded {
            kind: ItemKind::FunctionCall { name, call_id },
            ..
        } => Some((name.clone(), call_id.clone())),
        _ => None,
    });
    let (name, call_id) = call.expect("function_call item");
    assert_eq!(name, "end_call");
    let args = events.iter().find_map(|e| match e {
        ServerEvent::FunctionCallDone {
            call_id: c,
            arguments,
            ..
        } if *c == call_id => Some(arguments.clone()),
        _ => None,
    });
    assert_eq!(args.as_deref(), Some(r#"{"reason":"caller is done"}"#));
    assert!(!audio_of(&events).is_empty(), "spoken text before the call");

    conn.tx
        .function_output(&call_id, r#"{"ok":true}"#)
        .await
        .unwrap();
    conn.tx.create_response(None).await.unwrap();
    let (events, _) = until(&mut conn, is_done).await;
    let said = events.iter().find_map(|e| match e {
        ServerEvent::TranscriptDone { transcript, .. } => Some(transcript.clone()),
        _ => None,
    });
    assert_eq!(said.as_deref(), Some("Goodbye, have a nice day!"));
    let outputs = fake.observed.function_outputs.snapshot();
    assert_eq!(outputs.len(), 1);
    assert_eq!(
        (outputs[0].call_id.as_str(), outputs[0].output.as_str()),
        (call_id.as_str(), r#"{"ok":true}"#)
    );
}

#[tokio::test]
async fn a_second_response_create_is_a_benign_error() {
    let fake = fake(5.0).await;
    let mut conn = connect(&fake).await;
    conn.tx
        .create_response(Some("Greet the caller.".into()))
        .await
        .unwrap();
    conn.tx.create_response(None).await.unwrap();
    let (_, err) = until(&mut conn, |e| matches!(e, ServerEvent::Error(_))).await;
    let ServerEvent::Error(err) = err else {
        unreachable!()
    };
    assert_eq!(err.code(), "conversation_already_has_active_response");
    assert!(err.is_benign());
    let (events, done) = until(&mut conn, is_done).await;
    assert!(matches!(
        done,
        ServerEvent::ResponseDone {
            status: ResponseStatus::Completed,
            ..
        }
    ));
    assert!(!audio_of(&events).is_empty());
    // Cancelling with nothing active is benign too.
    conn.tx.send(ClientEvent::CancelResponse).await.unwrap();
    let (_, err) = until(&mut conn, |e| matches!(e, ServerEvent::Error(_))).await;
    assert!(matches!(&err, ServerEvent::Error(e) if e.code() == "response_cancel_not_active"));
}

#[tokio::test]
async fn session_expiry_is_an_error_event_then_close_1001() {
    let fake = fake(10.0).await;
    fake.faults
        .push(RealtimeFault::SessionExpiresAfter(Duration::from_millis(
            300,
        )));
    let mut conn = connect(&fake).await;
    let (_, err) = until(&mut conn, |e| matches!(e, ServerEvent::Error(_))).await;
    assert!(matches!(&err, ServerEvent::Error(e) if e.is_session_expired()));
    let ServerEvent::Closed(closed) = next(&mut conn).await else {
        panic!("expected the close");
    };
    assert!(closed.session_expired);
    assert_eq!(closed.error.kind(), "disconnected");
    assert!(
        closed.error.to_string().contains("1001"),
        "{}",
        closed.error
    );
    assert!(conn.events.recv().await.is_none());

    // A new session carries the transcript so far, then goes on talking.
    let mut conn = connect(&fake).await;
    for (role, text) in [
        (Role::User, "When do you open?"),
        (Role::Assistant, "At nine."),
    ] {
        let text = text.to_string();
        conn.tx
            .send(ClientEvent::Message { role, text })
            .await
            .unwrap();
    }
    conn.tx.create_response(None).await.unwrap();
    let (_, done) = until(&mut conn, is_done).await;
    assert!(matches!(
        done,
        ServerEvent::ResponseDone {
            status: ResponseStatus::Completed,
            ..
        }
    ));
    let carried: Vec<(String, String)> = fake
        .observed
        .messages
        .snapshot()
        .into_iter()
        .map(|m| (m.role, m.text))
        .collect();
    assert_eq!(
        carried,
        [
            ("user".to_string(), "When do you open?".to_string()),
            ("assistant".to_string(), "At nine.".to_string())
        ]
    );
}

#[tokio::test]
async fn a_drop_mid_response_ends_with_disconnected() {
    let fake = fake(10.0).await;
    fake.faults.push(RealtimeFault::DropMidResponse(2));
    let mut conn = connect(&fake).await;
    conn.tx.create_response(None).await.unwrap();
    let mut deltas = 0;
    let closed = loop {
        match next(&mut conn).await {
            ServerEvent::AudioDelta { .. } => deltas += 1,
            ServerEvent::Closed(c) => break c,
            _ => {}
        }
    };
    assert_eq!(deltas, 2);
    assert_eq!(closed.error.kind(), "disconnected");
    assert!(!closed.session_expired);
    assert!(conn.tx.create_response(None).await.is_err() || conn.tx.is_closed());
}

#[tokio::test]
async fn a_rate_limit_fails_the_response_and_is_classified() {
    let fake = fake(10.0).await;
    fake.faults.push(RealtimeFault::RateLimited);
    let mut conn = connect(&fake).await;
    conn.tx.create_response(None).await.unwrap();
    let (events, done) = until(&mut conn, is_done).await;
    let limits = events.iter().find_map(|e| match e {
        ServerEvent::RateLimits(l) => Some(l.clone()),
        _ => None,
    });
    let tokens = limits
        .unwrap_or_default()
        .into_iter()
        .find(|l| l.name == "tokens");
    assert_eq!(tokens.map(|l| l.remaining), Some(0.0));
    assert_eq!(done.failure().map(|e| e.kind()), Some("rate_limited"));
    assert!(audio_of(&events).is_empty());
}

#[tokio::test]
async fn without_interrupt_response_the_reply_plays_on_through_caller_speech() {
    let fake = fake(1.0).await;
    let mut c = cfg(&fake);
    c.interrupt_response = false;
    let mut conn = client(&c).connect(&spec(), &ids()).await.unwrap();
    let (_, session) = &fake.observed.session_updates.snapshot()[0];
    let turn = &session["audio"]["input"]["turn_detection"];
    assert_eq!(turn["interrupt_response"], false);
    conn.tx.create_response(None).await.unwrap();
    let (_, _) = until(&mut conn, |e| matches!(e, ServerEvent::AudioDelta { .. })).await;
    send_audio(&conn, &speech("hello hello", 0)).await;
    let (events, done) = until(&mut conn, is_done).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ServerEvent::SpeechStarted { .. }))
    );
    assert!(matches!(
        done,
        ServerEvent::ResponseDone {
            status: ResponseStatus::Completed,
            ..
        }
    ));
}
