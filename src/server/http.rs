//! Thin HTTP handlers: the TwiML voice webhook, status callbacks, health and metrics.
//!
//! Handlers read shared state and answer; they never block and never hold call state.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use tracing::info;

use super::AppState;
use super::client_ip::Client;
use super::guard::OPEN_CONNECTIONS;
use super::origin::PublicOrigin;
use crate::metrics::STATUS_CALLBACKS;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::twilio::{signature, twiml};

/// `POST /twilio/voice`: answer the call by connecting its audio to our media WebSocket.
///
/// `?agent=NAME` picks the agent profile for calls to this webhook (else the called number's
/// profile, else the default); it reaches the stream as the `agent` parameter.
pub async fn voice(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    client: Option<Extension<Client>>,
    Form(params): Form<HashMap<String, String>>,
) -> Response {
    let via_proxy = client.is_some_and(|c| c.via_trusted_proxy);
    let url = PublicOrigin::of(&state.config, &headers, via_proxy).ws_url("/twilio/media");
    let field = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    let call_sid = field("CallSid");
    info!(
        call_sid,
        from = field("From"),
        to = field("To"),
        "incoming call: answering with TwiML"
    );
    if let (Some(dialer), Some(attempt)) = (&state.dialer, query.get("attempt_id")) {
        dialer.adopt(attempt, call_sid).await;
    }
    let mut parameters = vec![
        ("From", field("From")),
        ("To", field("To")),
        ("CallSid", call_sid),
    ];
    if let Some(agent) = query.get("agent").filter(|a| !a.is_empty()) {
        parameters.push(("agent", agent));
    }
    // A dialled call's context (direction, campaign, contact, variables: see `dialer::place`),
    // carried in the webhook URL Twilio signed.
    let mut extra: Vec<(&String, &String)> = query
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "agent" | "From" | "To" | "CallSid" | "token"))
        .take(64)
        .collect();
    extra.sort();
    parameters.extend(extra.into_iter().map(|(k, v)| (k.as_str(), v.as_str())));
    preconnect_realtime(&state, &parameters, call_sid);
    let token = match (
        &state.services.stream_token_secret,
        state.config.security.stream_token,
    ) {
        (Some(secret), true) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let expiry = now + state.config.security.stream_token_ttl_secs;
            Some(signature::stream_token(secret.expose(), call_sid, expiry))
        }
        _ => None,
    };
    if let Some(token) = &token {
        parameters.push(("token", token));
    }
    let body = twiml::connect_stream(&url, &parameters);
    ([(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

/// A realtime profile answers this call: open its provider socket now, while Twilio fetches
/// the TwiML and opens the stream, so the first turn does not pay the connection time.
fn preconnect_realtime(state: &AppState, parameters: &[(&str, &str)], call_sid: &str) {
    let Some(preconnect) = &state.services.preconnect else {
        return;
    };
    let params = parameters
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let profile = state.services.profiles.choose(&params);
    if let (Some(setup), false) = (&profile.realtime, call_sid.is_empty())
        && let Err(e) = preconnect.start(call_sid, setup.spec.clone())
    {
        tracing::debug!(call_sid, error = %e, "realtime preconnect not started");
    }
}

/// `POST /twilio/status`: Twilio's call and stream status callbacks, logged; a dialled call's
/// status goes to the dialer (its record and attempt). The callback URL of a dialled call
/// names its attempt, so a call whose instance died before storing its sid is adopted here.
pub async fn status(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    Form(params): Form<HashMap<String, String>>,
) -> StatusCode {
    let field = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    metrics::counter!(STATUS_CALLBACKS).increment(1);
    info!(
        call_sid = field("CallSid"),
        call_status = field("CallStatus"),
        stream_sid = field("StreamSid"),
        stream_event = field("StreamEvent"),
        stream_error = field("StreamError"),
        "twilio status callback"
    );
    let report = crate::dialer::callbacks::StatusReport::from_form(&params);
    if let (Some(dialer), Some(report), Some(attempt)) =
        (&state.dialer, &report, query.get("attempt_id"))
    {
        dialer.adopt(attempt, &report.call_sid).await;
    }
    if let (Some(dialer), Some(report)) = (&state.dialer, report)
        && let Err(e) = dialer.on_status(&report).await
    {
        // Twilio retries on a 5xx: the update is idempotent.
        tracing::warn!(call_sid = %report.call_sid, error = %e, "status callback not stored");
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    StatusCode::NO_CONTENT
}

/// `POST /twilio/amd`: the async answering-machine verdict of a dialled call.
pub async fn amd(
    State(state): State<Arc<AppState>>,
    Form(params): Form<HashMap<String, String>>,
) -> StatusCode {
    let field = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    info!(
        call_sid = field("CallSid"),
        answered_by = field("AnsweredBy"),
        "twilio AMD callback"
    );
    if let Some(dialer) = &state.dialer
        && let Err(e) = dialer.on_amd(&params).await
    {
        tracing::warn!(call_sid = field("CallSid"), error = %e, "AMD callback not stored");
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    StatusCode::NO_CONTENT
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: ready for new calls (not draining).
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    ::metrics::gauge!(OPEN_CONNECTIONS).set(state.admission.connections.open() as f64);
    let mut body = state.prometheus.render();
    // procfs reads are tiny but still file I/O: keep them off the async workers.
    let process = tokio::task::spawn_blocking(|| {
        let mut text = String::new();
        crate::process_metrics::render(&mut text);
        text
    })
    .await
    .unwrap_or_default();
    body.push_str(&process);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
