//! Live calls: the registry of calls in progress (CallSid → handle), each call's live figures
//! published once a second through a `watch`, and a control channel into the call's session
//! (hang up, transfer) that the API and the console use.
//!
//! The registry is touched when a call starts or ends and when someone asks — never per
//! frame. Each call's [`LiveTap`] is an observer: it reads the call-event stream and the
//! quality meter's window; it never changes the call. Control requests go through a bounded
//! queue (full: the request is refused, not queued).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::call::context::CallContext;
use crate::call::events::CallEvent;
use crate::config::QualityConfig;
use crate::quality::emodel;
use crate::quality::meter::QualityMeter;
use crate::quality::notify::rfc3339;
use crate::quality::report::Reason;

/// Control requests a call may have waiting.
const CONTROL_QUEUE: usize = 4;
/// Per-second samples kept for the record's quality timeline (one hour; later seconds are
/// not sampled).
pub const MAX_TIMELINE_SECS: usize = 3600;

/// Who is talking right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Speaking {
    #[default]
    Nobody,
    Caller,
    Agent,
    Both,
}

/// A call's figures right now.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct LiveStats {
    pub call_sid: String,
    pub direction: &'static str,
    pub from: String,
    pub to: String,
    pub profile: String,
    pub engine: &'static str,
    pub started_at: String,
    pub duration_ms: u64,
    pub speaking: Speaking,
    /// The last second's figures: caller level, jitter, loss and the E-model's MOS.
    pub now: QualitySample,
    pub alerts: Vec<Reason>,
}

/// One second of a call's inbound quality (the live view, and the record's timeline).
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq)]
pub struct QualitySample {
    /// Seconds since the call started.
    pub t_s: u32,
    pub level_dbfs: f32,
    pub jitter_ms: f32,
    pub loss_pct: f32,
    pub mos: f32,
    /// Live alerts raised at that second (a bit per [`Reason::index`]).
    pub alerts: u8,
}

/// What the API may ask a live call to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Hangup,
    Transfer { to: String },
}

struct Handle {
    control: mpsc::Sender<Control>,
    stats: watch::Receiver<LiveStats>,
}

/// Every call in progress on this instance.
#[derive(Default)]
pub struct LiveCalls {
    calls: Mutex<HashMap<String, Handle>>,
}

/// Why a control request did not reach a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("no such call in progress")]
    NotFound,
    #[error("the call is busy with another request")]
    Busy,
}

impl LiveCalls {
    /// Register a call; it is listed until the returned entry is dropped.
    pub fn register(self: &Arc<Self>, ctx: &CallContext) -> LiveEntry {
        let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let initial = LiveStats {
            call_sid: ctx.call_sid.clone(),
            direction: ctx.direction.as_str(),
            from: ctx.from.clone(),
            to: ctx.to.clone(),
            profile: ctx.profile.clone(),
            engine: ctx.engine.as_str(),
            started_at: rfc3339(ctx.started_at),
            ..LiveStats::default()
        };
        let (stats_tx, stats_rx) = watch::channel(initial);
        if let Ok(mut calls) = self.calls.lock() {
            calls.insert(
                ctx.call_sid.clone(),
                Handle {
                    control: control_tx,
                    stats: stats_rx,
                },
            );
        }
        LiveEntry {
            registry: Arc::clone(self),
            call_sid: ctx.call_sid.clone(),
            stats: stats_tx,
            control: Some(control_rx),
        }
    }

    /// Every call in progress, newest first.
    pub fn list(&self) -> Vec<LiveStats> {
        let mut all: Vec<LiveStats> = match self.calls.lock() {
            Ok(calls) => calls.values().map(|h| h.stats.borrow().clone()).collect(),
            Err(_) => Vec::new(),
        };
        all.sort_by(|a, b| b.started_at.cmp(&a.started_at));
        all
    }

    pub fn get(&self, call_sid: &str) -> Option<LiveStats> {
        let calls = self.calls.lock().ok()?;
        calls.get(call_sid).map(|h| h.stats.borrow().clone())
    }

