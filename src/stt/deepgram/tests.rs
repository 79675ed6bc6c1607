//! The real client against the fake Deepgram (loopback only).

use super::*;
use crate::audio::mulaw;
use crate::config::SttProvider;
use crate::fakes::deepgram::{Ended, FakeDeepgram};
use crate::fakes::{Fault, synth_speech};

const KEY: &str = "dg-test-key";
const PHRASE: &str = "book a flight to paris please";

fn config(base_url: String) -> SttConfig {
    SttConfig {
        provider: SttProvider::Deepgram,
        base_url,
        model: "nova-3".into(),
        endpointing_ms: 300,
        utterance_end_ms: 1000,
        keepalive_secs: 4,
        replay_ms: 5000,
        connect_timeout_ms: 2000,
        max_reconnects: 3,
    }
}

fn ids() -> CallIds {
    CallIds {
        call_sid: "CA-test".into(),
        stream_sid: "MZ-test".into(),
    }
}

fn start(fake: &FakeDeepgram) -> SttStream {
    Deepgram::new(&config(fake.url()), Secret::new(KEY)).start(ids(), CancellationToken::new())
}

/// `text` as 20 ms μ-law frames, then `silence_ms` of silence.
fn frames(text: &str, silence_ms: usize) -> Vec<Bytes> {
    let mut audio: Vec<u8> = synth_speech(text, 8000)
        .into_iter()
        .map(mulaw::encode)
        .collect();
    audio.extend(std::iter::repeat_n(mulaw::SILENCE, silence_ms * 8));
    audio.chunks(160).map(Bytes::copy_from_slice).collect()
}

/// Send `frames`, pausing `pace` between them; returns the bytes sent.
async fn send(audio: &mpsc::Sender<Bytes>, frames: Vec<Bytes>, pace: Duration) -> usize {
    let mut sent = 0;
    for f in frames {
        sent += f.len();
        audio.send(f).await.unwrap();
        if !pace.is_zero() {
            sleep(pace).await;
        }
    }
    sent
}

/// Read events until `stop` matches one (included) or the stream ends; panics after 8 s.
async fn until(
    events: &mut mpsc::Receiver<SttEvent>,
    stop: impl Fn(&SttEvent) -> bool,
) -> Vec<SttEvent> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.recv()).await {
        let done = stop(&ev);
        seen.push(ev);
        if done {
            return seen;
        }
    }
    assert!(Instant::now() < deadline, "timed out; saw {seen:?}");
    seen
}

fn is_speech_final(ev: &SttEvent) -> bool {
    matches!(
        ev,
        SttEvent::Transcript {
            speech_final: true,
            ..
        }
    )
}

#[tokio::test]
async fn transcribes_speech_with_interims_and_a_final() {
    let fake = FakeDeepgram::start(KEY).await.unwrap();
    fake.transcripts.push("Book a flight to Paris, please.");
    let mut stt = start(&fake);
    let sent = send(&stt.audio, frames(PHRASE, 1500), Duration::from_millis(2)).await;
    let seen = until(&mut stt.events, |e| *e == SttEvent::UtteranceEnd).await;
    assert_eq!(seen.first(), Some(&SttEvent::SpeechStarted), "{seen:?}");
    let interim = seen.iter().any(
        |e| matches!(e, SttEvent::Transcript { is_final: false, text, .. } if !text.is_empty()),
    );
    assert!(interim, "{seen:?}");
    let final_text = seen.iter().find_map(|e| match e {
        SttEvent::Transcript {
            text,
            is_final: true,
            speech_final: true,
        } => Some(text.as_str()),
        _ => None,
    });
    assert_eq!(final_text, Some("Book a flight to Paris, please."));
    assert_eq!(seen.last(), Some(&SttEvent::UtteranceEnd));
    drop(stt.audio);
    assert_eq!(until(&mut stt.events, |_| false).await, []);
    let conns = fake.observed.snapshot();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].audio_bytes, sent);
    assert_eq!(conns[0].finals, ["Book a flight to Paris, please."]);
    assert_eq!(conns[0].empty_frames, 0);
}

