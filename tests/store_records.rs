//! The record store test suite, run against SQLite (a temp file) and Postgres (a fresh database
//! on the throwaway cluster of `scripts/test`): full round trip, idempotent upsert, the outbound
//! partial record and its progress, every filter, cursor pagination, transcripts and the
//! recording location.

mod store_support;

use std::collections::BTreeSet;
use std::sync::Arc;

use store_support::{at, full_record};
use voxbridge::quality::report::{Band, Reason};
use voxbridge::store::filter::CallFilter;
use voxbridge::store::record::{CallProgress, CallQuality, CallStatus, Direction, Recording};
use voxbridge::store::{CallRecord, CallStore, StoreError, Transcript};

/// Each case runs once per backend.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = crate::store_support::sqlite().await;
                    super::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let name = concat!("postgres::", stringify!($case));
                    let Some(store) = crate::store_support::postgres(name).await else {
                        return;
                    };
                    super::$case(store).await;
                }
            )*
        }
    };
}

suite!(
    full_record_round_trips,
    upsert_is_idempotent,
    outbound_partial_record_progresses_and_merges,
    every_filter_selects_exactly,
    cursor_pages_cover_everything_once,
    transcript_as_json_and_text,
    recording_location_set_and_clear,
);

async fn sids(store: &dyn CallStore, filter: CallFilter) -> BTreeSet<String> {
    let page = store.list(&filter, 200, None).await.expect("list");
    assert!(page.next_cursor.is_none());
    page.calls.into_iter().map(|c| c.call_sid).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn full_record_round_trips(store: Arc<dyn CallStore>) {
    let record = full_record("CA0001", at(0));
    store.upsert(&record).await.expect("upsert");
    let got = store.get("CA0001").await.expect("get").expect("found");
    assert_eq!(got, record);
    assert!(store.get("CA_missing").await.expect("get").is_none());
    let page = store
        .list(&CallFilter::default(), 10, None)
        .await
        .expect("list");
    let brief = &page.calls[0];
    assert_eq!(brief.call_sid, "CA0001");
    assert_eq!(brief.band, Some(Band::Fair));
    assert_eq!(
        brief.reasons,
        vec![Reason::HighJitter, Reason::SlowResponse]
    );
    assert_eq!(brief.mos, Some(3.91));
    assert!(brief.has_recording);
    assert_eq!(brief.context, record.context);
    assert_eq!(brief.times, record.times);
    store.ping().await.expect("ping");
}

async fn upsert_is_idempotent(store: Arc<dyn CallStore>) {
    let record = full_record("CA0002", at(10));
    for _ in 0..3 {
        store.upsert(&record).await.expect("upsert");
    }
    assert_eq!(store.get("CA0002").await.unwrap().unwrap(), record);
    let all = sids(&*store, CallFilter::default()).await;
    assert_eq!(all, set(&["CA0002"]));
    let by_reason = CallFilter {
        reason: Some(Reason::HighJitter),
        ..Default::default()
    };
    assert_eq!(sids(&*store, by_reason).await, set(&["CA0002"]));

    // A second verdict replaces the reasons (no stale reason rows left behind).
    let mut better = record.clone();
    better.quality = Some(CallQuality {
        band: Band::Good,
        reasons: vec![],
        mos: 4.3,
        report: serde_json::json!({"band": "good"}),
    });
    store.upsert(&better).await.expect("upsert");
    let got = store.get("CA0002").await.unwrap().unwrap();
    assert_eq!(got.quality, better.quality);
    let stale = CallFilter {
        reason: Some(Reason::HighJitter),
        ..Default::default()
    };
    assert!(sids(&*store, stale).await.is_empty());
}

async fn outbound_partial_record_progresses_and_merges(store: Arc<dyn CallStore>) {
    let mut dial = CallRecord::new("CA0003", Direction::Outbound, at(20));
    dial.from = Some("+14155550100".into());
    dial.to = Some("+14155550123".into());
    dial.context.campaign_id = Some("camp-1".into());
    dial.context.contact_id = Some("contact-7".into());
    dial.context.agent_profile = Some("sales".into());
    assert!(store.create_outbound(&dial).await.expect("create"));
    assert!(
        !store.create_outbound(&dial).await.expect("create again"),
        "only once"
    );
    assert_eq!(
        store.get("CA0003").await.unwrap().unwrap().status,
        CallStatus::Queued
    );

    let ringing = CallProgress::new("CA0003", CallStatus::Ringing, at(21));
    assert!(store.update_progress(&ringing).await.expect("ringing"));
    let mut answered = CallProgress::new("CA0003", CallStatus::InProgress, at(25));
    answered.answered_at = Some(at(25));
    assert!(store.update_progress(&answered).await.expect("answered"));
    // A late, duplicate "ringing" does not move the call back.
    assert!(!store.update_progress(&ringing).await.expect("late ringing"));
    let got = store.get("CA0003").await.unwrap().unwrap();
    assert_eq!(got.status, CallStatus::InProgress);
    assert_eq!(got.times.answered_at, Some(at(25)));

    // The session's final record knows less about the parties and the campaign.
    let mut fin = full_record("CA0003", at(25));
    fin.direction = Direction::Inbound; // the stored direction wins
    fin.from = None;
    fin.to = None;
    fin.context.campaign_id = None;
    fin.context.contact_id = None;
    fin.context.agent_profile = None;
    fin.times.answered_at = None;
    fin.recording = None;
    store.upsert(&fin).await.expect("final");
    let got = store.get("CA0003").await.unwrap().unwrap();
    assert_eq!(got.direction, Direction::Outbound);
    assert_eq!(got.status, CallStatus::Completed);
    assert_eq!(got.from.as_deref(), Some("+14155550100"));
    assert_eq!(got.to.as_deref(), Some("+14155550123"));
    assert_eq!(got.context.campaign_id.as_deref(), Some("camp-1"));
    assert_eq!(got.context.contact_id.as_deref(), Some("contact-7"));
    assert_eq!(got.context.agent_profile.as_deref(), Some("sales"));
    assert_eq!(got.context.engine.as_deref(), Some("cascade"));
    assert_eq!(
        got.times.started_at,
        at(20),
        "the dial time stays the start"
    );
    assert_eq!(got.times.answered_at, Some(at(25)));
    assert_eq!(got.events, fin.events);
    assert_eq!(got.quality, fin.quality);

    // Twilio's completed callback after the session's record: applied (same rank), harmless.
    let mut done = CallProgress::new("CA0003", CallStatus::Completed, at(40));
    done.duration_ms = Some(15_000);
    assert!(store.update_progress(&done).await.expect("completed"));
    let got = store.get("CA0003").await.unwrap().unwrap();
    assert_eq!(got.status, CallStatus::Completed);
    assert_eq!(got.events, fin.events);

    let unknown = CallProgress::new("CA_nobody", CallStatus::Ringing, at(40));
    assert!(matches!(
        store.update_progress(&unknown).await,
        Err(StoreError::NotFound(_))
    ));
}

/// One seeded call: sid, start, direction, from, band, reasons, end reason, profile, campaign.
type Spec<'a> = (
    &'a str,
    i64,
    Direction,
    &'a str,
    Band,
    &'a [Reason],
    &'a str,
    &'a str,
    Option<&'a str>,
);

