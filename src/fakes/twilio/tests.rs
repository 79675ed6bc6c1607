//! The fake's REST behaviour through the production client: auth and validation answers,
//! CPS queueing, both concurrency caps, fetch / cancel / hang-up / redirect, and the TwiML
//! outcomes that need no media server (the media leg is tested in tests/twilio_fake.rs).

use std::time::Duration;

use super::*;
use crate::twilio::rest::{CallAnswer, CallStatus, CallUpdate, CreateCall, TwilioError};

const TO: &str = "+15550001111";
const FROM: &str = "+15550009999";

async fn fake(tweak: impl FnOnce(&mut FakeTwilioConfig)) -> FakeTwilio {
    let mut c = FakeTwilioConfig::default();
    tweak(&mut c);
    FakeTwilio::start(c).await.unwrap()
}

fn twiml_call(to: &str, twiml: &str) -> CreateCall {
    CreateCall::new(to, FROM, CallAnswer::Twiml(twiml.into()))
}

fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34
        && s.starts_with(prefix)
        && s[2..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[tokio::test]
async fn create_answers_like_twilio() {
    let f = fake(|c| c.default_callee = Callee::Fail).await;
    let rest = f.client().unwrap();
    let call = rest
        .create_call(&twiml_call(TO, "<Response><Hangup/></Response>"))
        .await
        .unwrap();
    assert!(is_sid(&call.sid, "CA"), "{}", call.sid);
    assert_eq!(call.status, CallStatus::Queued);
    assert_eq!((call.to.as_str(), call.from.as_str()), (TO, FROM));
    assert_eq!(call.direction, "outbound-api");
    assert_eq!(call.account_sid, f.account_sid());

    // Wrong credentials: 401 with Twilio's error JSON.
    let wrong = TwilioRest::new(&f.base_url(), f.account_sid(), Secret::new("nope")).unwrap();
    let e = wrong
        .create_call(&twiml_call(TO, "<Response/>"))
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.kind()), (Some(20003), "unauthorized"));
    assert!(!e.is_retryable());
    // Bad parameters: typed, with the code and Twilio's more_info link.
    let e = rest
        .create_call(&twiml_call("555-1111", "<Response/>"))
        .await
        .unwrap_err();
    match &e {
        TwilioError::Api(a) => {
            assert_eq!((a.status, a.code), (400, Some(21211)));
            assert_eq!(
                a.more_info.as_deref(),
                Some("https://www.twilio.com/docs/errors/21211")
            );
        }
        other => panic!("{other:?}"),
    }
    let e = rest
        .fetch_call("CA00000000000000000000000000000000")
        .await
        .unwrap_err();
    assert!(e.is_not_found());
    let seen = f.observed.creates();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen.iter().map(|r| r.status).collect::<Vec<_>>(),
        [201, 401, 400]
    );
    assert_eq!(seen[2].error_code, Some(21211));
    assert_eq!(
        seen[0].param("Twiml"),
        Some("<Response><Hangup/></Response>")
    );
    let ended = f
        .wait_ended(&call.sid, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((ended.status, ended.callee), ("failed", "fail"));
}

#[tokio::test]
async fn dials_are_queued_at_the_cps() {
    let f = fake(|c| {
        c.cps = 4.0;
        c.default_callee = Callee::Fail;
    })
    .await;
    let rest = f.client().unwrap();
    let started = Instant::now();
    for _ in 0..6 {
        let c = rest
            .create_call(&twiml_call(TO, "<Response/>"))
            .await
            .unwrap();
        assert_eq!(c.status, CallStatus::Queued);
    }
    // All six accepted at once: Twilio queues rather than refuses.
    assert!(started.elapsed() < Duration::from_millis(1000));
    let calls = f.wait_calls(6, Duration::from_secs(10)).await;
    assert_eq!(calls.len(), 6);
    let dials = f.observed.dial_times();
    assert_eq!(dials.len(), 6);
    for pair in dials.windows(2) {
        let gap = pair[1].saturating_duration_since(pair[0]);
        assert!(gap >= Duration::from_millis(249), "dials {gap:?} apart");
    }
    assert!(f.observed.max_dials_per(Duration::from_secs(1)) <= 4);
    assert!(calls.iter().all(|c| c.status == "failed"));
}

