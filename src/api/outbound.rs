//! `POST /api/calls`: place one outbound call, and the problems dialer failures map to.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;

use super::ApiState;
use super::problem::Problem;
use crate::dialer::place::{OutboundCall, PlacedCall};
use crate::dialer::{Dialer, DialerError};
use crate::twilio::rest::TwilioError;

impl From<DialerError> for Problem {
    fn from(e: DialerError) -> Self {
        match e {
            DialerError::Invalid(field, msg) => Problem::bad_parameter(field, msg),
            DialerError::Store(e) => e.into(),
            DialerError::Twilio(TwilioError::Api(api)) if api.status < 500 && api.status != 401 => {
                Problem::bad_parameter(
                    "twilio",
                    format!("Twilio refused the call: {}", api.message),
                )
            }
            e => Problem::unavailable(e.to_string()),
        }
    }
}

impl ApiState {
    pub(super) fn dialer(&self) -> Result<&Arc<Dialer>, Problem> {
        self.dialer
            .as_ref()
            .ok_or_else(|| Problem::unavailable("outbound calls are off (no call record store)"))
    }
}

/// A JSON body, or a 400 naming what is wrong with it.
pub(super) fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| Problem::bad_parameter("body", e))
}

/// Place an outbound call
///
/// Twilio dials `to` from `from`; when answered, the call is connected to this server's media
/// stream with the agent profile and variables as stream parameters. Answers at once with the
/// call's id; its record (`direction: outbound`) fills in as the call progresses.
#[utoipa::path(
    post,
    operation_id = "placeCall", path = "/api/calls",
    tag = "calls",
    request_body = OutboundCall,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Twilio accepted the call", body = PlacedCall),
        (status = 400, description = "A bad field (named in `parameter`), or Twilio refused the call", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token configured and the client is not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No Twilio credentials, at limits.max_calls, Twilio throttling or unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<Arc<ApiState>>,
    body: Bytes,
) -> Result<(StatusCode, Json<PlacedCall>), Problem> {
    let req: OutboundCall = json_body(&body)?;
    let placed = state.dialer()?.call(&req).await?;
    Ok((StatusCode::CREATED, Json(placed)))
}