/// Eight calls that differ in every filtered column.
async fn seed_for_filters(store: &dyn CallStore) {
    let specs: [Spec; 8] = [
        (
            "CA_a",
            100,
            Direction::Inbound,
            "+1000",
            Band::Good,
            &[],
            "stop",
            "support",
            None,
        ),
        (
            "CA_b",
            200,
            Direction::Outbound,
            "+2000",
            Band::Fair,
            &[Reason::HighJitter],
            "stop",
            "sales",
            Some("c1"),
        ),
        (
            "CA_c",
            300,
            Direction::Outbound,
            "+3000",
            Band::Poor,
            &[Reason::DeadAir, Reason::LowMos],
            "idle_timeout",
            "sales",
            Some("c1"),
        ),
        (
            "CA_d",
            400,
            Direction::Inbound,
            "+1000",
            Band::Poor,
            &[Reason::PacketLoss],
            "abrupt_disconnect",
            "support",
            None,
        ),
        (
            "CA_e",
            500,
            Direction::Outbound,
            "+5000",
            Band::Good,
            &[],
            "agent_hangup",
            "sales",
            Some("c2"),
        ),
        (
            "CA_f",
            600,
            Direction::Inbound,
            "+6000",
            Band::Fair,
            &[Reason::PacketLoss, Reason::HighJitter],
            "stop",
            "survey",
            None,
        ),
        (
            "CA_g",
            700,
            Direction::Inbound,
            "+7000",
            Band::Good,
            &[],
            "stop",
            "support",
            None,
        ),
        (
            "CA_h",
            800,
            Direction::Outbound,
            "+1000",
            Band::Fair,
            &[Reason::Clipping],
            "stop",
            "sales",
            Some("c2"),
        ),
    ];
    for (sid, t, dir, caller, band, reasons, end, agent, campaign) in specs {
        let mut r = full_record(sid, at(t));
        r.direction = dir;
        r.from = Some(caller.into());
        r.to = Some("+9999".into());
        if dir == Direction::Outbound {
            std::mem::swap(&mut r.from, &mut r.to);
        }
        r.end_reason = Some(end.into());
        r.context.agent_profile = Some(agent.into());
        r.context.campaign_id = campaign.map(str::to_owned);
        let q = r.quality.as_mut().unwrap();
        q.band = band;
        q.reasons = reasons.to_vec();
        if sid == "CA_g" {
            r.status = CallStatus::NoAnswer;
        }
        store.upsert(&r).await.expect("seed");
    }
}

