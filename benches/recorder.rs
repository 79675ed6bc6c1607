//! Per-frame cost of call recording (criterion). Run: `cargo bench --bench recorder`.
//!
//! A frame is Twilio's 20 ms: one inbound caller frame plus one outbound chunk, both recorded —
//! the busiest case, both parties talking. The recorders use the real writer thread, whose
//! files are `/dev/null` here so the figure is the call's own cost (the ring, the 250 ms block
//! hand-off and the queue), not the disk's. The simulated clock moves 20 ms per frame.
//!
//! `observer_frame` is the same frame as a call pays it: two `CallEvent`s (`AudioIn`,
//! `AudioSent`) through the call's `RecordingTap`, made from the server's `Recordings` service
//! (its writer and compactor threads, files in a temporary directory).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use voxbridge::call::context::{CallContext, Direction, EngineKind};
use voxbridge::call::events::{AudioFrame, CallEvent};
use voxbridge::call::observers::RecordingTap;
use voxbridge::call::recorder::{Recorder, RecordingWriter, Recordings};
use voxbridge::store::recordings::{Format, RecordingStore};

const FRAME: Duration = Duration::from_millis(20);
const LEAD: Duration = Duration::from_millis(120);

struct Call {
    rec: Recorder,
    k: u64,
}

impl Call {
    fn frame(&mut self, t0: Instant, caller: &[u8], reply: &[u8]) {
        let now = t0 + FRAME * self.k as u32;
        self.rec.caller_audio(now, 20 * self.k, caller);
        self.rec.played_audio(now + LEAD, reply);
        if self.k % 250 == 249 {
            self.rec.cleared(now); // a barge-in every 5 s
        }
        self.k += 1;
    }
}

fn calls(writer: &RecordingWriter, n: usize, t0: Instant) -> Vec<Call> {
    (0..n)
        .map(|i| Call {
            rec: Recorder::new(
                writer,
                &format!("CA{i}"),
                PathBuf::from("/dev/null"),
                t0,
                120,
            ),
            k: 0,
        })
        .collect()
}

fn recorder(c: &mut Criterion) {
    let (writer, _thread) = RecordingWriter::spawn(8192, |_| {}).expect("writer thread");
    let caller = [0x55u8; 160];
    let reply = [0x2au8; 160];
    let mut group = c.benchmark_group("recorder");

    let t0 = Instant::now();
    let mut one = calls(&writer, 1, t0);
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_call_frame", |b| {
        b.iter(|| one[0].frame(t0, black_box(&caller), black_box(&reply)))
    });

    // 1,000 concurrent calls, each one frame per iteration (what 20 ms of wall time costs).
    let mut many = calls(&writer, 1000, t0);
    group.throughput(Throughput::Elements(1000));
    group.bench_function("1000_calls_one_frame_each", |b| {
        b.iter(|| {
            for call in many.iter_mut() {
                call.frame(t0, black_box(&caller), black_box(&reply));
            }
        })
    });
    group.finish();
    let dropped: u64 = many.iter().map(|c| c.rec.stats().blocks_dropped).sum();
    let blocks: u64 = many.iter().map(|c| c.k).sum::<u64>() / 12;
    println!(
        "1000 calls: {} frames each, ~{blocks} blocks handed to the writer, {dropped} dropped \
         (the benchmark runs far faster than real time)",
        many[0].k
    );
}

/// Frames per simulated call in `observer_frame` (5 minutes): then it ends and the next begins,
/// so the bench also pays call set-up and close, and no file grows without bound.
const CALL_FRAMES: u64 = 15_000;

fn context(n: u64) -> CallContext {
    CallContext {
        call_sid: format!("CAbench{n}"),
        stream_sid: format!("MZbench{n}"),
        direction: Direction::Inbound,
        from: String::new(),
        to: String::new(),
        profile: "default".into(),
        engine: EngineKind::Echo,
        parameters: Default::default(),
        started_at: std::time::SystemTime::now(),
    }
}

fn observer(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("voxbridge-bench-rec-{}", std::process::id()));
    let store = RecordingStore::with_format(dir.clone(), 0, Format::compiled());
    // The real writer thread; finished files are removed instead of compacted (the bench
    // measures the call's side, not the background encoder).
    let (writer, _thread) = RecordingWriter::spawn(8192, |closed| {
        let _ = std::fs::remove_file(closed.path);
    })
    .expect("writer thread");
    let recordings = Recordings::new(store, writer, 120);
    let (caller, reply, pcm) = ([0x55u8; 160], [0x2au8; 160], [0i16; 160]);
    let mut call = 0u64;
    let mut k = 0u64;
    let mut t0 = Instant::now();
    let mut tap = RecordingTap::new(Some(recordings.clone()), t0, tracing::Span::none());
    tap.on_event(&CallEvent::Started(&context(call)));
    let mut group = c.benchmark_group("recorder");
    group.throughput(Throughput::Elements(1));
    group.bench_function("observer_frame", |b| {
        b.iter(|| {
            if k == CALL_FRAMES {
                tap.finish(FRAME * k as u32);
                call += 1;
                k = 0;
                t0 += FRAME * CALL_FRAMES as u32;
                tap = RecordingTap::new(Some(recordings.clone()), t0, tracing::Span::none());
                tap.on_event(&CallEvent::Started(&context(call)));
            }
            let at = t0 + FRAME * k as u32;
            let frame = AudioFrame {
                at,
                chunk: k + 1,
                timestamp_ms: 20 * k,
                mulaw: black_box(&caller),
                pcm: &pcm,
                payload_b64: "",
                level_dbfs: -20.0,
                voiced: true,
                vad: voxbridge::audio::vad::VadFrame {
                    probability: 1.0,
                    speech: true,
                    voiced: true,
                    level_dbfs: -20.0,
                },
                noise_floor_dbfs: -70.0,
                playing: true,
            };
            tap.on_event(&CallEvent::AudioIn(&frame));
            tap.on_event(&CallEvent::AudioSent {
                mulaw: black_box(&reply),
                play_at: at + LEAD,
            });
            k += 1;
        })
    });
    group.finish();
    tap.finish(FRAME * k as u32);
    println!("observer_frame: {} simulated 5-minute calls", call + 1);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, recorder, observer);
criterion_main!(benches);
