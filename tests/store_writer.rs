//! The record writer: a call never waits; records survive a full queue and a database outage.
//!
//! The outage test stops and restarts the throwaway Postgres cluster of `scripts/test`
//! (`VOXBRIDGE_TEST_PG_CTL`, `VOXBRIDGE_TEST_PGDATA`), so everything here runs as one test in
//! its own binary: no other test uses the cluster while it is down.

mod common;
mod store_support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use store_support::{at, full_record, store_config};
use voxbridge::config::StoreConfig;
use voxbridge::sim::{SimCall, Step};
use voxbridge::store::filter::CallFilter;
use voxbridge::store::record::{CallProgress, CallStatus, Recording};
use voxbridge::store::{CallStore, RecordWriter, SqlStore};

fn fast_retries(mut cfg: StoreConfig) -> StoreConfig {
    cfg.retry_initial_ms = 50;
    cfg.retry_max_ms = 400;
    cfg.write_timeout_ms = 1000;
    cfg.max_connections = 2;
    cfg
}

async fn count(store: &dyn CallStore) -> usize {
    let mut n = 0;
    let mut cursor = None;
    loop {
        let page = store
            .list(&CallFilter::default(), 200, cursor.as_ref())
            .await
            .expect("list");
        n += page.calls.len();
        match page.next_cursor {
            Some(c) => cursor = voxbridge::store::Cursor::decode(&c),
            None => return n,
        }
    }
}

fn pg_ctl(args: &[&str]) {
    let ctl = std::env::var("VOXBRIDGE_TEST_PG_CTL").expect("VOXBRIDGE_TEST_PG_CTL");
    let data = std::env::var("VOXBRIDGE_TEST_PGDATA").expect("VOXBRIDGE_TEST_PGDATA");
    let log = format!("{data}/server.log");
    let mut cmd = Command::new(&ctl);
    cmd.arg("-D").arg(&data).args(args);
    if args.first() == Some(&"start") {
        cmd.arg("-l").arg(&log);
    }
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run pg_ctl");
    assert!(status.success(), "pg_ctl {args:?} failed");
}

/// Records go through the writer in order even when the queue overflows; nothing is dropped.
async fn sqlite_overflow_keeps_every_record() {
    let dir = store_support::temp_dir("writer");
    let mut cfg = fast_retries(store_config(format!("sqlite://{}/w.db", dir.display())));
    cfg.queue = 4;
    let store: Arc<dyn CallStore> = Arc::new(SqlStore::open(&cfg).await.expect("open"));
    let writer = RecordWriter::start(Arc::clone(&store), &cfg);
    for i in 0..300 {
        writer.submit(full_record(&format!("CA_q{i:03}"), at(i)));
    }
    // Ordering: a record, then its recording location, then a status change, all queued.
    writer.submit_recording(
        "CA_q000",
        Some(Recording {
            location: "x.wav".into(),
            content_type: "audio/wav".into(),
        }),
    );
    writer.submit_progress(CallProgress::new("CA_q001", CallStatus::Failed, at(1000)));
    assert!(writer.flush(Duration::from_secs(60)).await, "flushed");
    let stats = writer.stats();
    assert!(
        stats.queue_full > 0,
        "the small queue overflowed: {stats:?}"
    );
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.written, 302, "{stats:?}");
    assert_eq!(stats.pending, 0);
    assert_eq!(count(&*store).await, 300);
    let r0 = store.get("CA_q000").await.unwrap().unwrap();
    assert_eq!(r0.recording.unwrap().location, "x.wav");
    let r1 = store.get("CA_q001").await.unwrap().unwrap();
    assert_eq!(r1.status, CallStatus::Failed);
    assert_eq!(writer.shutdown(Duration::from_secs(5)).await, 0);
    // After shutdown a submit is refused, counted and logged, never queued silently.
    writer.submit(full_record("CA_late", at(0)));
    assert_eq!(writer.stats().dropped, 1);
}

