//! Call quality end to end: impaired calls through the real server, asserting the per-call
//! report against what the simulator injected, live alerts reaching a webhook during the call,
//! and reports appended to the reports directory.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use common::*;
use serde_json::Value;
use tokio::sync::mpsc;
use voxbridge::call::summary::CallSummary;
use voxbridge::quality::emodel;
use voxbridge::quality::report::{Band, QualityReport, Reason};
use voxbridge::sim::{Impairments, SimCall, SimReport, Step};

/// Speak the hello fixture, hear the echo, hang up; return the caller's and server's views.
async fn impaired_call(imp: Impairments) -> (SimReport, Arc<CallSummary>) {
    let server = start_server(|_| {}).await;
    let mut summaries = Summaries::of(&server);
    let mut call = SimCall::new(server.media_url())
        .step(Step::Silence(Duration::from_millis(300)))
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Silence(Duration::from_millis(500)));
    call.impairments = imp;
    let sid = call.call_sid.clone();
    let report = call.run().await.expect("call");
    let summary = summaries.get(&sid).await;
    let q = quality(&summary);
    println!(
        "{imp:?}: loss {:.2} % jitter {:.1} ms (sent {:.1}) clipping {:.4} MOS {:.2} band {:?} {:?}",
        q.transport.loss_ratio * 100.0,
        q.transport.jitter_mean_ms,
        report.sent_jitter_ms,
        q.signal.clipping_ratio,
        q.emodel.mos,
        q.band,
        q.reasons
    );
    (report, summary)
}

fn quality(s: &CallSummary) -> &QualityReport {
    s.quality.as_ref().expect("quality report")
}

#[tokio::test]
async fn clean_call_is_good() {
    let (_, s) = impaired_call(Impairments::default()).await;
    let q = quality(&s);
    assert_eq!(q.band, Band::Good, "{q:#?}");
    assert!(q.reasons.is_empty(), "{:?}", q.reasons);
    assert!(q.emodel.mos >= 4.3, "MOS {}", q.emodel.mos);
    assert_eq!(q.transport.frames_lost, 0);
    assert!(
        q.transport.jitter_mean_ms < 5.0,
        "{}",
        q.transport.jitter_mean_ms
    );
    assert!(q.signal.clipping_ratio < 0.001);
    assert!(
        q.signal.snr_db.is_some_and(|snr| snr > 20.0),
        "{:?}",
        q.signal.snr_db
    );
    assert!(q.outbound.frames_sent > 100);
}

#[tokio::test]
async fn five_percent_loss_reads_as_five_percent() {
    let imp = Impairments {
        loss_pct: 5.0,
        seed: 7,
        ..Impairments::default()
    };
    let (report, s) = impaired_call(imp).await;
    let q = quality(&s);
    let loss_pct = q.transport.loss_ratio * 100.0;
    assert!((loss_pct - 5.0).abs() <= 1.0, "loss {loss_pct:.2} %");
    // Every frame the link dropped (but a trailing one) shows as a chunk gap.
    assert!(
        q.transport.frames_lost + 1 >= report.frames_dropped,
        "{q:#?}"
    );
    let expected = emodel::mos(5.0, 0.0, false);
    assert!(
        (q.emodel.mos - expected).abs() <= 0.1,
        "MOS {} vs {expected}",
        q.emodel.mos
    );
    assert!(q.reasons.contains(&Reason::PacketLoss) && q.reasons.contains(&Reason::LowMos));
    assert_eq!(q.band, Band::Poor);
}

#[tokio::test]
async fn forty_ms_jitter_reads_within_twenty_percent() {
    let imp = Impairments {
        jitter_ms: 40.0,
        ..Impairments::default()
    };
    let (report, s) = impaired_call(imp).await;
    let q = quality(&s);
    let j = q.transport.jitter_mean_ms;
    assert!(
        (32.0..=48.0).contains(&j),
        "jitter {j:.1} ms (sent {:.1})",
        report.sent_jitter_ms
    );
    assert!(
        (j - report.sent_jitter_ms).abs() <= 0.1 * report.sent_jitter_ms,
        "{j} vs sent"
    );
    assert!(q.reasons.contains(&Reason::HighJitter), "{:?}", q.reasons);
    assert!(q.transport.late_frames > 0);
    assert_eq!(q.transport.frames_lost, 0);
}

