//! Property tests: arbitrary sequences of inbound frames never panic or hang a `CallSession`,
//! and the summary it returns agrees with a small model of the session's documented rules
//! (what is counted, under which reason, and what ends the call).
//!
//! Each case runs a real session (default config, echo services) in its own current-thread
//! runtime, fed through a bounded channel by a producer task, with the writer side drained
//! and checked too. Real time is used: `tokio/test-util` (paused clocks) is not enabled for
//! this crate, and the session mixes `std::time::Instant` with tokio timers anyway. Frames
//! are queued as fast as the session takes them, so only the rare `Pause` step makes the
//! session wait on its timers.
//!
//! Run more cases locally with `PROPTEST_CASES=2000 cargo test --test session_props`.
//! The fuzz targets in `fuzz/` drive the same harness with coverage guidance.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voxbridge::call::outbox::Outgoing;
use voxbridge::call::services::CallServices;
use voxbridge::call::session::{CallSession, Inbound};
use voxbridge::call::summary::{CallSummary, EndReason};
use voxbridge::config::Config;
use voxbridge::metrics::Metrics;
use voxbridge::quality::notify::QualityOutlets;
use voxbridge::twilio::messages::{
    self as msg, ErrorReason, InboundEvent, ParsedOutbound, decode_payload, parse_inbound,
    parse_outbound,
};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// One step of the socket reader's output, plus `Pause` (the reader being slow).
#[derive(Clone, Debug)]
enum Frame {
    Text(String),
    Binary,
    TooLarge,
    Closed {
        abrupt: bool,
    },
    /// The producer waits this long (real time) before the next frame.
    Pause(u64),
}

/// What a run produced: the summary and everything the session handed its writer.
struct Run {
    summary: CallSummary,
    outgoing: Vec<Outgoing>,
}

/// Longest a session may take beyond the pauses it was fed before it counts as hung.
const HANG_TIMEOUT: Duration = Duration::from_secs(5);
/// Channel capacity between the (fake) socket reader and the session: small, so the
/// producer and the session interleave.
const INBOUND_QUEUE: usize = 8;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current-thread runtime")
}

/// Feed `frames` to a fresh session and wait for its summary. Panics if it hangs.
async fn run_session(config: &Config, frames: &[Frame]) -> Run {
    voxbridge::metrics::install();
    let (out_tx, mut out_rx) = mpsc::channel(config.limits.outbound_queue);
    let drain = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(out) = out_rx.recv().await {
            got.push(out);
        }
        got
    });
    let outlets = QualityOutlets::start(&config.quality, &config.alerts);
    let session = CallSession::new(
        Arc::new(config.clone()),
        Arc::new(CallServices::echo()),
        Metrics::new(),
        outlets,
        out_tx,
    );
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let owned: Vec<Frame> = frames.to_vec();
    let paused: u64 = frames
        .iter()
        .map(|f| match f {
            Frame::Pause(ms) => *ms,
            _ => 0,
        })
        .sum();
    let producer = tokio::spawn(async move {
        for frame in owned {
            let inbound = match frame {
                Frame::Text(s) => Inbound::Text(s.into()),
                Frame::Binary => Inbound::Binary,
                Frame::TooLarge => Inbound::TooLarge,
                Frame::Closed { abrupt } => Inbound::Closed { abrupt },
                Frame::Pause(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    continue;
                }
            };
            if in_tx.send(inbound).await.is_err() {
                break; // the session ended
            }
        }
        // Dropping `in_tx` here is the socket going away.
    });
    let limit = HANG_TIMEOUT + Duration::from_millis(paused);
    let summary =
        match tokio::time::timeout(limit, session.run(in_rx, CancellationToken::new())).await {
            Ok(summary) => summary,
            Err(_) => panic!("CallSession did not end within {limit:?} of its input closing"),
        };
    producer.abort();
    let outgoing = tokio::time::timeout(HANG_TIMEOUT, drain)
        .await
        .expect("writer drain did not end after the session dropped its sender")
        .expect("writer drain task");
    Run { summary, outgoing }
}

