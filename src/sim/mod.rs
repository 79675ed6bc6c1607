//! The simulated Twilio leg: one faithful model of Twilio Media Streams for `voxbridge call`,
//! the integration tests, and later the load generator and benches.
//!
//! A [`SimCall`] connects like Twilio does (`connected`, then `start`), then streams the
//! caller's line at real-time pace: one 20 ms μ-law frame per tick with correct
//! `sequenceNumber`, `chunk` and `timestamp`, speech from the script or line silence between.
//! What the server sends goes into a [`PlaybackBuffer`] that plays it in real time, returns
//! marks as playback passes them, and honours `clear`. What the caller heard is kept, tick for
//! tick aligned with what was said, so tests can assert on the audio itself.
//!
//! The simulator only ever connects where it is told (tests use 127.0.0.1) and every wait in a
//! script is bounded.

mod impair;
pub mod load;
mod noise;
mod playback;
mod report;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub use impair::Impairments;
pub use noise::{LineNoise, NoiseKind};
pub use playback::{FRAME_BYTES, PlaybackBuffer};
pub use report::SimReport;

use crate::audio::frame_dbfs;
use crate::audio::mulaw;
use crate::twilio::messages::{self as msg, ParsedOutbound, parse_outbound};
use impair::Network;
use noise::NoiseSource;

/// One thing the simulated caller does.
#[derive(Debug, Clone)]
pub enum Step {
    /// Say this 8 kHz μ-law audio, in real time.
    Speak(Bytes),
    /// Keep the line silent this long.
    Silence(Duration),
    /// Press a key (sent between two media frames).
    Dtmf(String),
    /// Send this text frame as is (for bad-input tests).
    SendText(String),
    /// Send a binary frame (Twilio never does).
    SendBinary(Vec<u8>),
    /// Stay silent until reply audio is heard, at most this long.
    WaitForReply(Duration),
    /// Stay silent until a reply has been heard and has finished playing, at most this long.
    WaitForReplyEnd(Duration),
    /// Drop the connection without `stop` or a close handshake.
    Disconnect,
}

/// Who is calling, and what they do.
#[derive(Debug, Clone)]
pub struct SimCall {
    pub url: String,
    pub account_sid: String,
    pub call_sid: String,
    pub stream_sid: String,
    pub custom_parameters: Vec<(String, String)>,
    pub steps: Vec<Step>,
    /// A heard or spoken frame at or above this level counts as voice (dBFS).
    pub voice_threshold_dbfs: f32,
    /// Send `start` right after `connected`, as Twilio does (off to test media before start).
    pub send_start: bool,
    /// Loss, jitter and gain on the caller's leg.
    pub impairments: Impairments,
    /// Background noise under everything the caller sends (speech and silence).
    pub line_noise: Option<LineNoise>,
    /// Hang up (stop) when the call has lasted this long, wherever the script is.
    pub max_duration: Option<Duration>,
    /// Keep every byte said and heard in the report (off for load runs: 16 KB/s per call).
    pub record_audio: bool,
    /// Extra headers on the WebSocket upgrade (e.g. `X-Twilio-Signature`).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("connecting to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("websocket: {0}")]
    Socket(String),
}

impl SimCall {
    /// A call to `url` with fresh, Twilio-shaped ids and no steps.
    pub fn new(url: impl Into<String>) -> Self {
        let n = std::process::id() as u64 * 1_000_000 + unique();
        Self {
            url: url.into(),
            account_sid: format!("AC{n:032x}"),
            call_sid: format!("CA{n:032x}"),
            stream_sid: format!("MZ{n:032x}"),
            custom_parameters: Vec::new(),
            steps: Vec::new(),
            voice_threshold_dbfs: -42.0,
            send_start: true,
            impairments: Impairments::default(),
            line_noise: None,
            max_duration: None,
            record_audio: true,
            headers: Vec::new(),
        }
    }

