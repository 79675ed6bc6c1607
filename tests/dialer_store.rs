//! The campaign tables on both backends (SQLite file, fresh Postgres database), through
//! `DialerStore`: claims honour the campaign's state, calls per second, concurrent calls, the
//! do-not-call list and the calling window; callbacks end attempts once (duplicates change
//! nothing) and move contacts on by the retry policy.

mod store_support;

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use voxbridge::dialer::DialerStore;
use voxbridge::dialer::contacts::NewContact;
use voxbridge::dialer::model::OPTED_OUT;
use voxbridge::dialer::model::{
    CallingWindow, CampaignSpec, CampaignState, Outcome, Retry, RetryPolicy, VoicemailAction,
};
use voxbridge::dialer::store::Claim;
use voxbridge::store::record::Direction;
use voxbridge::store::{Backend, CallRecord, CallStore, SqlStore};

fn spec() -> CampaignSpec {
    CampaignSpec {
        name: "store".into(),
        caller_id: "+15550009999".into(),
        agent: None,
        // Open from an hour ago to two hours ahead (UTC), whatever the time of day.
        window: CallingWindow {
            start: (Utc::now() - Duration::hours(1))
                .format("%H:%M")
                .to_string(),
            end: (Utc::now() + Duration::hours(2))
                .format("%H:%M")
                .to_string(),
            days: vec![],
        },
        timezone: "UTC".into(),
        max_concurrent: 2,
        cps: 1.0,
        retry: RetryPolicy {
            busy: Retry {
                delay_secs: 60,
                max_attempts: 2,
            },
            ..RetryPolicy::default()
        },
        voicemail: VoicemailAction::HangUp,
        voicemail_message: None,
        end_at: None,
    }
}

fn contact(line: u32, phone: &str, tz: Option<&str>) -> NewContact {
    NewContact {
        line,
        phone: phone.into(),
        name: None,
        timezone: tz.map(str::to_owned),
        variables: BTreeMap::from([("plan".to_owned(), format!("p{line}"))]),
    }
}

