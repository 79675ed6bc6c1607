//! The recording writer: one OS thread, shared by every call, that appends recorders' blocks
//! to their raw files, so no file I/O ever happens on a call's task.
//!
//! Recorders hand over blocks with `try_send` on one bounded queue (`recording.writer_queue`
//! blocks of 250 ms). When it is full the block is dropped and counted
//! (`voxbridge_recording_blocks_dropped_total`): the call never waits. Every block says where it
//! belongs, so a dropped block leaves silence of its length and the rest stays aligned. The file
//! is created with the first block it receives (directories included); at `Close` the header
//! gets its sizes and the file goes to `on_closed` (the compactor). A file whose `Close` was
//! lost (queue full, or a recorder that vanished) is closed after [`IDLE_CLOSE`] without blocks.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::warn;

use super::{BLOCKS_DROPPED, WRITE_ERRORS};
use crate::store::recordings::raw;

/// A file with no block for this long is closed as it is.
pub const IDLE_CLOSE: Duration = Duration::from_secs(60);

/// One call's file, shared between its recorder and the writer thread.
#[derive(Debug)]
pub(super) struct Target {
    pub id: u64,
    pub call_sid: Box<str>,
    pub path: PathBuf,
    /// The file has been created once: reopen it for appending, never truncate it again.
    pub created: AtomicBool,
}

pub(super) enum WriterMsg {
    /// Stereo frames (interleaved μ-law) starting at frame `start` of the recording.
    Block {
        target: Arc<Target>,
        start: u64,
        frames: Vec<u8>,
    },
    /// The recording is `frames` long and complete.
    Close { target: Arc<Target>, frames: u64 },
}

/// A raw recording the writer has finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedRecording {
    pub call_sid: String,
    pub path: PathBuf,
    /// Stereo frames in the file (8,000 per second).
    pub frames: u64,
    /// False when the file was closed for lack of blocks, not by its recorder.
    pub complete: bool,
}

/// The handle recorders are made from. Cheap to clone; the thread ends when all are dropped.
#[derive(Debug, Clone)]
pub struct RecordingWriter {
    tx: SyncSender<WriterMsg>,
    ids: Arc<AtomicU64>,
}

/// The writer thread; join it at shutdown (after every recorder and writer handle is gone) so
/// the last files are complete.
#[derive(Debug)]
pub struct WriterThread(JoinHandle<()>);

impl WriterThread {
    pub fn join(self) {
        let _ = self.0.join();
    }
}

impl RecordingWriter {
    /// Start the writer thread with room for `queue` blocks; `on_closed` runs on that thread
    /// for every finished file (e.g. `Compactor::submit`; it must not block for long).
    pub fn spawn(
        queue: usize,
        on_closed: impl FnMut(ClosedRecording) + Send + 'static,
    ) -> std::io::Result<(Self, WriterThread)> {
        let (tx, rx) = sync_channel(queue.max(1));
        let handle = std::thread::Builder::new()
            .name("recording-writer".into())
            .spawn(move || run_on(rx, on_closed))?;
        let writer = Self {
            tx,
            ids: Arc::new(AtomicU64::new(1)),
        };
        Ok((writer, WriterThread(handle)))
    }

    /// A writer whose queue nobody drains yet (tests drive [`run_on`] themselves).
    #[cfg(test)]
    pub(super) fn unstarted(queue: usize) -> (Self, Receiver<WriterMsg>) {
        let (tx, rx) = sync_channel(queue);
        let ids = Arc::new(AtomicU64::new(1));
        (Self { tx, ids }, rx)
    }

    pub(super) fn target(&self, call_sid: &str, path: PathBuf) -> Arc<Target> {
        Arc::new(Target {
            id: self.ids.fetch_add(1, Ordering::Relaxed),
            call_sid: call_sid.into(),
            path,
            created: AtomicBool::new(false),
        })
    }

    /// Queue a message without waiting; false (and counted) if there was no room.
    pub(super) fn send(&self, msg: WriterMsg) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                ::metrics::counter!(BLOCKS_DROPPED).increment(1);
                false
            }
        }
    }
}

struct OpenFile {
    target: Arc<Target>,
    /// None after an error: the rest of this recording is discarded.
    file: Option<File>,
    /// Stereo frames in the file so far.
    frames: u64,
    last_block: Instant,
}

