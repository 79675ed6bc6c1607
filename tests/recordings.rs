//! Recordings from recorder to compacted file: a call with a known caller signal (left) and a
//! known reply played 700 ms in (right) goes through the real recorder, writer thread and
//! compaction worker; the result is decoded by an independent decoder (Debian's `opusdec` for
//! Ogg/Opus, hound for WAV) and each channel must correlate with its source at its offset.
//!
//! `opusdec` comes from Debian's opus-tools (`apt-get install -y opus-tools`; the test command
//! installs it). Without it the Opus test says so and fails when `VOXBRIDGE_REQUIRE_TOOLS=1`
//! (CI), else skips loudly. Run with `--features opus` for the Opus path.

mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use voxbridge::audio::resample::resample_all;
use voxbridge::call::recorder::{ClosedRecording, Recorder, RecordingWriter};
use voxbridge::store::recordings::{Compactor, Format, RecordingStore, compact};

/// The reply starts playing this long after the caller starts speaking.
const OFFSET_MS: u64 = 700;
/// Allowed misalignment.
const TOLERANCE_MS: i64 = 40;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("voxbridge-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The two sources as μ-law (what Twilio would carry).
struct Sources {
    caller: Vec<u8>,
    reply: Vec<u8>,
}

fn sources() -> Sources {
    Sources {
        caller: common::fixture("hello-8k.wav").to_vec(),
        reply: common::fixture("question-8k.wav").to_vec(),
    }
}

/// Simulate a 4 s call through a recorder: caller frames every 20 ms (hello, then line
/// silence), the reply sent like Playout does (up to 120 ms ahead) to play at 700 ms.
fn record_call(writer: &RecordingWriter, path: PathBuf, src: &Sources) {
    let t0 = Instant::now();
    let mut rec = Recorder::new(writer, "CAit", path, t0, 120);
    let silence = [0xFFu8; 160];
    let reply: Vec<&[u8]> = src.reply.chunks(160).collect();
    let mut sent = 0;
    for k in 0..200u64 {
        let now_ms = 20 * k;
        let frame = src.caller.chunks(160).nth(k as usize).unwrap_or(&silence);
        rec.caller_audio(t0 + Duration::from_millis(now_ms + 2), now_ms, frame);
        while sent < reply.len() && OFFSET_MS + 20 * sent as u64 <= now_ms + 120 {
            let play_at = t0 + Duration::from_millis(OFFSET_MS + 20 * sent as u64);
            rec.played_audio(play_at, reply[sent]);
            sent += 1;
        }
    }
    let file = rec.finish().expect("recorded");
    assert_eq!(file.duration, Duration::from_millis(4002));
}

/// Record a call with a real writer thread whose closed files go to `on_closed`.
fn record_with(
    store: &RecordingStore,
    src: &Sources,
    on_closed: impl FnMut(ClosedRecording) + Send + 'static,
) -> PathBuf {
    let (writer, thread) = RecordingWriter::spawn(256, on_closed).unwrap();
    let raw = store.raw_path("CAit", SystemTime::now()).unwrap();
    record_call(&writer, raw.clone(), src);
    drop(writer);
    thread.join();
    raw
}

/// (left, right) as floats from a 16-bit stereo WAV file, and its rate.
fn read_stereo(path: &Path) -> (Vec<f32>, Vec<f32>, u32) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    assert_eq!(spec.channels, 2, "{}", path.display());
    assert_eq!(spec.bits_per_sample, 16);
    let interleaved: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let frames: &[[i16; 2]] = dasp::slice::to_frame_slice(&interleaved[..]).unwrap();
    let f = |s: i16| dasp::Sample::to_sample::<f32>(s);
    let (l, r) = frames.iter().map(|[l, r]| (f(*l), f(*r))).unzip();
    (l, r, spec.sample_rate)
}

/// Each channel correlates with its source, at its offset; the channels are not swapped.
fn assert_channels(left: &[f32], right: &[f32], src: &Sources, min_corr: f32) {
    let caller = common::decode(&src.caller);
    let reply = common::decode(&src.reply);
    let (at, corr) = common::best_alignment(&caller, left);
    println!("left: caller at {:.1} ms, r = {corr:.3}", at as f64 / 8.0);
    assert!(corr > min_corr, "left channel vs caller: r = {corr}");
    let left_ms = at as i64 / 8;
    assert!(left_ms.abs() <= TOLERANCE_MS, "caller at {left_ms} ms");
    let (at, corr) = common::best_alignment(&reply, right);
    println!("right: reply at {:.1} ms, r = {corr:.3}", at as f64 / 8.0);
    assert!(corr > min_corr, "right channel vs reply: r = {corr}");
    let right_ms = at as i64 / 8;
    let offset = right_ms - left_ms;
    assert!(
        (offset - OFFSET_MS as i64).abs() <= TOLERANCE_MS,
        "reply {offset} ms after the caller, expected {OFFSET_MS}"
    );
    let (_, swapped) = common::best_alignment(&reply, left);
    assert!(
        swapped < 0.5,
        "left channel also holds the reply: r = {swapped}"
    );
}