async fn claims_and_callbacks(sql: SqlStore, backend: Backend) {
    let store = DialerStore::new(sql.pool().clone(), backend);
    let now = Utc::now();
    let c = store.create_campaign(&spec(), now).await.unwrap();
    let phones = [
        "+15550100001",
        "+15550100002",
        "+15550100003",
        "+15550100004",
    ];
    let mut list: Vec<NewContact> = phones
        .iter()
        .enumerate()
        .map(|(i, p)| contact(i as u32 + 2, p, None))
        .collect();
    list.push(contact(9, "+15550100001", None)); // duplicate phone
    let (added, rejected) = store.add_contacts(&c.id, &list, now).await.unwrap();
    assert_eq!((added, rejected.len()), (4, 1));
    assert_eq!(rejected[0].line, 9);

    // Draft: nothing to claim.
    assert!(matches!(
        store.claim(&c.id, "i1", now).await.unwrap(),
        Claim::Idle
    ));
    store
        .set_state(&c.id, CampaignState::Running, now)
        .await
        .unwrap();
    store.dnc_add("+15550100002", "test", now).await.unwrap();

    let Claim::Dial(first) = store.claim(&c.id, "i1", now).await.unwrap() else {
        panic!("no claim")
    };
    assert_eq!((first.phone.as_str(), first.number), ("+15550100001", 1));
    assert_eq!(first.variables["plan"], "p2");
    // One call per second.
    match store
        .claim(&c.id, "i1", now + Duration::milliseconds(400))
        .await
        .unwrap()
    {
        Claim::Wait(w) => assert!(w.as_millis() > 500 && w.as_millis() <= 600, "{w:?}"),
        other => panic!("{other:?}"),
    }
    // Next second: the DNC number is set aside, then the third contact is claimed.
    let t1 = now + Duration::seconds(1);
    assert!(matches!(
        store.claim(&c.id, "i1", t1).await.unwrap(),
        Claim::Skipped
    ));
    let Claim::Dial(second) = store.claim(&c.id, "i2", t1).await.unwrap() else {
        panic!()
    };
    assert_eq!(second.phone, "+15550100003");
    // Two calls up: at the concurrency cap.
    assert!(matches!(
        store
            .claim(&c.id, "i1", now + Duration::seconds(5))
            .await
            .unwrap(),
        Claim::Idle
    ));
    assert_eq!(store.open_count("i1").await.unwrap(), 1);

    store.dialed(&first.attempt_id, "CA01").await.unwrap();
    store.dialed(&second.attempt_id, "CA02").await.unwrap();
    assert!(store.call_progress("CA01", "ringing").await.unwrap());
    assert!(!store.call_progress("CAunknown", "ringing").await.unwrap());
    let settle = Duration::milliseconds(0);
    // Busy: retried after 60 s (2 attempts allowed).
    let t2 = now + Duration::seconds(6);
    let f = store
        .call_ended("CA01", "busy", None, settle, t2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.outcome, Outcome::Busy);
    assert!(
        store
            .call_ended("CA01", "busy", None, settle, t2)
            .await
            .unwrap()
            .is_none(),
        "duplicate"
    );
    assert!(
        store
            .call_ended("CAnope", "completed", None, settle, t2)
            .await
            .unwrap()
            .is_none()
    );
    // Answered: settling, then done.
    let f = store
        .call_ended("CA02", "completed", Some(12_000), settle, t2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.outcome, Outcome::Answered);
    // The agent's verdict in the call record: the person opted out.
    let mut record = CallRecord::new("CA02", Direction::Outbound, now);
    record.outcome = Some(OPTED_OUT.into());
    sql.upsert(&record).await.unwrap();
    assert_eq!(store.settle_due(t2).await.unwrap(), 1);
    let dnc = store.dnc_list(10, 0).await.unwrap();
    assert!(
        dnc.iter()
            .any(|e| e.phone == "+15550100003" && e.reason == "opt_out"),
        "{dnc:?}"
    );

    // The last contact, then the busy one again after its delay (attempt 2, the last).
    let Claim::Dial(third) = store.claim(&c.id, "i1", t2).await.unwrap() else {
        panic!()
    };
    assert_eq!(third.phone, "+15550100004");
    store
        .dial_failed(&third.attempt_id, "refused", t2)
        .await
        .unwrap();
    let t3 = t2 + Duration::seconds(61);
    let Claim::Dial(again) = store.claim(&c.id, "i1", t3).await.unwrap() else {
        panic!()
    };
    assert_eq!((again.phone.as_str(), again.number), ("+15550100001", 2));
    store.dialed(&again.attempt_id, "CA03").await.unwrap();
    assert_eq!(
        store
            .open_attempts(t3 + Duration::seconds(1))
            .await
            .unwrap()
            .len(),
        1
    );
    store
        .call_ended("CA03", "busy", None, settle, t3)
        .await
        .unwrap()
        .unwrap();

    let contacts = store.contacts(&c.id, 100, 0).await.unwrap();
    let outcome = |p: &str| {
        contacts
            .iter()
            .find(|c| c.phone == p)
            .and_then(|c| c.outcome.map(|o| o.as_str()))
    };
    assert_eq!(outcome("+15550100001"), Some("busy"));
    assert_eq!(outcome("+15550100002"), Some("do_not_call"));
    assert_eq!(outcome("+15550100003"), Some("opted_out"));
    // failed: retried later (default policy: 2 attempts, 300 s).
    let failed = contacts.iter().find(|c| c.phone == "+15550100004").unwrap();
    assert_eq!(
        (failed.outcome, failed.attempts),
        (Some(Outcome::Failed), 1)
    );
    assert_eq!(contacts[0].history.len(), 2);
    assert_eq!(
        contacts[0].history[0].record.as_deref(),
        Some("/api/calls/CA01")
    );
    let p = store.progress(&c.id, t3).await.unwrap().unwrap();
    assert_eq!(p.attempts, 4);
    assert_eq!(p.by_state["pending"], 1);

    // Cancel: pending contacts end as cancelled; the campaign no longer dials.
    store
        .set_state(&c.id, CampaignState::Cancelled, t3)
        .await
        .unwrap();
    let contacts = store.contacts(&c.id, 100, 0).await.unwrap();
    assert_eq!(contacts[3].outcome, Some(Outcome::Cancelled));
    assert!(
        store
            .set_state(&c.id, CampaignState::Running, t3)
            .await
            .is_err()
    );

    // A contact whose local time is outside the window waits for it (or expires at the end).
    let mut night = spec();
    let hour = |h: i64| (now + Duration::hours(h)).format("%H:%M").to_string();
    night.window = CallingWindow {
        start: hour(-1),
        end: hour(2),
        days: vec![],
    };
    night.end_at = Some(now + Duration::hours(1));
    let n = store.create_campaign(&night, now).await.unwrap();
    store
        .add_contacts(
            &n.id,
            &[
                contact(2, "+15550100009", Some("Etc/GMT-12")),
                contact(3, "+15550100008", None),
            ],
            now,
        )
        .await
        .unwrap();
    store
        .set_state(&n.id, CampaignState::Running, now)
        .await
        .unwrap();
    assert!(matches!(
        store.claim(&n.id, "i1", now).await.unwrap(),
        Claim::Skipped
    ));
    let Claim::Dial(d) = store.claim(&n.id, "i1", now).await.unwrap() else {
        panic!()
    };
    assert_eq!(d.phone, "+15550100008");
    let contacts = store.contacts(&n.id, 100, 0).await.unwrap();
    assert_eq!(contacts[0].outcome, Some(Outcome::Expired));
}

#[tokio::test]
async fn campaign_tables_on_sqlite() {
    let dir = store_support::temp_dir("dialer-store");
    let url = format!("sqlite://{}/db.sqlite", dir.display());
    let sql = SqlStore::open(&store_support::store_config(url))
        .await
        .unwrap();
    claims_and_callbacks(sql, Backend::Sqlite).await;
}

#[tokio::test]
async fn campaign_tables_on_postgres() {
    let Some(admin) = store_support::postgres_url("campaign_tables_on_postgres") else {
        return;
    };
    let url = store_support::fresh_postgres_db(&admin, "dialer_store").await;
    let sql = SqlStore::open(&store_support::store_config(url))
        .await
        .unwrap();
    claims_and_callbacks(sql, Backend::Postgres).await;
}