async fn every_filter_selects_exactly(store: Arc<dyn CallStore>) {
    seed_for_filters(&*store).await;
    let s = &*store;
    let f = CallFilter::default;
    let all = sids(s, f()).await;
    assert_eq!(all.len(), 8);
    let cases: Vec<(&str, CallFilter, BTreeSet<String>)> = vec![
        (
            "since",
            CallFilter {
                since: Some(at(500)),
                ..f()
            },
            set(&["CA_e", "CA_f", "CA_g", "CA_h"]),
        ),
        (
            "until",
            CallFilter {
                until: Some(at(300)),
                ..f()
            },
            set(&["CA_a", "CA_b"]),
        ),
        (
            "range",
            CallFilter {
                since: Some(at(200)),
                until: Some(at(401)),
                ..f()
            },
            set(&["CA_b", "CA_c", "CA_d"]),
        ),
        (
            "direction",
            CallFilter {
                direction: Some(Direction::Outbound),
                ..f()
            },
            set(&["CA_b", "CA_c", "CA_e", "CA_h"]),
        ),
        (
            "status",
            CallFilter {
                status: Some(CallStatus::NoAnswer),
                ..f()
            },
            set(&["CA_g"]),
        ),
        (
            "number from or to",
            CallFilter {
                number: Some("+1000".into()),
                ..f()
            },
            set(&["CA_a", "CA_d", "CA_h"]),
        ),
        (
            "number other side",
            CallFilter {
                number: Some("+9999".into()),
                ..f()
            },
            all.clone(),
        ),
        (
            "band",
            CallFilter {
                band: Some(Band::Poor),
                ..f()
            },
            set(&["CA_c", "CA_d"]),
        ),
        (
            "reason",
            CallFilter {
                reason: Some(Reason::PacketLoss),
                ..f()
            },
            set(&["CA_d", "CA_f"]),
        ),
        (
            "reason jitter",
            CallFilter {
                reason: Some(Reason::HighJitter),
                ..f()
            },
            set(&["CA_b", "CA_f"]),
        ),
        (
            "end reason",
            CallFilter {
                end_reason: Some("idle_timeout".into()),
                ..f()
            },
            set(&["CA_c"]),
        ),
        (
            "agent",
            CallFilter {
                agent_profile: Some("survey".into()),
                ..f()
            },
            set(&["CA_f"]),
        ),
        (
            "campaign",
            CallFilter {
                campaign_id: Some("c2".into()),
                ..f()
            },
            set(&["CA_e", "CA_h"]),
        ),
        (
            "combined",
            CallFilter {
                direction: Some(Direction::Outbound),
                band: Some(Band::Fair),
                campaign_id: Some("c1".into()),
                ..f()
            },
            set(&["CA_b"]),
        ),
        (
            "nothing",
            CallFilter {
                agent_profile: Some("nobody".into()),
                ..f()
            },
            set(&[]),
        ),
    ];
    for (name, filter, want) in cases {
        assert_eq!(sids(s, filter).await, want, "filter {name}");
    }
}

