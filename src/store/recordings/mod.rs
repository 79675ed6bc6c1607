//! Call recordings on disk: where files go, what they are, compaction after the call, retention
//! and deletion.
//!
//! A call's recorder (`call::recorder`) writes a raw two-channel μ-law file while the call runs
//! (`DIR/YYYY/MM/DD/{call_sid}.mulaw.wav`, the date of the call's start in UTC). When the call
//! ends, the [`Compactor`] (one background thread, bounded queue) turns it into
//! `{call_sid}.ogg` (Ogg/Opus, builds with the `opus` feature) or `{call_sid}.wav` (16-bit PCM)
//! and removes the raw file; the same thread deletes recordings older than
//! `recording.retention_days` and compacts raw files left behind by a crash.
//!
//! [`RecordingStore`] is what the rest of the program uses: the path for a new call, the file
//! and content type behind a stored path (the API serves it), and deletion on request. Its
//! methods touch the file system and block: call them from a blocking thread
//! (`tokio::task::spawn_blocking`), never on the async runtime's threads. This module never
//! sees live audio and never runs on a call's task.

mod compact;
#[cfg(feature = "opus")]
mod opus;
pub mod raw;
mod retention;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::{SystemTime, UNIX_EPOCH};

pub use compact::{CompactStats, compact};
pub use retention::{SweepReport, civil_date};
pub use worker::{Compactor, CompactorThread, SWEEP_EVERY};

use crate::config::RecordingConfig;

pub use crate::metrics::{RECORDINGS_COMPACTED, RECORDINGS_DELETED};

/// The recording metrics' HELP texts, from the catalogue (`metrics::install` already describes
/// every catalogue entry; this stays for callers that describe recordings on their own).
pub fn describe_metrics() {
    use crate::metrics::{CATALOGUE, Kind};
    for &(name, kind, help) in CATALOGUE {
        if name.starts_with("voxbridge_recording") && kind == Kind::Counter {
            metrics::describe_counter!(name, help);
        }
    }
}

/// The suffix of a raw (μ-law, uncompacted) recording.
pub const RAW_SUFFIX: &str = ".mulaw.wav";

/// Errors of the recording store and compaction.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("recording {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("recording {}: not a raw recording: {detail}", path.display())]
    Format { path: PathBuf, detail: String },
    #[error("recording {}: encoding failed: {detail}", path.display())]
    Encode { path: PathBuf, detail: String },
    #[error("call sid {0:?} cannot name a recording (1-64 of A-Z a-z 0-9 _ -)")]
    BadCallSid(String),
    #[error("{} is not a recording file name", .0.display())]
    NotARecording(PathBuf),
    #[error("recording {}: deleted while it was being compacted", .0.display())]
    Deleted(PathBuf),
}

/// What recordings are compacted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Ogg/Opus, stereo, `audio/ogg`.
    OggOpus,
    /// 16-bit PCM stereo WAV, `audio/wav`.
    Wav,
}

impl Format {
    /// Ogg/Opus when this build has Opus (feature `opus`), else WAV.
    pub fn compiled() -> Self {
        if cfg!(feature = "opus") {
            Format::OggOpus
        } else {
            Format::Wav
        }
    }

    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::OggOpus => "ogg",
            Format::Wav => "wav",
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OggOpus => "audio/ogg",
            Format::Wav => "audio/wav",
        }
    }
}

/// A recording file as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecording {
    pub path: PathBuf,
    /// `audio/ogg` or `audio/wav` (the raw μ-law file is `audio/wav` too).
    pub content_type: &'static str,
    /// False while the raw file has not been compacted (yet).
    pub compacted: bool,
    pub bytes: u64,
}

/// The recordings directory: naming, lookup, deletion and retention.
#[derive(Debug, Clone)]
pub struct RecordingStore {
    dir: PathBuf,
    retention_days: u32,
    format: Format,
    /// Held while a compacted file replaces its raw file, and while deleting, so a deletion
    /// can never be undone by a compaction finishing at the same moment.
    swap: Arc<Mutex<()>>,
}

