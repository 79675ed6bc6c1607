//! Shared helpers for the record store tests: a fresh SQLite file or a fresh Postgres database
//! per test, and full sample records.
//!
//! Postgres comes from `scripts/test` (a throwaway cluster): `VOXBRIDGE_TEST_POSTGRES_URL`
//! names it. Without it a Postgres test is skipped with a loud message — unless under CI (`CI`
//! set) or `VOXBRIDGE_REQUIRE_POSTGRES=1`, where it fails.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use sqlx::Connection;
use voxbridge::config::{Config, StoreConfig};
use voxbridge::quality::alerts::AlertState;
use voxbridge::quality::report::{Band, Reason};
use voxbridge::store::events::{
    ActionEvent, ActionKind, AlertRecord, CallEvents, DtmfEvent, ProviderErrorEvent, Role,
    StageLatency, TimelinePoint, Turn,
};
use voxbridge::store::record::{CallQuality, CallStatus, Direction, RecordContext, Recording};
use voxbridge::store::{CallRecord, CallStore, SqlStore};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn store_config(url: String) -> StoreConfig {
    let mut cfg = Config::default().store;
    cfg.url = url;
    cfg
}

/// A directory of its own under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("voxbridge-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A store on a new SQLite file (its directory is created by the store itself).
pub async fn sqlite() -> Arc<dyn CallStore> {
    let dir = temp_dir("sqlite");
    let url = format!("sqlite://{}/sub/records.db", dir.display());
    Arc::new(
        SqlStore::open(&store_config(url))
            .await
            .expect("open sqlite"),
    )
}

/// The throwaway cluster's URL, or `None` (skip, loudly) — a failure under
/// `VOXBRIDGE_REQUIRE_POSTGRES=1`.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("VOXBRIDGE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let required = std::env::var("VOXBRIDGE_REQUIRE_POSTGRES").as_deref() == Ok("1")
                || std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            if required {
                panic!(
                    "{test}: Postgres is required here (CI or VOXBRIDGE_REQUIRE_POSTGRES=1) but \
                     VOXBRIDGE_TEST_POSTGRES_URL is not set (run scripts/test, which starts a \
                     throwaway Postgres)"
                );
            }
            eprintln!(
                "\n!!!!! SKIPPED {test}: no Postgres (VOXBRIDGE_TEST_POSTGRES_URL is not set). \
                 Run scripts/test to include the Postgres tests. !!!!!\n"
            );
            None
        }
    }
}

/// A fresh database on the throwaway cluster; its URL.
pub async fn fresh_postgres_db(admin_url: &str, test: &str) -> String {
    let name = format!(
        "vbtest_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        test.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    )
    .to_lowercase();
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("{test}: cannot reach Postgres at {admin_url}: {e}"));
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await
        .expect("drop database");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    let _ = admin.close().await;
    let (base, _) = admin_url.rsplit_once('/').expect("URL with a database");
    format!("{base}/{name}")
}

/// A store on a fresh Postgres database, or `None` when Postgres is not available (skipped).
pub async fn postgres(test: &str) -> Option<Arc<dyn CallStore>> {
    let admin = postgres_url(test)?;
    let url = fresh_postgres_db(&admin, test).await;
    let store = SqlStore::open(&store_config(url))
        .await
        .expect("open postgres");
    Some(Arc::new(store))
}

/// A time with microsecond precision (what the store keeps).
pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(1_700_000_000_000_000 + secs * 1_000_000 + 123_456).unwrap()
}

/// A finished inbound call with every part of a record filled in.
pub fn full_record(call_sid: &str, started: DateTime<Utc>) -> CallRecord {
    let mut r = CallRecord::new(call_sid, Direction::Inbound, started);
    r.stream_sid = Some(format!("MZ{call_sid}"));
    r.status = CallStatus::Completed;
    r.from = Some("+14155550100".into());
    r.to = Some("+14155550199".into());
    r.context = RecordContext {
        agent_profile: Some("support".into()),
        engine: Some("cascade".into()),
        campaign_id: None,
        contact_id: None,
        custom_parameters: BTreeMap::from([("lang".to_owned(), "en".to_owned())]),
    };
    r.times.answered_at = Some(started);
    r.times.ended_at = Some(started + chrono::Duration::milliseconds(12_500));
    r.times.duration_ms = Some(12_500);
    r.end_reason = Some("stop".into());
    r.quality = Some(CallQuality {
        band: Band::Fair,
        reasons: vec![Reason::HighJitter, Reason::SlowResponse],
        mos: 3.91,
        report: serde_json::json!({
            "band": "fair",
            "reasons": ["high_jitter", "slow_response"],
            "transport": {"frames_received": 625, "frames_lost": 0, "jitter_mean_ms": 7.5},
            "emodel": {"r_factor": 80.1, "mos": 3.91, "delay_ms": 35.0, "plc": false}
        }),
    });
    r.recording = Some(Recording {
        location: format!("data/recordings/{call_sid}.ogg"),
        content_type: "audio/ogg".into(),
    });
    r.events = CallEvents {
        turns: vec![
            Turn {
                role: Role::Agent,
                text: "Hello, how can I help?".into(),
                start_ms: 200,
                end_ms: 1800,
                latency: None,
                interrupted: false,
            },
            Turn {
                role: Role::Caller,
                text: "What are your opening hours?".into(),
                start_ms: 2500,
                end_ms: 4300,
                latency: None,
                interrupted: false,
            },
            Turn {
                role: Role::Agent,
                text: "We are open from nine to five, Monday to Friday.".into(),
                start_ms: 5050,
                end_ms: 7900,
                latency: Some(StageLatency {
                    stt_ms: Some(300.0),
                    agent_ms: Some(250.5),
                    tts_ms: Some(150.25),
                    server_ms: Some(1.5),
                    total_ms: Some(750.0),
                }),
                interrupted: true,
            },
        ],
        dtmf: vec![DtmfEvent {
            digit: "5".into(),
            at_ms: 9000,
        }],
        actions: vec![ActionEvent {
            action: ActionKind::Transfer,
            target: Some("+14155550111".into()),
            at_ms: 12_000,
        }],
        provider_errors: vec![ProviderErrorEvent {
            provider: "deepgram".into(),
            kind: "timeout".into(),
            at_ms: 3000,
        }],
        alerts: vec![AlertRecord {
            condition: Reason::HighJitter,
            state: AlertState::Raised,
            value: 41.5,
            threshold: 30.0,
            at_ms: 6000,
        }],
        timeline: (0..12)
            .map(|t| TimelinePoint {
                t_s: t,
                level_dbfs: (t % 3 != 0).then_some(-20.0 - f64::from(t)),
                jitter_ms: 2.0 + f64::from(t),
                loss_pct: 0.0,
                mos: Some(4.2),
                alerts: if t >= 6 {
                    vec![Reason::HighJitter]
                } else {
                    vec![]
                },
            })
            .collect(),
    };
    r
}
