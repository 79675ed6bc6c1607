//! The recording service shared by every call: the recordings directory ([`RecordingStore`]),
//! the file writer thread and the compaction worker, started once with the server.
//!
//! Calls get a clone of [`Recordings`] (through `CallServices`) and make their recorder from it
//! when their stream starts. The writer hands every finished raw file to the compactor; the
//! compactor sweeps for retention and orphans at start and every [`SWEEP_EVERY`]. Start-up
//! says once what recordings become (Ogg/Opus, or WAV in a build without Opus) and where they
//! go. Nothing here runs on a call's task except cloning handles; the threads are plain OS
//! threads, so neither file I/O nor encoding can delay a call.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

use super::{Recorder, RecordingWriter, WriterThread};
use crate::config::Config;
use crate::store::recordings::{
    Compactor, CompactorThread, RecordingError, RecordingStore, SWEEP_EVERY,
};

/// What a call needs to record itself. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Recordings {
    pub store: RecordingStore,
    pub(super) writer: RecordingWriter,
    /// How far ahead of real time playout sends (`playout.lead_ms`).
    pub(super) lead_ms: u32,
}

/// The service's threads, kept by the server for shutdown.
#[derive(Debug)]
pub struct RecordingThreads {
    writer: RecordingWriter,
    writer_thread: WriterThread,
    compactor: CompactorThread,
}

impl Recordings {
    /// A service over threads started elsewhere (benches, embedding): recorders made from it
    /// write through `writer` into `store`'s directory, for a playout `lead_ms` ahead.
    pub fn new(store: RecordingStore, writer: RecordingWriter, lead_ms: u32) -> Self {
        Self {
            store,
            writer,
            lead_ms,
        }
    }

    /// A recorder for the call `call_sid` that started at `started_at` (the day directory),
    /// with position 0 at `origin`; and the raw file it writes. Fails only for a call sid that
    /// cannot name a file.
    pub fn recorder(
        &self,
        call_sid: &str,
        started_at: SystemTime,
        origin: Instant,
    ) -> Result<(Recorder, PathBuf), RecordingError> {
        let path = self.store.raw_path(call_sid, started_at)?;
        let recorder = Recorder::new(&self.writer, call_sid, path.clone(), origin, self.lead_ms);
        Ok((recorder, path))
    }

    /// Start the service `config.recording` asks for: `None` when recording is off, or when
    /// the directory cannot be created or a thread cannot start (said in the log: the server
    /// then runs without recordings rather than not at all).
    pub fn start(config: &Config) -> Option<(Self, RecordingThreads)> {
        let rc = &config.recording;
        if !rc.enabled {
            info!("recordings off (recording.enabled = false)");
            return None;
        }
        let store = RecordingStore::new(rc);
        if let Err(e) = std::fs::create_dir_all(store.dir()) {
            warn!(dir = %store.dir().display(), error = %e,
                "recordings off: the recording directory cannot be created (recording.dir)");
            return None;
        }
        let started = Compactor::spawn(store.clone(), rc.compact_queue, SWEEP_EVERY).and_then(
            |(compactor, compactor_thread)| {
                // Only files their recorder closed go straight to compaction; one closed for
                // lack of blocks (its close was lost) is left to the sweep, which compacts raw
                // files nobody has written for five minutes.
                let (writer, writer_thread) =
                    RecordingWriter::spawn(rc.writer_queue, move |closed| {
                        if closed.complete {
                            compactor.submit(closed.path);
                        }
                    })?;
                Ok((writer, writer_thread, compactor_thread))
            },
        );
        match started {
            Ok((writer, writer_thread, compactor)) => {
                store.announce();
                let recordings = Self {
                    store,
                    writer: writer.clone(),
                    lead_ms: config.playout.lead_ms,
                };
                let threads = RecordingThreads {
                    writer,
                    writer_thread,
                    compactor,
                };
                Some((recordings, threads))
            }
            Err(e) => {
                warn!(error = %e, "recordings off: their threads could not be started");
                None
            }
        }
    }
}

impl RecordingThreads {
    /// At shutdown, after the calls ended: wait (at most `timeout`) for the writer to complete
    /// the files of calls that ended, then stop the compactor after the job in progress.
    /// Recordings still queued for compaction stay raw (served as `audio/wav`) and are
    /// compacted by the next start's sweep. Blocks: run it on a blocking thread.
    pub fn stop(self, timeout: Duration) {
        if !self.writer.flush(timeout) {
            warn!("recording writer did not finish in time: the last recordings may be short");
        }
        self.compactor.stop();
        // The writer thread ends once every handle is gone (calls hold clones); it has
        // nothing left to do, so it is not waited for.
        drop(self.writer_thread);
    }
}
