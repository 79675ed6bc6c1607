//! The live-calls registry: a call in progress is listed with its live figures (updated once a
//! second), can be hung up through its control channel, and leaves the list when it ends.

mod common;

use std::time::Duration;

use common::*;
use voxbridge::call::live::{Control, ControlError, Speaking};
use voxbridge::sim::{SimCall, Step};

#[tokio::test]
async fn live_calls_are_listed_updated_and_can_be_hung_up() {
    let server = start_server(|_| {}).await;
    let mut summaries = Summaries::of(&server);
    let live = std::sync::Arc::clone(&server.state().services.live);
    let call = SimCall::new(server.media_url())
        .step(Step::Speak(fixture("question-8k.wav")))
        .step(Step::Speak(fixture("question-8k.wav")))
        .step(Step::Silence(Duration::from_secs(20)));
    let sid = call.call_sid.clone();
    let running = tokio::spawn(call.run());

    // Listed within a second or two, with figures that move.
    let mut seen = None;
    let mut caller_spoke = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(stats) = live.get(&sid) {
            caller_spoke |= matches!(stats.speaking, Speaking::Caller | Speaking::Both);
            if stats.duration_ms >= 2000 {
                seen = Some(stats);
                break;
            }
        }
    }
    let stats = seen.expect("the call is listed with a duration");
    assert_eq!(stats.profile, "default");
    assert_eq!(stats.engine, "echo");
    assert!(caller_spoke, "the caller was seen speaking");
    assert!(stats.now.level_dbfs > -60.0, "live level {:?}", stats.now);
    assert!(stats.now.mos > 4.0, "clean line: {:?}", stats.now);
    assert_eq!(live.list().len(), 1);

    // Hang it up from outside; it ends at once, cleanly, and leaves the list.
    assert_eq!(
        live.control("CAnope", Control::Hangup),
        Err(ControlError::NotFound)
    );
    live.control(&sid, Control::Hangup).expect("control");
    let report = tokio::time::timeout(Duration::from_secs(3), running)
        .await
        .expect("hung up within 3 s")
        .expect("join")
        .expect("call");
    assert_eq!(report.closed_by_server.as_ref().map(|c| c.0), Some(1000));
    let summary = summaries.get(&sid).await;
    assert_eq!(summary.end_reason.as_str(), "operator_hangup");
    assert!(live.get(&sid).is_none());
    assert!(live.is_empty());
}
