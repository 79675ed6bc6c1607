//! The recording tap: feeds one call's [`Recorder`] from the call-event stream and knows where
//! the call's recording is, for the call record.
//!
//! - `Started`: the recorder is made (the file's day directory is the call's start date).
//! - `AudioIn`: the caller channel, placed by the frame's media timestamp anchored to its
//!   arrival (so network jitter does not smear it and lost frames leave gaps where they were).
//! - `AudioSent`: the caller-heard channel at `play_at`, the moment Twilio plays the chunk, so
//!   our pauses and the caller's silence line up as the caller lived them.
//! - `BargeIn`: what was sent but would only have played after the barge-in is cut.
//! - the call's end ([`RecordingTap::finish`]): audio still buffered at Twilio is cut, the file
//!   is closed and goes to compaction.
//!
//! Per frame this copies the μ-law bytes into the recorder's ring; no transcoding, no clock
//! read, no lock, no allocation (the recorder hands 250 ms blocks to the writer thread through
//! a bounded queue and drops — and counts — a block when it is full). Must not change the call.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::{Span, warn};

use crate::call::events::CallEvent;
use crate::call::recorder::{Recorder, Recordings};
use crate::metrics::RECORDINGS_SKIPPED;
use crate::store::recordings::Format;

/// Where a call's recording is, for its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRef {
    /// Relative to `recording.dir`: `YYYY/MM/DD/{call_sid}.ogg` (or `.wav`), the compacted
    /// file's name.
    pub relative: PathBuf,
    /// The same as the server opens it (`recording.dir` joined; relative to the working
    /// directory when `recording.dir` is). What a call record stores as the location.
    pub location: PathBuf,
    /// What the recording is compacted to.
    pub format: Format,
}

impl RecordingRef {
    /// `audio/ogg` or `audio/wav`. Until compaction has run (moments after the call) the file
    /// at `location` is not there yet and `RecordingStore::resolve(location)` finds the raw
    /// μ-law file (`audio/wav`) instead; resolve always says what is there now.
    pub fn content_type(&self) -> &'static str {
        self.format.content_type()
    }
}

/// One call's recording observer. Inert when recording is off.
pub struct RecordingTap {
    recordings: Option<Recordings>,
    /// Position 0 of the recording: the call's start (its record offsets count from here).
    origin: Instant,
    recorder: Option<Recorder>,
    location: Option<RecordingRef>,
    span: Span,
}

impl RecordingTap {
    pub fn new(recordings: Option<Recordings>, origin: Instant, span: Span) -> Self {
        Self {
            recordings,
            origin,
            recorder: None,
            location: None,
            span,
        }
    }

    pub fn on_event(&mut self, event: &CallEvent<'_>) {
        match event {
            CallEvent::Started(ctx) => self.start(&ctx.call_sid, ctx.started_at),
            CallEvent::AudioIn(frame) => {
                if let Some(rec) = &mut self.recorder {
                    rec.caller_audio(frame.at, frame.timestamp_ms, frame.mulaw);
                }
            }
            CallEvent::AudioSent { mulaw, play_at } => {
                if let Some(rec) = &mut self.recorder {
                    rec.played_audio(*play_at, mulaw);
                }
            }
            CallEvent::BargeIn { .. } => {
                if let Some(rec) = &mut self.recorder {
                    // The clear goes out now: what would have played after now is never heard.
                    rec.cleared(Instant::now());
                }
            }
            _ => {}
        }
    }

    /// The call ended `duration` after its start: close the recording. Afterwards
    /// [`RecordingTap::location`] is `None` if nothing was recorded.
    pub fn finish(&mut self, duration: Duration) {
        let Some(rec) = self.recorder.take() else {
            return;
        };
        if rec.finish_at(self.origin + duration).is_none() {
            self.location = None;
        }
    }

    /// Where the recording is (from the stream's start on; see [`RecordingRef`]).
    pub fn location(&self) -> Option<&RecordingRef> {
        self.location.as_ref()
    }

