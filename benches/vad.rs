//! Per-frame cost of the caller's speech detector (criterion). Run: `cargo bench --bench vad`.
//! Frames come from the evaluation set (`fixtures/vad/`), cycled, so the mix of gated-out noise
//! frames and analysed speech frames is that of a real turn on a noisy line.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use voxbridge::audio::vad::eval::{fixtures_dir, load_frames};
use voxbridge::audio::vad::gate::{Agent, BargeInGate, GateConfig};
use voxbridge::audio::vad::{AdaptiveVad, FRAME_SAMPLES, FixedEnergy, SpeechDetector};
use voxbridge::config::Config;

fn clip(name: &str) -> Vec<[i16; FRAME_SAMPLES]> {
    load_frames(&fixtures_dir(), name).expect("fixtures/vad is in the repository")
}

fn detectors(c: &mut Criterion) {
    let cfg = Config::default();
    for name in [
        "turn-white-10db.wav",
        "turn-car-20db.wav",
        "turn-coughs-10db.wav",
    ] {
        let frames = clip(name);
        let mut adaptive = AdaptiveVad::new((&cfg.vad).into());
        let mut i = 0;
        c.bench_function(&format!("vad_adaptive_frame/{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % frames.len();
                black_box(adaptive.push(black_box(&frames[i])))
            })
        });
    }
    let frames = clip("turn-white-10db.wav");
    let mut fixed = FixedEnergy::new(cfg.turn.vad_threshold_dbfs);
    let mut i = 0;
    c.bench_function("vad_fixed_energy_frame", |b| {
        b.iter(|| {
            i = (i + 1) % frames.len();
            black_box(fixed.push(black_box(&frames[i])))
        })
    });
}

fn gate(c: &mut Criterion) {
    let cfg = Config::default();
    let frames = clip("barge-white.wav");
    let mut det = AdaptiveVad::new((&cfg.vad).into());
    let verdicts: Vec<_> = frames.iter().map(|f| det.push(f)).collect();
    let mut gate = BargeInGate::new(GateConfig::new(&cfg.turn, &cfg.vad, true));
    let t0 = Instant::now();
    let mut i = 0u64;
    c.bench_function("barge_in_gate_frame", |b| {
        b.iter(|| {
            i += 1;
            let v = verdicts[(i as usize) % verdicts.len()];
            let now = t0 + Duration::from_millis(20 * i);
            black_box(gate.on_frame(now, v, Agent::Playing { level_dbfs: -18.0 }))
        })
    });
}

criterion_group!(benches, detectors, gate);
criterion_main!(benches);
