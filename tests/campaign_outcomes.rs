//! Campaign contacts and the agent's verdict (issue 14), end to end: the real server dials
//! through the fake Twilio, which places each call back into it. A scripted agent profile (the
//! Deepgram fake hears the callee, espeak speaks) records `interested` for one contact and
//! opts the other out — whose number then is on the do-not-call list; a voicemail box gets the
//! agent profile's own message when the campaign gives none.

mod dialer_support;

use std::time::Duration;

use dialer_support::*;
use serde_json::{Value, json};
use voxbridge::call::services::CallServices;
use voxbridge::config::profiles::AgentProfile;
use voxbridge::config::{AgentKind, Config, SttProvider, TtsProvider};
use voxbridge::fakes::deepgram::FakeDeepgram;
use voxbridge::fakes::twilio::{Callee, FakeTwilio};
use voxbridge::server::Server;

const FLOW: &str = r#"
start = "ask"
[states.ask]
say = "Hello, would you like a quote?"
fallback = "Sorry, would you like a quote?"
[[states.ask.on]]
keywords = ["yes"]
to = "yes"
[[states.ask.on]]
keywords = ["stop calling", "remove me"]
to = "stop"
[states.yes]
say = "Great, someone will call you back. Goodbye."
outcome = "interested"
end = true
[states.stop]
say = "Understood, we will not call you again. Goodbye."
opt_out = true
"#;

fn number(i: usize) -> String {
    format!("+1555020{i:04}")
}

