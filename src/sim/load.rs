//! `voxbridge load`: many simulated Twilio legs against one server, at real-time pace, from one
//! process — each a [`SimCall`] speaking turns from a fixture and hearing the echo — and a
//! report of what they saw and what the server spent (CPU and RSS from its `/metrics`
//! process metrics, or from `/proc/PID` when a PID is given).
//!
//! Every call is bounded by `duration`; the whole run by `ramp + duration` plus a short tail.
//! Only ever aimed at a server the operator names (tests and docs use 127.0.0.1).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;

use super::{SimCall, SimReport, Step};
use crate::process_metrics;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// `ws://HOST/twilio/media`
    pub url: String,
    pub calls: usize,
    /// Calls start evenly over this long.
    pub ramp: Duration,
    /// How long each call lasts.
    pub duration: Duration,
    /// What each caller says, turn after turn (8 kHz μ-law).
    pub audio: bytes::Bytes,
    /// Read the server's CPU and RSS from `/proc/PID` instead of its `/metrics`.
    pub server_pid: Option<u32>,
    /// Print a live progress line to stderr.
    pub progress: bool,
}

/// Percentiles of a distribution, in ms.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        Self {
            count: values.len(),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: values[values.len() - 1],
        }
    }
}

/// The server's process figures over the run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ServerUsage {
    pub cpu_seconds: f64,
    /// Mean CPU use over the run, in cores (1.0 = one core busy).
    pub cpu_cores: f64,
    pub rss_start_mib: f64,
    pub rss_peak_mib: f64,
    pub rss_end_mib: f64,
    /// RSS growth while all calls were up, from the first to the last quarter of that time.
    pub rss_steady_growth_pct: f64,
    /// (peak − start) / calls.
    pub rss_per_call_kib: f64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct LoadReport {
    pub calls: usize,
    pub completed: usize,
    pub failed: usize,
    pub errors: BTreeMap<String, u64>,
    pub duration_s: f64,
    pub replies_heard: usize,
    pub response_latency: Percentiles,
    pub pacing_jitter: Percentiles,
    pub late_frames: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    /// Inbound frames the server did not count, plus outbound frames the callers did not get.
    pub missing_frames: i64,
    pub server: Option<ServerUsage>,
}

/// Run the load; returns when every call has ended.
pub async fn run(cfg: LoadConfig) -> LoadReport {
    let metrics_url = metrics_url(&cfg.url);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok();
    let before = scrape(&client, &metrics_url, cfg.server_pid).await;
    let started = Instant::now();
    let active = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    let turns = (cfg.duration.as_secs_f64() / 2.0).ceil() as usize + 1;
    for i in 0..cfg.calls {
        let mut call = SimCall::new(&cfg.url).step(Step::Silence(Duration::from_millis(200)));
        for _ in 0..turns {
            call = call
                .step(Step::Speak(cfg.audio.clone()))
                .step(Step::WaitForReplyEnd(Duration::from_secs(10)))
                .step(Step::Silence(Duration::from_millis(300)));
        }
        call.max_duration = Some(cfg.duration);
        call.record_audio = false;
        let delay = cfg.ramp.mul_f64(i as f64 / cfg.calls.max(1) as f64);
        let (active, done) = (Arc::clone(&active), Arc::clone(&done));
        set.spawn(async move {
            tokio::time::sleep(delay).await;
            active.fetch_add(1, Ordering::Relaxed);
            let result = call.run().await;
            active.fetch_sub(1, Ordering::Relaxed);
            done.fetch_add(1, Ordering::Relaxed);
            result
        });
    }

    // Sample the server's RSS once a second; print progress.
    let mut rss_samples: Vec<(Duration, f64, u64)> = Vec::new();
    let mut results = Vec::with_capacity(cfg.calls);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let deadline = started + cfg.ramp + cfg.duration + Duration::from_secs(30);
    while !set.is_empty() {
        tokio::select! {
            joined = set.join_next() => {
                if let Some(joined) = joined {
                    results.push(joined);
                }
            }
            _ = tick.tick() => {
                let now_active = active.load(Ordering::Relaxed);
                if let Some(s) = scrape(&client, &metrics_url, cfg.server_pid).await {
                    rss_samples.push((started.elapsed(), s.rss_mib, now_active));
                }
                if cfg.progress {
                    let rss = rss_samples.last().map_or(0.0, |s| s.1);
                    eprint!("\r[{:>4.0}s] active {now_active:>5}  done {:>5}/{}  server RSS {rss:.1} MiB   ",
                        started.elapsed().as_secs_f64(), done.load(Ordering::Relaxed), cfg.calls);
                    let _ = std::io::stderr().flush();
                }
                if Instant::now() > deadline {
                    set.abort_all();
                }
            }
        }
    }
    if cfg.progress {
        eprintln!();
    }
    let after = scrape(&client, &metrics_url, cfg.server_pid).await;
    let mut report = summarise(&cfg, results, started.elapsed());
    report.missing_frames = match (&before, &after) {
        (Some(b), Some(a)) => {
            let server_in = (a.frames_in - b.frames_in) as i64;
            let server_out = (a.frames_out - b.frames_out) as i64;
            (report.frames_sent as i64 - server_in) + (server_out - report.frames_received as i64)
        }
        _ => 0,
    };
    report.server = usage(&before, &after, &rss_samples, cfg.calls, started.elapsed());
    report
}

