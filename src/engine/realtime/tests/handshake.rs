use std::time::Duration;

use super::*;
use crate::engine::realtime::client::ConnectError;
use crate::engine::realtime::config::ApiShape;
use crate::fakes::openai_realtime::shapes::Api;
use crate::fakes::openai_realtime::{Ended, RealtimeFault};

#[tokio::test]
async fn ga_handshake_asks_for_and_gets_mulaw() {
    let fake = fake(10.0).await;
    let conn = connect(&fake).await;
    assert!(conn.session.is_mulaw());
    assert_eq!(conn.session.input_format, "audio/pcmu");
    let seen = fake.observed.connections.snapshot();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].api, Api::Ga);
    assert_eq!(seen[0].model.as_deref(), Some("gpt-realtime"));
    let updates = fake.observed.session_updates.snapshot();
    let (_, session) = &updates[0];
    assert_eq!(session["type"], "realtime");
    assert_eq!(session["audio"]["output"]["format"]["type"], "audio/pcmu");
    assert_eq!(session["tools"][0]["name"], "end_call");
    assert_eq!(
        conn.session.raw["instructions"],
        "You are a friendly phone agent."
    );
    assert_eq!(fake.observed.event_types(0), ["session.update"]);
}

#[tokio::test]
async fn beta_handshake_uses_the_beta_header_and_shape() {
    let fake = fake(10.0).await;
    let mut c = cfg(&fake);
    c.api = ApiShape::Beta;
    c.model = "gpt-4o-realtime-preview-2024-12-17".into();
    let conn = client(&c).connect(&spec(), &ids()).await.unwrap();
    assert!(conn.session.is_mulaw());
    assert_eq!(conn.session.raw["output_audio_format"], "g711_ulaw");
    let seen = fake.observed.connections.snapshot();
    assert_eq!(seen[0].api, Api::Beta);
    let (_, session) = &fake.observed.session_updates.snapshot()[0];
    assert_eq!(session["input_audio_format"], "g711_ulaw");
}

#[tokio::test]
async fn a_session_that_did_not_take_mulaw_is_an_error() {
    let fake = fake(10.0).await;
    fake.faults.push(RealtimeFault::IgnoreAudioFormat);
    let err = client(&cfg(&fake))
        .connect(&spec(), &ids())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ConnectError::FormatNotTaken {
            input: "audio/pcm@24000".into(),
            output: "audio/pcm@24000".into(),
        }
    );
    assert_eq!(err.kind(), "rejected");
    // The socket was closed, not left open.
    let ended = wait_ended(&fake, 0).await;
    assert_eq!(ended, Ended::ClientGone);
}

#[tokio::test]
async fn refusals_and_closes_are_classified() {
    let fake = fake(10.0).await;
    let c = cfg(&fake);
    let cases: [(RealtimeFault, &str); 5] = [
        (RealtimeFault::Refuse(401), "unauthorized"),
        (RealtimeFault::Refuse(403), "unauthorized"),
        (RealtimeFault::Refuse(429), "rate_limited"),
        (RealtimeFault::Refuse(503), "server_error"),
        (RealtimeFault::InvalidKeyClose, "unauthorized"),
    ];
    for (fault, kind) in cases {
        fake.faults.push(fault.clone());
        let err = client(&c).connect(&spec(), &ids()).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{fault:?}: {err}");
    }
    // A wrong key gets the upgrade, then close 3000.
    let wrong = RealtimeClient::new(&c, Secret::new("sk-wrong"));
    let err = wrong.connect(&spec(), &ids()).await.unwrap_err();
    assert_eq!(err.kind(), "unauthorized");
    assert!(err.to_string().contains("3000"), "{err}");
    assert!(!err.to_string().contains("sk-wrong"));
}

#[tokio::test]
async fn silence_times_out_and_nothing_listening_fails_to_connect() {
    let fake = fake(10.0).await;
    fake.faults
        .push(RealtimeFault::Stall(Duration::from_secs(3)));
    let mut c = cfg(&fake);
    c.connect_timeout_ms = 300;
    let started = std::time::Instant::now();
    let err = client(&c).connect(&spec(), &ids()).await.unwrap_err();
    assert_eq!(err.kind(), "timeout", "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    c.base_url = format!("ws://127.0.0.1:{port}/v1/realtime");
    let err = client(&c).connect(&spec(), &ids()).await.unwrap_err();
    assert_eq!(err.kind(), "connect", "{err}");
}

#[tokio::test]
async fn a_malformed_message_is_skipped() {
    let fake = fake(10.0).await;
    fake.faults.push(RealtimeFault::Malformed);
    let mut conn = connect(&fake).await;
    conn.tx.create_response(None).await.unwrap();
    let (_, done) = until(&mut conn, |e| matches!(e, ServerEvent::ResponseDone { .. })).await;
    assert!(matches!(done, ServerEvent::ResponseDone { .. }));
}

/// How connection `conn` ended, once it has.
pub(super) async fn wait_ended(fake: &FakeOpenAiRealtime, conn: usize) -> Ended {
    for _ in 0..200 {
        if let Some(end) = fake
            .observed
            .ends
            .snapshot()
            .iter()
            .find(|e| e.conn == conn)
        {
            return end.ended.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("connection {conn} did not end");
}
