//! Bad input from the Twilio side: every kind is counted by reason, the call carries on or ends
//! as Twilio would, and a concurrent clean call is untouched.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use voxbridge::sim::{SimCall, SimReport, Step};
use voxbridge::twilio::messages as msg;

/// A bad call: some bad frames, then a normal turn that must still be echoed.
fn bad_then_turn(url: &str, bad: impl FnOnce(&SimCall) -> Vec<Step>) -> SimCall {
    let mut call = SimCall::new(url).step(Step::Silence(Duration::from_millis(100)));
    for step in bad(&call) {
        call = call.step(step);
    }
    call.step(Step::Speak(fixture("question-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Silence(Duration::from_millis(100)))
}

fn media_with_payload(stream_sid: &str, payload_b64: &str) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"9","media":{{"track":"inbound","chunk":"9","timestamp":"160","payload":"{payload_b64}"}},"streamSid":"{stream_sid}"}}"#
    )
}

fn text(s: String) -> Step {
    Step::SendText(s)
}

#[tokio::test]
async fn bad_input_is_counted_and_harmless() {
    let server = start_server(|_| {}).await;
    let mut summaries = Summaries::of(&server);
    let url = server.media_url();
    let b64 = base64::engine::general_purpose::STANDARD;

    // Calls that must carry on, with the reason each should be counted under.
    let continuing: Vec<(&str, SimCall)> = vec![
        (
            "invalid_json",
            bad_then_turn(&url, |_| vec![text("{not json".into())]),
        ),
        (
            "binary_frame",
            bad_then_turn(&url, |_| vec![Step::SendBinary(vec![0xde, 0xad])]),
        ),
        (
            "unknown_event",
            bad_then_turn(&url, |c| {
                vec![text(format!(
                    r#"{{"event":"transcription","streamSid":"{}"}}"#,
                    c.stream_sid
                ))]
            }),
        ),
        (
            "invalid_message",
            bad_then_turn(&url, |c| {
                let m = msg::media_json(5, &c.stream_sid, 5, 80, &[0xFF; 160]);
                vec![text(m.replace(r#""chunk":"5""#, r#""chunk":"five""#))]
            }),
        ),
        (
            "wrong_stream_sid",
            bad_then_turn(&url, |_| {
                vec![text(msg::media_json(5, "MZother", 5, 80, &[0; 160]))]
            }),
        ),
        (
            "invalid_base64",
            bad_then_turn(&url, |c| {
                vec![text(media_with_payload(&c.stream_sid, "!!not*base64"))]
            }),
        ),
        (
            "empty_payload",
            bad_then_turn(&url, |c| vec![text(media_with_payload(&c.stream_sid, ""))]),
        ),
        (
            "oversized_payload",
            bad_then_turn(&url, |c| {
                vec![text(media_with_payload(
                    &c.stream_sid,
                    &b64.encode(vec![0u8; 16_000]),
                ))]
            }),
        ),
        (
            "duplicate_start",
            bad_then_turn(&url, |c| {
                vec![text(msg::start_json(
                    3,
                    &c.account_sid,
                    "MZsecond",
                    &c.call_sid,
                    &[],
                ))]
            }),
        ),
    ];
    let mut media_before_start = SimCall::new(&url);
    media_before_start.send_start = false;
    let mbs_start = msg::start_json(
        2,
        &media_before_start.account_sid,
        &media_before_start.stream_sid,
        &media_before_start.call_sid,
        &[],
    );
    let media_before_start = media_before_start
        .step(Step::Silence(Duration::from_millis(100)))
        .step(Step::SendText(mbs_start))
        .step(Step::Speak(fixture("question-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Silence(Duration::from_millis(100)));

    // Calls that end: one oversized message (closed with 1009), one dropped socket.
    let too_large = SimCall::new(&url)
        .step(Step::Silence(Duration::from_millis(100)))
        .step(Step::SendText("x".repeat(70 * 1024)))
        .step(Step::Silence(Duration::from_secs(3)));
    let dropped = SimCall::new(&url)
        .step(Step::Speak(fixture("question-8k.wav").slice(..4000)))
        .step(Step::Disconnect);

    // A clean call runs alongside all of them.
    let hello = fixture("hello-8k.wav");
    let clean = SimCall::new(&url)
        .step(Step::Silence(Duration::from_millis(200)))
        .step(Step::Speak(hello.clone()))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Silence(Duration::from_millis(100)));

    let mut sids = Vec::new();
    let mut tasks = Vec::new();
    for (reason, call) in continuing
        .into_iter()
        .chain([("media_before_start", media_before_start)])
    {
        sids.push((reason, call.call_sid.clone()));
        tasks.push(tokio::spawn(call.run()));
    }
    let too_large_sid = too_large.call_sid.clone();
    let dropped_sid = dropped.call_sid.clone();
    let too_large = tokio::spawn(too_large.run());
    let dropped = tokio::spawn(dropped.run());
    let clean = clean.run().await.expect("clean call");

    // The clean call heard its own voice back, unaffected.
    assert_eq!(clean.timeouts, 0);
    let (_, corr) = best_alignment(trim_silence(&decode(&hello)), &decode(&clean.heard));
    assert!(corr > 0.95, "clean call reply correlation {corr:.3}");

    let question = decode(&fixture("question-8k.wav"));
    for ((reason, sid), task) in sids.iter().zip(tasks) {
        let report: SimReport = task.await.expect("task").expect("call");
        assert_eq!(
            report.closed_by_server, None,
            "{reason}: server closed the call"
        );
        assert_eq!(
            report.timeouts, 0,
            "{reason}: no reply after bad input\n{report}"
        );
        let (_, corr) = best_alignment(trim_silence(&question), &decode(&report.heard));
        assert!(corr > 0.95, "{reason}: reply correlation {corr:.3}");
        let s = summaries.get(sid).await;
        assert!(
            s.protocol_errors.get(reason).copied().unwrap_or(0) >= 1,
            "{reason}: summary errors {:?}",
            s.protocol_errors
        );
        assert_eq!(s.end_reason.as_str(), "stop", "{reason}");
    }

    let report = too_large.await.expect("task").expect("call");
    assert_eq!(
        report.closed_by_server.as_ref().map(|c| c.0),
        Some(1009),
        "{report}"
    );
    let s = summaries.get(&too_large_sid).await;
    assert_eq!(s.end_reason.as_str(), "message_too_large");

    dropped.await.expect("task").expect("call");
    let s = summaries.get(&dropped_sid).await;
    assert_eq!(s.end_reason.as_str(), "abrupt_disconnect");

    // Every reason reached Prometheus, and the server is healthy with no call left behind.
    for reason in [
        "invalid_json",
        "binary_frame",
        "unknown_event",
        "invalid_message",
        "wrong_stream_sid",
        "invalid_base64",
        "empty_payload",
        "oversized_payload",
        "duplicate_start",
        "media_before_start",
        "message_too_large",
        "abrupt_disconnect",
    ] {
        let series = format!("voxbridge_protocol_errors_total{{reason=\"{reason}\"}}");
        assert!(
            metric(&server, &series).await >= 1.0,
            "{series} not counted"
        );
    }
    assert_eq!(http_get(&server, "/healthz").await.0, 200);
    assert_eq!(http_get(&server, "/readyz").await.0, 200);
    assert_eq!(server.state().calls.active(), 0);
}
