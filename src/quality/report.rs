//! The per-call quality report: the meter's figures, the E-model's MOS, and the verdict —
//! a quality band and the reasons for it.
//!
//! Mouth-to-ear delay for the E-model (`Ta`) is estimated as the jitter-buffer delay a receiver
//! would need (2 × mean jitter) plus `quality.processing_delay_ms`; network delay upstream of
//! Twilio is not visible to us and is not included. Plain data and arithmetic: no I/O.

use serde::{Deserialize, Serialize};

use super::emodel;
use super::meter::{QualityMeter, ratio};
use crate::config::QualityConfig;

/// Overall verdict on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    Good,
    Fair,
    Poor,
}

impl Band {
    pub const ALL: [Band; 3] = [Band::Good, Band::Fair, Band::Poor];

    pub fn as_str(self) -> &'static str {
        match self {
            Band::Good => "good",
            Band::Fair => "fair",
            Band::Poor => "poor",
        }
    }
}

/// Why a call is not `good`. Also the live alert conditions (all but `slow_response`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    LowMos,
    HighJitter,
    PacketLoss,
    Clipping,
    DeadAir,
    SlowResponse,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::LowMos,
        Reason::HighJitter,
        Reason::PacketLoss,
        Reason::Clipping,
        Reason::DeadAir,
        Reason::SlowResponse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::LowMos => "low_mos",
            Reason::HighJitter => "high_jitter",
            Reason::PacketLoss => "packet_loss",
            Reason::Clipping => "clipping",
            Reason::DeadAir => "dead_air",
            Reason::SlowResponse => "slow_response",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Transport {
    pub frames_received: u64,
    pub frames_lost: u64,
    pub loss_ratio: f64,
    pub out_of_order: u64,
    pub timing_gaps: u64,
    pub timing_gap_ms: u64,
    pub jitter_mean_ms: f64,
    pub jitter_max_ms: f64,
    pub late_frames: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Signal {
    pub rms_dbfs: Option<f64>,
    pub peak_dbfs: Option<f64>,
    pub clipping_ratio: f64,
    pub silence_ratio: f64,
    pub noise_floor_dbfs: Option<f64>,
    pub snr_db: Option<f64>,
    pub dc_offset: f64,
    pub longest_silence_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outbound {
    pub frames_sent: u64,
    pub underruns: u64,
    pub response_latency_ms_max: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EModel {
    pub r_factor: f64,
    pub mos: f64,
    /// The mouth-to-ear delay estimate used (2 × mean jitter + processing delay).
    pub delay_ms: f64,
    pub plc: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct QualityReport {
    pub band: Band,
    pub reasons: Vec<Reason>,
    pub transport: Transport,
    pub signal: Signal,
    pub outbound: Outbound,
    pub emodel: EModel,
}

impl QualityReport {
    /// Judge a finished call.
    pub fn assess(meter: &QualityMeter, latencies_ms: &[u64], cfg: &QualityConfig) -> Self {
        let loss_ratio = meter.loss_ratio();
        let jitter_mean_ms = meter.jitter_mean_ms();
        let delay_ms = 2.0 * jitter_mean_ms + cfg.processing_delay_ms;
        let r = emodel::r_factor(loss_ratio * 100.0, delay_ms, cfg.plc);
        let mos = emodel::mos_from_r(r);
        let transport = Transport {
            frames_received: meter.received,
            frames_lost: meter.lost,
            loss_ratio,
            out_of_order: meter.out_of_order,
            timing_gaps: meter.timing_gaps,
            timing_gap_ms: meter.timing_gap_ms,
            jitter_mean_ms,
            jitter_max_ms: meter.jitter_max,
            late_frames: meter.late,
        };
        let signal = Signal {
            rms_dbfs: meter.rms_dbfs(),
            peak_dbfs: (meter.samples > 0)
                .then(|| 20.0 * (f64::from(meter.peak.max(1)) / 32768.0).log10()),
            clipping_ratio: ratio(meter.clipped, meter.samples),
            silence_ratio: ratio(meter.silent_frames, meter.received),
            noise_floor_dbfs: meter.noise_floor_db,
            snr_db: meter.snr_db(),
            dc_offset: meter.dc_offset(),
            longest_silence_ms: meter.longest_quiet_ms,
        };
        let max_latency = latencies_ms.iter().copied().max();
        let mut reasons = Vec::new();
        let mut flag = |cond: bool, reason| {
            if cond {
                reasons.push(reason);
            }
        };
        flag(meter.received > 0 && mos < cfg.low_mos, Reason::LowMos);
        flag(
            jitter_mean_ms >= cfg.jitter_mean_ms && meter.jitter_max >= cfg.jitter_max_ms,
            Reason::HighJitter,
        );
        flag(loss_ratio * 100.0 > cfg.packet_loss_pct, Reason::PacketLoss);
        flag(
            signal.clipping_ratio * 100.0 > cfg.clipping_pct,
            Reason::Clipping,
        );
        flag(meter.longest_quiet_ms >= cfg.dead_air_ms, Reason::DeadAir);
        flag(
            max_latency.is_some_and(|l| l > cfg.slow_response_ms),
            Reason::SlowResponse,
        );
        let band = if mos < cfg.low_mos || reasons.contains(&Reason::DeadAir) {
            Band::Poor
        } else if !reasons.is_empty() || mos < 4.0 {
            Band::Fair
        } else {
            Band::Good
        };
        Self {
            band,
            reasons,
            transport,
            signal,
            outbound: Outbound {
                frames_sent: meter.frames_sent,
                underruns: meter.underruns,
                response_latency_ms_max: max_latency,
            },
            emodel: EModel {
                r_factor: r,
                mos,
                delay_ms,
                plc: cfg.plc,
            },
        }
    }
}
