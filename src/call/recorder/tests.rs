//! Recorder tests with synthetic timing: every instant is computed, nothing sleeps.

use std::sync::mpsc;

use super::writer::{WriterMsg, run_on};
use super::*;
use crate::store::recordings::raw::RawReader;
use crate::store::recordings::raw::SILENCE;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
const FRAME: usize = 160;

struct Rig {
    writer: Option<RecordingWriter>,
    closed: mpsc::Receiver<ClosedRecording>,
    dir: PathBuf,
}

impl Rig {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("voxbridge-rec-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (tx, closed) = mpsc::channel();
        let (writer, _thread) = RecordingWriter::spawn(64, move |c| {
            let _ = tx.send(c);
        })
        .unwrap();
        Self {
            writer: Some(writer),
            closed,
            dir,
        }
    }

    fn recorder(&self, origin: Instant) -> Recorder {
        let path = self.dir.join("2026/01/02/CAtest.mulaw.wav");
        Recorder::new(self.writer.as_ref().unwrap(), "CAtest", path, origin, 120)
    }

    /// Finish, wait for the writer, and return the two channels.
    fn finish(&self, rec: Recorder) -> (Vec<u8>, Vec<u8>, RecordingFile) {
        let file = rec.finish().expect("something was recorded");
        let closed = self.closed.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(closed.complete);
        assert_eq!(closed.path, file.path);
        let (left, right) = read_channels(&file.path);
        assert_eq!(left.len() as u64, closed.frames);
        (left, right, file)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_channels(path: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    let mut r = RawReader::open(path).unwrap();
    let mut frames = vec![[0u8; 2]; r.remaining() as usize];
    assert_eq!(r.read(&mut frames).unwrap(), frames.len());
    frames.iter().map(|f| (f[0], f[1])).unzip()
}

/// A recognisable caller frame / reply chunk (never the silence code).
fn caller_frame(k: usize) -> [u8; FRAME] {
    [(k % 100) as u8 + 1; FRAME]
}
fn reply_chunk(i: usize) -> [u8; FRAME] {
    [(i % 100) as u8 + 101; FRAME]
}

fn silent(s: &[u8]) -> bool {
    s.iter().all(|&b| b == SILENCE)
}

/// A reply of `chunks` 20 ms chunks that starts playing at `start` ms, sent like Playout does:
/// each chunk once the play head is at most 120 ms ahead of now.
struct Reply {
    start_ms: u64,
    chunks: usize,
    sent: usize,
}

impl Reply {
    fn send_due(&mut self, rec: &mut Recorder, t0: Instant, now_ms: u64) {
        while self.sent < self.chunks {
            let play_ms = self.start_ms + 20 * self.sent as u64;
            if play_ms > now_ms + 120 {
                break;
            }
            rec.played_audio(t0 + ms(play_ms), &reply_chunk(self.sent));
            self.sent += 1;
        }
    }
}

#[test]
fn channels_are_aligned_in_time() {
    let rig = Rig::new("align");
    let t0 = Instant::now();
    let mut rec = rig.recorder(t0);
    let mut reply = Reply {
        start_ms: 500,
        chunks: 50,
        sent: 0,
    };
    for k in 0..100usize {
        let now_ms = 20 * k as u64;
        // Arrival jitters by 0-7 ms; timestamps are exact.
        let arrived = t0 + ms(now_ms + 3 + (k as u64 * 7) % 5);
        rec.caller_audio(arrived, now_ms, &caller_frame(k));
        reply.send_due(&mut rec, t0, now_ms);
    }
    let (left, right, file) = rig.finish(rec);
    assert_eq!(file.stats, RecorderStats::default());
    // Anchored on the earliest arrival (3 ms): frame k at 3 ms + 20k ms.
    let offset = 3 * 8;
    assert!(silent(&left[..offset]));
    for k in 0..100 {
        let at = offset + k * FRAME;
        assert_eq!(left[at..at + FRAME], caller_frame(k), "caller frame {k}");
    }
    // The reply plays from 500 ms (frame 4000) for 1 s.
    assert!(silent(&right[..4000]));
    for i in 0..50 {
        let at = 4000 + i * FRAME;
        assert_eq!(right[at..at + FRAME], reply_chunk(i), "reply chunk {i}");
    }
    assert!(silent(&right[12_000..]));
    assert_eq!(file.duration, Duration::from_micros(2_003_000));
}

#[test]
fn lost_frames_leave_gaps_where_they_happened() {
    let rig = Rig::new("gaps");
    let t0 = Instant::now();
    let mut rec = rig.recorder(t0);
    let lost = |k: usize| (10..15).contains(&k) || k == 40;
    for k in (0..100).filter(|&k| !lost(k)) {
        rec.caller_audio(t0 + ms(20 * k as u64), 20 * k as u64, &caller_frame(k));
    }
    let (left, _, _) = rig.finish(rec);
    assert_eq!(left.len(), 100 * FRAME);
    for k in 0..100 {
        let got = &left[k * FRAME..(k + 1) * FRAME];
        if lost(k) {
            assert!(silent(got), "frame {k} was lost: silence");
        } else {
            assert_eq!(got, caller_frame(k), "frame {k}");
        }
    }
}

#[test]
fn late_and_reordered_frames_find_their_place() {
    let rig = Rig::new("late");
    let t0 = Instant::now();
    let mut rec = rig.recorder(t0);
    for k in 0..150usize {
        let now = t0 + ms(20 * k as u64);
        if k != 20 && k != 50 {
            rec.caller_audio(now, 20 * k as u64, &caller_frame(k));
        }
        if k == 35 {
            rec.caller_audio(now, 20 * 20, &caller_frame(20)); // 300 ms late: still in the window
        }
        if k == 149 {
            rec.caller_audio(now, 20 * 50, &caller_frame(50)); // ~2 s late: already written
        }
    }
    let (left, _, file) = rig.finish(rec);
    assert_eq!(left[20 * FRAME..21 * FRAME], caller_frame(20));
    assert!(silent(&left[50 * FRAME..51 * FRAME]));
    assert_eq!(file.stats.late_frames, 1);
    for k in (0..150).filter(|&k| k != 50) {
        assert_eq!(
            left[k * FRAME..(k + 1) * FRAME],
            caller_frame(k),
            "frame {k}"
        );
    }
}

#[test]
fn barge_in_cuts_what_was_never_heard() {
    let rig = Rig::new("bargein");
    let t0 = Instant::now();
    let mut rec = rig.recorder(t0);
    let mut first = Reply {
        start_ms: 200,
        chunks: 100,
        sent: 0,
    };
    let mut second = Reply {
        start_ms: 900,
        chunks: 15,
        sent: 0,
    };
    for k in 0..75usize {
        let now_ms = 20 * k as u64;
        rec.caller_audio(t0 + ms(now_ms), now_ms, &caller_frame(k));
        if now_ms < 700 {
            first.send_due(&mut rec, t0, now_ms);
        }
        if now_ms == 700 {
            // The caller barges in at 700 ms: audio sent for 700-820 ms never plays.
            assert_eq!(first.start_ms + 20 * first.sent as u64, 820);
            rec.cleared(t0 + ms(now_ms));
        }
        if now_ms >= 780 {
            second.send_due(&mut rec, t0, now_ms);
        }
    }
    let (left, right, file) = rig.finish(rec);
    assert_eq!(left.len(), 75 * FRAME);
    assert_eq!((file.stats.clears, file.stats.cut_frames), (1, 120 * 8));
    assert_eq!(file.stats.cut_too_late, 0);
    assert!(silent(&right[..1600]));
    for i in 0..25 {
        let at = 1600 + i * FRAME;
        assert_eq!(right[at..at + FRAME], reply_chunk(i), "heard chunk {i}");
    }
    assert!(silent(&right[5600..7200]), "cut: sent, never heard");
    for i in 0..15 {
        let at = 7200 + i * FRAME;
        assert_eq!(
            right[at..at + FRAME],
            reply_chunk(i),
            "second reply chunk {i}"
        );
    }
}

#[test]
fn late_first_frames_do_not_shift_the_caller() {
    let rig = Rig::new("anchor");
    let t0 = Instant::now();
    let mut rec = rig.recorder(t0);
    // Frames 0-2 arrive together, 40-80 ms late (the session was busy starting), then the
    // rest on time: every frame must end up where its timestamp says.
    for k in 0..3usize {
        rec.caller_audio(t0 + ms(80), 20 * k as u64, &caller_frame(k));
    }
    for k in 3..60usize {
        rec.caller_audio(t0 + ms(20 * k as u64), 20 * k as u64, &caller_frame(k));
        if k == 14 {
            rec.played_audio(t0 + ms(400), &reply_chunk(7));
        }
    }
    let (left, right, file) = rig.finish(rec);
    assert_eq!(file.stats.reanchors, 0);
    let expected: Vec<u8> = (0..60).flat_map(caller_frame).collect();
    assert_eq!(left, expected);
    assert!(silent(&right[..3200]));
    assert_eq!(right[3200..3200 + FRAME], reply_chunk(7));
}

#[test]
fn a_frame_that_beats_the_anchor_late_in_the_call_does_not_tear_the_caller_channel() {
    let rig = Rig::new("fixed-anchor");
    let t0 = Instant::now();
    let mut rec = rig.recorder(t0);
    // For 2 s every frame arrives 30 ms after its time (a busy server), then one gets through
    // on time, then the rest 30 ms late again. By then the first second has gone to the
    // writer: the channel must stay one piece, 30 ms late, not jump back for the rest.
    for k in 0..150usize {
        let late = if k == 100 { 0 } else { 30 };
        rec.caller_audio(
            t0 + ms(20 * k as u64 + late),
            20 * k as u64,
            &caller_frame(k),
        );
    }
    let (left, _, file) = rig.finish(rec);
    assert_eq!(file.stats.reanchors, 0);
    assert!(silent(&left[..240]));
    let expected: Vec<u8> = (0..150).flat_map(caller_frame).collect();
    assert_eq!(left[240..240 + expected.len()], expected[..]);
}

#[test]
fn jumping_timestamps_are_reanchored_not_written_as_hours_of_silence() {
    let rig = Rig::new("jump");
    let t0 = Instant::now();
    let mut rec = rig.recorder(t0);
    for k in 0..100u64 {
        let ts = if k < 50 { 20 * k } else { 36_000_000 + 20 * k };
        rec.caller_audio(t0 + ms(20 * k), ts, &caller_frame(k as usize));
    }
    // A timestamp rewound to zero, on a 1 s frame (the session's payload cap).
    rec.caller_audio(t0 + ms(2000), 0, &[9u8; 8000]);
    let (left, _, file) = rig.finish(rec);
    assert_eq!(file.stats.reanchors, 2);
    assert_eq!(left.len(), 3 * 8000);
    assert!(left[16_000..].iter().all(|&b| b == 9));
    for k in 0..100 {
        assert_eq!(
            left[k * FRAME..(k + 1) * FRAME],
            caller_frame(k),
            "frame {k}"
        );
    }
}

#[test]
fn a_full_queue_drops_blocks_without_waiting_and_gaps_stay_aligned() {
    let dir = std::env::temp_dir().join(format!("voxbridge-rec-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // A writer that is not draining its queue of 4 blocks (a stalled disk).
    let (writer, rx) = RecordingWriter::unstarted(4);
    let t0 = Instant::now();
    let path = dir.join("CAfull.mulaw.wav");
    let mut rec = Recorder::new(&writer, "CAfull", path.clone(), t0, 120);
    // 2 s of audio: blocks 0-4 fall behind the hold; the fifth finds the queue full.
    for k in 0..100u64 {
        rec.caller_audio(t0 + ms(20 * k), 20 * k, &caller_frame(k as usize));
    }
    assert_eq!(rec.stats().blocks_dropped, 1);
    // The writer catches up; the rest and the close then fit.
    let mut msgs: Vec<WriterMsg> = rx.try_iter().collect();
    let file = rec.finish().unwrap();
    msgs.extend(rx.try_iter());
    assert_eq!(file.stats.blocks_dropped, 1);
    let (tx, replay) = std::sync::mpsc::sync_channel(msgs.len());
    for m in msgs {
        tx.send(m).unwrap();
    }
    drop(tx);
    let mut closed = Vec::new();
    run_on(replay, |c| closed.push(c));
    assert_eq!(closed.len(), 1);
    assert!(closed[0].complete);
    let (left, _) = read_channels(&path);
    let mut expected: Vec<u8> = (0..100).flat_map(caller_frame).collect();
    expected[4 * BLOCK_FRAMES..5 * BLOCK_FRAMES].fill(SILENCE);
    assert_eq!(
        left, expected,
        "the dropped block is silence, the rest in place"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_dropped_recorder_still_closes_its_file() {
    let rig = Rig::new("drop");
    let t0 = Instant::now();
    let mut rec = rig.recorder(t0);
    rec.caller_audio(t0, 0, &caller_frame(1));
    drop(rec);
    let closed = rig.closed.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(closed.frames, FRAME as u64);
    let (left, right) = read_channels(&closed.path);
    assert_eq!(left, caller_frame(1));
    assert!(silent(&right));
}

#[test]
fn nothing_recorded_means_no_file() {
    let rig = Rig::new("empty");
    let rec = rig.recorder(Instant::now());
    assert_eq!(rec.finish(), None);
}

#[test]
fn a_frame_longer_than_the_window_keeps_its_tail() {
    let rig = Rig::new("oversize");
    let t0 = Instant::now();
    let mut rec = rig.recorder(t0);
    let mut frame = vec![9u8; 80_000];
    frame[79_999] = 10;
    rec.caller_audio(t0, 0, &frame);
    let (left, _, file) = rig.finish(rec);
    assert_eq!(left.len(), 80_000);
    assert_eq!(left[79_999], 10);
    assert!(silent(&left[..70_000]));
    assert_eq!(file.duration, Duration::from_secs(10));
}
