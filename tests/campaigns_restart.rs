//! Campaigns that outlive a server: killed (SIGKILL) mid-campaign and restarted on the same
//! database, the campaign resumes with no contact lost or dialled twice; two servers sharing
//! one Postgres run one campaign and dial each contact exactly once (claims in the database);
//! a dial whose instance died after Twilio accepted it, before the sid was stored, is found at
//! Twilio and adopted, not dialled again.

mod dialer_support;
mod store_support;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dialer_support::*;
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use voxbridge::dialer::DialerStore;
use voxbridge::dialer::model::CampaignState;
use voxbridge::dialer::store::Claim;
use voxbridge::fakes::twilio::{Callee, FakeTwilio};
use voxbridge::store::{Backend, SqlStore};
use voxbridge::twilio::rest::{CallAnswer, CreateCall};

fn number(i: usize) -> String {
    format!("+1555020{i:04}")
}

fn creates_per_number(twilio: &FakeTwilio) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for r in twilio.observed.requests.snapshot() {
        if r.is_create() && r.status == 201 {
            *n.entry(r.param("To").unwrap_or_default().to_owned())
                .or_insert(0) += 1;
        }
    }
    n
}

async fn campaign(api: &Api, contacts: usize, max_concurrent: u32, cps: f64) -> String {
    let (s, c) = api
        .post(
            "/api/campaigns",
            json!({"name": "restart", "caller_id": CALLER_ID, "window": window_now(),
                   "max_concurrent": max_concurrent, "cps": cps}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    let list: Vec<Value> = (0..contacts).map(|i| json!({"phone": number(i)})).collect();
    let (s, up) = api
        .post(&format!("/api/campaigns/{id}/contacts"), Value::Array(list))
        .await;
    assert_eq!(
        (s, up["added"].as_u64()),
        (200, Some(contacts as u64)),
        "{up}"
    );
    let (s, _) = api
        .post(&format!("/api/campaigns/{id}/start"), json!({}))
        .await;
    assert_eq!(s, 200);
    id
}

/// `voxbridge serve` as a child process on `port`, dialling through `twilio`.
fn serve(twilio: &FakeTwilio, store_url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_voxbridge"))
        .arg("serve")
        .env_remove("VOXBRIDGE_API_TOKENS")
        .env("VOXBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("VOXBRIDGE_SECURITY_PUBLIC_SCHEME", "http")
        .env("VOXBRIDGE_STORE_URL", store_url)
        .env("VOXBRIDGE_RECORDING_ENABLED", "false")
        .env("VOXBRIDGE_TWILIO_API_BASE_URL", twilio.base_url())
        .env("VOXBRIDGE_DIALER_TICK_MS", "50")
        .env("VOXBRIDGE_DIALER_SETTLE_MS", "500")
        .env("VOXBRIDGE_DIALER_RECONCILE_SECS", "2")
        .env("TWILIO_ACCOUNT_SID", twilio.account_sid())
        .env("TWILIO_AUTH_TOKEN", twilio.auth_token())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn voxbridge serve")
}

async fn wait_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server at {base} did not come up");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_mid_campaign_and_restarted_no_contact_is_lost_or_dialled_twice() {
    let twilio = fake_twilio(20.0).await;
    let url = sqlite_url("restart");
    let port = free_port();
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
    };
    let mut first = serve(&twilio, &url, port);
    wait_healthy(&api.base).await;
    let id = campaign(&api, 10, 2, 2.0).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while creates_per_number(&twilio).len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let dialled_before = creates_per_number(&twilio).len();
    assert!(
        (4..10).contains(&dialled_before),
        "{dialled_before} dialled before the kill"
    );

    let mut second = serve(&twilio, &url, port);
    wait_healthy(&api.base).await;
    let done = api
        .wait_state(&id, "completed", Duration::from_secs(90))
        .await;
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["contacts"], 10);
    assert_eq!(done["by_outcome"]["answered"], 10, "{done}");
    let per_number = creates_per_number(&twilio);
    assert_eq!(per_number.len(), 10);
    assert!(per_number.values().all(|n| *n == 1), "{per_number:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_postgres_dial_each_contact_exactly_once() {
    let Some(admin) = store_support::postgres_url("two_servers_on_one_postgres") else {
        return;
    };
    let url = store_support::fresh_postgres_db(&admin, "dialer_two_servers").await;
    let twilio = fake_twilio(50.0).await;
    let a = server(&twilio, &url, |_| {}).await;
    let b = server(&twilio, &url, |_| {}).await;
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    let id = campaign(&api_a, 16, 6, 10.0).await;
    let done = api_b
        .wait_state(&id, "completed", Duration::from_secs(90))
        .await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["by_outcome"]["answered"], 16, "{done}");
    let per_number = creates_per_number(&twilio);
    assert_eq!(per_number.len(), 16);
    assert!(per_number.values().all(|n| *n == 1), "{per_number:?}");

    // Both instances claimed contacts.
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT instance, COUNT(*) AS n FROM attempts GROUP BY instance")
        .fetch_all(&mut db)
        .await
        .unwrap();
    let by_instance: Vec<i64> = rows.iter().map(|r| r.get::<i64, _>("n")).collect();
    assert_eq!(by_instance.iter().sum::<i64>(), 16);
    assert_eq!(
        by_instance.len(),
        2,
        "one instance did all the dialling: {by_instance:?}"
    );
}