fn summarise(
    cfg: &LoadConfig,
    results: Vec<Result<Result<SimReport, super::SimError>, tokio::task::JoinError>>,
    elapsed: Duration,
) -> LoadReport {
    let mut r = LoadReport {
        calls: cfg.calls,
        duration_s: elapsed.as_secs_f64(),
        ..LoadReport::default()
    };
    let (mut latencies, mut pacing) = (Vec::new(), Vec::new());
    let fail = |r: &mut LoadReport, kind: &str| {
        r.failed += 1;
        *r.errors.entry(kind.to_owned()).or_default() += 1;
    };
    for result in results {
        let report = match result {
            Ok(Ok(report)) => report,
            Ok(Err(super::SimError::Connect { .. })) => {
                fail(&mut r, "connect");
                continue;
            }
            Ok(Err(super::SimError::Socket(_))) => {
                fail(&mut r, "socket");
                continue;
            }
            Err(_) => {
                fail(&mut r, "aborted");
                continue;
            }
        };
        r.frames_sent += report.frames_sent;
        r.frames_received += report.frames_received;
        r.late_frames += report.late_frames;
        r.replies_heard += report.response_latencies_ms.len();
        latencies.extend(report.response_latencies_ms.iter().map(|&ms| ms as f64));
        pacing.extend(
            report
                .pacing_jitter_us
                .iter()
                .map(|&us| f64::from(us) / 1000.0),
        );
        let abnormal_close = report
            .closed_by_server
            .as_ref()
            .is_some_and(|c| c.0 != 1000);
        if report.socket_error.is_some() {
            fail(&mut r, "socket");
        } else if abnormal_close {
            fail(&mut r, "closed_by_server");
        } else if report.timeouts > 0 {
            fail(&mut r, "no_reply");
        } else {
            r.completed += 1;
        }
    }
    r.response_latency = Percentiles::of(latencies);
    r.pacing_jitter = Percentiles::of(pacing);
    r
}

struct Scrape {
    cpu_seconds: f64,
    rss_mib: f64,
    frames_in: f64,
    frames_out: f64,
}

fn metrics_url(ws_url: &str) -> String {
    let http = ws_url
        .replacen("wss://", "https://", 1)
        .replacen("ws://", "http://", 1);
    match http.find("/twilio/") {
        Some(i) => format!("{}/metrics", &http[..i]),
        None => format!("{}/metrics", http.trim_end_matches('/')),
    }
}