impl RecordingStore {
    pub fn new(config: &RecordingConfig) -> Self {
        Self::with_format(
            PathBuf::from(&config.dir),
            config.retention_days,
            Format::compiled(),
        )
    }

    /// A store compacting to `format` (tests use both formats in one build).
    pub fn with_format(dir: PathBuf, retention_days: u32, format: Format) -> Self {
        Self {
            dir,
            retention_days,
            format,
            swap: Arc::new(Mutex::new(())),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn retention_days(&self) -> u32 {
        self.retention_days
    }

    /// Log, once per process, what recordings become and why (no I/O).
    pub fn announce(&self) {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| match self.format {
            Format::OggOpus => tracing::info!(
                dir = %self.dir.display(),
                retention_days = self.retention_days,
                "recordings: compacted to Ogg/Opus (audio/ogg) after each call"
            ),
            Format::Wav => tracing::warn!(
                dir = %self.dir.display(),
                retention_days = self.retention_days,
                "recordings: this build has no Opus encoder (cargo feature `opus` is off; it \
                 needs libopus: apt-get install libopus-dev pkg-config), so recordings are \
                 compacted to 16-bit stereo WAV (audio/wav), about 8x larger than Ogg/Opus"
            ),
        });
    }

    /// Where the raw recording of a call starting at `started` goes (no I/O).
    pub fn raw_path(&self, call_sid: &str, started: SystemTime) -> Result<PathBuf, RecordingError> {
        check_call_sid(call_sid)?;
        Ok(self
            .day_dir(started)
            .join(format!("{call_sid}{RAW_SUFFIX}")))
    }

    /// The file the raw recording `raw` becomes once compacted (`….ogg` or `….wav`, by this
    /// store's format; no I/O).
    pub fn compacted_path(&self, raw: &Path) -> Result<PathBuf, RecordingError> {
        Ok(with_suffix(&recording_stem(raw)?, self.format.extension()))
    }

    /// `DIR/YYYY/MM/DD` of the UTC day of `at`.
    pub fn day_dir(&self, at: SystemTime) -> PathBuf {
        let days = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400);
        let (y, m, d) = civil_date(days as i64);
        self.dir
            .join(format!("{y:04}"))
            .join(format!("{m:02}"))
            .join(format!("{d:02}"))
    }

    /// The file a recording path (raw or compacted, as stored in a call record) stands for now:
    /// the compacted file if there is one, else the raw file; `None` if neither exists (looked
    /// at twice, so a compaction finishing in between is not taken for a missing file).
    pub fn resolve(&self, path: &Path) -> Result<Option<StoredRecording>, RecordingError> {
        let stem = recording_stem(path)?;
        let candidates = [
            (
                Format::OggOpus.extension(),
                Format::OggOpus.content_type(),
                true,
            ),
            (Format::Wav.extension(), Format::Wav.content_type(), true),
            (&RAW_SUFFIX[1..], "audio/wav", false),
        ];
        // Compaction renames the compacted file in place, then removes the raw one: a look
        // that missed the first and then the second is answered by a second look.
        for _ in 0..2 {
            for (ext, content_type, compacted) in candidates {
                let candidate = with_suffix(&stem, ext);
                match std::fs::metadata(&candidate) {
                    Ok(meta) if meta.is_file() => {
                        return Ok(Some(StoredRecording {
                            path: candidate,
                            content_type,
                            compacted,
                            bytes: meta.len(),
                        }));
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(RecordingError::Io {
                            path: candidate,
                            source,
                        });
                    }
                }
            }
        }
        Ok(None)
    }

    /// The recording of `call_sid` for a call that started at `started`, if any.
    pub fn find(
        &self,
        call_sid: &str,
        started: SystemTime,
    ) -> Result<Option<StoredRecording>, RecordingError> {
        self.resolve(&self.raw_path(call_sid, started)?)
    }

