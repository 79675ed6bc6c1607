//! Playout: paces agent responses to Twilio by a monotonic stream clock and tracks their marks.
//!
//! Twilio buffers whatever we send and plays it in order. Sending a whole reply at once makes
//! barge-in coarse; sending late starves Twilio's buffer. So we keep a *play head* — the instant
//! at which everything sent so far will have finished playing — and send the next chunk only
//! while the play head is less than `lead` ahead of now. The clock is absolute, so pacing never
//! drifts the way relative sleeps do.
//!
//! Each response is a *generation* with its own id. After its last chunk we send a mark named
//! `resp-{id}`; the response counts as played only when that mark comes back and it was not
//! cleared, because Twilio also returns pending marks when it executes a `clear`.
//!
//! Responses may be streamed: [`Playout::begin`] opens one, [`Playout::append`] adds audio as
//! the TTS produces it, [`Playout::finish`] closes it. Chunks go out whole (≥ `chunk_ms`) except
//! the last one of a finished response.
//!
//! This module decides *what* to send and *when*; it does no I/O and reads no clock itself.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

/// Something the session must send to Twilio now.
#[derive(Debug, Clone, PartialEq)]
pub enum PlayoutAction {
    /// One chunk of μ-law audio (a slice of the response, no copy).
    Media(Bytes),
    /// The end-of-response mark.
    Mark(String),
}

/// What a returned mark meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkOutcome {
    /// The response with this id finished playing and was not cleared.
    Played(u64),
    /// The mark of a cleared (interrupted) response: not proof of anything, ignored.
    Ignored(u64),
    /// Not a mark we sent.
    Unknown,
}

#[derive(Debug)]
struct Response {
    id: u64,
    /// Audio received and not yet sent.
    pending: BytesMut,
    /// Bytes sent so far.
    sent: usize,
    /// No more audio will be appended.
    finished: bool,
}

/// What a `clear` interrupted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleared {
    /// Every response dropped or cut off.
    pub ids: Vec<u64>,
    /// How much of the most recent response the caller heard, in μ-law bytes (8 per ms):
    /// what was sent minus what was still buffered at Twilio.
    pub heard_bytes: usize,
}

/// The outbound side of one call.
#[derive(Debug)]
pub struct Playout {
    lead: Duration,
    chunk_bytes: usize,
    queue: VecDeque<Response>,
    /// Responses fully sent whose mark has not come back yet.
    awaiting_mark: VecDeque<(u64, usize)>,
    /// The response that sent the latest chunk, and its bytes sent by then.
    last_sent: (u64, usize),
    /// Ids cleared while their mark was pending: Twilio will still return those marks.
    cleared: VecDeque<u64>,
    play_head: Option<Instant>,
    next_id: u64,
    /// Times the play head fell behind real time in the middle of a response.
    underruns: u64,
    /// When the most recently sent chunk starts playing.
    last_play_at: Option<Instant>,
}

const MARK_PREFIX: &str = "resp-";
/// How far behind real time the play head may fall before it counts as an underrun.
const UNDERRUN_SLACK: Duration = Duration::from_millis(10);
const MAX_CLEARED_REMEMBERED: usize = 32;

impl Playout {
    pub fn new(lead_ms: u32, chunk_ms: u32) -> Self {
        Self {
            lead: Duration::from_millis(u64::from(lead_ms)),
            chunk_bytes: chunk_ms.max(20) as usize * 8,
            queue: VecDeque::new(),
            awaiting_mark: VecDeque::new(),
            last_sent: (0, 0),
            cleared: VecDeque::new(),
            play_head: None,
            next_id: 1,
            underruns: 0,
            last_play_at: None,
        }
    }

    /// Open a streamed response behind any in progress; returns its generation id.
    pub fn begin(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push_back(Response {
            id,
            pending: BytesMut::new(),
            sent: 0,
            finished: false,
        });
        id
    }

