//! The whole AI pipeline for fault tests: the real server with the real Deepgram, OpenAI and
//! ElevenLabs clients pointed at the project's fakes, a recording Twilio REST fake, and what a
//! simulated caller heard after each of their turns.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Path, State};
use axum::routing::post;
use voxbridge::call::services::CallServices;
use voxbridge::call::summary::CallSummary;
use voxbridge::config::{AgentKind, Config, SttProvider, TtsProvider};
use voxbridge::fakes::deepgram::FakeDeepgram;
use voxbridge::fakes::elevenlabs::FakeElevenLabs;
use voxbridge::fakes::openai_chat::FakeOpenAiChat;
use voxbridge::fakes::{FakeServer, Observed};
use voxbridge::server::Server;
use voxbridge::sim::{SimCall, SimReport, Step};

use super::{Summaries, decode, fixture};

/// A call update the Twilio REST fake received: (CallSid, form).
pub type TwilioUpdate = (String, HashMap<String, String>);

/// Fakes of every cloud service, and a server wired to them.
pub struct Stack {
    pub deepgram: FakeDeepgram,
    pub chat: FakeOpenAiChat,
    pub elevenlabs: FakeElevenLabs,
    pub twilio: Observed<TwilioUpdate>,
    _twilio_server: FakeServer,
    pub server: Server,
}

fn keys(var: &str) -> Option<String> {
    match var {
        "DEEPGRAM_API_KEY" => Some("dg-test-key".into()),
        "OPENAI_API_KEY" => Some("oa-test-key".into()),
        "ELEVENLABS_API_KEY" => Some("el-test-key".into()),
        "TWILIO_ACCOUNT_SID" => Some("ACfaketests".into()),
        "TWILIO_AUTH_TOKEN" => Some("twilio-test-token".into()),
        _ => None,
    }
}

async fn twilio_update(
    State(seen): State<Observed<TwilioUpdate>>,
    Path((_account, call)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> axum::Json<serde_json::Value> {
    let sid = call.trim_end_matches(".json").to_owned();
    seen.push((sid.clone(), form));
    axum::Json(serde_json::json!({"sid": sid, "status": "completed"}))
}

/// The stack with `tweak` applied to the config (after the fakes are wired in).
pub async fn stack(tweak: impl FnOnce(&mut Config)) -> Stack {
    let deepgram = FakeDeepgram::start("dg-test-key")
        .await
        .expect("fake deepgram");
    let chat = FakeOpenAiChat::start("oa-test-key")
        .await
        .expect("fake openai");
    let elevenlabs = FakeElevenLabs::start("el-test-key")
        .await
        .expect("fake elevenlabs");
    let twilio = Observed::default();
    let router = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Calls/{call}",
            post(twilio_update),
        )
        .with_state(twilio.clone());
    let twilio_server = FakeServer::start(router, 0).await.expect("fake twilio");
    let mut config = Config::from_toml_str("[server]\nlisten = \"127.0.0.1:0\"").expect("config");
    config.stt.provider = SttProvider::Deepgram;
    config.stt.base_url = deepgram.url();
    config.agent.kind = AgentKind::Openai;
    config.agent.base_url = chat.url();
    config.agent.timeout_ms = 3000;
    config.tts.provider = TtsProvider::ElevenlabsWs;
    config.tts.elevenlabs_base_url = elevenlabs.base_url();
    config.twilio.api_base_url = twilio_server.http_url();
    // The simulated Twilio does not sign its requests.
    config.security.validate_signatures = false;
    tweak(&mut config);
    let services = CallServices::from_config(&config, keys)
        .await
        .expect("services");
    let server = Server::bind_with(config, services).await.expect("server");
    Stack {
        deepgram,
        chat,
        elevenlabs,
        twilio,
        _twilio_server: twilio_server,
        server,
    }
}

/// A call saying each of `turns` (fixture names), waiting for the reply to end after each.
pub fn call_saying(url: String, turns: &[&str]) -> SimCall {
    let mut call = SimCall::new(url).step(Step::Silence(Duration::from_millis(300)));
    for name in turns {
        call = call
            .step(Step::Speak(fixture(name)))
            .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
            .step(Step::Silence(Duration::from_millis(400)));
    }
    call
}

/// The usual two turns.
pub fn two_turns(url: String) -> SimCall {
    call_saying(url, &["hello-8k.wav", "question-8k.wav"])
}

/// Run `call` and fetch its summary.
pub async fn run(server: &Server, call: SimCall) -> (SimReport, Arc<CallSummary>) {
    let mut summaries = Summaries::of(server);
    let sid = call.call_sid.clone();
    let report = call.run().await.expect("call");
    let summary = summaries.get(&sid).await;
    (report, summary)
}

/// Whether a 20 ms μ-law frame is audible (not line silence).
pub fn audible(frame: &[u8]) -> bool {
    let pcm = decode(frame);
    pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len().max(1) as f32 > 1e-4
}

/// Audible ms the caller heard after each of their utterances, until the next one began (or
/// the call ended).
pub fn heard_after_each_turn(report: &SimReport) -> Vec<u64> {
    let frames: Vec<&[u8]> = report.heard.chunks(160).collect();
    let ends = &report.speech_ends_ms;
    (0..ends.len())
        .map(|i| {
            let from = (ends[i] / 20) as usize;
            let to = report
                .speech_starts_ms
                .get(i + 1)
                .map_or(frames.len(), |ms| (*ms / 20) as usize);
            let to = to.min(frames.len());
            let audible_frames = frames
                .get(from..to)
                .unwrap_or_default()
                .iter()
                .filter(|f| audible(f))
                .count();
            audible_frames as u64 * 20
        })
        .collect()
}

/// Panic unless the caller heard at least `min_ms` of audio after every one of `turns` turns.
pub fn assert_heard_after_every_turn(report: &SimReport, turns: usize, min_ms: u64) -> Vec<u64> {
    let heard = heard_after_each_turn(report);
    assert_eq!(heard.len(), turns, "utterances: {heard:?}\n{report}");
    for (i, ms) in heard.iter().enumerate() {
        assert!(
            *ms >= min_ms,
            "turn {}: only {ms} ms heard (after every turn: {heard:?})\n{report}",
            i + 1
        );
    }
    heard
}

/// Every text the TTS fake was asked to speak, per connection, in order.
pub fn spoken(stack: &Stack) -> Vec<String> {
    stack
        .elevenlabs
        .requests
        .snapshot()
        .iter()
        .map(|r| r.texts.concat())
        .collect()
}

/// `(role, content)` of the messages of LLM request `n`.
pub fn history(stack: &Stack, n: usize) -> Vec<(String, String)> {
    let requests = stack.chat.requests.snapshot();
    let Some(request) = requests.get(n) else {
        panic!("no LLM request {n}: {} requests", requests.len());
    };
    request
        .messages
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or_default().to_owned(),
                m["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The sum of every `voxbridge_provider_errors_total` series on the server's /metrics.
pub async fn provider_errors(server: &Server) -> f64 {
    let body = super::http_get(server, "/metrics").await.1;
    body.lines()
        .filter(|l| l.starts_with("voxbridge_provider_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