// ---------------------------------------------------------------------------------------------
// Model: what the summary must say, from the session's documented rules
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Expected {
    /// Frames the session saw, up to and including the one that ended it (pauses excluded).
    processed: u64,
    end: Option<EndReason>,
    /// Exact counts for reasons whose rules are unambiguous.
    errors: BTreeMap<&'static str, u64>,
    /// `media` messages before any `start` (the floor for `media_before_start`).
    media_before_start: u64,
    /// `dtmf`/`mark` before `start`: may be counted as `media_before_start` too.
    other_before_start: u64,
    /// `media` with another stream's sid (the floor for `wrong_stream_sid`).
    media_wrong_sid: u64,
    /// `dtmf`/`mark`/`stop` with another stream's sid: may be counted as `wrong_stream_sid`.
    other_wrong_sid: u64,
    /// Every parsed `media` message the session saw.
    media_parsed: u64,
    media_accepted: u64,
    marks: u64,
    dtmf: String,
    stream_sid: Option<String>,
    call_sid: Option<String>,
}

fn expected(frames: &[Frame], max_payload: usize) -> Expected {
    let mut e = Expected::default();
    let add = |e: &mut Expected, r: ErrorReason| *e.errors.entry(r.as_str()).or_default() += 1;
    let mut buf = Vec::new();
    for frame in frames {
        if matches!(frame, Frame::Pause(_)) {
            continue;
        }
        e.processed += 1;
        match frame {
            Frame::Pause(_) => unreachable!(),
            Frame::Binary => add(&mut e, ErrorReason::BinaryFrame),
            Frame::TooLarge => {
                add(&mut e, ErrorReason::MessageTooLarge);
                e.end = Some(EndReason::MessageTooLarge);
            }
            Frame::Closed { abrupt: true } => {
                add(&mut e, ErrorReason::AbruptDisconnect);
                e.end = Some(EndReason::AbruptDisconnect);
            }
            Frame::Closed { abrupt: false } => e.end = Some(EndReason::Closed),
            Frame::Text(text) => match parse_inbound(text) {
                Err(err) => add(&mut e, err.reason()),
                Ok(InboundEvent::Connected(_)) => {}
                Ok(InboundEvent::Start(start)) => {
                    if e.stream_sid.is_some() {
                        add(&mut e, ErrorReason::DuplicateStart);
                    } else {
                        e.stream_sid = Some(start.stream_sid.0);
                        e.call_sid = Some(start.call_sid.0);
                    }
                }
                Ok(InboundEvent::Media(m)) => {
                    e.media_parsed += 1;
                    match e.stream_sid.as_deref() {
                        None => e.media_before_start += 1,
                        Some(sid) if m.stream_sid != sid => e.media_wrong_sid += 1,
                        Some(_) => {
                            e.media_accepted += 1;
                            match decode_payload(m.payload, &mut buf) {
                                Err(reason) => add(&mut e, reason),
                                Ok(()) if buf.len() > max_payload => {
                                    add(&mut e, ErrorReason::OversizedPayload)
                                }
                                Ok(()) => {}
                            }
                        }
                    }
                }
                Ok(ev @ (InboundEvent::Dtmf(_) | InboundEvent::Mark(_))) => {
                    // Checked against the stream first, like media: refused before `start` or
                    // for another stream.
                    let ours = match e.stream_sid.as_deref() {
                        None => {
                            e.other_before_start += 1;
                            false
                        }
                        Some(sid) if ev.stream_sid() != Some(sid) => {
                            e.other_wrong_sid += 1;
                            false
                        }
                        Some(_) => true,
                    };
                    match ev {
                        // One key per event (0-9 * # A-D); anything else is an invalid message.
                        InboundEvent::Dtmf(d) if ours => match d.digit.as_bytes() {
                            [k] if b"0123456789*#ABCD".contains(k) => e.dtmf.push_str(&d.digit),
                            _ => add(&mut e, ErrorReason::InvalidMessage),
                        },
                        InboundEvent::Dtmf(_) => {}
                        _ => e.marks += 1,
                    }
                }
                Ok(InboundEvent::Stop(stop)) => match e.stream_sid.as_deref() {
                    // A stop before `start` or for another stream is refused: the call goes on.
                    None => e.other_before_start += 1,
                    Some(sid) if stop.stream_sid.as_str() != sid => e.other_wrong_sid += 1,
                    Some(_) => e.end = Some(EndReason::Stop),
                },
            },
        }
        if e.end.is_some() {
            return e;
        }
    }
    // The channel closed under the session without a close frame.
    e.end = Some(EndReason::AbruptDisconnect);
    e
}

