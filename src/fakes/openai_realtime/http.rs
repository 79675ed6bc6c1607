//! The fake Realtime server's HTTP side: the upgrade handler (Bearer check, beta header,
//! `model` query, refusal faults) and OpenAI-style error responses before the upgrade.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::shapes::Api;
use super::{ConnectionSeen, RealtimeFault, Shared, conn};

pub(super) async fn realtime(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let conn = shared.conns.fetch_add(1, Ordering::Relaxed);
    let fault = shared.faults.next();
    let beta = headers
        .get("openai-beta")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "realtime=v1"));
    let api = if beta { Api::Beta } else { Api::Ga };
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let authorized = bearer == Some(&*shared.api_key);
    let model = query.get("model").cloned();
    let seen = ConnectionSeen {
        conn,
        model: model.clone(),
        api,
        authorized,
        refused: None,
    };
    let refuse = |mut seen: ConnectionSeen, status: u16, response: Response| {
        seen.refused = Some(status);
        shared.observed.connections.push(seen);
        response
    };
    if let Some(RealtimeFault::Refuse(status)) = fault {
        return refuse(seen, status, refusal(status));
    }
    if bearer.is_none_or(str::is_empty) {
        return refuse(seen, 401, no_key());
    }
    let Some(model) = model.filter(|m| !m.is_empty()) else {
        return refuse(seen, 400, refusal(400));
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return refuse(seen, 400, rejection.into_response()),
    };
    shared.observed.connections.push(seen);
    // A wrong key (as opposed to none) gets the upgrade and then close 3000, as observed.
    let fault = match fault {
        None if !authorized => Some(RealtimeFault::InvalidKeyClose),
        f => f,
    };
    let script = shared.script.lock().map(|s| s.clone()).unwrap_or_default();
    let pacing = shared.pacing.lock().map(|p| *p).unwrap_or_default();
    let setup = conn::Setup {
        conn,
        api,
        model,
        fault,
        script,
        pacing,
        observed: shared.observed.clone(),
        accepted: tokio::time::Instant::now(),
    };
    ws.on_upgrade(move |socket| conn::serve(socket, setup))
}

/// An OpenAI-style refusal before the upgrade: status and `{"error":{…}}`.
fn refusal(status: u16) -> Response {
    let (kind, code, message) = match status {
        401 => (
            "invalid_request_error",
            Value::from("invalid_api_key"),
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        ),
        403 => (
            "invalid_request_error",
            Value::from("model_not_found"),
            "The model `gpt-realtime` does not exist or you do not have access to it.",
        ),
        429 => (
            "requests",
            Value::from("rate_limit_exceeded"),
            "Rate limit reached for gpt-realtime in organization org-fake on requests per min (RPM): Limit 100, Used 100, Requested 1. Please try again in 600ms.",
        ),
        400 => (
            "invalid_request_error",
            Value::from("missing_required_parameter"),
            "Missing required parameter: 'model'.",
        ),
        _ => (
            "server_error",
            Value::Null,
            "The server had an error while processing your request. Sorry about that!",
        ),
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = [("content-type", "application/json")];
    (status, headers, body.to_string()).into_response()
}

/// 401 without any key at all.
fn no_key() -> Response {
    let body = json!({"error": {"message": "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        "type": "invalid_request_error", "param": null, "code": null}});
    let headers = [("content-type", "application/json")];
    (StatusCode::UNAUTHORIZED, headers, body.to_string()).into_response()
}
