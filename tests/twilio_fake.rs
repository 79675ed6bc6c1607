//! The fake Twilio REST API placing real calls into the real server: the production REST
//! client creates a call, the fake fetches the TwiML from `POST /twilio/voice` (signed), opens
//! the media stream (signed, with the `<Parameter>`s as customParameters), and the scripted
//! callee talks to the echo agent; status and AMD callbacks reach a small receiver that checks
//! every signature. Busy / no-answer / fail sequences, a voicemail box with DetectMessageEnd
//! and async AMD, and a REST hang-up in the middle of a conversation.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use common::*;
use voxbridge::call::services::CallServices;
use voxbridge::config::Config;
use voxbridge::fakes::FakeServer;
use voxbridge::fakes::twilio::callee::speech;
use voxbridge::fakes::twilio::{
    CallbackKind, Callee, EndedBy, FakeTwilio, FakeTwilioConfig, Human, Machine,
};
use voxbridge::server::Server;
use voxbridge::twilio::rest::{CallAnswer, CallEvent, CallStatus, CreateCall, MachineDetection};
use voxbridge::twilio::signature;

const FROM: &str = "+15550009999";

/// A callback received: path, form, signature valid, when.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    params: HashMap<String, String>,
    signed: bool,
    at: Instant,
}

#[derive(Clone)]
struct Receiver {
    token: String,
    base: Arc<Mutex<String>>,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    async fn start(token: &str) -> (FakeServer, Receiver) {
        let r = Receiver {
            token: token.to_owned(),
            base: Arc::default(),
            got: Arc::default(),
        };
        let app = Router::new()
            .route("/status", post(receive))
            .route("/amd", post(receive))
            .with_state(r.clone());
        let server = FakeServer::start(app, 0).await.unwrap();
        *r.base.lock().unwrap() = server.http_url();
        (server, r)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.lock().unwrap())
    }

    fn for_call(&self, sid: &str, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path == path && g.params.get("CallSid").map(String::as_str) == Some(sid))
            .cloned()
            .collect()
    }

    fn statuses(&self, sid: &str) -> Vec<String> {
        self.for_call(sid, "/status")
            .iter()
            .map(|g| g.params["CallStatus"].clone())
            .collect()
    }
}

async fn receive(
    State(r): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap();
    let url = r.url(uri.path());
    let sig = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let signed = signature::verify(&r.token, &url, &params, sig);
    r.got.lock().unwrap().push(Got {
        path: uri.path().to_owned(),
        params: params.into_iter().collect(),
        signed,
        at: Instant::now(),
    });
    StatusCode::NO_CONTENT
}

/// The real server, checking Twilio signatures with `token`, binding streams with tokens.
async fn voxbridge(token: &str) -> Server {
    let mut config = Config::from_toml_str("[server]\nlisten = \"127.0.0.1:0\"").unwrap();
    config.security.public_scheme = "http".into();
    config.security.stream_token = true;
    let token = token.to_owned();
    let env = move |var: &str| (var == "TWILIO_AUTH_TOKEN").then(|| token.clone());
    let services = CallServices::from_config(&config, env).await.unwrap();
    Server::bind_with(config, services).await.unwrap()
}

async fn fake(tweak: impl FnOnce(&mut FakeTwilioConfig)) -> FakeTwilio {
    let mut c = FakeTwilioConfig::default();
    tweak(&mut c);
    FakeTwilio::start(c).await.unwrap()
}

fn voice_url(server: &Server) -> String {
    format!("http://{}/twilio/voice", server.local_addr())
}

fn outbound(to: &str, server: &Server, receiver: &Receiver) -> CreateCall {
    let mut c = CreateCall::new(to, FROM, CallAnswer::Url(voice_url(server)));
    c.status_callback = Some(receiver.url("/status"));
    c.status_callback_events = CallEvent::ALL.to_vec();
    c
}

