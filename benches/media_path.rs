//! Per-frame costs on the media path (criterion). Run: `cargo bench --bench media_path`.
//! One frame is Twilio's 20 ms: 160 bytes of 8 kHz μ-law.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;

use criterion::{Criterion, criterion_group, criterion_main};
use voxbridge::audio::frame_dbfs;
use voxbridge::audio::{mulaw, resample::StreamResampler};
use voxbridge::call::ears::Ears;
use voxbridge::call::frames::CallInput;
use voxbridge::config::Config;
use voxbridge::engine::turn::TurnDetector;
use voxbridge::quality::meter::QualityMeter;
use voxbridge::twilio::codec::MediaStreamsCodec;
use voxbridge::twilio::messages::{
    InboundEvent, OutboundMessage, decode_payload, media_json, parse_inbound, write_outbound,
};

const SID: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";

fn speechy_frame() -> [u8; 160] {
    let mut pcm = [0i16; 160];
    for (i, s) in pcm.iter_mut().enumerate() {
        let t = i as f32 / 8000.0;
        *s = (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
            + 3000.0 * (2.0 * std::f32::consts::PI * 1330.0 * t).sin()) as i16;
    }
    let mut out = [0u8; 160];
    mulaw::encode_into(&pcm, &mut out);
    out
}

fn codec(c: &mut Criterion) {
    let frame = speechy_frame();
    let mut pcm = [0i16; 160];
    c.bench_function("mulaw_decode_frame", |b| {
        b.iter(|| mulaw::decode_into(black_box(&frame), &mut pcm))
    });
    let mut out = [0u8; 160];
    c.bench_function("mulaw_encode_frame", |b| {
        b.iter(|| mulaw::encode_into(black_box(&pcm), &mut out))
    });
}

fn resampling(c: &mut Criterion) {
    let input: Vec<f32> = (0..160).map(|i| (i as f32 * 0.3).sin() * 0.5).collect();
    let mut up = StreamResampler::new(8000, 16000).expect("resampler");
    let mut out = Vec::with_capacity(4096);
    c.bench_function("resample_8k_to_16k_frame", |b| {
        b.iter(|| {
            out.clear();
            up.process(black_box(&input), &mut out).expect("process");
        })
    });
    let input24: Vec<f32> = (0..480).map(|i| (i as f32 * 0.1).sin() * 0.5).collect();
    let mut down = StreamResampler::new(24000, 8000).expect("resampler");
    c.bench_function("resample_24k_to_8k_frame", |b| {
        b.iter(|| {
            out.clear();
            down.process(black_box(&input24), &mut out)
                .expect("process");
        })
    });
}

fn protocol(c: &mut Criterion) {
    let frame = speechy_frame();
    let json = media_json(42, SID, 41, 800, &frame);
    let mut payload = Vec::with_capacity(512);
    c.bench_function("parse_media_message_and_decode_base64", |b| {
        b.iter(|| {
            if let Ok(InboundEvent::Media(m)) = parse_inbound(black_box(&json)) {
                let _ = decode_payload(m.payload, &mut payload);
            }
        })
    });
    let msg = OutboundMessage::Media {
        payload: bytes::Bytes::copy_from_slice(&frame),
    };
    let mut text = String::with_capacity(512);
    c.bench_function("build_outbound_media_message", |b| {
        b.iter(|| write_outbound(black_box(&msg), SID, &mut text))
    });
}

fn per_frame_analysis(c: &mut Criterion) {
    let config = Config::default();
    let mut pcm = [0i16; 160];
    mulaw::decode_into(&speechy_frame(), &mut pcm);
    let t0 = Instant::now();
    let mut meter = QualityMeter::new(&config.quality, 5, t0);
    let mut chunk = 0u64;
    c.bench_function("quality_meter_frame", |b| {
        b.iter(|| {
            chunk += 1;
            let at = t0 + Duration::from_millis(chunk * 20);
            black_box(meter.on_media(at, chunk, chunk * 20, black_box(&pcm), -20.0, true, false))
        })
    });
    let mut turn = TurnDetector::new(&config.turn);
    c.bench_function("vad_frame", |b| {
        b.iter(|| {
            let level = frame_dbfs(black_box(&pcm));
            black_box(turn.push(level >= config.turn.vad_threshold_dbfs, 20, t0))
        })
    });
}

/// What the session does per inbound frame: the Twilio codec (JSON → base64 → μ-law, stream
/// checks) → the ears (PCM, level, voice) → quality meter → turn detector → STT buffer (the
/// frame copied into the provider's queue item).
fn inbound_path(c: &mut Criterion) {
    let config = Config::default();
    let start = voxbridge::twilio::messages::start_json(1, "AC1", SID, "CA1", &[]);
    let json = media_json(42, SID, 41, 800, &speechy_frame());
    let mut codec = MediaStreamsCodec::new(config.limits.max_media_payload_bytes);
    let mut ears = Ears::new(&config.turn);
    let _ = codec.decode(&start, &mut ears.payload);
    let mut turn = TurnDetector::new(&config.turn);
    let t0 = Instant::now();
    let mut meter = QualityMeter::new(&config.quality, 5, t0);
    let mut chunk = 0u64;
    c.bench_function("inbound_frame_path", |b| {
        b.iter(|| {
            if let Ok(CallInput::Audio(_)) = codec.decode(black_box(&json), &mut ears.payload) {
                chunk += 1;
                let at = t0 + Duration::from_millis(chunk * 20);
                let heard = ears.listen();
                let (mulaw, pcm) = ears.frame();
                meter.on_media(
                    at,
                    chunk,
                    chunk * 20,
                    pcm,
                    heard.level_dbfs,
                    heard.voiced,
                    false,
                );
                black_box(turn.push(heard.voiced, 20, at));
                black_box(Bytes::copy_from_slice(mulaw));
            }
        })
    });
}

/// What the session does per outbound frame of TTS audio: PCM → μ-law → JSON.
fn outbound_path(c: &mut Criterion) {
    let mut pcm = [0i16; 160];
    mulaw::decode_into(&speechy_frame(), &mut pcm);
    let mut frame = [0u8; 160];
    let mut text = String::with_capacity(512);
    c.bench_function("outbound_frame_path", |b| {
        b.iter(|| {
            mulaw::encode_into(black_box(&pcm), &mut frame);
            let msg = OutboundMessage::Media {
                payload: Bytes::copy_from_slice(&frame),
            };
            write_outbound(&msg, SID, &mut text);
            black_box(&text);
        })
    });
}

criterion_group!(
    benches,
    codec,
    resampling,
    protocol,
    per_frame_analysis,
    inbound_path,
    outbound_path
);
criterion_main!(benches);