/// The instance that claimed two contacts died: Twilio had accepted the call to the first
/// (which rang busy while no server was up, so no callback reached anyone), and the second was
/// never placed. The restarted server finds the first call at Twilio and adopts it (busy, the
/// retry policy's delay before its next dial), and undoes the second claim and dials it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dial_lost_with_its_instance_is_adopted_from_twilio_not_dialled_again() {
    let twilio = fake_twilio(20.0).await;
    let (placed, unplaced) = (number(1), number(2));
    twilio.script(&placed, [Callee::Busy]);
    let url = sqlite_url("lost-dial");

    // A first server creates the campaign (draft) and goes.
    let first = server(&twilio, &url, |_| {}).await;
    let api = Api::new(&first);
    let (s, c) = api
        .post(
            "/api/campaigns",
            json!({"name": "lost", "caller_id": CALLER_ID, "window": window_now(),
                   "max_concurrent": 4, "cps": 10.0}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    let list = json!([{"phone": placed}, {"phone": unplaced}]);
    let (s, _) = api
        .post(&format!("/api/campaigns/{id}/contacts"), list)
        .await;
    assert_eq!(s, 200);
    first.shutdown(Duration::from_secs(1)).await;

    // The dead instance: it claimed both contacts two minutes ago and placed one call.
    let sql = SqlStore::open(&store_support::store_config(url.clone()))
        .await
        .unwrap();
    let store = DialerStore::new(sql.pool().clone(), Backend::Sqlite);
    let now = chrono::Utc::now();
    store
        .set_state(&id, CampaignState::Running, now)
        .await
        .unwrap();
    for i in 0..2 {
        let at = now + chrono::Duration::seconds(i);
        assert!(matches!(
            store.claim(&id, "INdead", at).await.unwrap(),
            Claim::Dial(_)
        ));
    }
    // Two minutes ago: past the minute after which a claim with no call id is stale.
    sqlx::query("UPDATE attempts SET started_at_us = started_at_us - 120000000")
        .execute(sql.pool())
        .await
        .unwrap();
    let rest = twilio.client().unwrap();
    let lost = rest
        .create_call(&CreateCall::new(
            &placed,
            CALLER_ID,
            CallAnswer::Twiml("<Response><Hangup/></Response>".into()),
        ))
        .await
        .unwrap();
    let ended = twilio
        .wait_ended(&lost.sid, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(ended.status, "busy");
    drop(store);
    sql.pool().close().await;

    // The restarted server reconciles at start.
    let second = server(&twilio, &url, |_| {}).await;
    let api = Api::new(&second);
    let deadline = Instant::now() + Duration::from_secs(30);
    let contacts = loop {
        let (_, page) = api.get(&format!("/api/campaigns/{id}/contacts")).await;
        let items = page.as_array().cloned().unwrap_or_default();
        let settled = items.iter().any(|c| c["outcome"] == "answered")
            && items.iter().any(|c| c["history"][0]["outcome"] == "busy");
        if settled || Instant::now() > deadline {
            break items;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let of = |phone: &str| {
        contacts
            .iter()
            .find(|c| c["phone"] == phone)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let adopted = of(&placed);
    let history = adopted["history"].as_array().cloned().unwrap_or_default();
    assert_eq!(history.len(), 1, "{adopted}");
    assert_eq!(history[0]["call_sid"], lost.sid.as_str(), "{adopted}");
    assert_eq!(history[0]["outcome"], "busy", "{adopted}");
    assert_eq!(
        adopted["state"], "pending",
        "busy: retried later: {adopted}"
    );
    let redialled = of(&unplaced);
    assert_eq!(redialled["outcome"], "answered", "{redialled}");
    assert_eq!(
        redialled["attempts"], 1,
        "the undone claim is not an attempt: {redialled}"
    );
    let per_number = creates_per_number(&twilio);
    assert_eq!(per_number.get(&placed), Some(&1), "{per_number:?}");
    assert_eq!(per_number.get(&unplaced), Some(&1), "{per_number:?}");
    second.shutdown(Duration::from_secs(1)).await;
}