    fn start(&mut self, call_sid: &str, started_at: std::time::SystemTime) {
        let Some(recordings) = &self.recordings else {
            return;
        };
        if self.recorder.is_some() {
            return;
        }
        let store = &recordings.store;
        let made = recordings
            .recorder(call_sid, started_at, self.origin)
            .and_then(|(rec, raw)| Ok((rec, store.compacted_path(&raw)?)));
        match made {
            Ok((rec, location)) => {
                let relative = location
                    .strip_prefix(store.dir())
                    .map_or_else(|_| location.clone(), PathBuf::from);
                self.location = Some(RecordingRef {
                    relative,
                    location,
                    format: store.format(),
                });
                self.recorder = Some(rec);
            }
            Err(e) => {
                ::metrics::counter!(RECORDINGS_SKIPPED, "reason" => "bad_call_sid").increment(1);
                warn!(parent: &self.span, error = %e, "call not recorded");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::*;
    use crate::call::context::{CallContext, Direction, EngineKind};
    use crate::call::events::AudioFrame;
    use crate::config::Config;

    fn context(call_sid: &str) -> CallContext {
        CallContext {
            call_sid: call_sid.into(),
            stream_sid: "MZ1".into(),
            direction: Direction::Inbound,
            from: String::new(),
            to: String::new(),
            profile: "default".into(),
            engine: EngineKind::Echo,
            parameters: BTreeMap::new(),
            started_at: SystemTime::now(),
        }
    }

    fn frame(at: Instant, timestamp_ms: u64, mulaw: &[u8]) -> AudioFrame<'_> {
        AudioFrame {
            at,
            chunk: timestamp_ms / 20 + 1,
            timestamp_ms,
            mulaw,
            pcm: &[],
            payload_b64: "",
            level_dbfs: -20.0,
            voiced: true,
            vad: crate::audio::vad::VadFrame {
                probability: 1.0,
                speech: true,
                voiced: true,
                level_dbfs: -20.0,
            },
            noise_floor_dbfs: -70.0,
            playing: false,
        }
    }

    #[test]
    fn location_is_known_from_the_start_and_dropped_when_nothing_was_recorded() {
        let dir = std::env::temp_dir().join(format!("voxbridge-tap-{}", std::process::id()));
        let mut config = Config::default();
        config.recording.dir = dir.to_string_lossy().into_owned();
        let (recordings, threads) = Recordings::start(&config).expect("recordings start");
        let store = recordings.store.clone();
        let t0 = Instant::now();

        // Recording off: nothing, ever.
        let mut off = RecordingTap::new(None, t0, Span::none());
        off.on_event(&CallEvent::Started(&context("CAoff")));
        assert_eq!(off.location(), None);

        // A call that sent no audio (a refused stream token): no file, no location.
        let mut silent = RecordingTap::new(Some(recordings.clone()), t0, Span::none());
        silent.on_event(&CallEvent::Started(&context("CAsilent")));
        assert!(silent.location().is_some());
        silent.finish(Duration::from_millis(100));
        assert_eq!(silent.location(), None);

        // A call sid that cannot name a file is not recorded (counted, logged).
        let mut bad = RecordingTap::new(Some(recordings.clone()), t0, Span::none());
        bad.on_event(&CallEvent::Started(&context("../../etc")));
        assert_eq!(bad.location(), None);

        let mut tap = RecordingTap::new(Some(recordings), t0, Span::none());
        let ctx = context("CAtap");
        tap.on_event(&CallEvent::Started(&ctx));
        let loc = tap.location().cloned().expect("location");
        let day = store.day_dir(ctx.started_at);
        let ext = store.format().extension();
        assert_eq!(loc.location, day.join(format!("CAtap.{ext}")));
        assert_eq!(loc.location, store.dir().join(&loc.relative));
        assert_eq!(loc.relative.components().count(), 4, "{:?}", loc.relative);
        assert_eq!(loc.content_type(), store.format().content_type());
        let voice = [0x20u8; 160];
        for k in 0..50u64 {
            let at = t0 + Duration::from_millis(20 * k);
            tap.on_event(&CallEvent::AudioIn(&frame(at, 20 * k, &voice)));
            tap.on_event(&CallEvent::AudioSent {
                mulaw: &voice,
                play_at: at + Duration::from_millis(100),
            });
        }
        tap.finish(Duration::from_millis(1000));
        assert_eq!(tap.location(), Some(&loc));
        threads.stop(Duration::from_secs(5));
        // The writer completed the raw file (the compactor may or may not have run yet).
        let found = store.resolve(&loc.location).unwrap().expect("recorded");
        let min = if found.compacted { 100 } else { 16_000 };
        assert!(found.bytes > min, "{found:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
