//! Hardening, through the real server: Twilio signatures on webhooks and the media upgrade,
//! per-stream tokens, every limit refusing cleanly with a counter, panic isolation between
//! calls, the admin listener, and secrets kept out of logs and /metrics.

mod common;

#[cfg(feature = "fakes")]
use std::io::Write;
use std::sync::Arc;
#[cfg(feature = "fakes")]
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voxbridge::agent::{Agent, AgentEvent, AgentSession, CallerTurn};
use voxbridge::call::services::CallServices;
use voxbridge::config::Config;
use voxbridge::provider::CallIds;
use voxbridge::server::Server;
use voxbridge::sim::{SimCall, Step};
use voxbridge::twilio::signature;

const TOKEN: &str = "test-auth-token-0123456789";

fn config(tweak: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::from_toml_str("[server]\nlisten = \"127.0.0.1:0\"").expect("config");
    tweak(&mut c);
    c
}

async fn secured(tweak: impl FnOnce(&mut Config)) -> Server {
    let config = config(tweak);
    let env = |var: &str| (var == "TWILIO_AUTH_TOKEN").then(|| TOKEN.to_owned());
    let services = CallServices::from_config(&config, env)
        .await
        .expect("services");
    Server::bind_with(config, services).await.expect("server")
}

async fn post(server: &Server, path: &str, body: &str, signature: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{}{}", server.local_addr(), path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(sig) = signature {
        req = req.header("x-twilio-signature", sig);
    }
    let resp = req.send().await.expect("POST");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

fn form(pairs: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (
        serde_urlencoded::to_string(&owned).unwrap_or_default(),
        owned,
    )
}

