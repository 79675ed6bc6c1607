//! One outbound call: `POST /api/calls` answers with the call's id at once; the fake Twilio
//! dials, fetches the TwiML (the agent and variables arrive as stream parameters), talks to
//! the echo agent, and delivers every status callback twice; the record fills in (direction
//! outbound) and the duplicates, an unknown call's callback and an unsigned one change nothing.

mod dialer_support;

use std::time::{Duration, Instant};

use dialer_support::*;
use serde_json::json;
use voxbridge::fakes::twilio::{Callee, FakeTwilio, FakeTwilioConfig};
use voxbridge::twilio::signature;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_outbound_call_fills_in_its_record() {
    let twilio = FakeTwilio::start(FakeTwilioConfig {
        default_callee: Callee::human(1),
        duplicate_callbacks: true,
        ..FakeTwilioConfig::default()
    })
    .await
    .unwrap();
    let server = server(&twilio, &sqlite_url("single"), |_| {}).await;
    let api = Api::new(&server);

    // Bad input is a problem naming the field.
    let (s, p) = api.post("/api/calls", json!({"to": "0155"})).await;
    assert_eq!((s, p["parameter"].as_str()), (400, Some("to")), "{p}");
    let (s, p) = api
        .post(
            "/api/calls",
            json!({"to": "+15550300001", "variables": {"agent": "x"}}),
        )
        .await;
    assert_eq!(
        (s, p["parameter"].as_str()),
        (400, Some("variables")),
        "{p}"
    );

    let asked = Instant::now();
    let (s, placed) = api
        .post(
            "/api/calls",
            json!({"to": "+15550300001", "variables": {"order": "A-17"}}),
        )
        .await;
    assert_eq!(s, 201, "{placed}");
    assert!(asked.elapsed() < Duration::from_secs(3), "answered at once");
    let sid = placed["call_sid"].as_str().unwrap().to_owned();
    assert_eq!(placed["record"], format!("/api/calls/{sid}"));
    let (s, early) = api.get(&format!("/api/calls/{sid}")).await;
    assert_eq!(
        s, 200,
        "the record exists as soon as the call is placed: {early}"
    );
    assert_eq!(early["direction"], "outbound");

    let ended = twilio
        .wait_ended(&sid, Duration::from_secs(30))
        .await
        .expect("call ended");
    assert_eq!(ended.status, "completed");
    let leg = ended.stream.as_ref().expect("media stream");
    let param = |k: &str| {
        leg.custom_parameters
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(param("direction").as_deref(), Some("outbound"));
    assert_eq!(param("order").as_deref(), Some("A-17"));

    // Every status callback was delivered twice and accepted.
    let mine: Vec<_> = twilio
        .observed
        .callbacks
        .snapshot()
        .into_iter()
        .filter(|c| c.call_sid == sid && c.url.contains("/twilio/status?attempt_id="))
        .collect();
    let statuses: Vec<&str> = mine.iter().filter_map(|c| c.param("CallStatus")).collect();
    assert!(
        statuses.iter().filter(|s| **s == "completed").count() >= 2,
        "{statuses:?}"
    );
    assert!(
        mine.iter().all(|c| matches!(c.response, Ok(204))),
        "{mine:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let (_, r) = api.get(&format!("/api/calls/{sid}")).await;
        if r["status"] == "completed" && !r["events"]["turns"].as_array().unwrap().is_empty() {
            break r;
        }
        assert!(Instant::now() < deadline, "record not filled in: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(record["direction"], "outbound");
    assert_eq!(record["to"], "+15550300001");
    assert_eq!(record["from"], CALLER_ID);
    assert_eq!(record["context"]["custom_parameters"]["order"], "A-17");
    assert!(record["times"]["answered_at"].is_string() && record["times"]["ended_at"].is_string());

    // A late "ringing" for the finished call, an unknown call: accepted, nothing changes.
    let url = format!("http://{}/twilio/status", server.local_addr());
    let post = |params: Vec<(String, String)>, signed: bool| {
        let sig = signature::compute(twilio.auth_token(), &url, &params);
        let body = serde_urlencoded::to_string(&params).unwrap();
        let mut req = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if signed {
            req = req.header("X-Twilio-Signature", sig);
        }
        req.send()
    };
    let form = |sid: &str, status: &str| {
        vec![
            ("CallSid".to_owned(), sid.to_owned()),
            ("CallStatus".to_owned(), status.to_owned()),
        ]
    };
    assert_eq!(
        post(form(&sid, "ringing"), true).await.unwrap().status(),
        204
    );
    assert_eq!(
        post(form("CAunknown000", "completed"), true)
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        post(form(&sid, "busy"), false).await.unwrap().status(),
        403,
        "unsigned"
    );
    let (_, after) = api.get(&format!("/api/calls/{sid}")).await;
    assert_eq!(after["status"], "completed");
    assert_eq!(after["times"], record["times"]);
}
