//! One campaign: its settings, state changes (start, pause, resume, cancel — through the API's
//! own handlers), live progress (counts by state and outcome, dial rate, calls in progress) and
//! the contacts with their attempts linking to the call pages. The progress part is a fragment
//! (`/console/campaigns/{id}/live`) that `campaign.js` fetches every second; the CSV export is
//! the API's results handler behind the console session.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::signin::CsrfForm;
use crate::console::ConsoleState;
use crate::console::auth::Operator;
use crate::console::view::{self, Nav, PageError, html};
use crate::dialer::model::{CampaignProgress, CampaignState, Contact};

/// Contacts per page.
const CONTACTS_PAGE: u32 = 100;

pub struct AttemptLink {
    pub number: u32,
    pub call_sid: String,
    pub outcome: String,
}

pub struct ContactRow {
    pub line: u32,
    pub phone: String,
    pub name: String,
    pub state: &'static str,
    pub attempts: u32,
    pub outcome: String,
    pub links: Vec<AttemptLink>,
}

impl ContactRow {
    fn of(c: &Contact) -> Self {
        Self {
            line: c.line,
            phone: c.phone.clone(),
            name: view::or_dash(c.name.as_deref()),
            state: c.state.as_str(),
            attempts: c.attempts,
            outcome: c.outcome.map_or("—".into(), |o| o.as_str().to_owned()),
            links: c
                .history
                .iter()
                .filter_map(|a| {
                    a.call_sid.as_ref().map(|sid| AttemptLink {
                        number: a.number,
                        call_sid: sid.clone(),
                        outcome: a
                            .outcome
                            .map_or(a.status.clone(), |o| o.as_str().to_owned()),
                    })
                })
                .collect(),
        }
    }
}

/// The live part of the page.
#[derive(Template)]
#[template(path = "console/campaign_live.html")]
pub struct Live {
    id: String,
    state: &'static str,
    contacts: u64,
    by_state: Vec<(String, u64)>,
    by_outcome: Vec<(String, u64)>,
    in_progress: u64,
    dial_rate: String,
    attempts: u64,
    rows: Vec<ContactRow>,
    offset: u64,
    prev: Option<u64>,
    next: Option<u64>,
}

#[derive(Template)]
#[template(path = "console/campaign.html")]
struct CampaignPage {
    nav: Nav,
    name: String,
    settings: Vec<(&'static str, String)>,
    actions: Vec<(&'static str, &'static str)>,
    flash: Vec<String>,
    live: Live,
}

#[derive(Debug, Deserialize)]
pub struct Page {
    #[serde(default)]
    offset: u64,
}

async fn progress(
    state: &ConsoleState,
    id: &str,
    offset: u64,
) -> Result<(CampaignProgress, Live), PageError> {
    let dialer = state.api.dialer.as_ref().ok_or_else(|| {
        PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Campaigns unavailable",
            "Outbound calls are off: the server has no call record store (store.url).",
        )
    })?;
    let Some(p) = dialer.store.progress(id, Utc::now()).await? else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "No such campaign",
            format!("There is no campaign {id}."),
        ));
    };
    let contacts = dialer.store.contacts(id, CONTACTS_PAGE, offset).await?;
    let step = u64::from(CONTACTS_PAGE);
    let live = Live {
        id: id.to_owned(),
        state: p.campaign.state.as_str(),
        contacts: p.contacts,
        by_state: p.by_state.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        by_outcome: p.by_outcome.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        in_progress: p.in_progress,
        dial_rate: format!("{:.2}", p.dial_rate),
        attempts: p.attempts,
        next: (offset + step < p.contacts).then_some(offset + step),
        prev: (offset > 0).then(|| offset.saturating_sub(step)),
        offset,
        rows: contacts.iter().map(ContactRow::of).collect(),
    };
    Ok((p, live))
}

fn actions(s: CampaignState) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    match s {
        CampaignState::Draft => out.push(("start", "Start")),
        CampaignState::Running => out.push(("pause", "Pause")),
        CampaignState::Paused => out.push(("resume", "Resume")),
        _ => {}
    }
    if s.may_become(CampaignState::Cancelled) {
        out.push(("cancel", "Cancel"));
    }
    out
}

/// `GET /console/campaigns/{id}`.
pub async fn page(
    State(state): State<Arc<ConsoleState>>,
    op: Operator,
    Path(id): Path<String>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let offset = page.map(|p| p.offset).unwrap_or(0);
    let (p, live) = progress(&state, &id, offset).await?;
    let spec = &p.campaign.spec;
    let settings = vec![
        ("Id", p.campaign.id.clone()),
        ("Caller id", spec.caller_id.clone()),
        ("Agent", view::or_dash(spec.agent.as_deref())),
        (
            "Calling window",
            format!(
                "{}–{} ({})",
                spec.window.start, spec.window.end, spec.timezone
            ),
        ),
        ("Calls at once", spec.max_concurrent.to_string()),
        ("Calls per second", format!("{}", spec.cps)),
        ("Created", view::time(p.campaign.created_at)),
    ];
    Ok(html(
        StatusCode::OK,
        &CampaignPage {
            nav: Nav::new("campaigns", &op.csrf),
            name: spec.name.clone(),
            settings,
            actions: actions(p.campaign.state),
            flash: op.flash,
            live,
        },
    ))
}

/// `GET /console/campaigns/{id}/live`: the progress fragment.
pub async fn fragment(
    State(state): State<Arc<ConsoleState>>,
    _op: Operator,
    Path(id): Path<String>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let offset = page.map(|p| p.offset).unwrap_or(0);
    let (_, live) = progress(&state, &id, offset).await?;
    Ok(html(StatusCode::OK, &live))
}

/// `POST /console/campaigns/{id}/{action}`.
pub async fn change(
    State(state): State<Arc<ConsoleState>>,
    op: Operator,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    op.allow_change(&state, &headers, Some(&form.csrf))?;
    let api = State(Arc::clone(&state.api));
    let path = Path(id.clone());
    use crate::api::campaigns as c;
    let result = match action.as_str() {
        "start" => c::start(api, path).await,
        "pause" => c::pause(api, path).await,
        "resume" => c::resume(api, path).await,
        "cancel" => c::cancel(api, path).await,
        other => {
            return Err(PageError::new(
                StatusCode::NOT_FOUND,
                "Not found",
                format!("{other} is not a campaign action (start, pause, resume, cancel)."),
            ));
        }
    };
    let note = match result {
        Ok(c) => format!("Campaign is now {}.", c.0.state.as_str()),
        Err(p) => format!("Could not {action} the campaign: {}", p.detail),
    };
    tracing::info!(campaign_id = %id, action = %action, "campaign change from the console");
    state.sessions.flash(&op.session, vec![note]);
    Ok(Redirect::to(&format!("/console/campaigns/{id}")).into_response())
}

/// `GET /console/campaigns/{id}/results.csv`: the API's export.
pub async fn export(
    State(state): State<Arc<ConsoleState>>,
    _op: Operator,
    Path(id): Path<String>,
) -> Response {
    match crate::api::campaigns::results(State(Arc::clone(&state.api)), Path(id)).await {
        Ok(res) => res,
        Err(p) => p.into_response(),
    }
}
