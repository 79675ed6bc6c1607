//! Campaigns end to end: the real server dials through the fake Twilio REST API, which places
//! each call back into the server (TwiML webhook, media stream with `sim`, signed status and
//! AMD callbacks). A mixed 20-contact campaign runs to completion; pause stops dialling at once.

mod dialer_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dialer_support::*;
use serde_json::{Value, json};
use voxbridge::fakes::twilio::{Callee, EndedCall};

const VOICEMAIL: &str = "Hi, this is Acme calling about your order. Please call us back.";

fn number(i: usize) -> String {
    format!("+1555010{i:04}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_campaign_of_20_contacts_runs_to_completion() {
    let twilio = fake_twilio(20.0).await;
    let server = server(&twilio, &sqlite_url("mixed"), |_| {}).await;
    let api = Api::new(&server);

    // 0–10 humans, 11–12 busy, 13–14 no answer then a human, 15–16 voicemail boxes,
    // 17 a failing line, 18 on the do-not-call list, 19 outside its calling window.
    for i in [11, 12] {
        twilio.script(&number(i), [Callee::Busy]);
    }
    for i in [13, 14] {
        twilio.script(&number(i), [Callee::NoAnswer, Callee::human(1)]);
    }
    for i in [15, 16] {
        twilio.script(&number(i), [Callee::machine()]);
    }
    twilio.script(&number(17), [Callee::Fail]);
    let (s, _) = api.post("/api/dnc", json!({"phone": number(18)})).await;
    assert_eq!(s, 201);

    let retry = |max: u32| json!({"delay_secs": 1, "max_attempts": max});
    let (s, campaign) = api
        .post(
            "/api/campaigns",
            json!({
                "name": "mixed", "caller_id": CALLER_ID, "window": window_now(),
                "timezone": "UTC", "max_concurrent": 3, "cps": 2.0,
                "retry": {"no_answer": retry(2), "busy": retry(2), "failed": retry(2), "machine": retry(1)},
                "voicemail": "leave_message", "voicemail_message": VOICEMAIL,
                "end_at": (chrono::Utc::now() + chrono::Duration::minutes(10)).to_rfc3339(),
            }),
        )
        .await;
    assert_eq!(s, 201, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();
    assert_eq!(campaign["state"], "draft");

    let mut csv = String::from("phone,name,timezone,plan\n");
    for i in 0..20 {
        let tz = if i == 19 { "Etc/GMT-12" } else { "" };
        csv.push_str(&format!("{},Contact {i},{tz},plan-{i}\n", number(i)));
        if i == 9 {
            csv.push_str("12345,Not a number,,x\n"); // line 12
        }
    }
    let (s, upload) = api
        .post_csv(&format!("/api/campaigns/{id}/contacts"), &csv)
        .await;
    assert_eq!(s, 200, "{upload}");
    assert_eq!(upload["added"], 20);
    assert_eq!(upload["rejected"].as_array().unwrap().len(), 1);
    assert_eq!(upload["rejected"][0]["line"], 12);

    let started = Instant::now();
    let (s, c) = api
        .post(&format!("/api/campaigns/{id}/start"), json!({}))
        .await;
    assert_eq!((s, c["state"].as_str()), (200, Some("running")), "{c}");
    let done = api
        .wait_state(&id, "completed", Duration::from_secs(150))
        .await;
    assert_eq!(done["state"], "completed", "not completed in time: {done}");
    println!("campaign completed in {:?}: {done}", started.elapsed());

    // Every contact ends as the policy says.
    let (_, contacts) = api
        .get(&format!("/api/campaigns/{id}/contacts?limit=100"))
        .await;
    let contacts = contacts.as_array().unwrap().clone();
    assert_eq!(contacts.len(), 20);
    let by_phone: HashMap<String, Value> = contacts
        .iter()
        .map(|c| (c["phone"].as_str().unwrap().to_owned(), c.clone()))
        .collect();
    let expect = |i: usize| -> (&str, u64) {
        match i {
            11 | 12 => ("busy", 2),
            13 | 14 => ("answered", 2),
            15 | 16 => ("voicemail_left", 1),
            17 => ("failed", 2),
            18 => ("do_not_call", 0),
            19 => ("expired", 0),
            _ => ("answered", 1),
        }
    };
    for i in 0..20 {
        let c = &by_phone[&number(i)];
        let (outcome, attempts) = expect(i);
        assert_eq!(c["state"], "done", "{c}");
        assert_eq!(c["outcome"], outcome, "contact {i}: {c}");
        assert_eq!(c["attempts"], attempts, "contact {i}: {c}");
        assert_eq!(
            c["history"].as_array().unwrap().len() as u64,
            attempts,
            "{c}"
        );
    }

    // The fake saw exactly those dials, never two at once to one number.
    let calls: Vec<EndedCall> = twilio.wait_calls(23, Duration::from_secs(10)).await;
    assert_eq!(
        calls.len(),
        23,
        "11 humans, 2×2 busy, 2×2 no-answer then human, 2 machines, 2 failed"
    );
    let mut per_number: HashMap<&str, Vec<&EndedCall>> = HashMap::new();
    for c in &calls {
        per_number.entry(c.to.as_str()).or_default().push(c);
    }
    for i in 0..20 {
        let dials = per_number.get(number(i).as_str()).map_or(0, Vec::len) as u64;
        assert_eq!(dials, expect(i).1, "dials to contact {i}");
    }
    for dials in per_number.values_mut() {
        dials.sort_by_key(|c| c.times.created);
        for pair in dials.windows(2) {
            assert!(
                pair[0].times.ended <= pair[1].times.created,
                "overlapping dials to {}",
                pair[0].to
            );
        }
    }

    // Pacing: claims in the database are at least 1/cps apart; on the wire (with scheduling
    // jitter), never more than 2 creates within 0.9 s; never more than 3 calls open at once.
    let mut claimed: Vec<chrono::DateTime<chrono::Utc>> = contacts
        .iter()
        .flat_map(|c| c["history"].as_array().unwrap().clone())
        .map(|a| a["started_at"].as_str().unwrap().parse().unwrap())
        .collect();
    claimed.sort();
    for pair in claimed.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= chrono::Duration::milliseconds(500),
            "claims {gap:?} apart"
        );
    }
    let creates: Vec<Instant> = twilio
        .observed
        .requests
        .snapshot()
        .into_iter()
        .filter(|r| r.is_create())
        .map(|r| r.at)
        .collect();
    assert_eq!(creates.len(), 23);
    for w in creates.windows(3) {
        assert!(
            w[2] - w[0] >= Duration::from_millis(900),
            "3 creates in {:?}",
            w[2] - w[0]
        );
    }
    let peak = twilio
        .observed
        .lifecycle
        .snapshot()
        .iter()
        .map(|e| e.active)
        .max()
        .unwrap();
    assert!(peak <= 3, "{peak} calls open at once");

    // Humans had a conversation, in a record of the outbound call with its context.
    for c in calls.iter().filter(|c| c.callee == "human") {
        let (s, record) = api.get(&format!("/api/calls/{}", c.call_sid)).await;
        assert_eq!(s, 200, "{record}");
        assert_eq!(record["direction"], "outbound");
        assert_eq!(record["context"]["campaign_id"], id.as_str());
        let turns = record["events"]["turns"].as_array().unwrap();
        assert!(turns.len() >= 2, "{}: {turns:?}", c.call_sid);
        let leg = c.stream.as_ref().expect("stream");
        let param = |k: &str| {
            leg.custom_parameters
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(param("direction"), Some("outbound"));
        assert!(param("plan").is_some_and(|p| p.starts_with("plan-")));
    }
    // Voicemail boxes: the message was said after the beep (AMD's machine_end_beep).
    for c in calls.iter().filter(|c| c.callee == "machine") {
        assert_eq!(c.answered_by, Some("machine_end_beep"), "{c:?}");
        let stream = c.verbs.iter().position(|v| v.starts_with("Stream:"));
        let said = c
            .verbs
            .iter()
            .position(|v| v == &format!("Say:{VOICEMAIL}"));
        assert!(
            matches!((stream, said), (Some(a), Some(b)) if a < b),
            "{:?}",
            c.verbs
        );
    }

    // Results export.
    let (s, csv) = api.text(&format!("/api/campaigns/{id}/results.csv")).await;
    assert_eq!(s, 200);
    assert_eq!(csv.lines().count(), 21, "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.starts_with(&format!("21,{},Contact 18,done,do_not_call,0", number(18)))),
        "{csv}"
    );
    let (_, progress) = api.get(&format!("/api/campaigns/{id}")).await;
    assert_eq!(progress["by_outcome"]["answered"], 13);
    assert_eq!(progress["in_progress"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_stops_new_dials_at_once_and_resume_continues() {
    let twilio = fake_twilio(20.0).await;
    let server = server(&twilio, &sqlite_url("pause"), |_| {}).await;
    let api = Api::new(&server);
    let (_, campaign) = api
        .post(
            "/api/campaigns",
            json!({"name": "pause", "caller_id": CALLER_ID, "window": window_now(),
                   "max_concurrent": 2, "cps": 4.0}),
        )
        .await;
    let id = campaign["id"].as_str().unwrap().to_owned();
    let contacts: Vec<Value> = (0..8).map(|i| json!({"phone": number(100 + i)})).collect();
    let (s, up) = api
        .post(
            &format!("/api/campaigns/{id}/contacts"),
            Value::Array(contacts),
        )
        .await;
    assert_eq!((s, up["added"].as_u64()), (200, Some(8)), "{up}");
    api.post(&format!("/api/campaigns/{id}/start"), json!({}))
        .await;
    let creates = || {
        twilio
            .observed
            .requests
            .snapshot()
            .iter()
            .filter(|r| r.is_create())
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while creates() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, paused) = api
        .post(&format!("/api/campaigns/{id}/pause"), json!({}))
        .await;
    assert_eq!((s, paused["state"].as_str()), (200, Some("paused")));
    let at_pause = creates();
    assert!((2..8).contains(&at_pause), "{at_pause}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        creates(),
        at_pause,
        "a dial after the pause was acknowledged"
    );
    let (_, p) = api.get(&format!("/api/campaigns/{id}")).await;
    assert_eq!(p["state"], "paused");
    assert!(p["by_state"]["pending"].as_u64().unwrap() >= 1, "{p}");

    let (s, _) = api
        .post(&format!("/api/campaigns/{id}/resume"), json!({}))
        .await;
    assert_eq!(s, 200);
    let done = api
        .wait_state(&id, "completed", Duration::from_secs(60))
        .await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["by_outcome"]["answered"], 8, "{done}");
    assert_eq!(creates(), 8, "each contact dialled once");
    // A completed campaign cannot be resumed.
    let (s, p) = api
        .post(&format!("/api/campaigns/{id}/resume"), json!({}))
        .await;
    assert_eq!(s, 409, "{p}");
}
