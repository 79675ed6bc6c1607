//! Getting quality news out of the process without ever slowing a call: the alert webhook and
//! the per-call report file.
//!
//! Both are background tasks fed through bounded queues with `try_send`. When a queue is full
//! the item is dropped and counted (`voxbridge_alert_webhook_deliveries_total{outcome="dropped"}`,
//! `voxbridge_call_reports_dropped_total`) — the call never waits. The webhook retries with
//! exponential backoff (from 250 ms) up to `alerts.webhook_attempts` times per alert.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::alerts::AlertEvent;
use crate::config::AlertsConfig;
use crate::metrics::{ALERT_WEBHOOK_DELIVERIES, CALL_REPORTS_DROPPED};

/// Where a call's quality news goes: the alert webhook and the report file.
#[derive(Debug, Clone)]
pub struct QualityOutlets {
    pub alerts: Notifier,
    pub reports: ReportWriter,
}

impl QualityOutlets {
    /// Start the background tasks the configuration asks for.
    pub fn start(quality: &crate::config::QualityConfig, alerts: &AlertsConfig) -> Self {
        Self {
            alerts: Notifier::start(alerts),
            reports: ReportWriter::start(&quality.reports_dir),
        }
    }
}

/// The JSON body POSTed to the webhook for each alert transition.
#[derive(Debug, Clone, Serialize)]
pub struct AlertNotice {
    pub event: &'static str,
    pub at: String,
    pub call_sid: Option<String>,
    pub stream_sid: Option<String>,
    pub window_secs: u64,
    #[serde(flatten)]
    pub alert: AlertEvent,
}

/// Hands alerts to the webhook task; cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: Option<mpsc::Sender<AlertNotice>>,
}

impl Notifier {
    /// Start the webhook task (no task when no URL is configured).
    pub fn start(cfg: &AlertsConfig) -> Self {
        if cfg.webhook_url.is_empty() {
            return Self { tx: None };
        }
        let (tx, rx) = mpsc::channel(cfg.webhook_queue);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.webhook_timeout_ms))
            .build();
        match client {
            Ok(client) => {
                tokio::spawn(deliver(
                    client,
                    cfg.webhook_url.clone(),
                    cfg.webhook_attempts,
                    rx,
                ));
                Self { tx: Some(tx) }
            }
            Err(e) => {
                warn!(error = %e, "alert webhook disabled: HTTP client could not be built");
                Self { tx: None }
            }
        }
    }

    /// Queue an alert for the webhook, or drop it (counted) if the queue is full.
    pub fn notify(&self, notice: AlertNotice) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(notice).is_err() {
            metrics::counter!(ALERT_WEBHOOK_DELIVERIES, "outcome" => "dropped").increment(1);
        }
    }
}

async fn deliver(
    client: reqwest::Client,
    url: String,
    attempts: u32,
    mut rx: mpsc::Receiver<AlertNotice>,
) {
    while let Some(notice) = rx.recv().await {
        let mut backoff = Duration::from_millis(250);
        let mut outcome = "failed";
        for attempt in 1..=attempts.max(1) {
            match client.post(&url).json(&notice).send().await {
                Ok(resp) if resp.status().is_success() => {
                    outcome = "delivered";
                    break;
                }
                Ok(resp) => debug!(status = %resp.status(), attempt, "alert webhook refused"),
                Err(e) => debug!(error = %e, attempt, "alert webhook unreachable"),
            }
            if attempt < attempts {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        if outcome == "failed" {
            warn!(call_sid = ?notice.call_sid, condition = notice.alert.condition.as_str(),
                "alert webhook delivery failed after {attempts} attempts");
        }
        metrics::counter!(ALERT_WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
    }
}

/// Appends per-call reports (one JSON object per line) to `{reports_dir}/calls.ndjson`.
#[derive(Debug, Clone)]
pub struct ReportWriter {
    tx: Option<mpsc::Sender<String>>,
}

/// Reports waiting for the disk.
const REPORT_QUEUE: usize = 1024;

impl ReportWriter {
    pub fn start(reports_dir: &str) -> Self {
        if reports_dir.is_empty() {
            return Self { tx: None };
        }
        let (tx, rx) = mpsc::channel(REPORT_QUEUE);
        tokio::spawn(append_reports(PathBuf::from(reports_dir), rx));
        Self { tx: Some(tx) }
    }

    /// Queue one report line; dropped (counted) if the writer is behind or gone.
    pub fn write(&self, line: String) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(line).is_err() {
            metrics::counter!(CALL_REPORTS_DROPPED).increment(1);
        }
    }
}

async fn append_reports(dir: PathBuf, mut rx: mpsc::Receiver<String>) {
    let path = dir.join("calls.ndjson");
    let open = async {
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
    };
    let mut file = match open.await {
        Ok(file) => file,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "call reports disabled: cannot open file");
            while rx.recv().await.is_some() {
                metrics::counter!(CALL_REPORTS_DROPPED).increment(1);
            }
            return;
        }
    };
    while let Some(mut line) = rx.recv().await {
        line.push('\n');
        let written = async {
            file.write_all(line.as_bytes()).await?;
            file.flush().await
        };
        if let Err(e) = written.await {
            warn!(path = %path.display(), error = %e, "writing call report failed");
            metrics::counter!(CALL_REPORTS_DROPPED).increment(1);
        }
    }
}

/// `SystemTime` as RFC 3339 UTC with milliseconds, e.g. `2026-11-26T06:32:03.398Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_674_723_398);
        assert_eq!(rfc3339(t), "2026-11-26T06:32:03.398Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