/// A running campaign of `contacts` (one per number, in order), its id.
async fn start_campaign(api: &Api, spec: Value, contacts: &[String]) -> String {
    let (s, campaign) = api.post("/api/campaigns", spec).await;
    assert_eq!(s, 201, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();
    let mut csv = String::from("phone,name\n");
    for (i, phone) in contacts.iter().enumerate() {
        csv.push_str(&format!("{phone},Contact {i}\n"));
    }
    let (s, upload) = api
        .post_csv(&format!("/api/campaigns/{id}/contacts"), &csv)
        .await;
    assert_eq!(
        (s, &upload["added"]),
        (200, &json!(contacts.len())),
        "{upload}"
    );
    let (s, c) = api
        .post(&format!("/api/campaigns/{id}/start"), json!({}))
        .await;
    assert_eq!(s, 200, "{c}");
    id
}

/// The campaign's contacts by phone, once it completed.
async fn finished_contacts(api: &Api, id: &str) -> Vec<Value> {
    let done = api
        .wait_state(id, "completed", Duration::from_secs(90))
        .await;
    assert_eq!(done["state"], "completed", "not completed in time: {done}");
    let (_, contacts) = api
        .get(&format!("/api/campaigns/{id}/contacts?limit=100"))
        .await;
    contacts.as_array().unwrap().clone()
}

/// The dialer's server with a scripted `survey` profile: Deepgram fake in, espeak out.
async fn survey_server(twilio: &FakeTwilio, deepgram: &FakeDeepgram, flow: &str) -> Server {
    let mut config = Config::from_toml_str("[server]\nlisten = \"127.0.0.1:0\"").unwrap();
    config.security.public_scheme = "http".into();
    config.store.url = sqlite_url("outcomes");
    config.recording.enabled = false;
    config.twilio.api_base_url = twilio.base_url();
    config.dialer.tick_ms = 50;
    config.dialer.settle_ms = 500;
    config.dialer.reconcile_secs = 2;
    config.dialer.ring_timeout_secs = 5;
    config.dialer.caller_id = CALLER_ID.into();
    config.stt.base_url = deepgram.url();
    let profile = AgentProfile {
        kind: Some(AgentKind::Scripted),
        flow_file: Some(flow.to_owned()),
        stt_provider: Some(SttProvider::Deepgram),
        tts_provider: Some(TtsProvider::Espeak),
        ..AgentProfile::default()
    };
    config.agents.insert("survey".into(), profile);
    let (sid, token) = (
        twilio.account_sid().to_owned(),
        twilio.auth_token().to_owned(),
    );
    let env = move |var: &str| match var {
        "TWILIO_ACCOUNT_SID" => Some(sid.clone()),
        "TWILIO_AUTH_TOKEN" => Some(token.clone()),
        "DEEPGRAM_API_KEY" => Some("dg-test-key".into()),
        _ => None,
    };
    let services = CallServices::from_config(&config, env).await.unwrap();
    Server::bind_with(config, services).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scripted_agent_sets_each_contacts_outcome_and_an_opt_out_lands_on_the_dnc_list() {
    let twilio = fake_twilio(5.0).await;
    let deepgram = FakeDeepgram::start("dg-test-key").await.unwrap();
    // One call at a time: the first callee says yes, the second asks to be left alone.
    deepgram.transcripts.push("Yes, that sounds good");
    deepgram.transcripts.push("Please stop calling me");
    let dir = std::env::temp_dir().join(format!("voxbridge-outcome-flow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let flow = dir.join("survey.toml");
    std::fs::write(&flow, FLOW).unwrap();
    let server = survey_server(&twilio, &deepgram, flow.to_str().unwrap()).await;
    let api = Api::new(&server);
    let (yes, no) = (number(1), number(2));
    let id = start_campaign(
        &api,
        json!({"name": "survey", "caller_id": CALLER_ID, "agent": "survey",
            "window": window_now(), "timezone": "UTC", "max_concurrent": 1, "cps": 5.0}),
        &[yes.clone(), no.clone()],
    )
    .await;
    let contacts = finished_contacts(&api, &id).await;
    let of = |phone: &str| {
        contacts
            .iter()
            .find(|c| c["phone"] == phone)
            .unwrap_or_else(|| panic!("no contact {phone}: {contacts:?}"))
            .clone()
    };
    let (c_yes, c_no) = (of(&yes), of(&no));
    assert_eq!(c_yes["outcome"], "answered", "{c_yes}");
    assert_eq!(
        c_yes["history"][0]["agent_outcome"], "interested",
        "{c_yes}"
    );
    assert_eq!(c_no["outcome"], "opted_out", "{c_no}");
    assert_eq!(c_no["history"][0]["agent_outcome"], "opted_out", "{c_no}");
    assert_eq!(c_no["history"][0]["outcome"], "opted_out", "{c_no}");

    // The opted-out number is on the do-not-call list; the interested one is not.
    let (s, dnc) = api.get("/api/dnc").await;
    assert_eq!(s, 200, "{dnc}");
    let listed: Vec<(&str, &str)> = dnc
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["phone"].as_str().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [(no.as_str(), "opt_out")]);

    // Both calls were ended by the agent after its last words, through Twilio.
    let calls = twilio.wait_calls(2, Duration::from_secs(10)).await;
    assert_eq!(calls.len(), 2, "{calls:?}");
    for c in &calls {
        assert_eq!(c.status, "completed", "{c:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voicemail_box_gets_the_agent_profiles_message_when_the_campaign_has_none() {
    const PROFILE_MESSAGE: &str = "Hi, this is the survey team. We will try again later.";
    let twilio = fake_twilio(5.0).await;
    let server = server(&twilio, &sqlite_url("vm-profile"), |c| {
        let profile = AgentProfile {
            voicemail_message: Some(PROFILE_MESSAGE.into()),
            ..AgentProfile::default()
        };
        c.agents.insert("vm".into(), profile);
        c.dialer.voicemail_message = "The server's generic message.".into();
    })
    .await;
    let api = Api::new(&server);
    let (with_profile, plain) = (number(11), number(12));
    twilio.script(&with_profile, [Callee::machine()]);
    twilio.script(&plain, [Callee::machine()]);
    let spec = |agent: Option<&str>| {
        let mut spec = json!({"name": "vm", "caller_id": CALLER_ID, "window": window_now(),
            "timezone": "UTC", "max_concurrent": 1, "cps": 5.0, "voicemail": "leave_message"});
        if let Some(a) = agent {
            spec["agent"] = json!(a);
        }
        spec
    };
    let a = start_campaign(&api, spec(Some("vm")), std::slice::from_ref(&with_profile)).await;
    let b = start_campaign(&api, spec(None), std::slice::from_ref(&plain)).await;
    for id in [&a, &b] {
        let contacts = finished_contacts(&api, id).await;
        assert_eq!(contacts[0]["outcome"], "voicemail_left", "{contacts:?}");
    }
    let calls = twilio.wait_calls(2, Duration::from_secs(10)).await;
    let said = |to: &str| -> Vec<String> {
        let call = calls.iter().find(|c| c.to == to).expect("call");
        call.verbs
            .iter()
            .filter_map(|v| v.strip_prefix("Say:").map(str::to_owned))
            .collect()
    };
    assert_eq!(said(&with_profile), [PROFILE_MESSAGE]);
    assert_eq!(said(&plain), ["The server's generic message."]);
}
