//! Shared helpers for the dialer tests: the real server dialling through the fake Twilio
//! (which calls back into it over 127.0.0.1), and a small REST client for `/api`.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::Value;
use voxbridge::call::services::CallServices;
use voxbridge::config::Config;
use voxbridge::fakes::twilio::{Callee, FakeTwilio, FakeTwilioConfig};
use voxbridge::server::Server;

pub const CALLER_ID: &str = "+15550009999";

pub async fn fake_twilio(cps: f64) -> FakeTwilio {
    FakeTwilio::start(FakeTwilioConfig {
        cps,
        default_callee: Callee::human(1),
        ..FakeTwilioConfig::default()
    })
    .await
    .unwrap()
}

/// A fresh SQLite URL under the temp dir.
pub fn sqlite_url(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "voxbridge-dialer-{tag}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    format!("sqlite://{}/db.sqlite", dir.display())
}

/// The real server with records in `store_url`, Twilio REST at the fake, fast dialer ticks.
pub async fn server(
    twilio: &FakeTwilio,
    store_url: &str,
    tweak: impl FnOnce(&mut Config),
) -> Server {
    let mut config = Config::from_toml_str("[server]\nlisten = \"127.0.0.1:0\"").unwrap();
    config.security.public_scheme = "http".into();
    config.store.url = store_url.to_owned();
    config.recording.enabled = false;
    config.twilio.api_base_url = twilio.base_url();
    config.dialer.tick_ms = 50;
    config.dialer.settle_ms = 500;
    config.dialer.reconcile_secs = 2;
    config.dialer.ring_timeout_secs = 5;
    config.dialer.caller_id = CALLER_ID.into();
    tweak(&mut config);
    let (sid, token) = (
        twilio.account_sid().to_owned(),
        twilio.auth_token().to_owned(),
    );
    let env = move |var: &str| match var {
        "TWILIO_ACCOUNT_SID" => Some(sid.clone()),
        "TWILIO_AUTH_TOKEN" => Some(token.clone()),
        _ => None,
    };
    let services = CallServices::from_config(&config, env).await.unwrap();
    Server::bind_with(config, services).await.unwrap()
}

/// `/api` on a server, as a loopback client (no token configured).
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(server: &Server) -> Self {
        Self {
            base: format!("http://{}", server.local_addr()),
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn text(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_csv(&self, path: &str, csv: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "text/csv")
            .body(csv.to_owned())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Poll the campaign until it is in `state` (at most `timeout`); its last progress.
    pub async fn wait_state(&self, id: &str, state: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, c) = self.get(&format!("/api/campaigns/{id}")).await;
            if c["state"] == state || Instant::now() > deadline {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A calling window open now in UTC (an hour back to two ahead), closed twelve hours away.
pub fn window_now() -> Value {
    let now = chrono::Utc::now();
    let f = |t: chrono::DateTime<chrono::Utc>| t.format("%H:%M").to_string();
    serde_json::json!({
        "start": f(now - chrono::Duration::hours(1)),
        "end": f(now + chrono::Duration::hours(2)),
    })
}
