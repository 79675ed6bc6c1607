//! Scores every candidate speech detector on the evaluation set in `fixtures/vad/` and prints
//! the tables of `docs/vad-evaluation.md` (markdown):
//!
//! ```sh
//! cargo run --release --example vad_eval > docs/vad-evaluation-tables.md
//! ```
//!
//! Options: `--only NAME` (one detector), `--summary` (the summary table only).

mod candidates;

use std::collections::BTreeMap;

use voxbridge::audio::vad::eval::score::{
    BargeScore, TurnScore, run, score_barge_clip, score_turn_clip, thread_cpu_ns,
};
use voxbridge::audio::vad::eval::{fixtures_dir, load_frames, load_manifest};
use voxbridge::audio::vad::gate::GateConfig;
use voxbridge::audio::vad::{AdaptiveVad, FixedEnergy, SpeechDetector};
use voxbridge::config::Config;

fn detectors() -> Vec<Box<dyn SpeechDetector>> {
    let cfg = Config::default();
    vec![
        Box::new(FixedEnergy::new(cfg.turn.vad_threshold_dbfs)),
        Box::new(AdaptiveVad::new((&cfg.vad).into())),
        Box::new(candidates::WebRtc::new(2)),
        Box::new(candidates::WebRtc::new(3)),
        Box::new(candidates::Earshot::new(0.5)),
        Box::new(candidates::AdaptiveAndEarshot::default()),
    ]
}

#[derive(Default)]
struct Totals {
    turns: TurnScore,
    by_clip: Vec<(String, i32, TurnScore)>,
    barge: Vec<(String, BargeScore, BargeScore)>,
    nanos: u64,
    frames: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let summary_only = args.iter().any(|a| a == "--summary");
    let dir = fixtures_dir();
    let manifest = load_manifest(&dir)?;
    let cfg = Config::default();
    let gate = GateConfig::new(&cfg.turn, &cfg.vad, false);
    let legacy = GateConfig::legacy(&cfg.turn);
    let agent = load_frames(&dir, "agent.wav")?;
    let mut turn_audio = Vec::new();
    for c in &manifest.turn_clips {
        turn_audio.push(load_frames(&dir, &c.file)?);
    }
    let mut barge_audio = Vec::new();
    for c in &manifest.barge_in_clips {
        barge_audio.push(load_frames(&dir, &c.file)?);
    }