    /// Add audio to response `id` (ignored if it was cleared or finished).
    pub fn append(&mut self, id: u64, audio: &[u8]) {
        if let Some(r) = self.queue.iter_mut().find(|r| r.id == id && !r.finished) {
            r.pending.extend_from_slice(audio);
        }
    }

    /// No more audio for response `id`: its tail and mark may go.
    pub fn finish(&mut self, id: u64) {
        if let Some(r) = self.queue.iter_mut().find(|r| r.id == id) {
            r.finished = true;
        }
    }

    /// Queue a whole response at once; returns its generation id.
    pub fn enqueue(&mut self, audio: impl AsRef<[u8]>) -> u64 {
        let id = self.begin();
        self.append(id, audio.as_ref());
        self.finish(id);
        id
    }

    /// Bytes of response `id` sent so far (0 when unknown).
    pub fn sent_bytes(&self, id: u64) -> usize {
        self.queue.iter().find(|r| r.id == id).map_or(0, |r| r.sent)
    }

    /// Is a response being sent, or still playing at Twilio (mark not back)?
    pub fn is_active(&self) -> bool {
        !self.queue.is_empty() || !self.awaiting_mark.is_empty()
    }

    /// Id of the response currently being sent, if any.
    pub fn current(&self) -> Option<u64> {
        self.queue.front().map(|r| r.id)
    }