    /// Delete every file of the recording `path` stands for (privacy requests). Returns whether
    /// anything was there. A compaction in progress for it discards its output.
    pub fn delete(&self, path: &Path) -> Result<bool, RecordingError> {
        let stem = recording_stem(path)?;
        let _guard = self
            .swap
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut any = false;
        for ext in [&RAW_SUFFIX[1..], "ogg", "wav", "ogg.part", "wav.part"] {
            let candidate = with_suffix(&stem, ext);
            match std::fs::remove_file(&candidate) {
                Ok(()) => any = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(RecordingError::Io {
                        path: candidate,
                        source,
                    });
                }
            }
        }
        if any {
            metrics::counter!(RECORDINGS_DELETED, "reason" => "request").increment(1);
        }
        Ok(any)
    }

    /// Replace the raw file `raw` by its finished compacted file `part` (written next to it)
    /// unless the recording was deleted meanwhile. Returns the compacted file's path.
    fn install(&self, raw: &Path, part: &Path) -> Result<PathBuf, RecordingError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| RecordingError::Io { path, source }
        };
        let stem = recording_stem(raw)?;
        let out = with_suffix(&stem, self.format.extension());
        let _guard = self
            .swap
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !raw.exists() {
            let _ = std::fs::remove_file(part);
            return Err(RecordingError::Deleted(raw.to_owned()));
        }
        std::fs::rename(part, &out).map_err(io(&out))?;
        std::fs::remove_file(raw).map_err(io(raw))?;
        Ok(out)
    }
}

/// A call sid safe to use as a file name.
fn check_call_sid(call_sid: &str) -> Result<(), RecordingError> {
    let ok = (1..=64).contains(&call_sid.len())
        && call_sid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RecordingError::BadCallSid(call_sid.to_owned()))
    }
}

/// `path` without its recording suffix (`.mulaw.wav`, `.ogg`, `.wav`), checking the name.
fn recording_stem(path: &Path) -> Result<PathBuf, RecordingError> {
    let not = || RecordingError::NotARecording(path.to_owned());
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(not)?;
    let sid = [RAW_SUFFIX, ".ogg", ".wav"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .ok_or_else(not)?;
    check_call_sid(sid).map_err(|_| not())?;
    Ok(path.with_file_name(sid))
}

fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn paths_follow_the_call_start_date_and_refuse_unsafe_sids() {
        let store = RecordingStore::with_format("rec".into(), 30, Format::Wav);
        // 2024-02-29 12:00 UTC.
        let at = UNIX_EPOCH + Duration::from_secs(1_709_208_000);
        let p = store.raw_path("CA0123abc", at).unwrap();
        assert_eq!(p, PathBuf::from("rec/2024/02/29/CA0123abc.mulaw.wav"));
        for bad in ["", "../etc", "a/b", "a.b", &"x".repeat(65)] {
            assert!(store.raw_path(bad, at).is_err(), "{bad:?}");
        }
        assert!(recording_stem(Path::new("rec/x/passwd")).is_err());
        assert!(recording_stem(Path::new("rec/x/..wav")).is_err());
        assert_eq!(
            recording_stem(Path::new("r/CA1.ogg")).unwrap(),
            PathBuf::from("r/CA1")
        );
    }

    #[test]
    fn resolve_prefers_compacted_and_delete_removes_every_variant() {
        let dir = std::env::temp_dir().join(format!("voxbridge-store-{}", std::process::id()));
        let store = RecordingStore::with_format(dir.clone(), 30, Format::Wav);
        let raw = store.raw_path("CAresolve", SystemTime::now()).unwrap();
        std::fs::create_dir_all(raw.parent().unwrap()).unwrap();
        assert_eq!(store.resolve(&raw).unwrap(), None);
        std::fs::write(&raw, b"raw").unwrap();
        let found = store.resolve(&raw).unwrap().unwrap();
        assert_eq!((found.content_type, found.compacted), ("audio/wav", false));
        let ogg = raw.with_file_name("CAresolve.ogg");
        std::fs::write(&ogg, b"ogg!").unwrap();
        let found = store.resolve(&raw).unwrap().unwrap();
        assert_eq!(found.path, ogg);
        assert_eq!((found.content_type, found.bytes), ("audio/ogg", 4));
        assert!(store.delete(&ogg).unwrap());
        assert_eq!(store.resolve(&raw).unwrap(), None);
        assert!(!store.delete(&raw).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
