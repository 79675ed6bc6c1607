//! Call records end to end: calls through the real server, driven by the simulated Twilio leg
//! (echo; the cascade against the Deepgram/OpenAI/ElevenLabs fakes; a barge-in; an impaired
//! line), each leaving a record — read back through the REST API — whose transcript, turns,
//! latencies, DTMF, quality band, reasons, alerts and timeline match what happened (the
//! server's own call summary, and what the fakes were told to say).
//!
//! Every case runs on SQLite and on Postgres (the throwaway cluster of `scripts/test`;
//! skipped loudly without it, a failure under `VOXBRIDGE_REQUIRE_POSTGRES=1`).

mod common;
mod store_support;

use std::time::Duration;

use common::stack::{Stack, stack};
use common::{Summaries, fixture};
use serde_json::Value;
use voxbridge::call::summary::CallSummary;
use voxbridge::config::Config;
use voxbridge::fakes::openai_chat::FakeReply;
use voxbridge::quality::alerts::AlertState;
use voxbridge::quality::report::{Band, Reason};
use voxbridge::server::Server;
use voxbridge::sim::{Impairments, SimCall, SimReport, Step};
use voxbridge::store::CallRecord;
use voxbridge::store::events::Role as RecordRole;
use voxbridge::store::record::{CallStatus, Direction};

#[derive(Debug, Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

/// A fresh database for one test, or `None` when Postgres is not available (skipped).
async fn store_url(db: Db, test: &str) -> Option<String> {
    match db {
        Db::Sqlite => Some(format!(
            "sqlite://{}/records.db",
            store_support::temp_dir("e2e").display()
        )),
        Db::Postgres => {
            let admin = store_support::postgres_url(test)?;
            Some(store_support::fresh_postgres_db(&admin, test).await)
        }
    }
}

/// The echo server with records in `url`.
async fn echo_server(url: String) -> Server {
    common::start_server(|c: &mut Config| c.store.url = url).await
}

/// Run `call` against `server`; its report, the server's summary and the stored record (read
/// through `GET /api/calls/{call_sid}`).
async fn run(server: &Server, call: SimCall) -> (SimReport, CallSummary, CallRecord) {
    let mut summaries = Summaries::of(server);
    let sid = call.call_sid.clone();
    let report = call.run().await.expect("call");
    let summary = (*summaries.get(&sid).await).clone();
    let record = fetch(server, &sid).await;
    (report, summary, record)
}

/// The record of `sid` once the writer has written it, through the API.
async fn fetch(server: &Server, sid: &str) -> CallRecord {
    let writer = server.state().records.as_ref().expect("records on");
    assert!(
        writer.flush(Duration::from_secs(10)).await,
        "record not written"
    );
    let (status, body) = api_get(server, &format!("/api/calls/{sid}")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("record JSON: {e}\n{body}"))
}