    /// When [`Playout::poll`] next has something to send (None: nothing sendable queued).
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let front = self.queue.front()?;
        if !front.finished && front.pending.len() < self.chunk_bytes {
            return None; // waiting for more audio; `append` is followed by a fresh look
        }
        match self.play_head {
            Some(head) if head > now => Some(head - self.lead),
            _ => Some(now),
        }
    }

    /// The next action due at `now`, if any. Call until it returns `None`.
    pub fn poll(&mut self, now: Instant) -> Option<PlayoutAction> {
        // A response that produced no audio at all is dropped without a mark.
        while self
            .queue
            .front()
            .is_some_and(|r| r.finished && r.sent == 0 && r.pending.is_empty())
        {
            self.queue.pop_front();
        }
        let front = self.queue.front_mut()?;
        if front.finished && front.pending.is_empty() {
            let id = front.id;
            self.queue.pop_front();
            self.awaiting_mark.push_back((id, 0));
            return Some(PlayoutAction::Mark(format!("{MARK_PREFIX}{id}")));
        }
        if !front.finished && front.pending.len() < self.chunk_bytes {
            return None;
        }
        // Twilio's buffer ran dry mid-response: the caller heard a gap.
        if front.sent > 0 && self.play_head.is_some_and(|h| h + UNDERRUN_SLACK < now) {
            self.underruns += 1;
        }
        // An idle or starved stream restarts its clock at now.
        let head = self.play_head.filter(|h| *h > now).unwrap_or(now);
        if head > now + self.lead {
            return None;
        }
        let n = self.chunk_bytes.min(front.pending.len());
        let chunk = front.pending.split_to(n).freeze();
        front.sent += n;
        self.last_sent = (front.id, front.sent);
        self.last_play_at = Some(head);
        self.play_head = Some(head + Duration::from_micros(n as u64 * 125));
        Some(PlayoutAction::Media(chunk))
    }

    /// Drop everything queued or playing (barge-in) at `now`.
    pub fn clear(&mut self, now: Instant) -> Cleared {
        let (last_id, _) = self.last_sent;
        let heard_last = self.heard_bytes(last_id, now);
        let mut ids: Vec<u64> = self.awaiting_mark.drain(..).map(|(id, _)| id).collect();
        ids.extend(self.queue.drain(..).map(|r| r.id));
        for &id in &ids {
            if self.cleared.len() == MAX_CLEARED_REMEMBERED {
                self.cleared.pop_front();
            }
            self.cleared.push_back(id);
        }
        let heard_bytes = if ids.last() == Some(&last_id) {
            heard_last
        } else {
            0
        };
        self.play_head = None;
        Cleared { ids, heard_bytes }
    }

    /// When the caller will start hearing the chunk [`Playout::poll`] returned last.
    pub fn last_play_at(&self) -> Option<Instant> {
        self.last_play_at
    }

    /// How much of response `id` the caller has heard by `now`, in μ-law bytes, if it is the
    /// response sent from most recently: what was sent of it minus what is still buffered at
    /// Twilio. 0 for any other response.
    pub fn heard_bytes(&self, id: u64, now: Instant) -> usize {
        let (last_id, last_sent) = self.last_sent;
        if last_id != id {
            return 0;
        }
        let unplayed = self
            .play_head
            .filter(|h| *h > now)
            .map_or(0, |h| ((h - now).as_micros() / 125) as usize);
        last_sent.saturating_sub(unplayed)
    }

    /// Every response up to and including `id` is over: played (mark back), dropped for
    /// producing no audio, or cleared. Nothing of them is queued or playing.
    pub fn settled_through(&self, id: u64) -> bool {
        !self.queue.iter().any(|r| r.id <= id) && !self.awaiting_mark.iter().any(|&(x, _)| x <= id)
    }

    /// Response `id` was cleared (barge-in) rather than played.
    pub fn was_cleared(&self, id: u64) -> bool {
        self.cleared.contains(&id)
    }

    /// Underruns since the last call.
    pub fn take_underruns(&mut self) -> u64 {
        std::mem::take(&mut self.underruns)
    }

    /// A mark came back from Twilio.
    pub fn on_mark(&mut self, name: &str) -> MarkOutcome {
        let Some(id) = name
            .strip_prefix(MARK_PREFIX)
            .and_then(|s| s.parse::<u64>().ok())
        else {
            return MarkOutcome::Unknown;
        };
        if let Some(pos) = self.awaiting_mark.iter().position(|&(x, _)| x == id) {
            self.awaiting_mark.remove(pos);
            return MarkOutcome::Played(id);
        }
        if self.cleared.contains(&id) {
            return MarkOutcome::Ignored(id);
        }
        MarkOutcome::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(p: &mut Playout, now: Instant) -> Vec<PlayoutAction> {
        std::iter::from_fn(|| p.poll(now)).collect()
    }

    #[test]
    fn paces_with_lead_then_marks() {
        let mut p = Playout::new(120, 20);
        let t0 = Instant::now();
        let id = p.enqueue(vec![0u8; 8 * 1000]); // one second
        // At start: 120 ms of lead plus the chunk due now = 7 chunks (140 ms).
        let first = drain(&mut p, t0);
        assert_eq!(first.len(), 7);
        assert!(
            first
                .iter()
                .all(|a| matches!(a, PlayoutAction::Media(c) if c.len() == 160))
        );
        // Every 20 ms one more chunk.
        for i in 1..=42 {
            let now = t0 + Duration::from_millis(20 * i);
            assert_eq!(drain(&mut p, now).len(), 1, "tick {i}");
        }
        // The 50th and last chunk goes at 860 ms, its mark right behind it.
        let last = drain(&mut p, t0 + Duration::from_millis(860));
        assert_eq!(last.len(), 2);
        assert_eq!(last[1], PlayoutAction::Mark(format!("resp-{id}")));
        assert_eq!(p.poll(t0 + Duration::from_millis(2000)), None);
        assert!(p.is_active());
        assert_eq!(p.on_mark(&format!("resp-{id}")), MarkOutcome::Played(id));
        assert!(!p.is_active());
        assert_eq!(p.on_mark("resp-99"), MarkOutcome::Unknown);
        assert_eq!(p.on_mark("hello"), MarkOutcome::Unknown);
    }

    #[test]
    fn deadline_follows_play_head() {
        let mut p = Playout::new(100, 20);
        let t0 = Instant::now();
        assert_eq!(p.next_deadline(t0), None);
        p.enqueue(vec![0u8; 1600]);
        assert_eq!(p.next_deadline(t0), Some(t0));
        drain(&mut p, t0);
        // Play head at t0+120 ms, lead 100 ms: next chunk due at t0+20 ms.
        assert_eq!(p.next_deadline(t0), Some(t0 + Duration::from_millis(20)));
    }

    #[test]
    fn clear_interrupts_and_ignores_returned_marks() {
        let mut p = Playout::new(120, 20);
        let t0 = Instant::now();
        let a = p.enqueue(vec![0u8; 320]);
        let actions = drain(&mut p, t0);
        assert_eq!(
            actions.last(),
            Some(&PlayoutAction::Mark(format!("resp-{a}")))
        );
        let b = p.enqueue(vec![0u8; 8000]);
        drain(&mut p, t0);
        assert_eq!(p.clear(t0).ids, vec![a, b]);
        assert!(!p.is_active());
        assert_eq!(p.poll(t0), None);
        // Twilio returns the pending mark after clear: it does not count as played.
        assert_eq!(p.on_mark(&format!("resp-{a}")), MarkOutcome::Ignored(a));
        // A new response gets a fresh id and a fresh clock.
        let c = p.enqueue(vec![0u8; 160]);
        assert!(c > b);
        assert!(matches!(p.poll(t0), Some(PlayoutAction::Media(_))));
    }

    #[test]
    fn streamed_response_waits_for_whole_chunks_and_reports_what_was_heard() {
        let mut p = Playout::new(100, 20);
        let t0 = Instant::now();
        let id = p.begin();
        p.append(id, &[1u8; 100]);
        assert_eq!(
            p.next_deadline(t0),
            None,
            "less than a chunk: wait for more"
        );
        assert_eq!(p.poll(t0), None);
        p.append(id, &[1u8; 1500]); // 1600 bytes = 200 ms
        let sent = drain(&mut p, t0);
        assert_eq!(sent.len(), 6, "100 ms lead + the chunk due now");
        assert_eq!(p.sent_bytes(id), 960);
        // 60 ms later the caller has heard 60 ms (480 bytes); 480 more are buffered at Twilio.
        let cleared = p.clear(t0 + Duration::from_millis(60));
        assert_eq!(cleared.ids, vec![id]);
        assert_eq!(cleared.heard_bytes, 480);
        // Audio arriving after the clear for the old response is ignored.
        p.append(id, &[1u8; 160]);
        assert_eq!(p.poll(t0), None);
    }

    #[test]
    fn silent_responses_vanish_without_a_mark() {
        let mut p = Playout::new(100, 20);
        let t0 = Instant::now();
        let empty = p.begin();
        p.finish(empty);
        let real = p.enqueue(vec![1u8; 160]);
        let actions = drain(&mut p, t0);
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[1], PlayoutAction::Mark(format!("resp-{real}")));
        assert_eq!(p.on_mark(&format!("resp-{empty}")), MarkOutcome::Unknown);
    }

    #[test]
    fn finish_sends_the_short_tail_then_the_mark() {
        let mut p = Playout::new(1000, 20);
        let t0 = Instant::now();
        let id = p.begin();
        p.append(id, &[1u8; 200]);
        assert_eq!(drain(&mut p, t0).len(), 1);
        p.finish(id);
        let rest = drain(&mut p, t0);
        assert_eq!(rest.len(), 2);
        assert!(matches!(&rest[0], PlayoutAction::Media(c) if c.len() == 40));
        assert_eq!(rest[1], PlayoutAction::Mark(format!("resp-{id}")));
    }

    #[test]
    fn odd_lengths_send_a_short_last_chunk() {
        let mut p = Playout::new(1000, 40);
        p.enqueue(vec![0u8; 500]);
        let actions = drain(&mut p, Instant::now());
        let sizes: Vec<usize> = actions
            .iter()
            .filter_map(|a| match a {
                PlayoutAction::Media(c) => Some(c.len()),
                _ => None,
            })
            .collect();
        assert_eq!(sizes, vec![320, 180]);
    }
}
