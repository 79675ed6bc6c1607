//! Live per-call alerts: once a second, the meter's rolling window (default 5 s) is checked
//! against the thresholds in `[quality]`. Each condition is raised once while it holds and
//! cleared when it recovers, so a bad minute produces two events, not sixty.
//!
//! This module only decides transitions; the session logs and counts them and hands them to
//! the [`Notifier`](super::notify::Notifier) for the webhook.

use serde::{Deserialize, Serialize};

use super::emodel;
use super::meter::QualityMeter;
use super::report::Reason;
use crate::config::QualityConfig;

/// Raised or cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Raised,
    Cleared,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Raised => "raised",
            AlertState::Cleared => "cleared",
        }
    }
}

/// One alert transition on one call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AlertEvent {
    pub condition: Reason,
    pub state: AlertState,
    /// The window's figure for the condition (MOS, ms, percent).
    pub value: f64,
    pub threshold: f64,
}

/// Live conditions checked per window (slow responses are judged per call, not live).
const LIVE: [Reason; 5] = [
    Reason::LowMos,
    Reason::HighJitter,
    Reason::PacketLoss,
    Reason::Clipping,
    Reason::DeadAir,
];

#[derive(Debug)]
pub struct LiveAlerts {
    cfg: QualityConfig,
    /// Complete seconds needed before window conditions are judged.
    min_seconds: usize,
    raised: [bool; Reason::ALL.len()],
}

impl LiveAlerts {
    pub fn new(cfg: &QualityConfig, window_secs: u64) -> Self {
        Self {
            cfg: cfg.clone(),
            min_seconds: (window_secs as usize).div_ceil(2).max(1),
            raised: [false; Reason::ALL.len()],
        }
    }

    /// Conditions currently raised.
    pub fn active(&self) -> impl Iterator<Item = Reason> + '_ {
        LIVE.into_iter().filter(|r| self.raised[r.index()])
    }

    /// The call ended: clear whatever is still raised.
    pub fn close(&mut self, out: &mut Vec<AlertEvent>) {
        for reason in LIVE {
            if std::mem::take(&mut self.raised[reason.index()]) {
                out.push(AlertEvent {
                    condition: reason,
                    state: AlertState::Cleared,
                    value: f64::NAN,
                    threshold: f64::NAN,
                });
            }
        }
    }

    /// Check the window; push transitions into `out` (no allocation when nothing changes).
    pub fn evaluate(&mut self, meter: &QualityMeter, out: &mut Vec<AlertEvent>) {
        let (w, seconds) = meter.window();
        let judged = seconds >= self.min_seconds && w.received > 0;
        let loss_pct = w.loss_ratio() * 100.0;
        let jitter = w.jitter_mean_ms();
        let mos = emodel::mos(
            loss_pct,
            2.0 * jitter + self.cfg.processing_delay_ms,
            self.cfg.plc,
        );
        for reason in LIVE {
            let (holds, value, threshold) = match reason {
                Reason::LowMos => (judged && mos < self.cfg.low_mos, mos, self.cfg.low_mos),
                Reason::HighJitter => (
                    judged
                        && jitter >= self.cfg.jitter_mean_ms
                        && w.jitter_max >= self.cfg.jitter_max_ms,
                    jitter,
                    self.cfg.jitter_mean_ms,
                ),
                Reason::PacketLoss => (
                    judged && loss_pct > self.cfg.packet_loss_pct,
                    loss_pct,
                    self.cfg.packet_loss_pct,
                ),
                Reason::Clipping => {
                    let pct = w.clipping_ratio() * 100.0;
                    (
                        judged && pct > self.cfg.clipping_pct,
                        pct,
                        self.cfg.clipping_pct,
                    )
                }
                Reason::DeadAir => {
                    let quiet = meter.quiet_ms();
                    (
                        quiet >= self.cfg.dead_air_ms,
                        quiet as f64,
                        self.cfg.dead_air_ms as f64,
                    )
                }
                Reason::SlowResponse => continue,
            };
            let was = &mut self.raised[reason.index()];
            if holds != *was {
                *was = holds;
                let state = if holds {
                    AlertState::Raised
                } else {
                    AlertState::Cleared
                };
                out.push(AlertEvent {
                    condition: reason,
                    state,
                    value,
                    threshold,
                });
            }
        }
    }
}