async fn api_get(server: &Server, path: &str) -> (u16, String) {
    let res = reqwest::get(format!("http://{}{path}", server.local_addr()))
        .await
        .expect("GET");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// The call sids a list query returns.
async fn listed(server: &Server, query: &str) -> Vec<String> {
    let (status, body) = api_get(server, &format!("/api/calls?{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    let page: Value = serde_json::from_str(&body).expect("page");
    page["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| c["call_sid"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// What every record must agree on with the server's own summary of the call.
fn assert_matches_summary(record: &CallRecord, summary: &CallSummary, call: &SimCall) {
    assert_eq!(record.call_sid, call.call_sid);
    assert_eq!(record.stream_sid.as_deref(), Some(call.stream_sid.as_str()));
    assert_eq!(record.direction, Direction::Inbound);
    assert_eq!(record.status, CallStatus::Completed);
    assert_eq!(record.end_reason.as_deref(), Some("stop"));
    assert_eq!(record.times.duration_ms, Some(summary.duration_ms));
    let agent = summary.agent.as_ref().expect("agent");
    assert_eq!(
        record.context.agent_profile.as_deref(),
        Some(agent.profile.as_str())
    );
    assert_eq!(record.context.engine.as_deref(), Some(agent.engine));
    assert_eq!(record.context.custom_parameters, summary.custom_parameters);
    let ended = record.times.ended_at.expect("ended_at");
    let started = record.times.started_at;
    // The record starts at the stream's `start`, the session (and its duration) a little
    // earlier, at the socket's upgrade; both end together.
    let span = (ended - started).num_milliseconds();
    let duration = summary.duration_ms as i64;
    assert!(
        span <= duration && span >= duration - 500,
        "{span} ms between start and end, duration {duration} ms"
    );
    // Every transcript line is a turn, in order, with the same offsets.
    assert_eq!(
        record.events.turns.len(),
        summary.transcript.len(),
        "{:#?}",
        record.events.turns
    );
    for (turn, line) in record.events.turns.iter().zip(&summary.transcript) {
        let role = match turn.role {
            RecordRole::Caller => "caller",
            RecordRole::Agent => "agent",
        };
        assert_eq!(serde_json::to_value(line.role).unwrap(), role);
        assert_eq!(turn.text, line.text);
        assert_eq!(turn.interrupted, line.interrupted);
        assert_eq!(turn.end_ms, line.end_ms);
        assert_eq!(turn.start_ms, line.start_ms.unwrap_or(line.end_ms));
        assert!(turn.start_ms <= turn.end_ms, "{turn:?}");
    }
    // Each reply's latency by stage is on its agent turn.
    let latencies: Vec<_> = record
        .events
        .turns
        .iter()
        .filter_map(|t| t.latency)
        .collect();
    assert_eq!(latencies.len(), summary.turn_latencies.len());
    // Equal up to the last digit a JSON round trip may change.
    let same = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-6,
        (a, b) => a.is_none() && b.is_none(),
    };
    for (got, want) in latencies.iter().zip(&summary.turn_latencies) {
        assert!(same(got.total_ms, want.total_ms), "{got:?} vs {want:?}");
        assert!(same(got.stt_ms, want.stt_ms), "{got:?} vs {want:?}");
        assert!(same(got.agent_ms, want.agent_ms), "{got:?} vs {want:?}");
        assert!(same(got.tts_ms, want.tts_ms), "{got:?} vs {want:?}");
        assert!(same(got.server_ms, want.server_ms), "{got:?} vs {want:?}");
    }
    let q = record.quality.as_ref().expect("quality");
    let sq = summary.quality.as_ref().expect("summary quality");
    assert_eq!(q.band, sq.band);
    assert_eq!(q.reasons, sq.reasons);
    assert!((q.mos - sq.emodel.mos).abs() < 1e-9);
    assert_eq!(
        q.report["transport"]["frames_received"],
        sq.transport.frames_received
    );
    let raised: Vec<Reason> = record
        .events
        .alerts
        .iter()
        .filter(|a| a.state == AlertState::Raised)
        .map(|a| a.condition)
        .collect();
    for r in &summary.alerts_raised {
        assert!(raised.contains(r), "alert {r:?} raised but not recorded");
    }
    // One timeline point per second of the call, in order.
    let secs = summary.duration_ms / 1000;
    let points = record.events.timeline.len() as u64;
    assert!(
        points + 1 >= secs && points <= secs + 1,
        "{points} points for {secs} s"
    );
    assert!(
        record
            .events
            .timeline
            .windows(2)
            .all(|w| w[0].t_s < w[1].t_s)
    );
}

fn echo_call(server: &Server) -> SimCall {
    let mut call = SimCall::new(server.media_url())
        .step(Step::Silence(Duration::from_millis(300)))
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Dtmf("5".into()))
        .step(Step::Silence(Duration::from_millis(600)));
    call.custom_parameters = vec![
        ("campaign_id".into(), "CMP_records".into()),
        ("lang".into(), "en".into()),
    ];
    call
}

async fn echo_call_is_recorded(db: Db) {
    let Some(url) = store_url(db, "echo_call_is_recorded").await else {
        return;
    };
    let server = echo_server(url).await;
    let call = echo_call(&server);
    let (report, summary, record) = run(&server, call.clone()).await;
    println!("{report}");
    assert_eq!(report.timeouts, 0);
    assert_matches_summary(&record, &summary, &call);
    assert_eq!(record.context.engine.as_deref(), Some("echo"));
    assert_eq!(record.context.campaign_id.as_deref(), Some("CMP_records"));
    // The caller spoke, the echo played it back: an audio line each (no words without STT).
    let roles: Vec<_> = record.events.turns.iter().map(|t| t.role).collect();
    assert_eq!(roles, [RecordRole::Caller, RecordRole::Agent]);
    let agent = &record.events.turns[1];
    assert!(!agent.interrupted);
    assert!(agent.latency.is_some_and(|l| l.total_ms.is_some()));
    // The reply was heard for about as long as the caller spoke.
    let spoke = record.events.turns[0].end_ms - record.events.turns[0].start_ms;
    let heard = agent.end_ms - agent.start_ms;
    assert!(heard + 400 >= spoke, "spoke {spoke} ms, heard {heard} ms");
    assert_eq!(record.events.dtmf.len(), 1);
    assert_eq!(record.events.dtmf[0].digit, "5");
    assert!(record.events.dtmf[0].at_ms > agent.start_ms);
    let q = record.quality.as_ref().expect("quality");
    assert_eq!(q.band, Band::Good, "{q:#?}");
    assert!(q.reasons.is_empty());
    assert!(record.events.provider_errors.is_empty());
    assert!(record.events.actions.is_empty());
    // Found by its filters, not by others.
    let sid = call.call_sid.as_str();
    assert!(
        listed(&server, "campaign_id=CMP_records")
            .await
            .iter()
            .any(|s| s == sid)
    );
    assert!(
        listed(&server, "band=good&direction=inbound&end_reason=stop")
            .await
            .iter()
            .any(|s| s == sid)
    );
    assert!(!listed(&server, "band=poor").await.iter().any(|s| s == sid));
    let (status, text) = api_get(&server, &format!("/api/calls/{sid}/transcript")).await;
    assert_eq!(status, 200);
    let transcript: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(transcript["turns"].as_array().unwrap().len(), 2);
    recording_is_served(&server, &record).await;
}

/// The record points at the call's recording, and the API serves it, seekable: once compacted
/// (the content type the record names), a range request returns those bytes of the whole file.
async fn recording_is_served(server: &Server, record: &CallRecord) {
    let sid = &record.call_sid;
    let rec = record
        .recording
        .as_ref()
        .expect("the record names its recording");
    assert!(rec.location.contains(sid.as_str()), "{rec:?}");
    let url = format!("http://{}/api/calls/{sid}/recording", server.local_addr());
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let whole = loop {
        let res = client.get(&url).send().await.expect("GET recording");
        assert_eq!(res.status().as_u16(), 200);
        let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
        let body = res.bytes().await.expect("recording body");
        if content_type == rec.content_type {
            break body;
        }
        // The raw μ-law file is served (as WAV) until compaction has run.
        assert_eq!(content_type, "audio/wav");
        assert!(
            tokio::time::Instant::now() < deadline,
            "recording not compacted to {} in time",
            rec.content_type
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Two channels of a call of several seconds: more than a header.
    assert!(whole.len() > 4_000, "{} bytes", whole.len());
    let res = client
        .get(&url)
        .header("range", "bytes=100-1099")
        .send()
        .await
        .expect("range GET");
    assert_eq!(res.status().as_u16(), 206);
    let part = res.bytes().await.expect("range body");
    assert_eq!(&part[..], &whole[100..1100]);
}

async fn cascade_stack(db: Db, test: &str) -> Option<Stack> {
    let url = store_url(db, test).await?;
    Some(stack(|c| c.store.url = url).await)
}

async fn cascade_conversation_is_recorded(db: Db) {
    let Some(s) = cascade_stack(db, "cascade_conversation_is_recorded").await else {
        return;
    };
    let said = [
        "I would like to check the status of my order",
        "When will it arrive?",
    ];
    let replies = [
        "Of course. It shipped yesterday.",
        "It will arrive tomorrow morning.",
    ];
    for t in said {
        s.deepgram.transcripts.push(t);
    }
    for r in replies {
        s.chat.push_reply(FakeReply::text(r));
    }
    let call = common::stack::two_turns(s.server.media_url());
    let (report, summary, record) = run(&s.server, call.clone()).await;
    println!("{report}");
    assert_eq!(report.timeouts, 0, "{report}");
    assert_matches_summary(&record, &summary, &call);
    assert_eq!(record.context.engine.as_deref(), Some("cascade"));
    let turns: Vec<(RecordRole, &str)> = record
        .events
        .turns
        .iter()
        .map(|t| (t.role, t.text.as_str()))
        .collect();
    assert_eq!(
        turns,
        [
            (RecordRole::Caller, said[0]),
            (RecordRole::Agent, replies[0]),
            (RecordRole::Caller, said[1]),
            (RecordRole::Agent, replies[1]),
        ]
    );
    for agent in record
        .events
        .turns
        .iter()
        .filter(|t| t.role == RecordRole::Agent)
    {
        let l = agent.latency.expect("latency on an agent turn");
        assert!(
            l.stt_ms.is_some()
                && l.agent_ms.is_some()
                && l.tts_ms.is_some()
                && l.server_ms.is_some(),
            "{l:?}"
        );
        assert!(!agent.interrupted);
    }
    // Turns follow each other in the call's time.
    assert!(
        record
            .events
            .turns
            .windows(2)
            .all(|w| w[0].start_ms <= w[1].start_ms)
    );
    let (status, text) = reqwest::Client::new()
        .get(format!(
            "http://{}/api/calls/{}/transcript",
            s.server.local_addr(),
            call.call_sid
        ))
        .header("Accept", "text/plain")
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .expect("GET transcript");
    assert_eq!(status, 200);
    let text = text.text().await.unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.contains(&format!("agent: {}", replies[1])), "{text}");
}

async fn barge_in_is_recorded(db: Db) {
    let Some(s) = cascade_stack(db, "barge_in_is_recorded").await else {
        return;
    };
    s.deepgram.transcripts.push("Tell me about my order");
    s.deepgram.transcripts.push("Stop, when will it arrive?");
    let long = [
        "Your order contains three items.",
        "The first item is a blue kettle with a two year warranty.",
        "The second item is a set of four ceramic mugs in assorted colours.",
        "The third item is a pack of premium loose leaf green tea.",
        "All three items were packed together in one box.",
        "The box left our warehouse yesterday afternoon.",
    ];
    s.chat.push_reply(FakeReply {
        content: long.iter().map(|p| format!("{p} ")).collect(),
        tool_calls: Vec::new(),
        delay_ms: 400,
    });
    s.chat.push_reply(FakeReply::text("Tomorrow."));
    let call = SimCall::new(s.server.media_url())
        .step(Step::Silence(Duration::from_millis(300)))
        .step(Step::Speak(fixture("question-8k.wav")))
        .step(Step::WaitForReply(Duration::from_secs(10)))
        .step(Step::Silence(Duration::from_millis(800)))
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Silence(Duration::from_millis(300)));
    let (report, summary, record) = run(&s.server, call.clone()).await;
    println!("{report}");
    assert!(report.clears_received >= 1, "no clear on barge-in");
    assert_eq!(summary.barge_ins, 1);
    assert_matches_summary(&record, &summary, &call);
    let agent: Vec<_> = record
        .events
        .turns
        .iter()
        .filter(|t| t.role == RecordRole::Agent)
        .collect();
    assert_eq!(agent.len(), 2, "{agent:#?}");
    let full = long.join(" ");
    assert!(agent[0].interrupted, "the first reply was cut off");
    assert!(
        agent[0].text.len() < full.len() && full.starts_with(agent[0].text.trim_end()),
        "recorded {:?}, a prefix of the reply is what was heard",
        agent[0].text
    );
    assert!(!agent[1].interrupted);
    assert_eq!(agent[1].text, "Tomorrow.");
    // The caller's second turn began before the cut-off reply's end (that is the barge-in).
    let callers: Vec<_> = record
        .events
        .turns
        .iter()
        .filter(|t| t.role == RecordRole::Caller)
        .collect();
    assert_eq!(callers[1].text, "Stop, when will it arrive?");
    assert!(callers[1].start_ms <= agent[0].end_ms + 500);
}

async fn impaired_line_is_recorded_poor(db: Db) {
    let Some(url) = store_url(db, "impaired_line_is_recorded_poor").await else {
        return;
    };
    let server = echo_server(url).await;
    let mut call = SimCall::new(server.media_url())
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::WaitForReplyEnd(Duration::from_secs(15)))
        .step(Step::Silence(Duration::from_secs(1)));
    call.impairments = Impairments {
        loss_pct: 20.0,
        seed: 3,
        ..Impairments::default()
    };
    let (report, summary, record) = run(&server, call.clone()).await;
    println!("{report}");
    assert_matches_summary(&record, &summary, &call);
    let q = record.quality.as_ref().expect("quality");
    assert_eq!(q.band, Band::Poor, "{q:#?}");
    assert!(q.reasons.contains(&Reason::PacketLoss), "{:?}", q.reasons);
    assert!(q.reasons.contains(&Reason::LowMos), "{:?}", q.reasons);
    let loss = q.report["transport"]["loss_ratio"].as_f64().unwrap();
    assert!((loss * 100.0 - 20.0).abs() < 6.0, "loss {loss}");
    // The live alert was raised during the call and cleared at its end; the timeline shows it.
    let alerts = &record.events.alerts;
    let raised = alerts
        .iter()
        .find(|a| a.condition == Reason::PacketLoss && a.state == AlertState::Raised)
        .unwrap_or_else(|| panic!("no packet_loss alert: {alerts:#?}"));
    assert!(raised.value > raised.threshold, "{raised:?}");
    assert!(raised.at_ms < summary.duration_ms);
    assert!(
        alerts
            .iter()
            .any(|a| a.condition == Reason::PacketLoss && a.state == AlertState::Cleared)
    );
    let timeline = &record.events.timeline;
    assert!(timeline.iter().any(|p| p.loss_pct > 5.0), "{timeline:#?}");
    assert!(
        timeline
            .iter()
            .any(|p| p.alerts.contains(&Reason::PacketLoss)),
        "{timeline:#?}"
    );
    let sid = call.call_sid.as_str();
    assert!(
        listed(&server, "band=poor&reason=packet_loss")
            .await
            .iter()
            .any(|s| s == sid)
    );
    assert!(!listed(&server, "band=good").await.iter().any(|s| s == sid));
    assert!(
        !listed(&server, "reason=clipping")
            .await
            .iter()
            .any(|s| s == sid)
    );
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Db::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Db::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    echo_call_is_recorded,
    cascade_conversation_is_recorded,
    barge_in_is_recorded,
    impaired_line_is_recorded_poor,
);