#[tokio::test]
async fn a_human_talks_to_the_echo_agent_and_hangs_up() {
    let twilio = fake(|_| {}).await;
    let server = voxbridge(twilio.auth_token()).await;
    let mut summaries = Summaries::of(&server);
    let (_rx_server, receiver) = Receiver::start(twilio.auth_token()).await;
    let to = "+15550001111";
    let lines = ["hello there", "how are you today"];
    twilio.script(to, [Callee::Human(Human::saying(&lines))]);

    let rest = twilio.client().unwrap();
    let call = rest
        .create_call(&outbound(to, &server, &receiver))
        .await
        .unwrap();
    assert_eq!(call.status, CallStatus::Queued);
    let ended = twilio
        .wait_ended(&call.sid, Duration::from_secs(60))
        .await
        .expect("call ended");
    assert_eq!(
        (ended.status, ended.ended_by),
        ("completed", EndedBy::Callee)
    );

    // The TwiML came from the server, fetched with a valid signature (else 403).
    let voice = twilio
        .observed
        .callbacks_for(&call.sid, CallbackKind::Voice);
    assert_eq!(voice.len(), 1);
    assert_eq!(voice[0].response, Ok(200));
    assert_eq!(voice[0].param("Direction"), Some("outbound-api"));
    assert_eq!(voice[0].param("CallStatus"), Some("in-progress"));

    // The stream carried the call's parameters; the callee heard each line echoed back.
    let leg = ended.stream.as_ref().expect("stream leg");
    let params: HashMap<_, _> = leg.custom_parameters.iter().cloned().collect();
    assert_eq!(params["CallSid"], call.sid);
    assert_eq!((params["From"].as_str(), params["To"].as_str()), (FROM, to));
    assert!(params.contains_key("token"), "{params:?}");
    let report = leg.report.as_ref().expect("report");
    println!("{report}");
    assert_eq!(report.timeouts, 0, "{report}");
    assert_eq!(report.response_latencies_ms.len(), 2, "{report}");
    let heard = decode(&report.heard);
    for line in lines {
        let said = decode(&speech(line));
        let (_, corr) = best_alignment(trim_silence(&said), &heard);
        assert!(corr > 0.9, "{line:?} echoed with correlation {corr:.3}");
    }
    let summary = summaries.get(&call.sid).await;
    assert_eq!(summary.turns, 2);
    assert_eq!(summary.end_reason.as_str(), "stop");

    // Status callbacks: signed, in order, numbered, the last with the duration.
    let got = receiver.for_call(&call.sid, "/status");
    assert_eq!(
        receiver.statuses(&call.sid),
        ["initiated", "ringing", "in-progress", "completed"]
    );
    for (i, g) in got.iter().enumerate() {
        assert!(g.signed, "callback {i} not signed right");
        assert_eq!(g.params["SequenceNumber"], i.to_string());
        assert_eq!(g.params["Direction"], "outbound-api");
        assert_eq!(g.params["AccountSid"], twilio.account_sid());
        assert!(g.params["Timestamp"].ends_with("+0000"));
    }
    let secs: u64 = got[3].params["CallDuration"].parse().unwrap();
    assert!(secs >= 2 && secs == ended.duration_secs(), "{secs}");
    let fetched = rest.fetch_call(&call.sid).await.unwrap();
    assert_eq!(fetched.status, CallStatus::Completed);
    assert_eq!(fetched.duration_secs(), Some(secs));
}

