//! `/api/campaigns`: create, list, progress, contacts (upload JSON or CSV, list with attempts,
//! results as CSV) and state changes (start, pause, resume, cancel).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::dnc::Page;
use super::outbound::json_body;
use super::problem::Problem;
use crate::dialer::contacts::{self, RowError, UploadError};
use crate::dialer::model::{Campaign, CampaignProgress, CampaignSpec, CampaignState, Contact};
use crate::dialer::store::campaigns::TransitionError;

/// What an upload did.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResult {
    pub added: u64,
    /// Rows not added, with their line and why.
    pub rejected: Vec<RowError>,
}

impl From<TransitionError> for Problem {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::NotFound(id) => Problem::not_found(format!("no campaign {id}")),
            e @ TransitionError::Refused { .. } => Problem::conflict(e.to_string()),
            TransitionError::Store(e) => e.into(),
        }
    }
}

/// Create a campaign (state `draft`)
#[utoipa::path(post, operation_id = "createCampaign", path = "/api/campaigns", tag = "campaigns", request_body = CampaignSpec,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Campaign),
        (status = 400, description = "A bad setting (named in `parameter`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No store", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<Arc<ApiState>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Campaign>), Problem> {
    let spec: CampaignSpec = json_body(&body)?;
    spec.validate()
        .map_err(|(f, m)| Problem::bad_parameter(f, m))?;
    let c = state
        .dialer()?
        .store
        .create_campaign(&spec, Utc::now())
        .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// List campaigns
#[utoipa::path(get, operation_id = "listCampaigns", path = "/api/campaigns", tag = "campaigns", security(("bearer" = [])),
    responses(
        (status = 200, description = "Newest first (at most 500)", body = [Campaign]),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No store", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(State(state): State<Arc<ApiState>>) -> Result<Json<Vec<Campaign>>, Problem> {
    Ok(Json(state.dialer()?.store.campaigns(None).await?))
}

/// A campaign and its progress
///
/// Counts of contacts by state and by outcome, calls in progress and the dial rate.
#[utoipa::path(get, operation_id = "getCampaign", path = "/api/campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The campaign", body = CampaignProgress),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No store", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Json<CampaignProgress>, Problem> {
    state
        .dialer()?
        .store
        .progress(&id, Utc::now())
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no campaign {id}")))
}

/// Upload contacts (JSON or CSV)
///
/// `Content-Type: text/csv`: a header row with `phone` (E.164, required), optional `name` and
/// `timezone` (IANA), every other column a variable. JSON: an array of objects with the same
/// keys (and optionally a `variables` object). Invalid rows are reported by line; valid rows
/// are added.
#[utoipa::path(post, operation_id = "uploadContacts", path = "/api/campaigns/{id}/contacts", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    request_body(content((String = "text/csv"), (Object = "application/json"))),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Rows added and rejected", body = UploadResult),
        (status = 400, description = "The upload cannot be read (no phone column, bad CSV/JSON)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The campaign is completed or cancelled", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No store", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn upload(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<UploadResult>, Problem> {
    let dialer = state.dialer()?;
    let Some(campaign) = dialer.store.campaign(&id).await? else {
        return Err(Problem::not_found(format!("no campaign {id}")));
    };
    if matches!(
        campaign.state,
        CampaignState::Completed | CampaignState::Cancelled
    ) {
        return Err(Problem::conflict(format!(
            "campaign {id} is {}",
            campaign.state.as_str()
        )));
    }
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv") || v.starts_with("text/plain"));
    let bad = |e: UploadError| Problem::bad_parameter("body", e);
    let parsed = if csv {
        contacts::parse_csv(&body).map_err(bad)?
    } else {
        let items: Vec<serde_json::Value> = json_body(&body)?;
        contacts::parse_json(&items).map_err(bad)?
    };
    let (added, mut rejected) = dialer
        .store
        .add_contacts(&id, &parsed.contacts, Utc::now())
        .await?;
    rejected.extend(parsed.rejected);
    rejected.sort_by_key(|r| r.line);
    dialer.wake();
    Ok(Json(UploadResult { added, rejected }))
}

