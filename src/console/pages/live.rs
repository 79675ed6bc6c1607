//! Calls in progress: the page (first rows rendered on the server, then kept current by
//! `live.js` from the SSE stream in [`crate::console::sse`]) and the hang-up button, which goes
//! through the API's own hang-up handler (the call's bounded control queue).

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::signin::CsrfForm;
use crate::api::LiveCall;
use crate::api::query::CallSid;
use crate::console::ConsoleState;
use crate::console::auth::Operator;
use crate::console::view::{Nav, PageError, html};

/// One row of the live table, as text.
pub struct Row {
    pub call_sid: String,
    pub caller: String,
    pub profile: String,
    pub duration: String,
    pub speaking: String,
    pub level: String,
    pub jitter: String,
    pub loss: String,
    pub mos: String,
    pub alerts: String,
}

impl Row {
    pub fn of(c: &LiveCall) -> Self {
        let speaking = serde_json::to_value(c.speaking)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            call_sid: c.call_sid.clone(),
            caller: c.from.clone().unwrap_or_else(|| "unknown".into()),
            profile: c.agent_profile.clone().unwrap_or_else(|| "—".into()),
            duration: crate::console::view::duration(c.duration_ms),
            speaking,
            level: c
                .now
                .level_dbfs
                .map_or("—".into(), |l| format!("{l:.0} dBFS")),
            jitter: format!("{:.1} ms", c.now.jitter_ms),
            loss: format!("{:.1} %", c.now.loss_pct),
            mos: c.now.mos.map_or("—".into(), |m| format!("{m:.2}")),
            alerts: c
                .now
                .alerts
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

#[derive(Template)]
#[template(path = "console/live.html")]
struct LivePage {
    nav: Nav,
    rows: Vec<Row>,
    flash: Vec<String>,
}

/// The calls in progress now, through the API's handler.
pub async fn calls(state: &ConsoleState) -> Vec<LiveCall> {
    crate::api::live::list(State(Arc::clone(&state.api)))
        .await
        .0
        .calls
}

/// `GET /console/live`.
pub async fn page(State(state): State<Arc<ConsoleState>>, op: Operator) -> Response {
    let rows = calls(&state).await.iter().map(Row::of).collect();
    html(
        StatusCode::OK,
        &LivePage {
            nav: Nav::new("live", &op.csrf),
            rows,
            flash: op.flash,
        },
    )
}

/// `POST /console/calls/{call_sid}/hangup`: from `fetch` (`X-CSRF-Token`, answers 202/JSON as
/// the API does) or from the no-script form (`csrf` field, back to the live page).
pub async fn hangup(
    State(state): State<Arc<ConsoleState>>,
    op: Operator,
    sid: CallSid,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form.ok();
    let form_token = form.as_ref().map(|f| f.csrf.as_str());
    op.allow_change(&state, &headers, form_token)?;
    let call_sid = sid.0.clone();
    let result = crate::api::live::hangup(State(Arc::clone(&state.api)), sid).await;
    tracing::info!(call_sid = %call_sid, ok = result.is_ok(), "hang-up from the console");
    let from_script = headers.contains_key(crate::console::session::CSRF_HEADER);
    match result {
        Ok(accepted) if from_script => Ok(accepted.into_response()),
        Err(p) if from_script => Ok(p.into_response()),
        Ok(_) => {
            state.sessions.flash(
                &op.session,
                vec![format!("Hang-up requested for {call_sid}.")],
            );
            Ok(redirect_live())
        }
        Err(p) => {
            state.sessions.flash(&op.session, vec![p.detail]);
            Ok(redirect_live())
        }
    }
}

fn redirect_live() -> Response {
    let mut res = Redirect::to("/console/live").into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}