async fn cursor_pages_cover_everything_once(store: Arc<dyn CallStore>) {
    // 11 calls; several share a start time, so the call_sid tie-break matters.
    let mut expected = Vec::new();
    for i in 0..11 {
        let t = (i / 3) as i64; // 0,0,0,1,1,1,2,2,2,3,3
        let sid = format!("CA_p{i:02}");
        store.upsert(&full_record(&sid, at(t))).await.expect("seed");
        expected.push((t, sid));
    }
    expected.sort_by(|a, b| b.cmp(a)); // newest first, then call_sid descending
    let want: Vec<String> = expected.into_iter().map(|(_, s)| s).collect();

    let mut got = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .list(&CallFilter::default(), 4, cursor.as_ref())
            .await
            .expect("page");
        pages += 1;
        assert!(page.calls.len() <= 4);
        got.extend(page.calls.into_iter().map(|c| c.call_sid));
        match page.next_cursor {
            Some(next) => cursor = Some(voxbridge::store::Cursor::decode(&next).expect("cursor")),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(got, want);

    // Filters and paging together.
    let filter = CallFilter {
        since: Some(at(1)),
        ..Default::default()
    };
    let first = store.list(&filter, 5, None).await.unwrap();
    assert_eq!(first.calls.len(), 5);
    let next = voxbridge::store::Cursor::decode(first.next_cursor.as_deref().unwrap()).unwrap();
    let second = store.list(&filter, 5, Some(&next)).await.unwrap();
    assert_eq!(second.calls.len(), 3);
    assert!(second.next_cursor.is_none());
}

async fn transcript_as_json_and_text(store: Arc<dyn CallStore>) {
    store.upsert(&full_record("CA0004", at(0))).await.unwrap();
    let record = store.get("CA0004").await.unwrap().unwrap();
    let transcript = Transcript {
        call_sid: record.call_sid.clone(),
        turns: record.events.turns.clone(),
    };
    let json = serde_json::to_value(&transcript).unwrap();
    assert_eq!(json["turns"][1]["role"], "caller");
    assert_eq!(json["turns"][1]["text"], "What are your opening hours?");
    assert_eq!(json["turns"][2]["interrupted"], true);
    assert_eq!(json["turns"][2]["latency"]["agent_ms"], 250.5);
    assert_eq!(
        transcript.to_text(),
        "[00:00.2] agent: Hello, how can I help?\n\
         [00:02.5] caller: What are your opening hours?\n\
         [00:05.0] agent: We are open from nine to five, Monday to Friday. (interrupted)\n"
    );
}

async fn recording_location_set_and_clear(store: Arc<dyn CallStore>) {
    let mut record = full_record("CA0005", at(0));
    record.recording = None;
    store.upsert(&record).await.unwrap();
    assert!(
        store
            .get("CA0005")
            .await
            .unwrap()
            .unwrap()
            .recording
            .is_none()
    );

    let wav = Recording {
        location: "data/recordings/CA0005.wav".into(),
        content_type: "audio/wav".into(),
    };
    store.set_recording("CA0005", Some(&wav)).await.unwrap();
    assert_eq!(
        store.get("CA0005").await.unwrap().unwrap().recording,
        Some(wav.clone())
    );

    // A repeated final record (a retry) does not replace the stored location.
    let mut retry = record.clone();
    retry.recording = Some(Recording {
        location: "elsewhere.ogg".into(),
        content_type: "audio/ogg".into(),
    });
    store.upsert(&retry).await.unwrap();
    assert_eq!(
        store.get("CA0005").await.unwrap().unwrap().recording,
        Some(wav)
    );

    store.set_recording("CA0005", None).await.unwrap();
    let got = store.get("CA0005").await.unwrap().unwrap();
    assert!(got.recording.is_none());
    assert_eq!(got.events, record.events, "the rest of the record stays");
    let page = store.list(&CallFilter::default(), 5, None).await.unwrap();
    assert!(!page.calls[0].has_recording);

    assert!(matches!(
        store.set_recording("CA_nobody", None).await,
        Err(StoreError::NotFound(_))
    ));
}