/// Check a run against the model and the invariants every call must keep.
fn check(frames: &[Frame], run: &Run) -> Result<(), TestCaseError> {
    let config = Config::default();
    let s = &run.summary;
    let e = expected(frames, config.limits.max_media_payload_bytes);
    let err = |r: ErrorReason| s.errors(r);

    prop_assert_eq!(Some(s.end_reason), e.end, "end reason");
    prop_assert_eq!(&s.stream_sid, &e.stream_sid, "stream sid");
    prop_assert_eq!(&s.call_sid, &e.call_sid, "call sid");

    // Counts bounded by what was sent.
    let total_errors: u64 = s.protocol_errors.values().sum();
    prop_assert!(
        total_errors <= e.processed + 1,
        "{total_errors} errors from {} frames",
        e.processed
    );
    prop_assert!(s.media_frames_received <= e.media_parsed);
    prop_assert_eq!(s.media_frames_received, e.media_accepted, "media received");
    prop_assert!(s.marks_received <= e.marks);
    prop_assert!(s.marks_received + e.other_before_start + e.other_wrong_sid >= e.marks);
    prop_assert!(s.responses_played + s.marks_ignored <= s.marks_received);
    prop_assert!(
        s.turns <= e.processed,
        "{} turns from {} frames",
        s.turns,
        e.processed
    );
    prop_assert!(s.dtmf_digits.len() <= e.dtmf.len());
    if e.other_before_start == 0 && e.other_wrong_sid == 0 {
        prop_assert!(
            e.dtmf.starts_with(&s.dtmf_digits),
            "dtmf {:?} not a prefix of {:?}",
            s.dtmf_digits,
            e.dtmf
        );
        if s.dtmf_digits.len() < voxbridge::call::summary::MAX_DTMF_DIGITS {
            prop_assert_eq!(&s.dtmf_digits, &e.dtmf);
        }
    }

    // Reasons with unambiguous rules: exact.
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
        let want = e.errors.get(reason.as_str()).copied().unwrap_or(0);
        prop_assert_eq!(err(reason), want, "protocol_errors[{}]", reason.as_str());
    }
    // Ordering / stream checks: media, dtmf, mark and stop alike.
    let mbs = err(ErrorReason::MediaBeforeStart);
    prop_assert_eq!(
        mbs,
        e.media_before_start + e.other_before_start,
        "before start"
    );
    let wss = err(ErrorReason::WrongStreamSid);
    prop_assert_eq!(
        wss,
        e.media_wrong_sid + e.other_wrong_sid,
        "wrong stream sid"
    );
    for name in s.protocol_errors.keys() {
        prop_assert!(
            ErrorReason::ALL.iter().any(|r| r.as_str() == *name),
            "unknown reason label {name}"
        );
    }

    // The report is complete and serialisable.
    prop_assert!(s.quality.is_some(), "no quality report");
    prop_assert!(serde_json::to_string(s).is_ok());

    // Everything handed to the writer is a well-formed message for this stream.
    let mut media_out = 0u64;
    let mut closes = Vec::new();
    for out in &run.outgoing {
        match out {
            Outgoing::Text(text) | Outgoing::Media(text) => {
                let parsed = parse_outbound(text);
                prop_assert!(parsed.is_ok(), "unparsable outbound {text:?}: {parsed:?}");
                let sid = match parsed.unwrap() {
                    ParsedOutbound::Media {
                        stream_sid,
                        payload,
                    } => {
                        prop_assert!(matches!(out, Outgoing::Media(_)), "media sent as Text");
                        prop_assert!(!payload.is_empty(), "empty outbound media");
                        media_out += 1;
                        stream_sid
                    }
                    ParsedOutbound::Mark { stream_sid, name } => {
                        prop_assert!(matches!(out, Outgoing::Text(_)));
                        prop_assert!(name.starts_with("resp-"), "mark {name:?}");
                        stream_sid
                    }
                    ParsedOutbound::Clear { stream_sid } => {
                        prop_assert!(matches!(out, Outgoing::Text(_)));
                        stream_sid
                    }
                };
                prop_assert_eq!(Some(&sid), s.stream_sid.as_ref(), "outbound stream sid");
            }
            Outgoing::Close(code, _) => closes.push(*code),
        }
    }
    prop_assert_eq!(media_out, s.media_frames_sent, "media handed to the writer");
    prop_assert!(closes.len() <= 1, "closes {closes:?}");
    if let Some(&code) = closes.first() {
        prop_assert_eq!(
            Some(code),
            close_code(s.end_reason),
            "close for {:?}",
            s.end_reason
        );
    }
    Ok(())
}