/// A campaign's contacts with their attempts
#[utoipa::path(get, operation_id = "listContacts", path = "/api/campaigns/{id}/contacts", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id"), Page), security(("bearer" = [])),
    responses(
        (status = 200, description = "Contacts in upload order, each with its attempts and links to the call records", body = [Contact]),
        (status = 400, description = "A bad query parameter (named in `parameter`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No store", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn contacts(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Contact>>, Problem> {
    let page = Page::parse(raw.as_deref())?;
    let limit = page.limit.unwrap_or(100);
    let list = state
        .dialer()?
        .store
        .contacts(&id, limit, page.offset.unwrap_or(0))
        .await?;
    Ok(Json(list))
}

/// A campaign's results as CSV
///
/// One row per contact: line, phone, name, state, outcome, attempts, the agent's verdict and
/// the last call's id.
#[utoipa::path(get, operation_id = "exportResults", path = "/api/campaigns/{id}/results.csv", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "CSV", body = String, content_type = "text/csv"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No store", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn results(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let store = &state.dialer()?.store;
    if store.campaign(&id).await?.is_none() {
        return Err(Problem::not_found(format!("no campaign {id}")));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "line",
        "phone",
        "name",
        "state",
        "outcome",
        "attempts",
        "agent_outcome",
        "last_call_sid",
    ];
    let fail = |e: csv::Error| Problem::internal(format!("csv: {e}"));
    w.write_record(header).map_err(fail)?;
    let mut offset = 0;
    loop {
        let page = store.contacts(&id, 1000, offset).await?;
        for c in &page {
            let last = c.history.last();
            w.write_record([
                c.line.to_string(),
                c.phone.clone(),
                c.name.clone().unwrap_or_default(),
                c.state.as_str().to_owned(),
                c.outcome.map(|o| o.as_str().to_owned()).unwrap_or_default(),
                c.attempts.to_string(),
                last.and_then(|a| a.agent_outcome.clone())
                    .unwrap_or_default(),
                last.and_then(|a| a.call_sid.clone()).unwrap_or_default(),
            ])
            .map_err(fail)?;
        }
        if page.len() < 1000 {
            break;
        }
        offset += 1000;
    }
    let body = w
        .into_inner()
        .map_err(|e| Problem::internal(e.to_string()))?;
    let mut res = body.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    Ok(res)
}

async fn transition(
    state: &ApiState,
    id: &str,
    to: CampaignState,
) -> Result<Json<Campaign>, Problem> {
    let dialer = state.dialer()?;
    if to == CampaignState::Running && dialer.store.contacts(id, 1, 0).await?.is_empty() {
        if dialer.store.campaign(id).await?.is_none() {
            return Err(Problem::not_found(format!("no campaign {id}")));
        }
        return Err(Problem::conflict(format!("campaign {id} has no contacts")));
    }
    let c = dialer.store.set_state(id, to, Utc::now()).await?;
    if matches!(to, CampaignState::Paused | CampaignState::Cancelled) {
        // Dials claimed before the change are either placed or undone before we answer.
        dialer.quiesce(Duration::from_secs(15)).await;
    }
    dialer.wake();
    Ok(Json(c))
}

macro_rules! state_change {
    ($name:ident, $op:literal, $path:literal, $to:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, operation_id = $op, path = $path, tag = "campaigns",
            params(("id" = String, Path, description = "Campaign id")), security(("bearer" = [])),
            responses(
                (status = 200, description = "The campaign in its new state", body = Campaign),
                (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
                (status = 404, description = "No such campaign", body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "Not allowed from the current state", body = Problem, content_type = "application/problem+json"),
                (status = 503, description = "No store", body = Problem, content_type = "application/problem+json"),
            ))]
        pub async fn $name(
            State(state): State<Arc<ApiState>>,
            Path(id): Path<String>,
        ) -> Result<Json<Campaign>, Problem> {
            transition(&state, &id, $to).await
        }
    };
}

state_change!(
    start,
    "startCampaign",
    "/api/campaigns/{id}/start",
    CampaignState::Running,
    "Start a draft campaign (it needs contacts)"
);
state_change!(
    pause,
    "pauseCampaign",
    "/api/campaigns/{id}/pause",
    CampaignState::Paused,
    "Pause: no new dial after the answer; calls in progress finish"
);
state_change!(
    resume,
    "resumeCampaign",
    "/api/campaigns/{id}/resume",
    CampaignState::Running,
    "Resume a paused campaign"
);
state_change!(
    cancel,
    "cancelCampaign",
    "/api/campaigns/{id}/cancel",
    CampaignState::Cancelled,
    "Cancel: no new dial; pending contacts end as `cancelled`; calls in progress finish"
);