#[tokio::test]
async fn busy_no_answer_and_failed_lines_then_an_answer_on_retry() {
    let twilio = fake(|_| {}).await;
    let server = voxbridge(twilio.auth_token()).await;
    let (_rx_server, receiver) = Receiver::start(twilio.auth_token()).await;
    let (retry, busy, broken) = ("+15550002001", "+15550002002", "+15550002003");
    twilio.script(retry, [Callee::NoAnswer, Callee::human(1)]);
    twilio.script(busy, [Callee::Busy]);
    twilio.script(broken, [Callee::Fail]);
    let rest = twilio.client().unwrap();
    let mut sids = Vec::new();
    for to in [retry, busy, broken, retry] {
        let mut c = outbound(to, &server, &receiver);
        c.timeout_secs = Some(1);
        sids.push(rest.create_call(&c).await.unwrap().sid);
    }
    let calls = twilio.wait_calls(4, Duration::from_secs(60)).await;
    assert_eq!(calls.len(), 4);
    let expect = [
        (
            retry,
            1,
            "no_answer",
            "no-answer",
            vec!["initiated", "ringing", "no-answer"],
        ),
        (
            busy,
            1,
            "busy",
            "busy",
            vec!["initiated", "ringing", "busy"],
        ),
        (broken, 1, "fail", "failed", vec!["initiated", "failed"]),
        (
            retry,
            2,
            "human",
            "completed",
            vec!["initiated", "ringing", "in-progress", "completed"],
        ),
    ];
    for (sid, (to, attempt, callee, status, callbacks)) in sids.iter().zip(expect) {
        let c = twilio
            .wait_ended(sid, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(
            (c.to.as_str(), c.attempt, c.callee, c.status),
            (to, attempt, callee, status)
        );
        assert_eq!(receiver.statuses(sid), callbacks, "{to} attempt {attempt}");
        let last = receiver.for_call(sid, "/status").pop().unwrap();
        assert!(last.signed);
        if status != "completed" {
            assert_eq!(last.params["CallDuration"], "0");
            assert!(last.params.contains_key("SipResponseCode"));
            assert!(c.stream.is_none());
        }
    }
    // The no-answer rang for the Timeout (1 s) before giving up.
    let na = &calls
        .iter()
        .find(|c| c.status == "no-answer")
        .unwrap()
        .times;
    let rang = na.ended.duration_since(na.dialed.unwrap());
    assert!(rang >= Duration::from_millis(950), "rang {rang:?}");
    // Default 1 CPS: four dials at least a second apart.
    assert!(twilio.observed.max_dials_per(Duration::from_secs(1)) <= 1);
}

#[tokio::test]
async fn voicemail_with_detect_message_end_and_async_amd() {
    let twilio = fake(|_| {}).await;
    let server = voxbridge(twilio.auth_token()).await;
    let (_rx_server, receiver) = Receiver::start(twilio.auth_token()).await;
    let (vm, person) = ("+15550003001", "+15550003002");
    let machine = Machine {
        greeting: speech("please leave a message after the tone"),
        record_tail: Duration::from_millis(800),
        ..Machine::default()
    };
    let greeting_and_beep_ms = (machine.greeting.len().div_ceil(160) * 20 + 500) as u64;
    twilio.script(vm, [Callee::Machine(machine.clone())]);
    twilio.script(person, [Callee::human(1)]);
    let rest = twilio.client().unwrap();

    let mut c = outbound(vm, &server, &receiver);
    c.machine_detection = Some(MachineDetection::DetectMessageEnd);
    c.async_amd = true;
    c.async_amd_status_callback = Some(receiver.url("/amd"));
    let call = rest.create_call(&c).await.unwrap();
    let ended = twilio
        .wait_ended(&call.sid, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(ended.answered_by, Some("machine_end_beep"));

    // The verdict arrived once, signed, after the beep had been streamed.
    let amd = receiver.for_call(&call.sid, "/amd");
    assert_eq!(amd.len(), 1);
    assert!(amd[0].signed);
    assert_eq!(amd[0].params["AnsweredBy"], "machine_end_beep");
    let answered = ended.times.answered.unwrap();
    assert!(amd[0].at >= answered + Duration::from_millis(greeting_and_beep_ms));

    // The box recorded after the beep: the echo agent waited for the greeting to end, then
    // played it back, all of it after the beep.
    let v = ended.voicemail.as_ref().expect("voicemail");
    println!(
        "beep ended at {} ms; AMD verdict {} ms after answer; {} ms voiced before the beep, {} ms after",
        v.beep_end_ms,
        amd[0].at.duration_since(answered).as_millis(),
        v.voiced_before_beep_ms,
        v.message_voiced_ms
    );
    assert!(
        v.beep_end_ms.abs_diff(greeting_and_beep_ms) <= 40,
        "{}",
        v.beep_end_ms
    );
    assert_eq!(v.voiced_before_beep_ms, 0);
    assert!(v.message_voiced_ms > 1000, "{}", v.message_voiced_ms);
    let greeting = decode(&machine.greeting);
    let (_, corr) = best_alignment(trim_silence(&greeting), &decode(&v.message));
    assert!(
        corr > 0.9,
        "message correlates {corr:.3} with the echoed greeting"
    );
    let last = receiver.for_call(&call.sid, "/status").pop().unwrap();
    assert_eq!(last.params["AnsweredBy"], "machine_end_beep");

    // Sync AMD on a person: the TwiML fetch already says who answered.
    let mut c = outbound(person, &server, &receiver);
    c.machine_detection = Some(MachineDetection::Enable);
    let call = rest.create_call(&c).await.unwrap();
    let ended = twilio
        .wait_ended(&call.sid, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(ended.answered_by, Some("human"));
    let voice = twilio
        .observed
        .callbacks_for(&call.sid, CallbackKind::Voice);
    assert_eq!(voice[0].param("AnsweredBy"), Some("human"));
    assert!(receiver.for_call(&call.sid, "/amd").is_empty());
    assert_eq!(
        ended
            .stream
            .unwrap()
            .report
            .unwrap()
            .response_latencies_ms
            .len(),
        1
    );
}

#[tokio::test]
async fn a_rest_hang_up_ends_the_media_leg_and_signatures_are_enforced() {
    let twilio = fake(|_| {}).await;
    let server = voxbridge(twilio.auth_token()).await;
    let mut summaries = Summaries::of(&server);
    let (_rx_server, receiver) = Receiver::start(twilio.auth_token()).await;
    let to = "+15550004001";
    twilio.script(to, [Callee::human(20)]);
    let rest = twilio.client().unwrap();
    let call = rest
        .create_call(&outbound(to, &server, &receiver))
        .await
        .unwrap();
    // Once answered, give it time for a turn or two (a line, the end of turn, the echo), then
    // hang up from the API.
    let deadline = Instant::now() + Duration::from_secs(10);
    while twilio.status_of(&call.sid) != Some("in-progress") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        rest.fetch_call(&call.sid).await.unwrap().status,
        CallStatus::InProgress
    );
    rest.hang_up(&call.sid).await.unwrap();
    let ended = twilio
        .wait_ended(&call.sid, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((ended.status, ended.ended_by), ("completed", EndedBy::Api));
    let report = ended.stream.unwrap().report.unwrap();
    let replies = report.response_latencies_ms.len();
    assert!(
        (1..20).contains(&replies),
        "{replies} replies before the hang-up"
    );
    assert!(
        report.duration < Duration::from_secs(15),
        "{:?}",
        report.duration
    );
    let summary = summaries.get(&call.sid).await;
    assert_eq!(summary.end_reason.as_str(), "stop");
    assert_eq!(
        receiver.statuses(&call.sid).last().map(String::as_str),
        Some("completed")
    );

    // A server with another auth token refuses the fake's webhook: Twilio's application error.
    let strict = voxbridge("a-different-token").await;
    let call = rest
        .create_call(&outbound(to, &strict, &receiver))
        .await
        .unwrap();
    let ended = twilio
        .wait_ended(&call.sid, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(ended.ended_by, EndedBy::AppError);
    let voice = twilio
        .observed
        .callbacks_for(&call.sid, CallbackKind::Voice);
    assert_eq!(voice[0].response, Ok(403));
}