/// Postgres stopped while 50 calls end: no submit waits, the writer retries, and when the
/// database is back every record is written; past `max_pending`, drops are counted.
async fn postgres_outage_loses_nothing() {
    let Some(admin) = store_support::postgres_url("store_writer::postgres_outage") else {
        return;
    };
    for var in ["VOXBRIDGE_TEST_PG_CTL", "VOXBRIDGE_TEST_PGDATA"] {
        if std::env::var(var).is_err() {
            panic!("{var} is not set: scripts/test exports it with the throwaway cluster");
        }
    }
    let url = store_support::fresh_postgres_db(&admin, "outage").await;
    let mut cfg = fast_retries(store_config(url));
    cfg.queue = 16;
    cfg.max_pending = 60;
    let store: Arc<dyn CallStore> = Arc::new(SqlStore::open(&cfg).await.expect("open"));
    let writer = RecordWriter::start(Arc::clone(&store), &cfg);
    let prometheus = voxbridge::metrics::install();

    writer.submit(full_record("CA_before", at(0)));
    assert!(writer.flush(Duration::from_secs(10)).await);

    pg_ctl(&["stop", "-m", "fast", "-w"]);
    // These return while the database is down: submit never waits for it.
    for i in 0..50 {
        writer.submit(full_record(&format!("CA_o{i:02}"), at(10 + i)));
    }
    // Let the writer fail a few times while the database is down.
    let deadline = Instant::now() + Duration::from_secs(30);
    while writer.stats().retries < 3 {
        assert!(
            Instant::now() < deadline,
            "no retries: {:?}",
            writer.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(writer.pending(), 50, "{:?}", writer.stats());
    // Over the bound: 10 more fit (60), the 11th onwards are dropped, counted and logged.
    for i in 50..65 {
        writer.submit(full_record(&format!("CA_o{i:02}"), at(10 + i)));
    }
    let stats = writer.stats();
    assert_eq!(stats.pending, 60, "{stats:?}");
    assert_eq!(stats.dropped, 5, "{stats:?}");
    assert!(
        !writer.flush(Duration::from_millis(300)).await,
        "cannot flush while down"
    );

    pg_ctl(&["start", "-w"]);
    assert!(
        writer.flush(Duration::from_secs(60)).await,
        "records written once the database is back: {:?}",
        writer.stats()
    );
    let stats = writer.stats();
    assert_eq!(stats.pending, 0);
    assert!(stats.retries >= 3, "{stats:?}");
    assert!(stats.write_errors >= 3, "{stats:?}");
    assert_eq!(stats.dropped, 5, "{stats:?}");
    assert_eq!(stats.written, 61, "{stats:?}");
    assert_eq!(count(&*store).await, 61, "CA_before and CA_o00..CA_o59");
    for i in 0..60 {
        let sid = format!("CA_o{i:02}");
        assert!(store.get(&sid).await.unwrap().is_some(), "{sid} lost");
    }
    assert!(store.get("CA_o60").await.unwrap().is_none());

    let text = prometheus.render();
    let value = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(
        value("voxbridge_store_write_retries_total") >= 3.0,
        "{text}"
    );
    assert!(value("voxbridge_store_records_dropped_total{reason=\"backlog_full\"}") >= 5.0);
    assert!(text.contains("# HELP voxbridge_store_write_retries_total"));
    assert!(text.contains("voxbridge_store_writes_total{outcome=\"error\"}"));
    assert_eq!(writer.shutdown(Duration::from_secs(5)).await, 0);
}

/// 50 calls through the real server while its Postgres is stopped: every call is served as
/// usual (the caller hears the echo, the call ends cleanly), the records wait in the writer and
/// are retried, and when the database is back all 50 are written, complete; nothing dropped.
async fn calls_carry_on_while_postgres_is_down() {
    let Some(admin) = store_support::postgres_url("store_writer::calls_during_outage") else {
        return;
    };
    let url = store_support::fresh_postgres_db(&admin, "calls_outage").await;
    let server = common::start_server(|c| {
        c.store = fast_retries(store_config(url.clone()));
        c.store.queue = 8;
    })
    .await;
    let writer = server.state().records.clone().expect("records on");
    let before = writer.stats();

    pg_ctl(&["stop", "-m", "fast", "-w"]);
    let calls: Vec<SimCall> = (0..50)
        .map(|_| {
            SimCall::new(server.media_url())
                .step(Step::Silence(Duration::from_millis(200)))
                .step(Step::Speak(common::fixture("hello-8k.wav")))
                .step(Step::WaitForReplyEnd(Duration::from_secs(30)))
                .step(Step::Silence(Duration::from_millis(200)))
        })
        .collect();
    let sids: Vec<String> = calls.iter().map(|c| c.call_sid.clone()).collect();
    let mut summaries = common::Summaries::of(&server);
    let running: Vec<_> = calls.into_iter().map(|c| tokio::spawn(c.run())).collect();
    for (sid, call) in sids.iter().zip(running) {
        let report = call.await.expect("join").expect("call");
        assert_eq!(report.timeouts, 0, "{sid}: {report}");
        assert_eq!(
            report.response_latencies_ms.len(),
            1,
            "{sid} heard its echo: {report}"
        );
        let summary = summaries.get(sid).await;
        assert_eq!(summary.end_reason.as_str(), "stop", "{sid}");
        assert_eq!(summary.responses_played, 1, "{sid}");
    }
    // All 50 are waiting, and the writer has been retrying (with backoff).
    let deadline = Instant::now() + Duration::from_secs(30);
    while writer.stats().retries < before.retries + 3 {
        assert!(
            Instant::now() < deadline,
            "no retries: {:?}",
            writer.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let down = writer.stats();
    assert_eq!(down.pending, 50, "{down:?}");
    assert!(
        down.queue_full > before.queue_full,
        "the 8-record queue overflowed: {down:?}"
    );

    pg_ctl(&["start", "-w"]);
    assert!(
        writer.flush(Duration::from_secs(60)).await,
        "records written once the database is back: {:?}",
        writer.stats()
    );
    let after = writer.stats();
    println!("50 calls during the outage: before {before:?}\n  down {down:?}\n  after {after:?}");
    assert_eq!(after.dropped, before.dropped, "{after:?}");
    assert_eq!(after.written - before.written, 50, "{after:?}");
    assert!(after.retries > before.retries && after.write_errors > before.write_errors);
    let store = SqlStore::open(&store_config(url)).await.expect("open");
    assert_eq!(count(&store).await, 50);
    for sid in &sids {
        let r = store
            .get(sid)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{sid} lost"));
        assert_eq!(r.status, CallStatus::Completed);
        assert_eq!(r.events.turns.len(), 2, "{sid}: caller and echo");
        assert!(r.quality.is_some());
    }
    server.shutdown(Duration::from_secs(5)).await;
}

/// One test, so nothing else in this binary runs while the cluster is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_never_blocks_and_never_loses_silently() {
    sqlite_overflow_keeps_every_record().await;
    postgres_outage_loses_nothing().await;
    calls_carry_on_while_postgres_is_down().await;
}