#[tokio::test]
async fn webhooks_need_a_valid_twilio_signature() {
    let server = secured(|_| {}).await;
    let (body, params) = form(&[
        ("CallSid", "CA1"),
        ("From", "+14158675310"),
        ("To", "+18005551212"),
    ]);
    let url = format!("https://{}/twilio/voice", server.local_addr());
    let good = signature::compute(TOKEN, &url, &params);
    assert_eq!(
        post(&server, "/twilio/voice", &body, None).await.0,
        403,
        "unsigned"
    );
    assert_eq!(
        post(
            &server,
            "/twilio/voice",
            &body,
            Some("AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        )
        .await
        .0,
        403
    );
    let forged = signature::compute("another-token", &url, &params);
    assert_eq!(
        post(&server, "/twilio/voice", &body, Some(&forged)).await.0,
        403
    );
    let (status, twiml) = post(&server, "/twilio/voice", &body, Some(&good)).await;
    assert_eq!(status, 200, "{twiml}");
    assert!(twiml.contains("<Connect><Stream"));
    // Twilio drops the port from HTTPS URLs before signing: that form is accepted too.
    let host = server.local_addr().ip().to_string();
    let portless = signature::compute(TOKEN, &format!("https://{host}/twilio/status"), &params);
    assert_eq!(
        post(&server, "/twilio/status", &body, Some(&portless))
            .await
            .0,
        204
    );
    let refused = metric(
        &server,
        "voxbridge_requests_refused_total{reason=\"bad_signature\"}",
    )
    .await;
    assert!(refused >= 3.0, "{refused}");
}

fn signed_call(server: &Server, url: &str) -> SimCall {
    let mut call = SimCall::new(server.media_url());
    call.headers.push((
        "X-Twilio-Signature".into(),
        signature::compute(TOKEN, url, &[]),
    ));
    call.step(Step::Speak(fixture("question-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(10)))
}

#[tokio::test]
async fn media_upgrade_needs_a_valid_signature() {
    let server = secured(|_| {}).await;
    let unsigned = SimCall::new(server.media_url()).run().await;
    assert!(unsigned.is_err(), "unsigned upgrade accepted");
    let mut bad = SimCall::new(server.media_url());
    bad.headers
        .push(("X-Twilio-Signature".into(), "bm90IGEgc2lnbmF0dXJl".into()));
    assert!(bad.run().await.is_err(), "badly signed upgrade accepted");
    // The wss:// URL is what Twilio signs (https:// would not match) — with or without the slash.
    let https = format!("https://{}/twilio/media", server.local_addr());
    assert!(signed_call(&server, &https).run().await.is_err());
    for url in [
        format!("wss://{}/twilio/media", server.local_addr()),
        format!("wss://{}/twilio/media/", server.local_addr()),
    ] {
        let report = signed_call(&server, &url).run().await.expect("signed call");
        assert_eq!(report.timeouts, 0, "{url}: {report}");
    }
    // The simulator signs as Twilio does (`voxbridge call` with TWILIO_AUTH_TOKEN set): its
    // ws:// URL is signed as the wss:// one; the wrong token is refused.
    let sim = |token: &str| {
        SimCall::new(server.media_url())
            .signed(token)
            .step(Step::Speak(fixture("question-8k.wav")))
            .step(Step::WaitForReplyEnd(Duration::from_secs(10)))
    };
    let report = sim(TOKEN).run().await.expect("simulator's signed call");
    assert_eq!(report.timeouts, 0, "{report}");
    assert!(sim("not-the-token").run().await.is_err());
    assert!(
        metric(
            &server,
            "voxbridge_calls_refused_total{reason=\"bad_signature\"}"
        )
        .await
            >= 4.0
    );
}

#[tokio::test]
async fn stream_tokens_bind_streams_to_their_call() {
    let server = secured(|c| c.security.stream_token = true).await;
    let mut summaries = Summaries::of(&server);
    // The webhook hands out a token for this CallSid…
    let (body, params) = form(&[("CallSid", "CAtoken1"), ("From", "+1"), ("To", "+2")]);
    let url = format!("https://{}/twilio/voice", server.local_addr());
    let (_, twiml) = post(
        &server,
        "/twilio/voice",
        &body,
        Some(&signature::compute(TOKEN, &url, &params)),
    )
    .await;
    let token = twiml
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("token parameter in TwiML")
        .to_owned();
    let wss = format!("wss://{}/twilio/media", server.local_addr());
    let call = |call_sid: &str, token: String| {
        let mut c = signed_call(&server, &wss);
        c.call_sid = call_sid.to_owned();
        c.custom_parameters.push(("token".into(), token));
        c
    };
    // …which opens its stream,
    let ok = call("CAtoken1", token.clone()).run().await.expect("call");
    assert_eq!(ok.timeouts, 0);
    // but not another call's, and not once expired.
    let stolen = call("CAother", token).run().await.expect("call");
    assert_eq!(
        stolen.closed_by_server.as_ref().map(|c| c.0),
        Some(1008),
        "{stolen}"
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expired = signature::stream_token(TOKEN, "CAexpired", now - 5);
    let late = call("CAexpired", expired).run().await.expect("call");
    assert_eq!(late.closed_by_server.as_ref().map(|c| c.0), Some(1008));
    assert_eq!(
        summaries.get("CAexpired").await.end_reason.as_str(),
        "token_rejected"
    );
    assert!(
        metric(
            &server,
            "voxbridge_stream_tokens_refused_total{reason=\"expired\"}"
        )
        .await
            >= 1.0
    );
    assert!(
        metric(
            &server,
            "voxbridge_stream_tokens_refused_total{reason=\"mismatch\"}"
        )
        .await
            >= 1.0
    );
}

#[tokio::test]
async fn limits_refuse_cleanly_and_are_counted() {
    // Concurrent calls.
    let server = start_server(|c| c.limits.max_calls = 1).await;
    let first = SimCall::new(server.media_url()).step(Step::Silence(Duration::from_secs(2)));
    let first = tokio::spawn(first.run());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        SimCall::new(server.media_url()).run().await.is_err(),
        "second call accepted"
    );
    assert!(first.await.expect("task").is_ok());
    assert!(
        metric(
            &server,
            "voxbridge_calls_refused_total{reason=\"max_calls\"}"
        )
        .await
            >= 1.0
    );

    // Call duration and idle streams.
    let server = start_server(|c| {
        c.limits.max_call_secs = 2;
        c.limits.idle_timeout_secs = 2;
    })
    .await;
    let mut summaries = Summaries::of(&server);
    let long = SimCall::new(server.media_url()).step(Step::Silence(Duration::from_secs(6)));
    let long_sid = long.call_sid.clone();
    let report = long.run().await.expect("call");
    assert_eq!(
        report.closed_by_server,
        Some((1000, "maximum call duration".into()))
    );
    assert_eq!(
        summaries.get(&long_sid).await.end_reason.as_str(),
        "max_duration"
    );
    // A stream that goes quiet: start, then nothing.
    let url = format!("ws://{}/twilio/media", server.local_addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect");
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let start = voxbridge::twilio::messages::start_json(1, "AC1", "MZidle", "CAidle", &[]);
    ws.send(Message::text(start)).await.expect("send");
    let closed = tokio::time::timeout(Duration::from_secs(6), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(frame) = m {
                return frame.map(|f| f.reason.to_string());
            }
        }
        None
    })
    .await
    .expect("idle stream closed within 6 s");
    assert_eq!(closed.as_deref(), Some("idle timeout"));
    assert_eq!(
        summaries.get("CAidle").await.end_reason.as_str(),
        "idle_timeout"
    );

    // Request rate per IP, and body size.
    let server = start_server(|c| {
        c.limits.per_ip_per_minute = 5;
        c.limits.max_body_bytes = 1024;
    })
    .await;
    let statuses: Vec<u16> =
        futures_util::future::join_all((0..7).map(|_| http_get(&server, "/healthz")))
            .await
            .into_iter()
            .map(|(s, _)| s)
            .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        2,
        "{statuses:?}"
    );
    let server = start_server(|c| c.limits.max_body_bytes = 1024).await;
    let big = format!("CallSid=CA1&Junk={}", "x".repeat(4096));
    assert_eq!(post(&server, "/twilio/voice", &big, None).await.0, 413);
    let body = http_get(&server, "/metrics").await.1;
    assert!(body.contains("voxbridge_requests_refused_total{reason=\"rate_limited\"}"));
}

/// An agent that panics when the caller presses 9, and says nothing otherwise.
struct PanickyAgent;
struct PanickySession;

impl Agent for PanickyAgent {
    fn name(&self) -> &'static str {
        "panicky"
    }
    fn start_call(&self, _call: &CallIds) -> Box<dyn AgentSession> {
        Box::new(PanickySession)
    }
}

impl AgentSession for PanickySession {
    fn greeting(&mut self) -> Option<String> {
        None
    }
    fn respond(
        &mut self,
        turn: CallerTurn,
        _cancel: CancellationToken,
    ) -> mpsc::Receiver<AgentEvent> {
        if turn == CallerTurn::Dtmf("9".into()) {
            panic!("forced panic in one call's agent");
        }
        let (tx, rx) = mpsc::channel(2);
        if let CallerTurn::Audio(audio) = turn {
            let _ = tx.try_send(AgentEvent::Audio(audio));
        }
        let _ = tx.try_send(AgentEvent::Done);
        rx
    }
    fn reply_heard(&mut self, _heard: &str, _interrupted: bool) {}
}

#[tokio::test]
async fn a_panic_ends_one_call_only() {
    let mut services = CallServices::echo();
    // The cascade engine asks its agent for every turn; this agent panics on a keypress.
    let profile = services.profiles.default_mut().expect("default profile");
    profile.agent = Arc::new(PanickyAgent);
    profile.engine = voxbridge::call::context::EngineKind::Cascade;
    let server = Server::bind_with(config(|_| {}), services)
        .await
        .expect("server");
    let doomed = SimCall::new(server.media_url())
        .step(Step::Dtmf("9".into()))
        .step(Step::Silence(Duration::from_secs(3)));
    let healthy = SimCall::new(server.media_url())
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(10)));
    let (doomed, healthy) = tokio::join!(doomed.run(), healthy.run());
    let doomed = doomed.expect("doomed call");
    assert_eq!(
        doomed.closed_by_server.as_ref().map(|c| c.0),
        Some(1011),
        "{doomed}"
    );
    let healthy = healthy.expect("healthy call");
    assert_eq!(healthy.timeouts, 0);
    assert_eq!(healthy.response_latencies_ms.len(), 1, "{healthy}");
    assert!(metric(&server, "voxbridge_call_panics_total").await >= 1.0);
    assert_eq!(http_get(&server, "/healthz").await.0, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.state().calls.active(), 0);
}

