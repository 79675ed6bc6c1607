//! Shared helpers for the integration tests: start the real server on 127.0.0.1:0, load
//! fixtures, wait for a call's summary, and compare audio by normalized cross-correlation.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use voxbridge::audio::{mulaw, wav};
use voxbridge::call::summary::CallSummary;
use voxbridge::config::Config;
use voxbridge::server::Server;

#[cfg(feature = "fakes")]
pub mod stack;

/// The real server with default config, tweaked, listening on a free loopback port.
pub async fn start_server(tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::from_toml_str("[server]\nlisten = \"127.0.0.1:0\"").expect("config");
    config.recording.dir = recordings_dir();
    // No call records unless a test asks for them (with its own temporary database).
    config.store.url = String::new();
    tweak(&mut config);
    Server::bind(config).await.expect("bind")
}

/// Where this test process's servers keep recordings (not the working tree's `data/`).
pub fn recordings_dir() -> String {
    std::env::temp_dir()
        .join(format!("voxbridge-test-recordings-{}", std::process::id()))
        .to_string_lossy()
        .into_owned()
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A fixture as 8 kHz μ-law.
pub fn fixture(name: &str) -> bytes::Bytes {
    wav::read_wav_as_mulaw_8k(&fixture_path(name))
        .expect("fixture")
        .into()
}

/// Finished-call summaries from a server, looked up by CallSid in any order.
pub struct Summaries {
    rx: tokio::sync::broadcast::Receiver<Arc<CallSummary>>,
    seen: HashMap<String, Arc<CallSummary>>,
}

impl Summaries {
    pub fn of(server: &Server) -> Self {
        Self {
            rx: server.subscribe_summaries(),
            seen: HashMap::new(),
        }
    }

    /// Wait (bounded) for the summary of the call with this CallSid.
    pub async fn get(&mut self, call_sid: &str) -> Arc<CallSummary> {
        let wait = async {
            loop {
                if let Some(s) = self.seen.get(call_sid) {
                    return Arc::clone(s);
                }
                match self.rx.recv().await {
                    Ok(s) => {
                        let sid = s.call_sid.clone().unwrap_or_default();
                        self.seen.insert(sid, s);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(e) => panic!("summary channel: {e}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("no summary for {call_sid} within 10 s"))
    }
}

pub fn decode(mulaw_bytes: &[u8]) -> Vec<f32> {
    mulaw_bytes
        .iter()
        .map(|&b| mulaw::decode(b) as f32 / 32768.0)
        .collect()
}

fn ncc(a: &[f32], b: &[f32], step: usize) -> f32 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for i in (0..a.len().min(b.len())).step_by(step) {
        let (x, y) = (a[i] as f64, b[i] as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        (ab / (aa * bb).sqrt()) as f32
    }
}

/// Where in `signal` the `reference` appears, and how well: (sample offset, correlation).
/// A coarse search on every 8th lag and 4th sample, refined sample by sample.
pub fn best_alignment(reference: &[f32], signal: &[f32]) -> (usize, f32) {
    if signal.len() < reference.len() {
        return (0, 0.0);
    }
    let max_lag = signal.len() - reference.len();
    let mut best = (0, f32::MIN);
    for lag in (0..=max_lag).step_by(8) {
        let c = ncc(reference, &signal[lag..], 4);
        if c > best.1 {
            best = (lag, c);
        }
    }
    let (lo, hi) = (best.0.saturating_sub(8), (best.0 + 8).min(max_lag));
    let mut fine = (best.0, f32::MIN);
    for lag in lo..=hi {
        let c = ncc(reference, &signal[lag..], 1);
        if c > fine.1 {
            fine = (lag, c);
        }
    }
    fine
}

/// Trim leading and trailing near-silence (below -45 dBFS in 20 ms frames).
pub fn trim_silence(x: &[f32]) -> &[f32] {
    let loud = |f: &[f32]| {
        let e: f32 = f.iter().map(|s| s * s).sum::<f32>() / f.len().max(1) as f32;
        e > 10f32.powf(-4.5)
    };
    let frames: Vec<&[f32]> = x.chunks(160).collect();
    let first = frames.iter().position(|f| loud(f)).unwrap_or(0);
    let last = frames
        .iter()
        .rposition(|f| loud(f))
        .unwrap_or(frames.len().saturating_sub(1));
    &x[first * 160..((last + 1) * 160).min(x.len())]
}

/// Scrape /metrics and return the value of the series whose line starts with `series`.
pub async fn metric(server: &Server, series: &str) -> f64 {
    let body = http_get(server, "/metrics").await.1;
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub async fn http_get(server: &Server, path: &str) -> (u16, String) {
    let url = format!("http://{}{}", server.local_addr(), path);
    let resp = reqwest::get(&url).await.expect("GET");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}
