//! One call: its facts, the transcript as a timeline (start offsets, per-stage latencies,
//! interruptions), the quality report in words, charts of the per-second timeline, and the
//! two-channel recording (player and waveform, drawn by `call.js`), served through the API's
//! recording handler (Range requests included) under the console's session.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::charts::{Chart, timeline_charts};
use crate::api::query::CallSid;
use crate::console::ConsoleState;
use crate::console::auth::Operator;
use crate::console::view::{self, Nav, PageError, html};
use crate::quality::report::Reason;
use crate::store::CallRecord;
#[allow(unused_imports)]
use crate::store::CallStore as _;
use crate::store::events::{AlertRecord, Turn};

/// One transcript turn, as text.
pub struct TurnRow {
    pub role: &'static str,
    pub text: String,
    pub at: String,
    pub start_ms: u64,
    pub latency: String,
    pub interrupted: bool,
}

impl TurnRow {
    fn of(t: &Turn) -> Self {
        let latency = t.latency.as_ref().map_or(String::new(), |l| {
            let parts: Vec<String> = [
                ("STT", l.stt_ms),
                ("agent", l.agent_ms),
                ("TTS", l.tts_ms),
                ("server", l.server_ms),
                ("total", l.total_ms),
            ]
            .iter()
            .filter_map(|(n, v)| v.map(|v| format!("{n} {v:.0} ms")))
            .collect();
            parts.join(" · ")
        });
        Self {
            role: t.role.as_str(),
            text: t.text.clone(),
            at: view::offset(t.start_ms),
            start_ms: t.start_ms,
            latency,
            interrupted: t.interrupted,
        }
    }
}

/// A quality reason with what it means and the figure behind it.
pub struct ReasonRow {
    pub name: &'static str,
    pub words: String,
}

fn figure(report: &serde_json::Value, pointer: &str) -> Option<f64> {
    report.pointer(pointer).and_then(serde_json::Value::as_f64)
}

/// A quality reason explained in words, with the call's own figure where the report has it.
pub fn explain(reason: Reason, report: &serde_json::Value) -> String {
    let f = |p: &str| figure(report, p);
    match reason {
        Reason::LowMos => format!(
            "Low estimated MOS: the E-model puts this call at {} (below 3.6 sounds poor to most callers).",
            f("/emodel/mos").map_or("?".into(), |m| format!("{m:.2}"))
        ),
        Reason::HighJitter => format!(
            "High jitter: packets arrived unevenly (mean {} ms, worst {} ms), which causes gaps or delay.",
            f("/transport/jitter_mean_ms").map_or("?".into(), |v| format!("{v:.1}")),
            f("/transport/jitter_max_ms").map_or("?".into(), |v| format!("{v:.0}"))
        ),
        Reason::PacketLoss => format!(
            "Packet loss: {} of the caller's audio never arrived, heard as dropouts.",
            f("/transport/loss_ratio").map_or("?".into(), |v| format!("{:.1} %", v * 100.0))
        ),
        Reason::Clipping => format!(
            "Clipping: {} of the caller's samples hit full scale (too loud, distorted).",
            f("/signal/clipping_ratio").map_or("?".into(), |v| format!("{:.2} %", v * 100.0))
        ),
        Reason::DeadAir => format!(
            "Dead air: the line went silent for {} at a stretch.",
            f("/signal/longest_silence_ms")
                .map_or("a long time".into(), |v| format!("{:.1} s", v / 1000.0))
        ),
        Reason::SlowResponse => format!(
            "Slow response: the agent took up to {} to start answering.",
            f("/outbound/response_latency_ms_max")
                .map_or("too long".into(), |v| format!("{v:.0} ms"))
        ),
    }
}

pub struct AlertRow {
    pub at: String,
    pub condition: &'static str,
    pub state: String,
    pub value: String,
}

impl AlertRow {
    fn of(a: &AlertRecord) -> Self {
        Self {
            at: view::offset(a.at_ms),
            condition: a.condition.as_str(),
            state: serde_json::to_value(a.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            value: format!("{:.2} (threshold {:.2})", a.value, a.threshold),
        }
    }
}

#[derive(Template)]
#[template(path = "console/call.html")]
struct CallPage {
    nav: Nav,
    sid: String,
    facts: Vec<(&'static str, String)>,
    band: String,
    mos: String,
    reasons: Vec<ReasonRow>,
    turns: Vec<TurnRow>,
    alerts: Vec<AlertRow>,
    charts: Vec<Chart>,
    has_recording: bool,
}

fn facts(r: &CallRecord) -> Vec<(&'static str, String)> {
    let t = &r.times;
    vec![
        ("Direction", r.direction.as_str().to_owned()),
        ("Status", r.status.as_str().to_owned()),
        ("From", view::or_dash(r.from.as_deref())),
        ("To", view::or_dash(r.to.as_deref())),
        (
            "Agent profile",
            view::or_dash(r.context.agent_profile.as_deref()),
        ),
        ("Engine", view::or_dash(r.context.engine.as_deref())),
        ("Campaign", view::or_dash(r.context.campaign_id.as_deref())),
        ("Started", view::time(t.started_at)),
        ("Duration", t.duration_ms.map_or("—".into(), view::duration)),
        ("Ended because", view::or_dash(r.end_reason.as_deref())),
        ("Outcome", view::or_dash(r.outcome.as_deref())),
    ]
}

/// `GET /console/calls/{call_sid}`.
pub async fn page(
    State(state): State<Arc<ConsoleState>>,
    op: Operator,
    sid: Result<CallSid, crate::api::Problem>,
) -> Result<Response, PageError> {
    let CallSid(sid) = sid?;
    let store = state.api.store.as_ref().ok_or_else(|| {
        crate::api::Problem::unavailable("call records are off (store.url is empty)")
    })?;
    let Some(r) = store.get(&sid).await? else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "No such call",
            format!(
                "There is no record of call {sid} (a call in progress gets its record when it ends)."
            ),
        ));
    };
    let (band, mos, reasons) = match &r.quality {
        Some(q) => (
            q.band.as_str().to_owned(),
            format!("{:.2}", q.mos),
            q.reasons
                .iter()
                .map(|&reason| ReasonRow {
                    name: reason.as_str(),
                    words: explain(reason, &q.report),
                })
                .collect(),
        ),
        None => ("—".into(), "—".into(), Vec::new()),
    };
    let page = CallPage {
        nav: Nav::new("calls", &op.csrf),
        facts: facts(&r),
        band,
        mos,
        reasons,
        turns: r.events.turns.iter().map(TurnRow::of).collect(),
        alerts: r.events.alerts.iter().map(AlertRow::of).collect(),
        charts: timeline_charts(&r.events.timeline),
        has_recording: r.recording.is_some(),
        sid,
    };
    Ok(html(StatusCode::OK, &page))
}

/// `GET /console/calls/{call_sid}/recording`: the API's recording handler (content type,
/// `Range` → 206) behind the console session instead of a bearer token.
pub async fn recording(
    State(state): State<Arc<ConsoleState>>,
    _op: Operator,
    sid: Result<CallSid, crate::api::Problem>,
    req: Request,
) -> Response {
    let sid = match sid {
        Ok(s) => s,
        Err(p) => return p.into_response(),
    };
    match crate::api::recording::get(State(Arc::clone(&state.api)), sid, req).await {
        Ok(res) => res,
        Err(p) => p.into_response(),
    }
}