#[tokio::test]
async fn concurrency_caps_answer_429_20429() {
    let f = fake(|c| {
        c.max_active_calls = Some(2);
        c.cps = 0.0;
        c.default_callee = Callee::NoAnswer;
    })
    .await;
    let rest = f.client().unwrap();
    let mut ringing = Vec::new();
    for _ in 0..2 {
        ringing.push(
            rest.create_call(&twiml_call(TO, "<Response/>"))
                .await
                .unwrap(),
        );
    }
    let e = rest
        .create_call(&twiml_call(TO, "<Response/>"))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.code(), Some(20429));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    // Cancel the ringing calls; then there is room again.
    for c in &ringing {
        let r = rest.update_call(&c.sid, &CallUpdate::Cancel).await.unwrap();
        assert_eq!(r.sid, c.sid);
    }
    for c in &ringing {
        let ended = f.wait_ended(&c.sid, Duration::from_secs(5)).await.unwrap();
        assert_eq!((ended.status, ended.ended_by), ("canceled", EndedBy::Api));
    }
    assert_eq!(
        rest.fetch_call(&ringing[0].sid).await.unwrap().status,
        CallStatus::Canceled
    );
    let again = rest
        .create_call(&twiml_call(TO, "<Response/>"))
        .await
        .unwrap();
    rest.hang_up(&again.sid).await.unwrap();

    // In-flight requests: with each answer taking 300 ms, a second concurrent one is refused.
    let g = fake(|c| {
        c.max_concurrent_requests = Some(1);
        c.request_delay = Duration::from_millis(300);
        c.default_callee = Callee::Fail;
    })
    .await;
    let rest = g.client().unwrap();
    let call = twiml_call(TO, "<Response/>");
    let (a, b) = tokio::join!(rest.create_call(&call), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        rest.create_call(&call).await
    });
    assert!(a.is_ok(), "{a:?}");
    let e = b.unwrap_err();
    assert!(matches!(e, TwilioError::RateLimited { .. }), "{e:?}");
    assert_eq!(e.code(), Some(20429));
    let seen = g.observed.creates();
    assert!(
        seen.iter()
            .any(|r| r.status == 429 && r.error_code == Some(20429)),
        "{seen:?}"
    );
}