/// The writer loop: until every sender is gone, then close what is open.
pub(super) fn run_on(rx: Receiver<WriterMsg>, mut on_closed: impl FnMut(ClosedRecording)) {
    let mut files: HashMap<u64, OpenFile> = HashMap::new();
    let mut last_scan = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(WriterMsg::Block {
                target,
                start,
                frames,
            }) => {
                let open = files.entry(target.id).or_insert_with(|| open_file(target));
                open.last_block = Instant::now();
                write_block(open, start, &frames);
            }
            Ok(WriterMsg::Close { target, frames }) => {
                if let Some(mut open) = files.remove(&target.id) {
                    pad_to(&mut open, frames);
                    finish(open, true, &mut on_closed);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                for (_, open) in files.drain() {
                    finish(open, false, &mut on_closed);
                }
                return;
            }
        }
        if last_scan.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last_scan = Instant::now();
        let idle: Vec<u64> = files
            .iter()
            .filter(|(_, f)| f.last_block.elapsed() >= IDLE_CLOSE)
            .map(|(&id, _)| id)
            .collect();
        for id in idle {
            if let Some(open) = files.remove(&id) {
                finish(open, false, &mut on_closed);
            }
        }
    }
}

fn open_file(target: Arc<Target>) -> OpenFile {
    let result = (|| -> std::io::Result<(File, u64)> {
        if let Some(dir) = target.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if target.created.swap(true, Ordering::Relaxed) {
            // Reopened after an idle close: append behind what is there.
            let mut file = File::options().write(true).open(&target.path)?;
            let end = file.seek(SeekFrom::End(0))?;
            return Ok((file, end.saturating_sub(raw::HEADER_LEN) / 2));
        }
        let mut file = File::create(&target.path)?;
        file.write_all(&raw::header(0))?;
        Ok((file, 0))
    })();
    let (file, frames) = match result {
        Ok((file, frames)) => (Some(file), frames),
        Err(e) => {
            write_error(&target, &e);
            (None, 0)
        }
    };
    OpenFile {
        target,
        file,
        frames,
        last_block: Instant::now(),
    }
}

fn write_block(open: &mut OpenFile, start: u64, data: &[u8]) {
    pad_to(open, start);
    // Blocks never overlap; skip any part before the end of the file to be sure.
    let skip = usize::try_from(open.frames.saturating_sub(start).saturating_mul(2))
        .unwrap_or(usize::MAX)
        .min(data.len());
    let data = &data[skip..];
    if let Some(file) = &mut open.file {
        match file.write_all(data) {
            Ok(()) => open.frames += (data.len() / 2) as u64,
            Err(e) => {
                write_error(&open.target, &e);
                open.file = None;
            }
        }
    }
}

/// Extend the file with silence up to `frames` (blocks dropped, or a quiet tail).
fn pad_to(open: &mut OpenFile, frames: u64) {
    static SILENCE: [u8; 4096] = [raw::SILENCE; 4096];
    let Some(file) = &mut open.file else { return };
    while open.frames < frames {
        let n = usize::try_from((frames - open.frames) * 2)
            .unwrap_or(SILENCE.len())
            .min(SILENCE.len());
        if let Err(e) = file.write_all(&SILENCE[..n]) {
            write_error(&open.target, &e);
            open.file = None;
            return;
        }
        open.frames += (n / 2) as u64;
    }
}

fn finish(open: OpenFile, complete: bool, on_closed: &mut impl FnMut(ClosedRecording)) {
    let OpenFile {
        target,
        file,
        frames,
        ..
    } = open;
    let Some(mut file) = file else { return };
    let result = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.write_all(&raw::header(frames)))
        .and_then(|()| file.flush());
    if let Err(e) = result {
        write_error(&target, &e);
    }
    drop(file);
    on_closed(ClosedRecording {
        call_sid: target.call_sid.to_string(),
        path: target.path.clone(),
        frames,
        complete,
    });
}

fn write_error(target: &Target, e: &std::io::Error) {
    ::metrics::counter!(WRITE_ERRORS).increment(1);
    warn!(call_sid = %target.call_sid, path = %target.path.display(), error = %e,
        "recording file write failed: the rest of this recording is lost");
}