#[tokio::test]
async fn admin_listener_serves_metrics_and_health_apart() {
    let server = start_server(|c| c.security.admin_listen = "127.0.0.1:0".into()).await;
    let admin = server.admin_addr().expect("admin listener");
    assert_eq!(http_get(&server, "/metrics").await.0, 404);
    assert_eq!(http_get(&server, "/healthz").await.0, 404);
    let resp = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("admin");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.text()
            .await
            .unwrap_or_default()
            .contains("process_resident_memory_bytes")
    );
}

#[tokio::test]
async fn production_refuses_to_start_without_a_token() {
    let c = config(|c| c.security.production = true);
    let err = CallServices::from_config(&c, |_| None)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("TWILIO_AUTH_TOKEN"), "{err}");
    let c = config(|c| {
        c.security.production = true;
        c.security.validate_signatures = false;
    });
    assert!(CallServices::from_config(&c, |_| None).await.is_ok());
}

/// Captures every log line of this test binary.
#[cfg(feature = "fakes")]
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

#[cfg(feature = "fakes")]
impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "fakes")] // the providers that refuse the keys are the local fakes
#[tokio::test]
async fn secrets_never_reach_logs_or_metrics() {
    let capture = Capture::default();
    let writer = capture.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .try_init();
    const DG: &str = "dg-SECRET-1111";
    const OA: &str = "sk-SECRET-2222";
    const EL: &str = "el-SECRET-3333";
    // Providers that will refuse these keys (so errors get logged), and a signed server.
    let deepgram = voxbridge::fakes::deepgram::FakeDeepgram::start("other")
        .await
        .expect("fake");
    let chat = voxbridge::fakes::openai_chat::FakeOpenAiChat::start("other")
        .await
        .expect("fake");
    let eleven = voxbridge::fakes::elevenlabs::FakeElevenLabs::start("other")
        .await
        .expect("fake");
    let config = config(|c| {
        c.stt.provider = voxbridge::config::SttProvider::Deepgram;
        c.stt.base_url = deepgram.url();
        c.stt.max_reconnects = 1;
        c.agent.kind = voxbridge::config::AgentKind::Openai;
        c.agent.base_url = chat.url();
        c.tts.provider = voxbridge::config::TtsProvider::ElevenlabsWs;
        c.tts.elevenlabs_base_url = eleven.base_url();
    });
    let env = |var: &str| match var {
        "TWILIO_AUTH_TOKEN" => Some(TOKEN.to_owned()),
        "DEEPGRAM_API_KEY" => Some(DG.to_owned()),
        "OPENAI_API_KEY" => Some(OA.to_owned()),
        "ELEVENLABS_API_KEY" => Some(EL.to_owned()),
        _ => None,
    };
    let services = CallServices::from_config(&config, env)
        .await
        .expect("services");
    let debug = format!("{:?}", services.auth_token);
    assert_eq!(debug, "Some(Secret(***))");
    let server = Server::bind_with(config, services).await.expect("server");
    let wss = format!("wss://{}/twilio/media", server.local_addr());
    let call = signed_call(&server, &wss).step(Step::Silence(Duration::from_secs(1)));
    let report = call.run().await.expect("call");
    assert!(report.frames_received > 0, "the apology should have played");
    let metrics_body = http_get(&server, "/metrics").await.1;
    let logs = String::from_utf8_lossy(&capture.0.lock().map(|v| v.clone()).unwrap_or_default())
        .into_owned();
    assert!(logs.contains("call report"), "no logs captured");
    assert!(
        logs.contains("unauthorized"),
        "provider errors were not logged"
    );
    for secret in [TOKEN, DG, OA, EL] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
        assert!(
            !metrics_body.contains(secret),
            "{secret} leaked into /metrics"
        );
    }
}
