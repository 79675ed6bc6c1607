//! Fuzz a whole `CallSession`: an arbitrary sequence of inbound frames must never panic or
//! hang it, and the summary it returns must agree with what was sent.
//!
//! Input: bytes decoded with `arbitrary` into a `Vec<Frame>`: well-formed Twilio messages with
//! fuzzed fields (numbers, sids, payload bytes, digits, mark names), raw text frames (for
//! JSON-level mutation), bursts of loud-then-silent audio (so the VAD ends turns and the echo
//! agent answers, exercising playout, marks and barge-in), binary / too-large / close frames,
//! and yields (the reader being momentarily empty).
//!
//! The session runs exactly as in `tests/session_props.rs`: default `Config`, echo services,
//! a drained writer channel, a bounded inbound channel fed by a producer task, in a
//! current-thread tokio runtime built once per process, under a 5 s timeout (a hang panics).
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voxbridge::call::outbox::Outgoing;
use voxbridge::call::services::CallServices;
use voxbridge::call::session::{CallSession, Inbound};
use voxbridge::call::summary::EndReason;
use voxbridge::config::Config;
use voxbridge::metrics::Metrics;
use voxbridge::quality::notify::QualityOutlets;
use voxbridge::twilio::messages::{
    self as msg, ErrorReason, InboundEvent, ParsedOutbound, decode_payload, parse_inbound,
    parse_outbound,
};

const ACCOUNT: &str = "AC00000000000000000000000000000000";
const CALL: &str = "CA00000000000000000000000000000000";
const SID: &str = "MZ00000000000000000000000000000001";
const HANG_TIMEOUT: Duration = Duration::from_secs(5);
const INBOUND_QUEUE: usize = 8;
/// Keeps one input's work bounded (libFuzzer's -max_len bounds it too).
const MAX_FRAMES: usize = 512;

#[derive(Arbitrary, Debug)]
enum Sid {
    Main,
    Other,
    Empty,
    Custom(String),
}