    /// Sign the WebSocket upgrade as Twilio does: `X-Twilio-Signature` over the stream's
    /// `wss://` URL. Twilio only connects over TLS, so a `ws://` URL is signed as its `wss://`
    /// twin, which is what the server checks unless `security.public_scheme = "http"`.
    pub fn signed(mut self, auth_token: &str) -> Self {
        let url = match self.url.strip_prefix("ws://") {
            Some(rest) => format!("wss://{rest}"),
            None => self.url.clone(),
        };
        let signature = crate::twilio::signature::compute(auth_token, &url, &[]);
        self.headers.push(("X-Twilio-Signature".into(), signature));
        self
    }

    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// Place the call and run the script to its end.
    pub async fn run(self) -> Result<SimReport, SimError> {
        self.run_until(std::future::pending()).await
    }

    /// Like [`SimCall::run`], but hang up (send `stop`, close the socket) as soon as `hangup`
    /// completes, wherever the script is — as Twilio does when the call ends under the stream
    /// (a REST hang-up or redirect). The fake Twilio REST server uses this.
    pub async fn run_until(
        self,
        hangup: impl std::future::Future<Output = ()>,
    ) -> Result<SimReport, SimError> {
        // Small socket buffers, like the server's: load runs hold thousands of these.
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let bad_url = |message: String| SimError::Connect {
            url: self.url.clone(),
            message,
        };
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| bad_url(e.to_string()))?;
        for (name, value) in &self.headers {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad_url(e.to_string()))?;
            let value = HeaderValue::from_str(value).map_err(|e| bad_url(e.to_string()))?;
            request.headers_mut().insert(name, value);
        }
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), false);
        let (ws, _) = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| SimError::Connect {
                url: self.url.clone(),
                message: "timed out".into(),
            })?
            .map_err(|e| SimError::Connect {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        Runner::new(self).drive(ws, std::pin::pin!(hangup)).await
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The script's progress.
enum Now {
    Speaking {
        audio: Bytes,
        pos: usize,
    },
    Silent {
        until_tick: u64,
    },
    Waiting {
        deadline_tick: u64,
        for_end: bool,
        heard_at_start: usize,
    },
    Done,
}

struct Runner {
    call: SimCall,
    steps: std::vec::IntoIter<Step>,
    seq: u64,
    tick: u64,
    playback: PlaybackBuffer,
    report: SimReport,
    /// End (ms) of the last voiced frame of the last utterance, until a reply is heard.
    awaiting_reply_since: Option<u64>,
    replies_heard: usize,
    reply_playing: bool,
    net: Network,
    noise: Option<NoiseSource>,
    sent_jitter: Rfc3550Jitter,
    /// Heard audio when not recording (one frame, reused).
    scratch: Vec<u8>,
    last_media_at: Option<Instant>,
    burst_frames: u32,
    starved_ticks: u32,
}

/// Media frames further apart than this belong to different replies.
const RESPONSE_GAP: Duration = Duration::from_millis(200);
/// Frames a reply's first burst may carry (the server's playout lead, up to 200 ms).
const LEAD_BURST_FRAMES: u32 = 11;

impl Runner {
    fn new(call: SimCall) -> Self {
        let mut call = call;
        let steps = std::mem::take(&mut call.steps).into_iter();
        let net = Network::new(call.impairments);
        let noise = call.line_noise.map(NoiseSource::new);
        Self {
            call,
            steps,
            seq: 0,
            tick: 0,
            playback: PlaybackBuffer::default(),
            report: SimReport::default(),
            awaiting_reply_since: None,
            replies_heard: 0,
            reply_playing: false,
            net,
            noise,
            sent_jitter: Rfc3550Jitter::default(),
            scratch: Vec::with_capacity(FRAME_BYTES),
            last_media_at: None,
            burst_frames: 0,
            starved_ticks: 0,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    async fn drive(
        mut self,
        ws: Ws,
        mut hangup: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<SimReport, SimError> {
        let started = Instant::now();
        let (mut sink, mut stream) = ws.split();
        let sock = |e: tokio_tungstenite::tungstenite::Error| SimError::Socket(e.to_string());
        sink.send(Message::text(msg::connected_json()))
            .await
            .map_err(sock)?;
        if self.call.send_start {
            let seq = self.next_seq();
            let c = &self.call;
            let start = msg::start_json(
                seq,
                &c.account_sid,
                &c.stream_sid,
                &c.call_sid,
                &c.custom_parameters,
            );
            sink.send(Message::text(start)).await.map_err(sock)?;
        }

        let mut interval = tokio::time::interval(Duration::from_millis(20));
        interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut now = Now::Done;
        let mut outgoing: Vec<Message> = Vec::new();
        let mut hung_up = false;
        'call: loop {
            let due = self.net.next_due();
            tokio::select! {
                tick_at = interval.tick() => {
                    now = match self.advance(now, &mut outgoing) {
                        Some(now) => now,
                        None => { hung_up = true; break 'call; }
                    };
                    if matches!(now, Now::Done) {
                        break 'call;
                    }
                    self.media_frame(&mut now, tick_at.into_std());
                    self.play_tick(&mut outgoing);
                    self.tick += 1;
                }
                _ = sleep_until(due), if due.is_some() => {}
                () = &mut hangup => break 'call,
                incoming = stream.next() => match incoming {
                    Some(Ok(m)) => {
                        if self.on_server_message(m, started, &mut outgoing) {
                            break 'call;
                        }
                    }
                    Some(Err(e)) => {
                        self.report.socket_error = Some(e.to_string());
                        break 'call;
                    }
                    None => break 'call,
                },
            }
            let t = Instant::now();
            for m in outgoing.drain(..) {
                self.net.send(t, m);
            }
            self.flush_due(&mut sink, started, false)
                .await
                .map_err(sock)?;
        }
        if hung_up {
            // Disconnect step: drop the socket with no stop and no close handshake.
            drop((sink, stream));
        } else if self.report.closed_by_server.is_none() && self.report.socket_error.is_none() {
            // Frames still held by the impaired link go out first (bounded: one stall cycle).
            let _ = self.flush_due(&mut sink, started, true).await;
            let c = &self.call;
            let stop = msg::stop_json(self.seq + 1, &c.account_sid, &c.stream_sid, &c.call_sid);
            let _ = sink.send(Message::text(stop)).await;
            let normal = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            let _ = sink.send(Message::Close(Some(normal))).await;
            // Collect the server's last words (its close frame), briefly.
            let tail = async {
                while let Some(Ok(m)) = stream.next().await {
                    if self.on_server_message(m, started, &mut outgoing) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), tail).await;
            // A close now answers ours: the handshake completed, the server closed nothing.
            self.report.close_reply = self.report.closed_by_server.take();
        }
        self.report.duration = started.elapsed();
        self.report.sent_jitter_ms = self.sent_jitter.mean();
        Ok(self.report)
    }

    /// Send what the (possibly impaired) link releases by now — or everything, waiting for it,
    /// when `all`. Tracks the RFC 3550 jitter of what was actually sent.
    async fn flush_due(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Ws, Message>,
        started: Instant,
        all: bool,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        loop {
            if all && let Some(at) = self.net.next_due() {
                tokio::time::sleep_until(at.into()).await;
            }
            let Some((m, ts)) = self.net.pop_due(Instant::now()) else {
                return Ok(());
            };
            sink.send(m).await?;
            if let Some(ts) = ts {
                let transit = started.elapsed().as_secs_f64() * 1000.0 - ts as f64;
                self.sent_jitter.push(transit);
            }
        }
    }

    /// Run immediate steps and pick the next timed one. `None`: hang up now.
    fn advance(&mut self, mut now: Now, out: &mut Vec<Message>) -> Option<Now> {
        if let Some(max) = self.call.max_duration
            && self.tick >= ticks(max)
        {
            return Some(Now::Done);
        }
        loop {
            let finished = match &now {
                Now::Speaking { audio, pos } => *pos >= audio.len(),
                Now::Silent { until_tick } => self.tick >= *until_tick,
                Now::Waiting {
                    deadline_tick,
                    for_end,
                    heard_at_start,
                } => {
                    let heard = self.replies_heard > *heard_at_start || self.reply_playing;
                    let done = if *for_end {
                        heard && !self.reply_playing && self.playback.is_empty()
                    } else {
                        heard
                    };
                    if !done && self.tick >= *deadline_tick {
                        self.report.timeouts += 1;
                        true
                    } else {
                        done
                    }
                }
                Now::Done => true,
            };
            if !finished {
                return Some(now);
            }
            now = match self.steps.next() {
                None => return Some(Now::Done),
                Some(Step::Speak(audio)) => Now::Speaking { audio, pos: 0 },
                Some(Step::Silence(d)) => Now::Silent {
                    until_tick: self.tick + ticks(d),
                },
                Some(Step::WaitForReply(d)) => Now::Waiting {
                    deadline_tick: self.tick + ticks(d),
                    for_end: false,
                    heard_at_start: self.replies_heard,
                },
                Some(Step::WaitForReplyEnd(d)) => Now::Waiting {
                    deadline_tick: self.tick + ticks(d),
                    for_end: true,
                    heard_at_start: self
                        .replies_heard
                        .saturating_sub(self.reply_playing as usize),
                },
                Some(Step::Dtmf(digit)) => {
                    let seq = self.next_seq();
                    out.push(Message::text(msg::dtmf_json(
                        seq,
                        &self.call.stream_sid,
                        &digit,
                    )));
                    Now::Done
                }
                Some(Step::SendText(text)) => {
                    self.next_seq();
                    out.push(Message::text(text));
                    Now::Done
                }
                Some(Step::SendBinary(bytes)) => {
                    out.push(Message::binary(bytes));
                    Now::Done
                }
                Some(Step::Disconnect) => return None,
            };
        }
    }

    /// Send this tick's 20 ms of the caller's line (through the impaired link).
    fn media_frame(&mut self, now: &mut Now, tick_at: Instant) {
        let mut frame = [mulaw::SILENCE; FRAME_BYTES];
        let t_ms = self.tick * 20;
        if let Now::Speaking { audio, pos } = now {
            let end = (*pos + FRAME_BYTES).min(audio.len());
            frame[..end - *pos].copy_from_slice(&audio[*pos..end]);
            if *pos == 0 {
                self.report.speech_starts_ms.push(t_ms);
            }
            *pos = end;
            self.net.apply_gain(&mut frame);
            if self.is_voice(&frame) {
                self.awaiting_reply_since = Some(t_ms + 20);
            }
            if *pos >= audio.len()
                && let Some(end_ms) = self.awaiting_reply_since
            {
                self.report.speech_ends_ms.push(end_ms);
            }
        }
        if let Some(noise) = &mut self.noise {
            // Under the speech, after its ends were judged: the script's timing stays the truth.
            let mut pcm = [0i16; FRAME_BYTES];
            mulaw::decode_into(&frame, &mut pcm);
            noise.mix_into(&mut pcm);
            mulaw::encode_into(&pcm, &mut frame);
        }
        if self.call.record_audio {
            self.report.sent.extend_from_slice(&frame);
        }
        let chunk = self.tick + 1;
        if self.net.drops(self.tick) {
            self.report.frames_dropped += 1;
            return;
        }
        let seq = self.next_seq();
        let json = msg::media_json(seq, &self.call.stream_sid, chunk, t_ms, &frame);
        self.net
            .send_media(tick_at, self.tick, t_ms, Message::text(json));
        self.report.frames_sent += 1;
    }

    /// Play 20 ms of what the server sent; return marks playback passed.
    fn play_tick(&mut self, out: &mut Vec<Message>) {
        let mut marks = Vec::new();
        let heard = if self.call.record_audio {
            &mut self.report.heard
        } else {
            self.scratch.clear();
            &mut self.scratch
        };
        let at = heard.len();
        let played = self.playback.tick(heard, &mut marks);
        let frame: [u8; FRAME_BYTES] = heard[at..]
            .try_into()
            .unwrap_or([mulaw::SILENCE; FRAME_BYTES]);
        let audible = self.is_voice(&frame);
        // Reply audio was still coming but the buffer ran dry: the caller heard a gap.
        let streaming = self
            .last_media_at
            .is_some_and(|t| t.elapsed() < RESPONSE_GAP);
        if played < FRAME_BYTES && streaming && self.reply_playing {
            self.starved_ticks += 1;
        }
        let t_ms = self.tick * 20;
        if audible && !self.reply_playing {
            self.reply_playing = true;
            self.replies_heard += 1;
            self.report.reply_starts_ms.push(t_ms);
            if let Some(since) = self.awaiting_reply_since.take() {
                self.report
                    .response_latencies_ms
                    .push(t_ms.saturating_sub(since));
            }
        }
        if self.reply_playing && self.playback.is_empty() && !audible {
            self.reply_playing = false;
        }
        for name in marks {
            self.return_mark(name, out);
        }
    }

    /// Outbound pacing as the caller's side sees it: within a reply, after the lead burst,
    /// frames should arrive every 20 ms; record how far off each is, and frames that came
    /// after the playback buffer had already run dry (late).
    fn pace_frame(&mut self, now: Instant) {
        let gap = self.last_media_at.map(|t| now.saturating_duration_since(t));
        self.last_media_at = Some(now);
        match gap {
            Some(gap) if gap < RESPONSE_GAP => {
                self.burst_frames += 1;
                if self.burst_frames > LEAD_BURST_FRAMES {
                    let off = (gap.as_micros() as i64 - 20_000).unsigned_abs();
                    self.report
                        .pacing_jitter_us
                        .push(off.min(u64::from(u32::MAX)) as u32);
                }
                if self.starved_ticks > 0 {
                    self.report.late_frames += 1;
                    self.starved_ticks = 0;
                }
            }
            _ => {
                self.burst_frames = 1;
                self.starved_ticks = 0;
            }
        }
    }

    fn return_mark(&mut self, name: String, out: &mut Vec<Message>) {
        let seq = self.next_seq();
        out.push(Message::text(msg::mark_json(
            seq,
            &self.call.stream_sid,
            &name,
        )));
        self.report.marks_returned += 1;
    }

    /// Handle one server message; true when the server closed the stream.
    fn on_server_message(&mut self, m: Message, started: Instant, out: &mut Vec<Message>) -> bool {
        let text = match m {
            Message::Text(text) => text,
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((u16::from(CloseCode::Status), String::new()));
                self.report.closed_by_server = Some((code, reason));
                return true;
            }
            _ => return false,
        };
        match parse_outbound(text.as_str()) {
            Ok(ParsedOutbound::Media {
                stream_sid,
                payload,
            }) => {
                self.check_sid(&stream_sid);
                self.report.frames_received += 1;
                self.report.bytes_received += payload.len() as u64;
                self.playback.push_audio(payload);
                self.pace_frame(Instant::now());
            }
            Ok(ParsedOutbound::Mark { stream_sid, name }) => {
                self.check_sid(&stream_sid);
                self.report.marks_received += 1;
                if let Some(name) = self.playback.push_mark(name) {
                    self.return_mark(name, out);
                }
            }
            Ok(ParsedOutbound::Clear { stream_sid }) => {
                self.check_sid(&stream_sid);
                self.report.clears_received += 1;
                self.report
                    .clear_times_ms
                    .push(started.elapsed().as_millis() as u64);
                self.reply_playing = false;
                for name in self.playback.clear() {
                    self.return_mark(name, out);
                }
            }
            Err(_) => self.report.invalid_messages += 1,
        }
        false
    }

    fn check_sid(&mut self, sid: &str) {
        if sid != self.call.stream_sid {
            self.report.invalid_messages += 1;
        }
    }

    fn is_voice(&self, mulaw_frame: &[u8]) -> bool {
        let mut pcm = [0i16; FRAME_BYTES];
        let n = mulaw_frame.len().min(FRAME_BYTES);
        mulaw::decode_into(&mulaw_frame[..n], &mut pcm[..n]);
        frame_dbfs(&pcm[..n]) >= self.call.voice_threshold_dbfs
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// RFC 3550 interarrival jitter of the frames as actually sent, averaged over the call.
#[derive(Debug, Default)]
struct Rfc3550Jitter {
    prev: Option<f64>,
    j: f64,
    sum: f64,
    n: u64,
}

impl Rfc3550Jitter {
    fn push(&mut self, transit_ms: f64) {
        if let Some(prev) = self.prev {
            self.j += ((transit_ms - prev).abs() - self.j) / 16.0;
        }
        self.prev = Some(transit_ms);
        self.sum += self.j;
        self.n += 1;
    }

    fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }
}

fn ticks(d: Duration) -> u64 {
    (d.as_millis() as u64).div_ceil(20)
}