#[tokio::test]
async fn keepalive_while_silent_then_close_stream_ends_the_events() {
    let fake = FakeDeepgram::start(KEY).await.unwrap();
    let dg = Deepgram::new(&config(fake.url()), Secret::new(KEY))
        .with_keepalive(Duration::from_millis(150));
    let mut stt = dg.start(ids(), CancellationToken::new());
    sleep(Duration::from_millis(700)).await;
    drop(stt.audio);
    let rest = until(&mut stt.events, |_| false).await;
    assert!(rest.is_empty(), "{rest:?}");
    let conns = fake.observed.snapshot();
    assert_eq!(conns.len(), 1);
    assert!(conns[0].keepalives >= 3, "{conns:?}");
    assert!(conns[0].close_stream);
    assert_eq!(conns[0].ended, Ended::Closed(1000));
    assert_eq!(conns[0].empty_frames, 0);
}

#[tokio::test]
async fn close_stream_flushes_the_last_final() {
    let fake = FakeDeepgram::start(KEY).await.unwrap();
    fake.transcripts.push("hello there");
    let mut stt = start(&fake);
    // Speech without the trailing silence: only CloseStream can finalise it.
    send(&stt.audio, frames("hello there", 0), Duration::ZERO).await;
    drop(stt.audio);
    let seen = until(&mut stt.events, |_| false).await;
    let finals: Vec<&SttEvent> = seen
        .iter()
        .filter(|e| matches!(e, SttEvent::Transcript { is_final: true, .. }))
        .collect();
    let expected = SttEvent::Transcript {
        text: "hello there".into(),
        is_final: true,
        speech_final: false,
    };
    assert_eq!(finals, [&expected], "{seen:?}");
    let conns = fake.observed.snapshot();
    assert!(conns[0].close_stream && conns[0].ended == Ended::Closed(1000));
}

