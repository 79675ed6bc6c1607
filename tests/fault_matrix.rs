//! The fault matrix (issue 10): every fault the fakes can inject, on each provider, in a
//! two-turn call through the real server. The caller must hear audio after both turns, and
//! `voxbridge_provider_errors_total` and the call summary must count the fault exactly once.
//! Prints the table: fault, audio heard after each turn, response latency, errors counted.
//!
//! One test in its own binary, cases one after another: the metric deltas are exact.

mod common;

use std::time::Duration;

use common::stack::*;
use voxbridge::config::Config;
use voxbridge::fakes::Fault;

#[derive(Clone, Copy)]
enum Provider {
    Stt,
    Llm,
    Tts,
}

struct Case {
    name: &'static str,
    provider: Provider,
    fault: Fault,
}

fn cases() -> Vec<Case> {
    use Provider::*;
    let slow = Fault::Stall(Duration::from_secs(4));
    let case = |name, provider, fault| Case {
        name,
        provider,
        fault,
    };
    vec![
        case("stt refused (429)", Stt, Fault::Status(429)),
        case("stt refused (401)", Stt, Fault::Status(401)),
        case("stt dropped", Stt, Fault::DisconnectAfter(60)),
        case("stt closed (1011)", Stt, Fault::ErrorAfter(60)),
        case("stt garbage", Stt, Fault::Malformed),
        case("stt stalled", Stt, Fault::Stall(Duration::from_secs(30))),
        case("llm 401", Llm, Fault::Status(401)),
        case("llm 429", Llm, Fault::Status(429)),
        case("llm 500", Llm, Fault::Status(500)),
        case("llm slow", Llm, slow.clone()),
        case("llm drop", Llm, Fault::DisconnectAfter(3)),
        case("llm error event", Llm, Fault::ErrorAfter(3)),
        case("llm garbage", Llm, Fault::Malformed),
        case("tts 401", Tts, Fault::Status(401)),
        case("tts 429", Tts, Fault::Status(429)),
        case("tts drop", Tts, Fault::DisconnectAfter(3)),
        case("tts error (1011)", Tts, Fault::ErrorAfter(3)),
        case("tts garbage", Tts, Fault::Malformed),
        case("tts slow", Tts, slow),
    ]
}

fn config(c: &mut Config) {
    c.agent.timeout_ms = 1500;
    c.tts.timeout_ms = 1500;
}

/// What one case measured.
struct Row {
    name: &'static str,
    heard_ms: Vec<u64>,
    latency_ms: Vec<u64>,
    metric: f64,
    summary: u64,
    end: &'static str,
}

#[tokio::test]
async fn every_fault_still_answers_both_turns_and_is_counted_once() {
    let mut rows = Vec::new();
    for case in cases() {
        let s = stack(config).await;
        for _ in 0..4 {
            s.deepgram.transcripts.push("When will it arrive");
        }
        match case.provider {
            Provider::Stt => s.deepgram.faults.push(case.fault.clone()),
            Provider::Llm => s.chat.faults.push(case.fault.clone()),
            Provider::Tts => s.elevenlabs.faults.push(case.fault.clone()),
        }
        let before = provider_errors(&s.server).await;
        let call = call_saying(
            s.server.media_url(),
            &["question-8k.wav", "question-8k.wav"],
        );
        let (report, summary) = run(&s.server, call).await;
        // Let any straggling provider task finish counting.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let metric = provider_errors(&s.server).await - before;
        rows.push(Row {
            name: case.name,
            heard_ms: heard_after_each_turn(&report),
            latency_ms: report.response_latencies_ms.clone(),
            metric,
            summary: summary.provider_failures,
            end: summary.end_reason.as_str(),
        });
        if std::env::var_os("MATRIX_VERBOSE").is_some() {
            println!("{}:\n{report}{summary:?}", case.name);
        }
    }

    println!(
        "\n| fault | heard after turn 1 (ms) | heard after turn 2 (ms) | latency (ms) | errors: metric | errors: summary | end |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        let heard = |i: usize| r.heard_ms.get(i).map_or("-".into(), u64::to_string);
        let latency: Vec<String> = r.latency_ms.iter().map(u64::to_string).collect();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            heard(0),
            heard(1),
            latency.join(" / "),
            r.metric,
            r.summary,
            r.end
        );
    }

    let mut failures = Vec::new();
    for r in &rows {
        if r.heard_ms.len() != 2 || r.heard_ms.iter().any(|ms| *ms < 500) {
            failures.push(format!("{}: heard {:?}", r.name, r.heard_ms));
        }
        if r.metric != 1.0 || r.summary != 1 {
            failures.push(format!(
                "{}: counted {} (metric) / {} (summary), expected 1",
                r.name, r.metric, r.summary
            ));
        }
        if r.end != "stop" {
            failures.push(format!("{}: ended {}", r.name, r.end));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
