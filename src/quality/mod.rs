//! Call quality: measured per call while it runs, judged when it ends, and reported.
//!
//! [`meter::QualityMeter`] gathers transport, signal and outbound figures per frame;
//! [`alerts::LiveAlerts`] checks a rolling window once a second; [`report::QualityReport`] gives
//! the verdict at call end with the [`emodel`] MOS; [`notify`] delivers alerts and reports
//! without ever blocking a call. Formulas and thresholds: shared/reference/call-quality.md.

pub mod alerts;
pub mod emodel;
pub mod meter;
pub mod notify;
pub mod report;
