//! The HTTP side: TwiML webhook, status callbacks, health, readiness and metrics.

mod common;

use common::*;

async fn post_form(
    server: &voxbridge::server::Server,
    path: &str,
    body: &str,
) -> (u16, String, String) {
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("http://{}{}", server.local_addr(), path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("host", "voice.example.com")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ctype, resp.text().await.expect("body"))
}

#[tokio::test]
async fn voice_webhook_returns_connect_stream_twiml() {
    let server = start_server(|_| {}).await;
    // From = "Bob" <+1555&co>, form-encoded.
    let body =
        "CallSid=CA123&From=%22Bob%22+%3C%2B1555%26co%3E&To=%2B18005551212&CallStatus=ringing";
    let (status, ctype, twiml) = post_form(&server, "/twilio/voice", body).await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/xml"), "{ctype}");
    assert!(
        twiml.contains(r#"<Connect><Stream url="wss://voice.example.com/twilio/media">"#),
        "{twiml}"
    );
    assert!(
        twiml.contains(r#"<Parameter name="From" value="&quot;Bob&quot; &lt;+1555&amp;co&gt;"/>"#),
        "{twiml}"
    );
    assert!(
        twiml.contains(r#"<Parameter name="To" value="+18005551212"/>"#),
        "{twiml}"
    );
    assert!(
        twiml.contains(r#"<Parameter name="CallSid" value="CA123"/>"#),
        "{twiml}"
    );
}

#[tokio::test]
async fn configured_public_host_wins() {
    let server = start_server(|c| c.server.public_host = "media.example.org".into()).await;
    let (_, _, twiml) = post_form(&server, "/twilio/voice", "CallSid=CA1").await;
    assert!(
        twiml.contains("wss://media.example.org/twilio/media"),
        "{twiml}"
    );
}

#[tokio::test]
async fn status_health_ready_metrics() {
    let server = start_server(|_| {}).await;
    let (status, _, _) = post_form(
        &server,
        "/twilio/status",
        "CallSid=CA1&StreamSid=MZ1&StreamEvent=stream-started&Timestamp=2026-11-26T00%3A00%3A00Z",
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(http_get(&server, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(http_get(&server, "/readyz").await.0, 200);
    let (status, body) = http_get(&server, "/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "voxbridge_status_callbacks_total",
        "# HELP voxbridge_status_callbacks_total",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics:\n{body}");
    }
    assert_eq!(http_get(&server, "/nope").await.0, 404);
}

/// The metric catalogue: after a call, every voxbridge series on /metrics has HELP text, and
/// every catalogued metric that appears is described exactly once.
#[tokio::test]
async fn every_metric_on_metrics_has_help_text() {
    use std::collections::BTreeSet;
    use voxbridge::sim::{SimCall, Step};
    let server = start_server(|_| {}).await;
    let call = SimCall::new(server.media_url())
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::WaitForReplyEnd(std::time::Duration::from_secs(10)));
    call.run().await.expect("call");
    let body = http_get(&server, "/metrics").await.1;
    let mut helped = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default().to_owned();
            assert!(helped.insert(name.clone()), "HELP twice for {name}");
        } else if line.starts_with("voxbridge_") {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            seen.insert(base.to_owned());
        }
    }
    assert!(seen.len() > 10, "few series: {seen:?}");
    for name in &seen {
        assert!(helped.contains(name), "{name} has no HELP text");
        assert!(
            voxbridge::metrics::CATALOGUE
                .iter()
                .any(|(n, _, _)| n == name),
            "{name} is not in the metric catalogue"
        );
    }
}