#[tokio::test]
async fn bad_key_gives_up_at_once_as_unauthorized() {
    let fake = FakeDeepgram::start(KEY).await.unwrap();
    let dg = Deepgram::new(&config(fake.url()), Secret::new("wrong-key"));
    let mut stt = dg.start(ids(), CancellationToken::new());
    let seen = until(&mut stt.events, |_| false).await;
    match seen.as_slice() {
        [
            SttEvent::Error {
                error,
                reconnecting: false,
            },
        ] => {
            assert_eq!(error.kind(), "unauthorized");
            assert!(error.to_string().contains("INVALID_AUTH"), "{error}");
            assert!(!error.to_string().contains("wrong-key"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.observed.len(), 1);
}

#[tokio::test]
async fn reconnects_mid_stream_and_replays_unconfirmed_audio() {
    let fake = FakeDeepgram::start(KEY).await.unwrap();
    fake.transcripts.push(PHRASE);
    fake.faults.push(Fault::DisconnectAfter(40));
    let mut stt = start(&fake);
    let sent = send(&stt.audio, frames(PHRASE, 1500), Duration::from_millis(3)).await;
    let seen = until(&mut stt.events, is_speech_final).await;
    let pos = |want: fn(&SttEvent) -> bool| seen.iter().position(want);
    let error = pos(|e| {
        matches!(
            e,
            SttEvent::Error {
                reconnecting: true,
                ..
            }
        )
    });
    let reconnected = pos(|e| *e == SttEvent::Reconnected);
    assert!(error.is_some() && reconnected > error, "{seen:?}");
    let last = seen.last().cloned();
    let expected = SttEvent::Transcript {
        text: PHRASE.into(),
        is_final: true,
        speech_final: true,
    };
    assert_eq!(last, Some(expected));
    drop(stt.audio);
    until(&mut stt.events, |_| false).await;
    let conns = fake.observed.snapshot();
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_eq!(conns[0].ended, Ended::Dropped);
    assert_eq!(conns[0].audio_frames, 40);
    // Nothing was final before the drop: the second connection got every byte again.
    assert_eq!(conns[1].audio_bytes, sent);
    assert!(fake.audio_bytes() >= sent);
}

#[tokio::test]
async fn malformed_message_is_skipped_and_counted() {
    let prometheus = crate::metrics::install();
    let count = || {
        let text = prometheus.render();
        let line = text.lines().find(|l| {
            l.starts_with(crate::provider::PROVIDER_ERRORS)
                && l.contains(r#"provider="deepgram""#)
                && l.contains(r#"kind="malformed""#)
        });
        line.and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = count();
    let fake = FakeDeepgram::start(KEY).await.unwrap();
    fake.transcripts.push("still works");
    fake.faults.push(Fault::Malformed);
    let mut stt = start(&fake);
    send(&stt.audio, frames("still works", 600), Duration::ZERO).await;
    let seen = until(&mut stt.events, is_speech_final).await;
    assert!(
        !seen.iter().any(|e| matches!(e, SttEvent::Error { .. })),
        "{seen:?}"
    );
    assert!(
        matches!(seen.last(), Some(SttEvent::Transcript { text, .. }) if text == "still works")
    );
    assert!(count() >= before + 1.0, "malformed not counted");
}

#[tokio::test]
async fn rate_limited_then_connects() {
    let fake = FakeDeepgram::start(KEY).await.unwrap();
    fake.transcripts.push("hi there");
    fake.faults.push(Fault::Status(429));
    let mut stt = start(&fake);
    let seen = until(&mut stt.events, |e| *e == SttEvent::Reconnected).await;
    match seen.as_slice() {
        [
            SttEvent::Error {
                error,
                reconnecting: true,
            },
            SttEvent::Reconnected,
        ] => {
            assert_eq!(error.kind(), "rate_limited");
        }
        other => panic!("{other:?}"),
    }
    send(&stt.audio, frames("hi there", 600), Duration::ZERO).await;
    let seen = until(&mut stt.events, is_speech_final).await;
    assert!(matches!(seen.last(), Some(SttEvent::Transcript { text, .. }) if text == "hi there"));
    let ended: Vec<Ended> = fake
        .observed
        .snapshot()
        .into_iter()
        .map(|c| c.ended)
        .collect();
    assert_eq!(ended, [Ended::Refused(429)]);
}

#[tokio::test]
async fn gives_up_after_max_reconnects_and_cancel_closes_at_once() {
    let fake = FakeDeepgram::start(KEY).await.unwrap();
    for _ in 0..4 {
        fake.faults.push(Fault::Status(503));
    }
    let mut stt = start(&fake);
    let seen = until(&mut stt.events, |e| {
        matches!(
            e,
            SttEvent::Error {
                reconnecting: false,
                ..
            }
        )
    })
    .await;
    let retries = seen.iter().filter(|e| {
        matches!(
            e,
            SttEvent::Error {
                reconnecting: true,
                ..
            }
        )
    });
    assert_eq!(retries.count(), 3, "{seen:?}");
    assert_eq!(until(&mut stt.events, |_| false).await, []);

    let cancel = CancellationToken::new();
    let dg = Deepgram::new(&config(fake.url()), Secret::new(KEY));
    let mut stt = dg.start(ids(), cancel.clone());
    send(&stt.audio, frames("", 200), Duration::ZERO).await;
    cancel.cancel();
    assert_eq!(until(&mut stt.events, |_| false).await, []);
}

#[tokio::test]
async fn reconnect_after_a_final_replays_only_the_audio_after_it() {
    let fake = FakeDeepgram::start(KEY).await.unwrap();
    fake.transcripts.push("first one");
    fake.transcripts.push("second one here");
    let first = frames("first one", 1200);
    let first_len = first.len();
    fake.faults.push(Fault::DisconnectAfter(first_len + 20));
    let mut stt = start(&fake);
    let mut sent = send(&stt.audio, first, Duration::from_millis(1)).await;
    let seen = until(&mut stt.events, is_speech_final).await;
    assert!(matches!(seen.last(), Some(SttEvent::Transcript { text, .. }) if text == "first one"));
    sent += send(
        &stt.audio,
        frames("second one here", 600),
        Duration::from_millis(1),
    )
    .await;
    let seen = until(&mut stt.events, is_speech_final).await;
    assert!(seen.contains(&SttEvent::Reconnected), "{seen:?}");
    let finals: Vec<&SttEvent> = seen
        .iter()
        .filter(|e| matches!(e, SttEvent::Transcript { is_final: true, .. }))
        .collect();
    assert_eq!(finals.len(), 1, "first utterance repeated? {seen:?}");
    assert!(
        matches!(seen.last(), Some(SttEvent::Transcript { text, .. }) if text == "second one here")
    );
    drop(stt.audio);
    until(&mut stt.events, |_| false).await;
    let conns = fake.observed.snapshot();
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_eq!(conns[0].finals, ["first one"]);
    assert_eq!(conns[1].finals, ["second one here"]);
    // The second connection got the audio after the first final, not the first utterance.
    let second_len = sent - first_len * 160;
    assert!(
        conns[1].audio_bytes >= second_len,
        "{} < {second_len}",
        conns[1].audio_bytes
    );
    assert!(
        conns[1].audio_bytes < sent - 160 * 20,
        "{} vs {sent}",
        conns[1].audio_bytes
    );
}

#[tokio::test]
async fn a_connection_that_keeps_dropping_backs_off_and_gives_up_within_the_budget() {
    let fake = FakeDeepgram::start(KEY).await.unwrap();
    for _ in 0..20 {
        // Every connection drops after 300 ms of audio — after valid messages (SpeechStarted).
        fake.faults.push(Fault::DisconnectAfter(15));
    }
    let mut stt = start(&fake); // max_reconnects = 3 per window
    let audio = stt.audio.clone();
    let speaker = tokio::spawn(async move {
        let mut speech = frames(PHRASE, 0);
        speech.extend(frames(PHRASE, 0));
        speech.extend(frames(PHRASE, 0));
        send(&audio, speech, Duration::from_millis(20)).await
    });
    let started = Instant::now();
    let seen = until(&mut stt.events, |e| {
        matches!(
            e,
            SttEvent::Error {
                reconnecting: false,
                ..
            }
        )
    })
    .await;
    let errors = seen
        .iter()
        .filter(|e| matches!(e, SttEvent::Error { .. }))
        .count();
    assert_eq!(errors, 4, "{seen:?}");
    assert!(seen.contains(&SttEvent::SpeechStarted), "{seen:?}");
    // Three backoffs: at least 125 + 250 + 500 ms (the lower halves of 250, 500, 1000).
    assert!(
        started.elapsed() >= Duration::from_millis(875),
        "{:?}",
        started.elapsed()
    );
    let conns = fake.observed.snapshot();
    assert_eq!(conns.len(), 4, "{conns:?}");
    speaker.abort();
}

#[tokio::test]
async fn a_reconnect_does_not_replay_audio_the_engine_settled() {
    let fake = FakeDeepgram::start(KEY).await.unwrap();
    fake.faults.push(Fault::DisconnectAfter(110));
    let mut stt = start(&fake);
    // 90 frames the engine answered (no final from the STT), then more.
    let first = send(&stt.audio, frames(PHRASE, 0)[..90].to_vec(), Duration::ZERO).await;
    sleep(Duration::from_millis(200)).await;
    stt.settled.settle(first as u64);
    let second = send(
        &stt.audio,
        frames("hello there", 400),
        Duration::from_millis(2),
    )
    .await;
    until(&mut stt.events, |e| *e == SttEvent::Reconnected).await;
    drop(stt.audio);
    until(&mut stt.events, |_| false).await;
    let conns = fake.observed.snapshot();
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert!(
        conns[1].audio_bytes <= second,
        "replayed settled audio: {} > {second}",
        conns[1].audio_bytes
    );
    assert!(conns[1].audio_bytes > 0);
}