impl Sid {
    fn get(&self) -> &str {
        match self {
            Sid::Main => SID,
            Sid::Other => "MZ00000000000000000000000000000002",
            Sid::Empty => "",
            Sid::Custom(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum MarkName {
    Resp(u8),
    RespBig(u64),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Frame {
    Raw(String),
    Connected,
    Start {
        seq: u64,
        sid: Sid,
        params: Vec<(String, String)>,
    },
    Media {
        seq: u64,
        sid: Sid,
        chunk: u64,
        ts: u64,
        payload: Vec<u8>,
    },
    /// A media message whose payload string is put into the JSON as is (invalid base64,
    /// escapes, or broken JSON).
    MediaRawPayload {
        seq: u64,
        sid: Sid,
        chunk: u64,
        ts: u64,
        payload: String,
    },
    /// `n` consecutive 20 ms frames of `level` (0 silent .. 255 loud), continuing the
    /// chunk / timestamp / sequence counters.
    Audio {
        n: u8,
        level: u8,
    },
    Dtmf {
        seq: u64,
        sid: Sid,
        digit: String,
    },
    Mark {
        seq: u64,
        sid: Sid,
        name: MarkName,
    },
    Stop {
        seq: u64,
        sid: Sid,
    },
    Binary,
    TooLarge,
    Closed {
        abrupt: bool,
    },
    /// The producer yields to the scheduler (the session may find the queue empty).
    Yield,
}

/// What the producer hands the session, in order.
enum Item {
    In(Inbound),
    Yield,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        voxbridge::metrics::install();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(Config::default)
}

/// Turn the fuzzer's frames into wire text.
fn render(frames: &[Frame]) -> Vec<Option<Inbound>> {
    let mut out = Vec::with_capacity(frames.len());
    let (mut seq, mut chunk, mut ts) = (2u64, 1u64, 0u64);
    for f in frames {
        let text = match f {
            Frame::Raw(s) => s.clone(),
            Frame::Connected => msg::connected_json(),
            Frame::Start { seq, sid, params } => {
                msg::start_json(*seq, ACCOUNT, sid.get(), CALL, params)
            }
            Frame::Media {
                seq,
                sid,
                chunk,
                ts,
                payload,
            } => msg::media_json(*seq, sid.get(), *chunk, *ts, payload),
            Frame::MediaRawPayload {
                seq,
                sid,
                chunk,
                ts,
                payload,
            } => format!(
                r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{ts}","payload":"{payload}"}},"streamSid":{}}}"#,
                serde_json::to_string(sid.get()).unwrap_or_default()
            ),
            Frame::Audio { n, level } => {
                // μ-law: 0xFF is silence; lower magnitudes (bits 0..6 inverted) are louder.
                let byte = 0x7F - (level >> 1);
                let frame: Vec<u8> = (0..160)
                    .map(|k| if k % 2 == 0 { byte } else { byte | 0x80 })
                    .collect();
                for _ in 0..(*n % 64) {
                    out.push(Some(Inbound::Text(
                        msg::media_json(seq, SID, chunk, ts, &frame).into(),
                    )));
                    seq = seq.wrapping_add(1);
                    chunk = chunk.wrapping_add(1);
                    ts = ts.wrapping_add(20);
                }
                continue;
            }
            Frame::Dtmf { seq, sid, digit } => msg::dtmf_json(*seq, sid.get(), digit),
            Frame::Mark { seq, sid, name } => {
                let name = match name {
                    MarkName::Resp(n) => format!("resp-{}", n % 8),
                    MarkName::RespBig(n) => format!("resp-{n}"),
                    MarkName::Other(s) => s.clone(),
                };
                msg::mark_json(*seq, sid.get(), &name)
            }
            Frame::Stop { seq, sid } => msg::stop_json(*seq, ACCOUNT, sid.get(), CALL),
            Frame::Binary => {
                out.push(Some(Inbound::Binary));
                continue;
            }
            Frame::TooLarge => {
                out.push(Some(Inbound::TooLarge));
                continue;
            }
            Frame::Closed { abrupt } => {
                out.push(Some(Inbound::Closed { abrupt: *abrupt }));
                continue;
            }
            Frame::Yield => {
                out.push(None);
                continue;
            }
        };
        out.push(Some(Inbound::Text(text.into())));
    }
    out
}

fuzz_target!(|frames: Vec<Frame>| {
    if frames.len() > MAX_FRAMES {
        return;
    }
    let items: Vec<Item> = render(&frames)
        .into_iter()
        .map(|i| i.map_or(Item::Yield, Item::In))
        .collect();
    // The model needs the texts; keep a copy before they move into the channel.
    let seen: Vec<Seen> = items.iter().map(Seen::of).collect();
    let config = config();
    let (summary, outgoing) = runtime().block_on(async move {
        let (out_tx, mut out_rx) = mpsc::channel(config.limits.outbound_queue);
        let drain = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(out) = out_rx.recv().await {
                got.push(out);
            }
            got
        });
        let session = CallSession::new(
            Arc::new(config.clone()),
            Arc::new(CallServices::echo()),
            Metrics::new(),
            QualityOutlets::start(&config.quality, &config.alerts),
            out_tx,
        );
        let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
        let producer = tokio::spawn(async move {
            for item in items {
                match item {
                    Item::Yield => tokio::task::yield_now().await,
                    Item::In(inbound) => {
                        if in_tx.send(inbound).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let summary =
            match tokio::time::timeout(HANG_TIMEOUT, session.run(in_rx, CancellationToken::new()))
                .await
            {
                Ok(s) => s,
                Err(_) => panic!("CallSession hung: no summary {HANG_TIMEOUT:?} after input ended"),
            };
        producer.abort();
        let outgoing = tokio::time::timeout(HANG_TIMEOUT, drain)
            .await
            .expect("writer drain hung")
            .expect("writer drain task");
        (summary, outgoing)
    });

    // ---- the summary agrees with a model of the session's rules ----
    let m = model(&seen, config.limits.max_media_payload_bytes);
    assert_eq!(Some(summary.end_reason), m.end, "end reason");
    assert_eq!(summary.stream_sid, m.stream_sid, "stream sid");
    assert_eq!(
        summary.media_frames_received, m.media_accepted,
        "media received"
    );
    for reason in [
        ErrorReason::InvalidJson,
        ErrorReason::InvalidMessage,
        ErrorReason::UnknownEvent,
        ErrorReason::BinaryFrame,
        ErrorReason::DuplicateStart,
        ErrorReason::InvalidBase64,
        ErrorReason::EmptyPayload,
        ErrorReason::OversizedPayload,
        ErrorReason::MessageTooLarge,
        ErrorReason::AbruptDisconnect,
    ] {
        let want = m.errors.get(reason.as_str()).copied().unwrap_or(0);
        assert_eq!(
            summary.errors(reason),
            want,
            "protocol_errors[{}]",
            reason.as_str()
        );
    }
    let total: u64 = summary.protocol_errors.values().sum();
    assert!(
        total <= m.processed + 1,
        "{total} errors from {} frames",
        m.processed
    );
    assert!(summary.marks_received <= m.marks);
    assert!(summary.responses_played + summary.marks_ignored <= summary.marks_received);
    assert!(summary.quality.is_some());

    // ---- everything handed to the writer is well formed and for this stream ----
    let mut media_out = 0;
    let mut closes = 0;
    for out in &outgoing {
        match out {
            Outgoing::Text(t) | Outgoing::Media(t) => {
                let parsed = parse_outbound(t)
                    .unwrap_or_else(|e| panic!("unparsable outbound message {t:?}: {e}"));
                let sid = match &parsed {
                    ParsedOutbound::Media { stream_sid, .. } => {
                        assert!(matches!(out, Outgoing::Media(_)));
                        media_out += 1;
                        stream_sid
                    }
                    ParsedOutbound::Mark { stream_sid, .. }
                    | ParsedOutbound::Clear { stream_sid } => {
                        assert!(matches!(out, Outgoing::Text(_)));
                        stream_sid
                    }
                };
                assert_eq!(
                    Some(sid),
                    summary.stream_sid.as_ref(),
                    "outbound stream sid"
                );
            }
            Outgoing::Close(code, _) => {
                closes += 1;
                let want = match summary.end_reason {
                    EndReason::MessageTooLarge => Some(1009),
                    EndReason::ServerShutdown => Some(1001),
                    EndReason::TokenRejected => Some(1008),
                    EndReason::AgentHangup | EndReason::IdleTimeout | EndReason::MaxDuration => {
                        Some(1000)
                    }
                    _ => None,
                };
                assert_eq!(Some(*code), want, "close for {:?}", summary.end_reason);
            }
        }
    }
    assert_eq!(
        media_out, summary.media_frames_sent,
        "media handed to the writer"
    );
    assert!(closes <= 1);
});

/// What the model needs of each item (the inbound values themselves moved into the channel).
enum Seen {
    Text(String),
    Binary,
    TooLarge,
    Closed(bool),
    Yield,
}

impl Seen {
    fn of(item: &Item) -> Seen {
        match item {
            Item::Yield => Seen::Yield,
            Item::In(Inbound::Text(t)) => Seen::Text(t.as_str().to_owned()),
            Item::In(Inbound::Binary) => Seen::Binary,
            Item::In(Inbound::TooLarge) => Seen::TooLarge,
            Item::In(Inbound::Closed { abrupt }) => Seen::Closed(*abrupt),
        }
    }
}

#[derive(Default)]
struct Model {
    processed: u64,
    end: Option<EndReason>,
    errors: BTreeMap<&'static str, u64>,
    media_accepted: u64,
    marks: u64,
    stream_sid: Option<String>,
}

fn model(seen: &[Seen], max_payload: usize) -> Model {
    let mut m = Model::default();
    let add = |m: &mut Model, r: ErrorReason| *m.errors.entry(r.as_str()).or_default() += 1;
    let mut buf = Vec::new();
    for s in seen {
        match s {
            Seen::Yield => continue,
            Seen::Binary => add(&mut m, ErrorReason::BinaryFrame),
            Seen::TooLarge => {
                add(&mut m, ErrorReason::MessageTooLarge);
                m.end = Some(EndReason::MessageTooLarge);
            }
            Seen::Closed(true) => {
                add(&mut m, ErrorReason::AbruptDisconnect);
                m.end = Some(EndReason::AbruptDisconnect);
            }
            Seen::Closed(false) => m.end = Some(EndReason::Closed),
            Seen::Text(t) => match parse_inbound(t) {
                Err(e) => add(&mut m, e.reason()),
                Ok(InboundEvent::Start(st)) => {
                    if m.stream_sid.is_some() {
                        add(&mut m, ErrorReason::DuplicateStart);
                    } else {
                        m.stream_sid = Some(st.stream_sid.0);
                    }
                }
                Ok(InboundEvent::Media(media)) => {
                    if m.stream_sid.as_deref() == Some(&*media.stream_sid) {
                        m.media_accepted += 1;
                        match decode_payload(media.payload, &mut buf) {
                            Err(r) => add(&mut m, r),
                            Ok(()) if buf.len() > max_payload => {
                                add(&mut m, ErrorReason::OversizedPayload)
                            }
                            Ok(()) => {}
                        }
                    }
                }
                Ok(InboundEvent::Mark(_)) => m.marks += 1,
                // One key per event (0-9 * # A-D); anything else is an invalid message.
                // Checked against the stream first, like media.
                Ok(InboundEvent::Dtmf(d)) => {
                    if m.stream_sid.as_deref() == Some(d.stream_sid.as_str())
                        && !matches!(d.digit.as_bytes(), [k] if b"0123456789*#ABCD".contains(k))
                    {
                        add(&mut m, ErrorReason::InvalidMessage);
                    }
                }
                // A stop before start or for another stream does not end the call.
                Ok(InboundEvent::Stop(stop)) => {
                    if m.stream_sid.as_deref() == Some(stop.stream_sid.as_str()) {
                        m.end = Some(EndReason::Stop)
                    }
                }
                Ok(_) => {}
            },
        }
        m.processed += 1;
        if m.end.is_some() {
            return m;
        }
    }
    m.end = Some(EndReason::AbruptDisconnect);
    m
}
