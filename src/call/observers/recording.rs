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