#[tokio::test]
async fn hang_up_redirect_and_twiml_outcomes() {
    let f = fake(|c| {
        c.cps = 0.0;
        c.default_callee = Callee::human(1);
    })
    .await;
    let rest = f.client().unwrap();
    // A call in progress running a long pause: redirected to <Dial>, the transfer is recorded.
    let c = rest
        .create_call(&twiml_call(
            TO,
            "<Response><Pause length=\"30\"/></Response>",
        ))
        .await
        .unwrap();
    wait_status(&f, &c.sid, "in-progress").await;
    rest.transfer(&c.sid, "+15557654321").await.unwrap();
    let ended = f.wait_ended(&c.sid, Duration::from_secs(5)).await.unwrap();
    assert_eq!(ended.transferred_to(), Some("+15557654321"));
    assert_eq!(
        (ended.status, ended.ended_by),
        ("completed", EndedBy::Twiml)
    );
    // Redirecting a call that is over is refused (21220); hanging it up again is fine.
    let e = rest
        .update_call(&c.sid, &CallUpdate::Twiml("<Response/>".into()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(21220));
    rest.hang_up(&c.sid).await.unwrap();
    rest.hang_up("CA0123456789abcdef0123456789abcdef")
        .await
        .unwrap();

    // Hung up by the API while in progress.
    let c = rest
        .create_call(&twiml_call(
            TO,
            "<Response><Pause length=\"30\"/></Response>",
        ))
        .await
        .unwrap();
    wait_status(&f, &c.sid, "in-progress").await;
    let r = rest
        .update_call(&c.sid, &CallUpdate::Complete)
        .await
        .unwrap();
    assert_eq!(r.sid, c.sid);
    let ended = f.wait_ended(&c.sid, Duration::from_secs(5)).await.unwrap();
    assert_eq!((ended.status, ended.ended_by), ("completed", EndedBy::Api));
    let fetched = rest.fetch_call(&c.sid).await.unwrap();
    assert_eq!(fetched.status, CallStatus::Completed);
    assert!(fetched.duration_secs().is_some() && fetched.end_time.is_some());

    // Broken TwiML and an unreachable Url: Twilio's application error, the call completes.
    let c = rest
        .create_call(&twiml_call(TO, "<Response><Say>oops</Response>"))
        .await
        .unwrap();
    let ended = f.wait_ended(&c.sid, Duration::from_secs(5)).await.unwrap();
    assert_eq!(ended.ended_by, EndedBy::AppError);
    assert!(
        ended.verbs[0].starts_with("Error:12100"),
        "{:?}",
        ended.verbs
    );
    let dead = format!("http://{}/voice", unused_addr());
    let c = rest
        .create_call(&CreateCall::new(TO, FROM, CallAnswer::Url(dead)))
        .await
        .unwrap();
    let ended = f.wait_ended(&c.sid, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (ended.status, ended.ended_by),
        ("completed", EndedBy::AppError)
    );
    let voice = f.observed.callbacks_for(&c.sid, CallbackKind::Voice);
    assert_eq!(voice.len(), 1);
    assert!(voice[0].response.is_err());
}

#[tokio::test]
async fn faults_reach_the_client_typed() {
    let f = fake(|c| c.default_callee = Callee::Fail).await;
    let rest = f.client().unwrap();
    let call = twiml_call(TO, "<Response/>");
    f.faults.push(crate::fakes::Fault::Status(503));
    let e = rest.create_call(&call).await.unwrap_err();
    assert!(e.is_retryable() && e.may_have_taken_effect(), "{e:?}");
    f.faults.push(crate::fakes::Fault::Malformed);
    let e = rest.create_call(&call).await.unwrap_err();
    assert!(matches!(e, TwilioError::Malformed(_)), "{e:?}");
    f.faults.push(crate::fakes::Fault::DisconnectAfter(1));
    let e = rest.create_call(&call).await.unwrap_err();
    assert!(
        matches!(e, TwilioError::Network(_) | TwilioError::Malformed(_)),
        "{e:?}"
    );
    // The malformed and cut answers still created their calls: reconciling finds them.
    let created: Vec<_> = f
        .observed
        .creates()
        .into_iter()
        .filter_map(|r| r.call_sid)
        .collect();
    assert_eq!(created.len(), 2);
    for sid in created {
        assert_eq!(rest.fetch_call(&sid).await.unwrap().sid, sid);
    }
}

#[tokio::test]
async fn list_filters_by_number_most_recent_first() {
    let f = fake(|c| c.default_callee = Callee::Fail).await;
    let rest = f.client().unwrap();
    let mut to_a = Vec::new();
    for to in [TO, "+15550002222", TO] {
        let call = rest
            .create_call(&twiml_call(to, "<Response><Hangup/></Response>"))
            .await
            .unwrap();
        if to == TO {
            to_a.push(call.sid);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let listed = rest.list_calls(TO, FROM, 50).await.unwrap();
    let sids: Vec<&str> = listed.iter().map(|c| c.sid.as_str()).collect();
    assert_eq!(
        sids,
        [to_a[1].as_str(), to_a[0].as_str()],
        "newest first, To only"
    );
    assert!(listed.iter().all(|c| c.to == TO && c.from == FROM));
    assert!(listed.iter().all(|c| c.date_created.is_some()));
    assert_eq!(rest.list_calls(TO, FROM, 1).await.unwrap().len(), 1);
    assert!(
        rest.list_calls(TO, "+15550003333", 50)
            .await
            .unwrap()
            .is_empty()
    );
    // Listing is not creating.
    assert_eq!(f.observed.creates().len(), 3);
}

async fn wait_status(f: &FakeTwilio, sid: &str, status: &str) {
    for _ in 0..100 {
        if f.status_of(sid) == Some(status) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{sid} never reached {status}: {:?}", f.status_of(sid));
}

fn unused_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
