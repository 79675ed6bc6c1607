use std::time::Duration;

use super::handshake::wait_ended;
use super::*;
use crate::engine::realtime::preconnect::{Preconnect, Refused};
use crate::fakes::openai_realtime::{Ended, RealtimeFault};

#[tokio::test]
async fn a_preconnected_session_is_taken_ready() {
    let fake = fake(10.0).await;
    let registry = Preconnect::new(client(&cfg(&fake)), 4, Duration::from_secs(15));
    registry.start("CA1", spec()).unwrap();
    assert_eq!(registry.start("CA1", spec()), Err(Refused::AlreadyPending));
    // Give the handshake time to finish before the stream "arrives".
    for _ in 0..200 {
        if !fake.observed.session_updates.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(registry.take("CA2").is_none());
    let pending = registry.take("CA1").expect("pending");
    assert!(registry.is_empty());
    let mut conn = pending.connection().await.unwrap();
    assert!(conn.session.is_mulaw());
    conn.tx.create_response(None).await.unwrap();
    let (events, _) = until(&mut conn, |e| matches!(e, ServerEvent::ResponseDone { .. })).await;
    assert!(!audio_of(&events).is_empty());
    assert!(registry.take("CA1").is_none(), "taken once");
}

#[tokio::test]
async fn a_session_still_connecting_can_be_taken() {
    let fake = fake(10.0).await;
    fake.faults
        .push(RealtimeFault::Stall(Duration::from_millis(300)));
    let registry = Preconnect::new(client(&cfg(&fake)), 4, Duration::from_secs(15));
    registry.start("CA1", spec()).unwrap();
    let pending = registry.take("CA1").expect("pending");
    let conn = pending.connection().await.unwrap();
    assert!(conn.session.is_mulaw());
}

#[tokio::test]
async fn unclaimed_sessions_expire_and_the_registry_is_bounded() {
    let fake = fake(10.0).await;
    let registry = Preconnect::new(client(&cfg(&fake)), 1, Duration::from_millis(400));
    registry.start("CA1", spec()).unwrap();
    assert_eq!(registry.start("CA2", spec()), Err(Refused::Full));
    assert_eq!(registry.len(), 1);
    // Ready first, then closed at the TTL.
    assert_eq!(wait_ended(&fake, 0).await, Ended::ClientGone);
    assert!(registry.take("CA1").is_none());
    assert!(registry.is_empty());
    registry.start("CA2", spec()).unwrap();
    assert!(registry.take("CA2").is_some());
}

#[tokio::test]
async fn a_failed_preconnect_hands_over_its_error() {
    let fake = fake(10.0).await;
    fake.faults.push(RealtimeFault::Refuse(403));
    let registry = Preconnect::new(client(&cfg(&fake)), 4, Duration::from_secs(15));
    registry.start("CA1", spec()).unwrap();
    let err = registry
        .take("CA1")
        .unwrap()
        .connection()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "unauthorized");
}