async fn scrape(client: &Option<reqwest::Client>, url: &str, pid: Option<u32>) -> Option<Scrape> {
    let text = match client {
        Some(c) => c.get(url).send().await.ok()?.text().await.ok()?,
        None => String::new(),
    };
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let mut s = Scrape {
        cpu_seconds: value("process_cpu_seconds_total").unwrap_or(0.0),
        rss_mib: value("process_resident_memory_bytes").unwrap_or(0.0) / 1048576.0,
        frames_in: value("voxbridge_media_frames_received_total").unwrap_or(0.0),
        frames_out: value("voxbridge_media_frames_sent_total").unwrap_or(0.0),
    };
    if let Some(p) = pid.and_then(|pid| process_metrics::read(Some(pid))) {
        s.cpu_seconds = p.cpu_seconds;
        s.rss_mib = p.rss_bytes as f64 / 1048576.0;
    }
    Some(s)
}

fn usage(
    before: &Option<Scrape>,
    after: &Option<Scrape>,
    rss: &[(Duration, f64, u64)],
    calls: usize,
    elapsed: Duration,
) -> Option<ServerUsage> {
    let (b, a) = (before.as_ref()?, after.as_ref()?);
    let peak = rss.iter().map(|s| s.1).fold(a.rss_mib, f64::max);
    // Steady state: samples with every call up.
    let full: Vec<f64> = rss
        .iter()
        .filter(|s| s.2 as usize == calls)
        .map(|s| s.1)
        .collect();
    let growth = if full.len() >= 8 {
        let q = full.len() / 4;
        let first = full[..q].iter().sum::<f64>() / q as f64;
        let last = full[full.len() - q..].iter().sum::<f64>() / q as f64;
        (last - first) / first * 100.0
    } else {
        0.0
    };
    let cpu = a.cpu_seconds - b.cpu_seconds;
    Some(ServerUsage {
        cpu_seconds: cpu,
        cpu_cores: cpu / elapsed.as_secs_f64().max(0.001),
        rss_start_mib: b.rss_mib,
        rss_peak_mib: peak,
        rss_end_mib: a.rss_mib,
        rss_steady_growth_pct: growth,
        rss_per_call_kib: (peak - b.rss_mib) * 1024.0 / calls.max(1) as f64,
    })
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "calls             {} ({} completed, {} failed) in {:.1} s",
            self.calls, self.completed, self.failed, self.duration_s
        )?;
        if !self.errors.is_empty() {
            writeln!(f, "errors            {:?}", self.errors)?;
        }
        let l = &self.response_latency;
        writeln!(
            f,
            "response latency  p50 {:.0} ms  p95 {:.0} ms  p99 {:.0} ms  max {:.0} ms  ({} replies)",
            l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.count
        )?;
        let p = &self.pacing_jitter;
        writeln!(
            f,
            "pacing jitter     p50 {:.2} ms  p99 {:.2} ms  max {:.1} ms  ({} frames)",
            p.p50_ms, p.p99_ms, p.max_ms, p.count
        )?;
        writeln!(f, "late frames       {}", self.late_frames)?;
        writeln!(
            f,
            "frames            {} sent, {} received, {} missing",
            self.frames_sent, self.frames_received, self.missing_frames
        )?;
        if let Some(s) = &self.server {
            writeln!(
                f,
                "server CPU        {:.1} s ({:.2} cores)",
                s.cpu_seconds, s.cpu_cores
            )?;
            writeln!(
                f,
                "server RSS        start {:.1} MiB  peak {:.1} MiB  end {:.1} MiB  ({:.0} KiB per call, steady growth {:+.1} %)",
                s.rss_start_mib,
                s.rss_peak_mib,
                s.rss_end_mib,
                s.rss_per_call_kib,
                s.rss_steady_growth_pct
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_urls() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!(
            (p.p50_ms, p.p99_ms, p.max_ms, p.count),
            (51.0, 99.0, 100.0, 100)
        );
        assert_eq!(Percentiles::of(vec![]).count, 0);
        assert_eq!(
            metrics_url("ws://127.0.0.1:8080/twilio/media"),
            "http://127.0.0.1:8080/metrics"
        );
        assert_eq!(
            metrics_url("wss://h.example/twilio/media"),
            "https://h.example/metrics"
        );
    }
}