/// The close frame the session asks for when it ends for `end` (it always closes the socket
/// before letting the engine's providers wind down).
fn close_code(end: EndReason) -> Option<u16> {
    match end {
        EndReason::MessageTooLarge => Some(1009),
        EndReason::ServerShutdown => Some(1001),
        EndReason::TokenRejected => Some(1008),
        _ => Some(1000),
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

const ACCOUNT: &str = "AC00000000000000000000000000000000";
const CALL: &str = "CA00000000000000000000000000000000";
const SID: &str = "MZ00000000000000000000000000000001";

/// Mostly the call's sid; sometimes another, an empty one, or one needing JSON escapes.
fn sid() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => Just(SID.to_owned()),
        1 => Just("MZ00000000000000000000000000000002".to_owned()),
        1 => Just(String::new()),
        1 => Just("MZ\"q\\\u{1}\u{2603}".to_owned()),
        1 => "\\PC{0,12}",
    ]
}

/// Sequence / chunk / timestamp numbers: small and in order most of the time, extremes too.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0u64..10_000,
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => (u64::MAX - 1000)..=u64::MAX,
        1 => any::<u64>(),
    ]
}

/// μ-law payload bytes: noise, silence (0xFF), loud, empty; rarely over the size cap.
fn payload_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..400),
        2 => (0usize..400).prop_map(|n| vec![0xFF; n]),
        2 => prop::collection::vec(0x00u8..0x20, 160..=160),
        1 => Just(Vec::new()),
        1 => (8001usize..8200).prop_map(|n| vec![0x7F; n]),
    ]
}

fn media_with_raw_payload(seq: u64, sid: &str, chunk: u64, ts: u64, payload: &str) -> String {
    let sid_json = serde_json::to_string(sid).unwrap();
    format!(
        r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{ts}","payload":"{payload}"}},"streamSid":{sid_json}}}"#
    )
}

/// Base64-ish strings that are not valid padded base64 (or are, by chance), JSON-safe.
fn bad_base64() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9+/=]{1,24}",
        "[A-Za-z0-9+/]{1,23}",
        "[A-Za-z0-9_\\-]{4,24}",
        "[ !#-\\[\\]-~]{0,24}",
        Just("====".to_owned()),
        Just("AAA=A".to_owned()),
        Just("\\u0041AAA".to_owned()), // a JSON escape: refused before decoding
    ]
}

fn media_frame() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (number(), sid(), number(), number(), payload_bytes())
            .prop_map(|(seq, sid, chunk, ts, p)| msg::media_json(seq, &sid, chunk, ts, &p)),
        1 => (number(), sid(), number(), number(), bad_base64())
            .prop_map(|(seq, sid, chunk, ts, p)| media_with_raw_payload(seq, &sid, chunk, ts, &p)),
    ]
}

