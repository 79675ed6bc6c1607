//! Campaigns: the list and the create form (settings plus a CSV upload, `multipart/form-data`).
//!
//! Creating goes through the same steps as the API (`CampaignSpec::validate`, the dialer
//! store's `create_campaign`, `contacts::parse_csv`, `add_contacts`). An unreadable CSV or a bad
//! setting shows the form again with the message and creates nothing; rejected rows are shown
//! with their line numbers on the new campaign's page.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;

use crate::console::ConsoleState;
use crate::console::auth::Operator;
use crate::console::view::{self, Nav, PageError, html};
use crate::dialer::contacts;
use crate::dialer::model::{CallingWindow, CampaignSpec};

pub struct Row {
    pub id: String,
    pub name: String,
    pub state: &'static str,
    pub created: String,
}

/// What the form holds (shown back after an error).
#[derive(Debug, Clone)]
pub struct Form {
    pub name: String,
    pub caller_id: String,
    pub agent: String,
    pub timezone: String,
    pub window_start: String,
    pub window_end: String,
    pub max_concurrent: String,
    pub cps: String,
}

impl Default for Form {
    fn default() -> Self {
        Self {
            name: String::new(),
            caller_id: String::new(),
            agent: String::new(),
            timezone: "UTC".into(),
            window_start: "09:00".into(),
            window_end: "21:00".into(),
            max_concurrent: "1".into(),
            cps: "1".into(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/campaigns.html")]
struct CampaignsPage {
    nav: Nav,
    rows: Vec<Row>,
    form: Form,
    error: String,
}

fn dialer(state: &ConsoleState) -> Result<&Arc<crate::dialer::Dialer>, PageError> {
    state.api.dialer.as_ref().ok_or_else(|| {
        PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Campaigns unavailable",
            "Outbound calls are off: the server has no call record store (store.url).",
        )
    })
}

async fn render(
    state: &ConsoleState,
    op: &Operator,
    status: StatusCode,
    form: Form,
    error: String,
) -> Result<Response, PageError> {
    let rows = dialer(state)?
        .store
        .campaigns(None)
        .await?
        .into_iter()
        .map(|c| Row {
            name: c.spec.name.clone(),
            state: c.state.as_str(),
            created: view::time(c.created_at),
            id: c.id,
        })
        .collect();
    Ok(html(
        status,
        &CampaignsPage {
            nav: Nav::new("campaigns", &op.csrf),
            rows,
            form,
            error,
        },
    ))
}

/// `GET /console/campaigns`.
pub async fn list(
    State(state): State<Arc<ConsoleState>>,
    op: Operator,
) -> Result<Response, PageError> {
    render(&state, &op, StatusCode::OK, Form::default(), String::new()).await
}

/// Largest CSV the form takes (the server's body limit applies too).
const MAX_CSV: usize = 8 << 20;

/// The form's fields and the CSV file.
async fn read_form(mut mp: Multipart) -> Result<(Form, String, Vec<u8>), String> {
    let mut form = Form::default();
    let mut csrf = String::new();
    let mut csv = Vec::new();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(format!("the form could not be read: {e}")),
        };
        let name = field.name().unwrap_or("").to_owned();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| format!("the form could not be read: {e}"))?;
        if name == "contacts" {
            if bytes.len() > MAX_CSV {
                return Err("the CSV file is larger than 8 MiB".into());
            }
            csv = bytes.to_vec();
            continue;
        }
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        let slot = match name.as_str() {
            "csrf" => &mut csrf,
            "name" => &mut form.name,
            "caller_id" => &mut form.caller_id,
            "agent" => &mut form.agent,
            "timezone" => &mut form.timezone,
            "window_start" => &mut form.window_start,
            "window_end" => &mut form.window_end,
            "max_concurrent" => &mut form.max_concurrent,
            "cps" => &mut form.cps,
            _ => continue,
        };
        *slot = text;
    }
    Ok((form, csrf, csv))
}

fn spec_of(f: &Form) -> Result<CampaignSpec, String> {
    let max_concurrent = f
        .max_concurrent
        .parse()
        .map_err(|_| "Calls at once must be a whole number.".to_owned())?;
    let cps = f
        .cps
        .parse()
        .map_err(|_| "Calls per second must be a number.".to_owned())?;
    let spec = CampaignSpec {
        name: f.name.clone(),
        caller_id: f.caller_id.clone(),
        agent: (!f.agent.is_empty()).then(|| f.agent.clone()),
        window: CallingWindow {
            start: f.window_start.clone(),
            end: f.window_end.clone(),
            days: Vec::new(),
        },
        timezone: f.timezone.clone(),
        max_concurrent,
        cps,
        retry: Default::default(),
        voicemail: Default::default(),
        voicemail_message: None,
        end_at: None,
    };
    spec.validate()
        .map_err(|(field, msg)| format!("{field}: {msg}"))?;
    Ok(spec)
}

/// The form again with what is wrong (400); counted and logged once.
async fn bad(
    state: &ConsoleState,
    op: &Operator,
    form: Form,
    msg: String,
) -> Result<Response, PageError> {
    crate::console::auth::refuse("bad_input", &msg);
    render(state, op, StatusCode::BAD_REQUEST, form, msg).await
}

/// `POST /console/campaigns` (multipart): create a draft campaign with the CSV's contacts.
pub async fn create(
    State(state): State<Arc<ConsoleState>>,
    op: Operator,
    headers: HeaderMap,
    mp: Multipart,
) -> Result<Response, PageError> {
    let (form, csrf, csv) = match read_form(mp).await {
        Ok(v) => v,
        Err(e) => return Err(PageError::bad_request(e)),
    };
    op.allow_change(&state, &headers, Some(&csrf))?;
    let spec = match spec_of(&form) {
        Ok(s) => s,
        Err(msg) => return bad(&state, &op, form, msg).await,
    };
    if csv.is_empty() {
        let msg = "Choose a CSV file of contacts (a header row with phone).".to_owned();
        return bad(&state, &op, form, msg).await;
    }
    let parsed = match contacts::parse_csv(&csv) {
        Ok(p) => p,
        Err(e) => return bad(&state, &op, form, format!("The CSV cannot be read: {e}")).await,
    };
    let dialer = dialer(&state)?;
    let now = Utc::now();
    let campaign = dialer.store.create_campaign(&spec, now).await?;
    let (added, mut rejected) = dialer
        .store
        .add_contacts(&campaign.id, &parsed.contacts, now)
        .await?;
    rejected.extend(parsed.rejected);
    rejected.sort_by_key(|r| r.line);
    let mut flash = vec![format!(
        "Campaign created: {} added, {} rejected.",
        counted(added, "contact", "contacts"),
        counted(rejected.len() as u64, "row", "rows"),
    )];
    flash.extend(
        rejected
            .iter()
            .map(|r| format!("Line {}: {}", r.line, r.error)),
    );
    tracing::info!(campaign_id = %campaign.id, added, rejected = rejected.len(), "campaign created in the console");
    state.sessions.flash(&op.session, flash);
    Ok(Redirect::to(&format!("/console/campaigns/{}", campaign.id)).into_response())
}

/// `1 row`, `2 rows`.
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