    /// Ask a call to do something; it acts within its next loop turn.
    pub fn control(&self, call_sid: &str, request: Control) -> Result<(), ControlError> {
        let tx = {
            let calls = self.calls.lock().map_err(|_| ControlError::NotFound)?;
            calls
                .get(call_sid)
                .map(|h| h.control.clone())
                .ok_or(ControlError::NotFound)?
        };
        tx.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ControlError::Busy,
            mpsc::error::TrySendError::Closed(_) => ControlError::NotFound,
        })
    }

    pub fn len(&self) -> usize {
        self.calls.lock().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A call's place in the registry; unlisted when dropped.
pub struct LiveEntry {
    registry: Arc<LiveCalls>,
    call_sid: String,
    stats: watch::Sender<LiveStats>,
    control: Option<mpsc::Receiver<Control>>,
}

impl LiveEntry {
    /// The call's control requests (taken once by the session).
    pub fn take_control(&mut self) -> Option<mpsc::Receiver<Control>> {
        self.control.take()
    }
}

impl Drop for LiveEntry {
    fn drop(&mut self) {
        if let Ok(mut calls) = self.registry.calls.lock() {
            calls.remove(&self.call_sid);
        }
    }
}

/// The live-figures observer of one call: who is speaking and the last second's quality,
/// published once a second; the per-second samples kept for the record's timeline.
pub struct LiveTap {
    entry: Option<LiveEntry>,
    started: Instant,
    caller_voiced_at: Option<Instant>,
    agent_audio_until: Option<Instant>,
    /// Mean level of the caller's frames this second (energy sum, frames).
    level_acc: (f64, u32),
    pub timeline: Vec<QualitySample>,
}

impl LiveTap {
    pub fn new(started: Instant) -> Self {
        Self {
            entry: None,
            started,
            caller_voiced_at: None,
            agent_audio_until: None,
            level_acc: (0.0, 0),
            timeline: Vec::new(),
        }
    }

    /// List the call (when the server keeps a registry).
    pub fn attach(&mut self, entry: LiveEntry) {
        self.entry = Some(entry);
    }

    pub fn take_control(&mut self) -> Option<mpsc::Receiver<Control>> {
        self.entry.as_mut().and_then(LiveEntry::take_control)
    }

    pub fn on_event(&mut self, event: &CallEvent<'_>) {
        match event {
            CallEvent::AudioIn(f) => {
                if f.voiced {
                    self.caller_voiced_at = Some(f.at);
                }
                self.level_acc.0 += 10f64.powf(f64::from(f.level_dbfs) / 10.0);
                self.level_acc.1 += 1;
            }
            CallEvent::AudioSent { mulaw, play_at } => {
                let end = *play_at + std::time::Duration::from_micros(mulaw.len() as u64 * 125);
                self.agent_audio_until = Some(self.agent_audio_until.map_or(end, |u| u.max(end)));
            }
            CallEvent::BargeIn { .. } | CallEvent::Abandoned(_) => self.agent_audio_until = None,
            _ => {}
        }
    }

    /// Once a second: sample the last second and publish the live figures.
    pub fn tick(
        &mut self,
        now: Instant,
        meter: &QualityMeter,
        alerts: &[Reason],
        q: &QualityConfig,
    ) {
        let (w, seconds) = meter.window();
        let last_second = seconds > 0;
        let jitter = if last_second { w.jitter_mean_ms() } else { 0.0 };
        let loss = w.loss_ratio() * 100.0;
        let (sum, n) = std::mem::take(&mut self.level_acc);
        let level = if n > 0 {
            (10.0 * (sum / f64::from(n)).log10()).max(-96.0)
        } else {
            -96.0
        };
        let sample = QualitySample {
            t_s: now.saturating_duration_since(self.started).as_secs() as u32,
            level_dbfs: level as f32,
            jitter_ms: jitter as f32,
            loss_pct: loss as f32,
            mos: emodel::mos(loss, 2.0 * jitter + q.processing_delay_ms, q.plc) as f32,
            alerts: alerts.iter().fold(0u8, |m, r| m | (1 << r.index())),
        };
        if self.timeline.len() < MAX_TIMELINE_SECS {
            self.timeline.push(sample);
        }
        let caller = self
            .caller_voiced_at
            .is_some_and(|t| now.saturating_duration_since(t).as_millis() < 300);
        let agent = self.agent_audio_until.is_some_and(|u| u > now);
        let speaking = match (caller, agent) {
            (true, true) => Speaking::Both,
            (true, false) => Speaking::Caller,
            (false, true) => Speaking::Agent,
            (false, false) => Speaking::Nobody,
        };
        if let Some(entry) = &self.entry {
            let duration_ms = now.saturating_duration_since(self.started).as_millis() as u64;
            entry.stats.send_modify(|s| {
                s.duration_ms = duration_ms;
                s.speaking = speaking;
                s.now = sample;
                s.alerts = alerts.to_vec();
            });
        }
    }
}