#[test]
fn wav_compaction_keeps_both_channels_aligned() {
    let dir = temp_dir("wav");
    let store = RecordingStore::with_format(dir.clone(), 30, Format::Wav);
    let src = sources();
    let raw = record_with(&store, &src, |_| {});
    let stats = compact(&store, &raw).unwrap();
    assert!(!raw.exists(), "the raw file is replaced");
    assert_eq!(stats.path.extension().unwrap(), "wav");
    assert_eq!(stats.duration, Duration::from_millis(4002));
    let found = store.resolve(&raw).unwrap().unwrap();
    assert_eq!(
        (found.path.clone(), found.content_type),
        (stats.path.clone(), "audio/wav")
    );
    let (left, right, rate) = read_stereo(&stats.path);
    assert_eq!(rate, 8000);
    assert_eq!(left.len(), 32_016);
    // WAV holds the μ-law exactly: each source is there sample for sample.
    let caller = common::decode(&src.caller);
    let reply = common::decode(&src.reply);
    assert_eq!(&left[16..16 + caller.len()], &caller[..]);
    // Caller frames arrived 2 ms after their timestamps; the reply sits on the play clock.
    let at = OFFSET_MS as usize * 8;
    assert_eq!(&right[at..at + reply.len()], &reply[..]);
    assert_channels(&left, &right, &src, 0.99);
    assert!(store.delete(&raw).unwrap());
    assert_eq!(store.resolve(&raw).unwrap(), None);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `opusdec`, or why there is none (failing under `VOXBRIDGE_REQUIRE_TOOLS=1`).
fn opusdec_available() -> bool {
    match std::process::Command::new("opusdec")
        .arg("--version")
        .output()
    {
        Ok(_) => true,
        Err(e) => {
            let msg = format!(
                "opusdec not found ({e}): install Debian's opus-tools \
                 (apt-get install -y opus-tools) to check Ogg/Opus recordings"
            );
            if std::env::var("VOXBRIDGE_REQUIRE_TOOLS").as_deref() == Ok("1") {
                panic!("{msg} (required: VOXBRIDGE_REQUIRE_TOOLS=1)");
            }
            eprintln!("SKIPPED: {msg}");
            false
        }
    }
}

#[cfg(feature = "opus")]
#[test]
fn opus_recording_decodes_with_opusdec_and_stays_aligned() {
    if !opusdec_available() {
        return;
    }
    let dir = temp_dir("opus");
    let store = RecordingStore::with_format(dir.clone(), 30, Format::OggOpus);
    assert_eq!(Format::compiled(), Format::OggOpus);
    let src = sources();
    // The production wiring: writer closes → compactor queue → worker thread.
    let (compactor, worker) =
        Compactor::spawn(store.clone(), 8, Duration::from_secs(3600)).unwrap();
    let (done_tx, done) = mpsc::channel();
    let c = compactor.clone();
    let raw = record_with(&store, &src, move |closed| {
        assert!(c.submit(closed.path.clone()));
        done_tx.send(closed).unwrap();
    });
    let closed = done.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(closed.frames, 32_016);
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        match store.resolve(&raw).unwrap() {
            Some(found) if found.compacted => break found,
            _ if Instant::now() > deadline => panic!("not compacted in 30 s"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    drop(compactor);
    worker.join();
    assert_eq!(found.content_type, "audio/ogg");
    assert!(!raw.exists());
    // 4 s at 32 kb/s is about 16 KB (the raw file is 64 KB).
    assert!(found.bytes < 24_000, "{} bytes", found.bytes);

    let decoded = dir.join("decoded.wav");
    let out = std::process::Command::new("opusdec")
        .args(["--quiet", "--rate", "48000"])
        .arg(&found.path)
        .arg(&decoded)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "opusdec failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (left, right, rate) = read_stereo(&decoded);
    assert_eq!(rate, 48_000);
    // Pre-skip and end trimming: opusdec yields exactly the recorded length.
    assert_eq!(left.len(), 32_016 * 6);
    let left = resample_all(&left, 48_000, 8_000).unwrap();
    let right = resample_all(&right, 48_000, 8_000).unwrap();
    assert_channels(&left, &right, &src, 0.9);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(not(feature = "opus"))]
#[test]
fn without_opus_the_store_says_wav() {
    assert_eq!(Format::compiled(), Format::Wav);
    assert_eq!(Format::compiled().content_type(), "audio/wav");
    let dir = temp_dir("noopus");
    let store = RecordingStore::with_format(dir.clone(), 30, Format::OggOpus);
    let raw = record_with(&store, &sources(), |_| {});
    let e = compact(&store, &raw).unwrap_err();
    assert!(e.to_string().contains("feature `opus`"), "{e}");
    assert!(raw.exists(), "a failed compaction keeps the raw file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_crash_leaves_a_raw_file_that_still_compacts() {
    let dir = temp_dir("crash");
    let store = RecordingStore::with_format(dir.clone(), 30, Format::Wav);
    let src = sources();
    let raw = record_with(&store, &src, |_| {});
    // What a crash leaves: the header's sizes never written.
    let mut bytes = std::fs::read(&raw).unwrap();
    bytes[4..8].fill(0);
    bytes[54..58].fill(0);
    std::fs::write(&raw, &bytes).unwrap();
    let stats = compact(&store, &raw).unwrap();
    assert_eq!(stats.duration, Duration::from_millis(4002));
    let (left, right, _) = read_stereo(&stats.path);
    assert_channels(&left, &right, &src, 0.99);
    let _ = std::fs::remove_dir_all(&dir);
}
