//! Per-frame cost of call recording (criterion). Run: `cargo bench --bench recorder`.
//!
//! A frame is Twilio's 20 ms: one inbound caller frame plus one outbound chunk, both recorded —
//! the busiest case, both parties talking. The recorders use the real writer thread, whose
//! files are `/dev/null` here so the figure is the call's own cost (the ring, the 250 ms block
//! hand-off and the queue), not the disk's. The simulated clock moves 20 ms per frame.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use voxbridge::call::recorder::{Recorder, RecordingWriter};

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

criterion_group!(benches, recorder);
criterion_main!(benches);