fn start_frame() -> impl Strategy<Value = String> {
    (
        number(),
        sid(),
        prop::collection::vec(("\\PC{0,8}", "\\PC{0,8}"), 0..3),
    )
        .prop_map(|(seq, sid, params)| msg::start_json(seq, ACCOUNT, &sid, CALL, &params))
}

fn dtmf_frame() -> impl Strategy<Value = String> {
    (
        number(),
        sid(),
        prop_oneof!["[0-9*#]", "[0-9*#A-D]{0,4}", "\\PC{0,6}"],
    )
        .prop_map(|(seq, sid, digit)| msg::dtmf_json(seq, &sid, &digit))
}

fn mark_frame() -> impl Strategy<Value = String> {
    (
        number(),
        sid(),
        prop_oneof![
            3 => (0u64..6).prop_map(|n| format!("resp-{n}")),
            1 => any::<u64>().prop_map(|n| format!("resp-{n}")),
            1 => "resp-[0-9a-z\\-]{0,6}",
            1 => "\\PC{0,10}",
        ],
    )
        .prop_map(|(seq, sid, name)| msg::mark_json(seq, &sid, &name))
}

fn stop_frame() -> impl Strategy<Value = String> {
    (number(), sid()).prop_map(|(seq, sid)| msg::stop_json(seq, ACCOUNT, &sid, CALL))
}

fn valid_message() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(msg::connected_json()).boxed(),
        2 => start_frame().boxed(),
        5 => media_frame().boxed(),
        1 => dtmf_frame().boxed(),
        1 => mark_frame().boxed(),
        1 => stop_frame().boxed(),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Delete(usize, usize),
    Insert(usize, u8),
}

