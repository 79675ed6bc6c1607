//! What a simulated call saw, for assertions and for `voxbridge call`'s printout.
//! Plain data plus formatting; it measures nothing itself.

use std::fmt;
use std::time::Duration;

/// Everything one simulated call observed. Times are ms since the stream started.
#[derive(Debug, Default, Clone)]
pub struct SimReport {
    pub frames_sent: u64,
    /// Frames the impaired link lost (never sent; their `chunk` numbers skipped).
    pub frames_dropped: u64,
    /// RFC 3550 interarrival jitter of the frames as sent, mean over the call (ms).
    pub sent_jitter_ms: f64,
    pub frames_received: u64,
    pub bytes_received: u64,
    pub marks_received: u64,
    pub marks_returned: u64,
    pub clears_received: u64,
    /// Server messages that were not valid Twilio outbound messages for this stream.
    pub invalid_messages: u64,
    /// Wait steps that gave up.
    pub timeouts: u64,
    /// When each scripted utterance began.
    pub speech_starts_ms: Vec<u64>,
    /// When each scripted utterance's last voiced frame ended.
    pub speech_ends_ms: Vec<u64>,
    /// When reply audio became audible.
    pub reply_starts_ms: Vec<u64>,
    /// End of caller speech to first audible reply frame, per reply.
    pub response_latencies_ms: Vec<u64>,
    /// Per outbound frame after a reply's lead burst: |arrival gap − 20 ms|, µs.
    pub pacing_jitter_us: Vec<u32>,
    /// Reply frames that arrived after the caller's playback buffer had run dry.
    pub late_frames: u64,
    /// When each `clear` arrived.
    pub clear_times_ms: Vec<u64>,
    /// The server's close code and reason, if it closed the socket (before the caller hung up).
    pub closed_by_server: Option<(u16, String)>,
    /// The server's close frame answering ours, after the caller hung up (`stop`, then a close
    /// frame): the close handshake completed.
    pub close_reply: Option<(u16, String)>,
    pub socket_error: Option<String>,
    /// Every μ-law byte the caller said, one 160-byte frame per 20 ms tick.
    pub sent: Vec<u8>,
    /// Every μ-law byte the caller heard, aligned tick for tick with `sent`.
    pub heard: Vec<u8>,
    pub duration: Duration,
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "call duration     {:.2} s", self.duration.as_secs_f64())?;
        writeln!(f, "frames sent       {}", self.frames_sent)?;
        if self.frames_dropped > 0 {
            let total = self.frames_sent + self.frames_dropped;
            let pct = 100.0 * self.frames_dropped as f64 / total as f64;
            writeln!(
                f,
                "frames dropped    {} ({pct:.1} %, injected loss)",
                self.frames_dropped
            )?;
        }
        if self.sent_jitter_ms >= 1.0 {
            writeln!(
                f,
                "sent jitter       {:.1} ms (RFC 3550, injected)",
                self.sent_jitter_ms
            )?;
        }
        writeln!(
            f,
            "frames received   {} ({:.2} s of audio)",
            self.frames_received,
            self.bytes_received as f64 / 8000.0
        )?;
        writeln!(
            f,
            "marks             {} received, {} returned",
            self.marks_received, self.marks_returned
        )?;
        writeln!(f, "clears            {}", self.clears_received)?;
        let latencies: Vec<String> = self
            .response_latencies_ms
            .iter()
            .map(|ms| format!("{ms} ms"))
            .collect();
        writeln!(
            f,
            "response latency  {} (end of caller speech → first audible reply frame)",
            if latencies.is_empty() {
                "no reply heard".to_string()
            } else {
                latencies.join(", ")
            }
        )?;
        if self.timeouts > 0 {
            writeln!(
                f,
                "timeouts          {} wait step(s) gave up",
                self.timeouts
            )?;
        }
        if self.invalid_messages > 0 {
            writeln!(f, "invalid messages  {}", self.invalid_messages)?;
        }
        if let Some((code, reason)) = &self.closed_by_server {
            writeln!(f, "closed by server  {code} {reason}")?;
        }
        if let Some((code, reason)) = &self.close_reply {
            writeln!(f, "close answered    {code} {reason}")?;
        }
        if let Some(e) = &self.socket_error {
            writeln!(f, "socket error      {e}")?;
        }
        Ok(())
    }
}
