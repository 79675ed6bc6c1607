//! The speech detector and the barge-in gate on the evaluation set (`fixtures/vad/`, issue 11):
//! turns end on time on noisy lines, coughs, clicks, backchannels and our own echo do not cut
//! a reply, a real interruption does, and the detector's noise floor agrees with the quality
//! meter's. The full table is `cargo run --release --example vad_eval`.

use std::time::{Duration, Instant};

use voxbridge::audio::vad::eval::score::{run, score_barge_clip, score_turn_clip};
use voxbridge::audio::vad::eval::{Manifest, fixtures_dir, load_frames, load_manifest};
use voxbridge::audio::vad::gate::GateConfig;
use voxbridge::audio::vad::{AdaptiveVad, FixedEnergy, SpeechDetector, frame_dbfs};
use voxbridge::config::Config;
use voxbridge::quality::meter::QualityMeter;

fn manifest() -> Manifest {
    load_manifest(&fixtures_dir()).unwrap()
}

fn adaptive() -> AdaptiveVad {
    AdaptiveVad::new((&Config::default().vad).into())
}

fn gates() -> (GateConfig, GateConfig) {
    let cfg = Config::default();
    (
        GateConfig::new(&cfg.turn, &cfg.vad, false),
        GateConfig::legacy(&cfg.turn),
    )
}

#[test]
fn turns_end_on_time_on_white_and_car_noise_at_20_and_10_db() {
    let m = manifest();
    let (gate, legacy) = gates();
    for name in [
        "turn-white-20db.wav",
        "turn-white-10db.wav",
        "turn-car-20db.wav",
        "turn-car-10db.wav",
    ] {
        let clip = m.turn_clips.iter().find(|c| c.file == name).unwrap();
        let frames = load_frames(&fixtures_dir(), name).unwrap();
        let (verdicts, _) = run(&mut adaptive(), &frames);
        let s = score_turn_clip(clip, &verdicts, gate, legacy);
        assert_eq!((s.early, s.stuck, s.spurious), (0, 0, 0), "{name}: {s:?}");
        assert!(
            s.end_errors.iter().all(|e| e.abs() <= 200),
            "{name}: turn-end errors {:?}",
            s.end_errors
        );
        assert!(
            s.false_pct() < 5.0,
            "{name}: {:.1} % noise taken for speech",
            s.false_pct()
        );
        // At 10 dB the labels' quiet speech frames (down to 35 dB below the peak) are under
        // the noise: about a quarter of them cannot be heard (26 % on white). What matters,
        // turns ending on time and not early, is asserted above.
        assert!(
            s.missed_pct() < 30.0,
            "{name}: {:.1} % speech missed",
            s.missed_pct()
        );

        // The detector before issue 11 never lets these turns end (the dead air).
        let (fixed, _) = run(&mut FixedEnergy::new(-42.0), &frames);
        let f = score_turn_clip(clip, &fixed, gate, legacy);
        assert!(
            f.stuck + f.early > 0,
            "{name}: fixed energy unexpectedly fine: {f:?}"
        );
    }
}

#[test]
fn coughs_clicks_backchannels_and_echo_do_not_cut_the_reply_an_interruption_does() {
    let m = manifest();
    let (gate, legacy) = gates();
    let dir = fixtures_dir();
    let agent = load_frames(&dir, "agent.wav").unwrap();
    for clip in m.barge_in_clips.iter().filter(|c| c.noise != "babble") {
        let frames = load_frames(&dir, &clip.file).unwrap();
        let (verdicts, _) = run(&mut adaptive(), &frames);
        let s = score_barge_clip(clip, &verdicts, &agent, gate);
        assert_eq!(s.false_total(), 0, "{}: {:?}", clip.file, s.false_by_kind);
        let delay = s
            .interruption_ms
            .unwrap_or_else(|| panic!("{}: missed", clip.file));
        // "Wait, no, that is not what I asked for": without STT words the cut comes with the
        // first run of voice longer than a backchannel (the commas are ~300 ms pauses).
        assert!(
            delay <= 1500,
            "{}: interruption cut after {delay} ms",
            clip.file
        );

        // Today's rule (any 60 ms of energy) is fooled by the same audio.
        let (fixed, _) = run(&mut FixedEnergy::new(-42.0), &frames);
        let l = score_barge_clip(clip, &fixed, &agent, legacy);
        assert!(
            l.false_total() > 0,
            "{}: the 60 ms rule was not fooled",
            clip.file
        );
    }
}

#[test]
fn noise_floor_agrees_with_the_quality_meter_and_the_truth() {
    let m = manifest();
    let cfg = Config::default();
    for clip in m
        .turn_clips
        .iter()
        .filter(|c| ["white", "pink", "car"].contains(&c.noise.as_str()))
    {
        let frames = load_frames(&fixtures_dir(), &clip.file).unwrap();
        let truth = clip.speech_dbfs - clip.snr_db as f32;
        let mut det = adaptive();
        let t0 = Instant::now();
        let mut meter = QualityMeter::new(&cfg.quality, 5, t0);
        for (i, f) in frames.iter().enumerate() {
            let v = det.push(f);
            let at = t0 + Duration::from_millis(20 * i as u64);
            meter.on_media(
                at,
                i as u64 + 1,
                20 * i as u64,
                f,
                frame_dbfs(f),
                v.speech,
                false,
            );
        }
        let floor = det.noise_floor_dbfs();
        let meter_floor = meter.noise_floor_dbfs().unwrap() as f32;
        assert!(
            (floor - truth).abs() <= 2.0,
            "{}: detector floor {floor:.1} vs noise {truth:.1}",
            clip.file
        );
        assert!(
            (meter_floor - floor).abs() <= 3.0,
            "{}: meter floor {meter_floor:.1} vs detector {floor:.1}",
            clip.file
        );
    }
}