    let mut results: Vec<(&'static str, Totals)> = Vec::new();
    for mut det in detectors() {
        if only.as_deref().is_some_and(|o| o != det.name()) {
            continue;
        }
        let mut t = Totals::default();
        // Cost: the CPU time of all pushes, in one span (the counter is tick-granular).
        let cpu = thread_cpu_ns();
        let turn_verdicts: Vec<_> = turn_audio.iter().map(|f| run(det.as_mut(), f)).collect();
        let barge_verdicts: Vec<_> = barge_audio.iter().map(|f| run(det.as_mut(), f)).collect();
        t.nanos = match (cpu, thread_cpu_ns()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => turn_verdicts
                .iter()
                .chain(&barge_verdicts)
                .map(|(_, n)| n)
                .sum(),
        };
        for (clip, (verdicts, _)) in manifest.turn_clips.iter().zip(&turn_verdicts) {
            t.frames += verdicts.len() as u64;
            let s = score_turn_clip(clip, verdicts, gate, legacy);
            t.turns.add(&s);
            t.by_clip.push((clip.noise.clone(), clip.snr_db, s));
        }
        for (clip, (verdicts, _)) in manifest.barge_in_clips.iter().zip(&barge_verdicts) {
            t.frames += verdicts.len() as u64;
            let verdicts = verdicts.as_slice();
            let l = score_barge_clip(clip, verdicts, &agent, legacy);
            let g = score_barge_clip(clip, verdicts, &agent, gate);
            t.barge.push((clip.file.clone(), l, g));
        }
        results.push((det.name(), t));
    }

    println!("## Summary (all 24 turn clips and 4 barge-in clips)\n");
    println!(
        "| detector | speech missed % | noise taken for speech % | turn-end \\|error\\| ms (mean) | turns cut early / never ended / spurious | false barge-ins/min on noise (60 ms rule / gate) | false barge-ins/min while agent speaks (60 ms rule / gate) | interruptions caught (gate), mean delay | ns/frame |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, t) in &results {
        let s = &t.turns;
        let (nl, ng) = s.false_barge_ins_per_min();
        let agent_min: f64 = t
            .barge
            .iter()
            .map(|(_, l, _)| l.agent_ms as f64)
            .sum::<f64>()
            / 60e3;
        let fl: u32 = t.barge.iter().map(|(_, l, _)| l.false_total()).sum();
        let fg: u32 = t.barge.iter().map(|(_, _, g)| g.false_total()).sum();
        let caught: Vec<u32> = t
            .barge
            .iter()
            .filter_map(|(_, _, g)| g.interruption_ms)
            .collect();
        let delay = caught.iter().sum::<u32>() as f64 / caught.len().max(1) as f64;
        println!(
            "| {name} | {:.1} | {:.1} | {} | {} / {} / {} | {:.1} / {:.1} | {:.1} / {:.1} | {}/{}, {:.0} ms | {:.0} |",
            s.missed_pct(),
            s.false_pct(),
            s.mean_abs_end_error_ms()
                .map_or("–".into(), |e| format!("{e:.0}")),
            s.early,
            s.stuck,
            s.spurious,
            nl,
            ng,
            f64::from(fl) / agent_min,
            f64::from(fg) / agent_min,
            caught.len(),
            t.barge.len(),
            delay,
            t.nanos as f64 / t.frames.max(1) as f64,
        );
    }
    if summary_only {
        return Ok(());
    }

    println!("\n## Per noise and SNR (turn clips)\n");
    println!(
        "| noise | SNR dB | detector | missed % | false % | turn-end \\|err\\| ms | early / stuck / spurious | false BI/min (60 ms / gate) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rows: BTreeMap<(String, i32), Vec<(&str, &TurnScore)>> = BTreeMap::new();
    for (name, t) in &results {
        for (noise, snr, s) in &t.by_clip {
            rows.entry((noise.clone(), -snr))
                .or_default()
                .push((name, s));
        }
    }
    for ((noise, neg_snr), list) in &rows {
        for (name, s) in list {
            let (nl, ng) = s.false_barge_ins_per_min();
            println!(
                "| {noise} | {} | {name} | {:.1} | {:.1} | {} | {} / {} / {} | {:.1} / {:.1} |",
                -neg_snr,
                s.missed_pct(),
                s.false_pct(),
                s.mean_abs_end_error_ms()
                    .map_or("–".into(), |e| format!("{e:.0}")),
                s.early,
                s.stuck,
                s.spurious,
                nl,
                ng
            );
        }
    }

    println!("\n## Barge-in clips (agent speaking; echo 18 dB down, 160 ms late)\n");
    println!("| clip | detector | rule | false barge-ins (blamed on) | interruption cut after |");
    println!("|---|---|---|---|---|");
    for (name, t) in &results {
        for (file, l, g) in &t.barge {
            for (rule, s) in [("60 ms", l), ("gate", g)] {
                let blamed = s
                    .false_by_kind
                    .iter()
                    .map(|(k, n)| format!("{k} ×{n}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                println!(
                    "| {file} | {name} | {rule} | {} {} | {} |",
                    s.false_total(),
                    if blamed.is_empty() {
                        String::new()
                    } else {
                        format!("({blamed})")
                    },
                    s.interruption_ms
                        .map_or("missed".into(), |ms| format!("{ms} ms"))
                );
            }
        }
    }
    Ok(())
}