#[tokio::test]
async fn over_driven_audio_is_clipping() {
    let imp = Impairments {
        gain_db: 20.0,
        ..Impairments::default()
    };
    let (_, s) = impaired_call(imp).await;
    let q = quality(&s);
    assert!(q.reasons.contains(&Reason::Clipping), "{q:#?}");
    assert!(q.signal.clipping_ratio > 0.01);
    assert!(q.signal.peak_dbfs.is_some_and(|p| p > -0.2));
}

#[tokio::test]
async fn silent_caller_is_dead_air() {
    let server = start_server(|_| {}).await;
    let mut summaries = Summaries::of(&server);
    let call = SimCall::new(server.media_url()).step(Step::Silence(Duration::from_secs(7)));
    let sid = call.call_sid.clone();
    call.run().await.expect("call");
    let s = summaries.get(&sid).await;
    let q = quality(&s);
    assert!(q.reasons.contains(&Reason::DeadAir), "{q:#?}");
    assert_eq!(q.band, Band::Poor);
    assert!(q.signal.silence_ratio > 0.99);
    assert!(q.signal.longest_silence_ms >= 6500);
    assert!(s.alerts_raised.contains(&Reason::DeadAir));
}

#[tokio::test]
async fn live_alert_reaches_the_webhook_during_the_call() {
    // A local webhook receiver.
    let (tx, mut rx) = mpsc::channel::<(Instant, Value)>(64);
    let app = axum::Router::new().route(
        "/hook",
        post(move |Json(body): Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((Instant::now(), body)).await;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let reports = std::env::temp_dir().join(format!("voxbridge-reports-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&reports);
    let reports_dir = reports.to_string_lossy().into_owned();
    let server = start_server(|c| {
        c.alerts.webhook_url = hook;
        c.quality.reports_dir = reports_dir;
    })
    .await;
    let mut summaries = Summaries::of(&server);
    let mut call = SimCall::new(server.media_url())
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Silence(Duration::from_secs(1)));
    call.impairments = Impairments {
        loss_pct: 20.0,
        seed: 3,
        ..Impairments::default()
    };
    let sid = call.call_sid.clone();
    let running = tokio::spawn(call.run());

    let (received_at, alert) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an alert within 10 s")
        .expect("webhook channel");
    assert!(
        !running.is_finished(),
        "alert arrived only after the call ended"
    );
    assert_eq!(alert["event"], "quality_alert");
    assert_eq!(alert["state"], "raised");
    assert_eq!(alert["call_sid"], sid.as_str());
    let condition = alert["condition"].as_str().unwrap_or_default().to_owned();
    assert!(
        ["packet_loss", "low_mos"].contains(&condition.as_str()),
        "{alert}"
    );
    assert!(alert["value"].as_f64().is_some() && alert["threshold"].as_f64().is_some());

    running.await.expect("task").expect("call");
    let ended = Instant::now();
    assert!(received_at < ended);
    let s = summaries.get(&sid).await;
    assert!(
        s.alerts_raised.contains(&Reason::PacketLoss),
        "{:?}",
        s.alerts_raised
    );

    // The report reached the reports directory as one NDJSON line.
    let path = reports.join("calls.ndjson");
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(&sid)) {
            break line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no report line in {}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let report: Value = serde_json::from_str(&line).expect("report JSON");
    assert_eq!(report["call_sid"], sid.as_str());
    assert_eq!(report["quality"]["band"], "poor");
    assert!(
        report["started_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(
        report["quality"]["reasons"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );

    // And Prometheus saw it, with no per-call label anywhere.
    let body = http_get(&server, "/metrics").await.1;
    assert!(
        body.contains("voxbridge_calls_by_quality_total{band=\"poor\"}"),
        "{body}"
    );
    assert!(
        body.contains("voxbridge_quality_alerts_total{condition=\"packet_loss\",state=\"raised\"}")
    );
    assert!(body.contains("voxbridge_call_mos_bucket"));
    assert!(!body.contains(&sid), "per-call id leaked into /metrics");
}