/// A valid message with a few byte flips, truncations, deletions or insertions.
fn mutated_message() -> impl Strategy<Value = String> {
    let mutation = prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
    ];
    (valid_message(), prop::collection::vec(mutation, 1..4)).prop_map(|(text, muts)| {
        let mut bytes = text.into_bytes();
        for m in muts {
            let len = bytes.len();
            match m {
                Mutation::Flip(i, x) if len > 0 => bytes[i % len] ^= x,
                Mutation::Truncate(i) => bytes.truncate(i % (len + 1)),
                Mutation::Delete(i, n) if len > 0 => {
                    let at = i % len;
                    bytes.drain(at..(at + n).min(len));
                }
                Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
                _ => {}
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// JSON-ish fragments: the protocol's keys and odd values glued together.
fn json_fragment() -> impl Strategy<Value = String> {
    const TOKENS: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\"event\"",
        "\"media\"",
        "\"start\"",
        "\"stop\"",
        "\"mark\"",
        "\"dtmf\"",
        "\"connected\"",
        "\"sequenceNumber\"",
        "\"streamSid\"",
        "\"payload\"",
        "\"chunk\"",
        "\"timestamp\"",
        "\"track\"",
        "\"mediaFormat\"",
        "\"customParameters\"",
        "\"MZ00000000000000000000000000000001\"",
        "null",
        "true",
        "-1",
        "1.5",
        "1e999",
        "18446744073709551616",
        "\"18446744073709551615\"",
        "\"\\ud800\"",
        "\"AAAA\"",
    ];
    let token = prop_oneof![
        4 => prop::sample::select(TOKENS).prop_map(str::to_owned),
        1 => "\"[a-z0-9]{0,6}\"",
        1 => "[0-9]{1,22}",
    ]
    .boxed();
    prop::collection::vec(token, 0..30).prop_map(|t| t.concat())
}

/// Media messages whose fields have odd types and values (the lenient field parsing).
fn odd_field_media() -> impl Strategy<Value = String> {
    const VALUES: &[&str] = &[
        "\"1\"",
        "1",
        "\"-1\"",
        "-1",
        "1.0",
        "\"1.0\"",
        "\"\"",
        "null",
        "{}",
        "[]",
        "true",
        "\"18446744073709551615\"",
        "18446744073709551616",
        "\"18446744073709551616\"",
        "\"+1\"",
        "\" 1\"",
        "\"0x10\"",
        "\"AAAA\"",
        "\"MZ00000000000000000000000000000001\"",
    ];
    let value = prop::sample::select(VALUES).prop_map(str::to_owned).boxed();
    (value.clone(), value.clone(), value.clone(), value.clone(), value.clone(), value).prop_map(
        |(seq, track, chunk, ts, payload, sid)| {
            format!(
                r#"{{"event":"media","sequenceNumber":{seq},"media":{{"track":{track},"chunk":{chunk},"timestamp":{ts},"payload":{payload}}},"streamSid":{sid}}}"#
            )
        },
    )
}

/// One generator step: usually one frame; a `Talk` burst is a run of consecutive loud then
/// silent 20 ms media frames, enough for the VAD to end a turn and the echo agent to answer.
#[derive(Clone, Debug)]
enum Step {
    One(Frame),
    Talk {
        seq: u64,
        chunk: u64,
        ts: u64,
        loud: usize,
        silent: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => valid_message().prop_map(|t| Step::One(Frame::Text(t))).boxed(),
        3 => mutated_message().prop_map(|t| Step::One(Frame::Text(t))).boxed(),
        1 => ".*".prop_map(|t| Step::One(Frame::Text(t))).boxed(),
        2 => json_fragment().prop_map(|t| Step::One(Frame::Text(t))).boxed(),
        2 => odd_field_media().prop_map(|t| Step::One(Frame::Text(t))).boxed(),
        1 => Just(Step::One(Frame::Binary)).boxed(),
        1 => Just(Step::One(Frame::TooLarge)).boxed(),
        1 => any::<bool>().prop_map(|abrupt| Step::One(Frame::Closed { abrupt })).boxed(),
        1 => (0u64..30).prop_map(|ms| Step::One(Frame::Pause(ms))).boxed(),
        2 => (0u64..1000, 0u64..1000, 0u64..100_000, 3usize..25, 0usize..40).prop_map(
            |(seq, chunk, ts, loud, silent)| Step::Talk { seq, chunk, ts, loud, silent }
        ).boxed(),
    ]
}

fn expand(steps: &[Step]) -> Vec<Frame> {
    let mut frames = Vec::new();
    for s in steps {
        match s {
            Step::One(f) => frames.push(f.clone()),
            Step::Talk {
                seq,
                chunk,
                ts,
                loud,
                silent,
            } => {
                for i in 0..(loud + silent) {
                    let i64_ = i as u64;
                    let audio: Vec<u8> = if i < *loud {
                        (0..160)
                            .map(|k| if k % 2 == 0 { 0x05 } else { 0x85 })
                            .collect()
                    } else {
                        vec![0xFF; 160]
                    };
                    frames.push(Frame::Text(msg::media_json(
                        seq + i64_,
                        SID,
                        chunk + i64_,
                        ts + 20 * i64_,
                        &audio,
                    )));
                }
            }
        }
    }
    frames
}

fn frames() -> impl Strategy<Value = Vec<Frame>> {
    prop::collection::vec(step(), 1..200).prop_map(|steps| expand(&steps))
}

/// Cases are modest so the suite stays well under 20 s in debug builds; raise with
/// `PROPTEST_CASES`. No failure-persistence files are written into the repository.
fn proptest_config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn arbitrary_frames_never_panic_or_hang() {
    let mut runner = TestRunner::new(proptest_config());
    let rt = runtime();
    let config = Config::default();
    let result = runner.run(&frames(), |frames| {
        let run = rt.block_on(run_session(&config, &frames));
        check(&frames, &run)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Mostly-valid calls: the interesting paths (turns, echo playout, marks) are reached often.
#[test]
fn mostly_valid_calls_keep_their_invariants() {
    let start = start_frame_fixed();
    let step = prop_oneof![
        6 => (0u64..1000, 0u64..1000, 0u64..100_000, 3usize..30, 20usize..45).prop_map(
            |(seq, chunk, ts, loud, silent)| Step::Talk { seq, chunk, ts, loud, silent }
        ),
        2 => (0u64..6).prop_map(|n| Step::One(Frame::Text(msg::mark_json(9, SID, &format!("resp-{n}"))))),
        1 => "[0-9*#]".prop_map(|d| Step::One(Frame::Text(msg::dtmf_json(9, SID, &d)))),
        1 => (0u64..30).prop_map(|ms| Step::One(Frame::Pause(ms))),
        1 => media_frame().prop_map(|t| Step::One(Frame::Text(t))),
    ];
    let strategy = prop::collection::vec(step, 1..12).prop_map(move |steps| {
        let mut frames = vec![
            Frame::Text(msg::connected_json()),
            Frame::Text(start.clone()),
        ];
        frames.extend(expand(&steps));
        frames
    });
    let mut runner = TestRunner::new(ProptestConfig {
        cases: proptest_config().cases / 2,
        ..proptest_config()
    });
    let rt = runtime();
    let config = Config::default();
    // `TestRunner::run` takes an `Fn`: count through cells.
    let (turns, answered) = (std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));
    let result = runner.run(&strategy, |frames| {
        let run = rt.block_on(run_session(&config, &frames));
        turns.set(turns.get() + run.summary.turns);
        answered.set(answered.get() + run.summary.media_frames_sent);
        check(&frames, &run)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Guard against the generator drifting away from the interesting paths.
    let (turns, answered) = (turns.get(), answered.get());
    assert!(
        turns > 0 && answered > 0,
        "no case reached a turn ({turns}) and an echoed reply ({answered} frames sent)"
    );
}

fn start_frame_fixed() -> String {
    msg::start_json(
        1,
        ACCOUNT,
        SID,
        CALL,
        &[("from".into(), "+15550100".into())],
    )
}

/// A realistic call: connect, start, silence, a spoken turn, the echo's marks, keypresses, a
/// bad frame or two, another turn, stop.
fn realistic_call() -> Vec<Frame> {
    let mut frames = vec![
        Frame::Text(msg::connected_json()),
        Frame::Text(start_frame_fixed()),
    ];
    let mut seq = 2;
    let mut chunk = 1;
    let mut media = |frames: &mut Vec<Frame>, audio: &[u8]| {
        frames.push(Frame::Text(msg::media_json(
            seq,
            SID,
            chunk,
            (chunk - 1) * 20,
            audio,
        )));
        seq += 1;
        chunk += 1;
    };
    let silence = vec![0xFFu8; 160];
    let loud: Vec<u8> = (0..160)
        .map(|k| if k % 2 == 0 { 0x05 } else { 0x85 })
        .collect();
    for _ in 0..10 {
        media(&mut frames, &silence);
    }
    for _ in 0..20 {
        media(&mut frames, &loud);
    }
    for _ in 0..35 {
        media(&mut frames, &silence);
    }
    frames.push(Frame::Text(msg::mark_json(100, SID, "resp-1")));
    frames.push(Frame::Text(msg::dtmf_json(101, SID, "4")));
    frames.push(Frame::Text(msg::dtmf_json(102, SID, "2")));
    frames.push(Frame::Binary);
    frames.push(Frame::Text("{\"event\":\"media\"".to_owned()));
    for _ in 0..15 {
        media(&mut frames, &loud);
    }
    for _ in 0..35 {
        media(&mut frames, &silence);
    }
    frames.push(Frame::Text(msg::mark_json(200, SID, "resp-2")));
    frames.push(Frame::Text(msg::stop_json(201, ACCOUNT, SID, CALL)));
    frames
}

/// Every prefix of a realistic call (the socket dropping at any point) ends cleanly.
#[test]
fn every_prefix_of_a_realistic_call_ends_cleanly() {
    let frames = realistic_call();
    let rt = runtime();
    let config = Config::default();
    for n in 0..=frames.len() {
        let prefix = &frames[..n];
        let run = rt.block_on(run_session(&config, prefix));
        if let Err(e) = check(prefix, &run) {
            panic!("prefix of {n} frames: {e}");
        }
        let want = if n == frames.len() {
            EndReason::Stop
        } else {
            EndReason::AbruptDisconnect
        };
        assert_eq!(run.summary.end_reason, want, "prefix of {n} frames");
    }
    // The whole call: two spoken turns were answered.
    let run = rt.block_on(run_session(&config, &frames));
    assert_eq!(run.summary.turns, 2, "turns of the full call");
    assert_eq!(run.summary.dtmf_digits, "42");
}

/// A frame cut at every byte (a truncated read) is counted, never fatal.
#[test]
fn frames_truncated_at_every_byte_are_harmless() {
    let rt = runtime();
    let config = Config::default();
    let start = start_frame_fixed();
    let media = msg::media_json(2, SID, 1, 0, &[0xFF; 160]);
    for whole in [&start, &media] {
        for cut in (0..whole.len()).filter(|&c| whole.is_char_boundary(c)) {
            let frames = vec![
                Frame::Text(msg::connected_json()),
                Frame::Text(if std::ptr::eq(whole, &start) {
                    start[..cut].to_owned()
                } else {
                    start.clone()
                }),
                Frame::Text(if std::ptr::eq(whole, &media) {
                    media[..cut].to_owned()
                } else {
                    media.clone()
                }),
                Frame::Closed { abrupt: false },
            ];
            let run = rt.block_on(run_session(&config, &frames));
            if let Err(e) = check(&frames, &run) {
                panic!("cut at {cut}: {e}");
            }
        }
    }
}

/// Each payload encoding edge case on its own, with a valid start before it.
#[test]
fn payload_edge_cases() {
    let b64 = base64::engine::general_purpose::STANDARD;
    let rt = runtime();
    let config = Config::default();
    let cases = [
        String::new(),
        "=".to_owned(),
        "A".to_owned(),
        "AA==".to_owned(),
        "AA=".to_owned(),
        "AAAA====".to_owned(),
        b64.encode([0u8; 1]),
        b64.encode(vec![0xFFu8; config.limits.max_media_payload_bytes]),
        b64.encode(vec![0xFFu8; config.limits.max_media_payload_bytes + 1]),
    ];
    for payload in cases {
        let frames = vec![
            Frame::Text(start_frame_fixed()),
            Frame::Text(media_with_raw_payload(2, SID, 1, 0, &payload)),
        ];
        let run = rt.block_on(run_session(&config, &frames));
        if let Err(e) = check(&frames, &run) {
            panic!("payload {:?}: {e}", &payload[..payload.len().min(16)]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Regression cases (minimised by this suite; both panicked with "attempt to add with overflow"
// in debug builds and wrapped silently in release before `QualityMeter` used saturating
// arithmetic)
// ---------------------------------------------------------------------------------------------

fn regression(frames: Vec<Frame>) {
    let rt = runtime();
    let run = rt.block_on(run_session(&Config::default(), &frames));
    if let Err(e) = check(&frames, &run) {
        panic!("{e}");
    }
}

/// `timestamp` = u64::MAX on an accepted media frame: `QualityMeter::on_media` computed the
/// next expected timestamp as `timestamp_ms + pcm.len() / 8` (src/quality/meter.rs:185).
#[test]
fn regression_media_timestamp_u64_max() {
    regression(vec![
        Frame::Text(msg::start_json(0, ACCOUNT, SID, CALL, &[])),
        Frame::Text(media_with_raw_payload(0, SID, 0, u64::MAX, "AAAAAAAAAAA=")),
    ]);
}

/// `chunk` = u64::MAX, then any other frame: the chunk gap (u64::MAX - 1) went into `lost`,
/// and `QualityMeter::loss_ratio` added `lost + received` at call end (src/quality/meter.rs:303).
#[test]
fn regression_media_chunk_u64_max_then_another_frame() {
    regression(vec![
        Frame::Text(msg::start_json(0, ACCOUNT, SID, CALL, &[])),
        Frame::Text(media_with_raw_payload(0, SID, u64::MAX, 0, "AA==")),
        Frame::Text(media_with_raw_payload(0, SID, 0, 0, "AA==")),
    ]);
}
