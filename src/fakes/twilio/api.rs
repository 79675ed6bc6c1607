//! The fake's REST surface, answering like Twilio: `POST …/Calls.json` (create; 201 with the
//! queued Call resource), `GET …/Calls.json` (read: `To`, `From`, `Status` filters, one page of
//! `PageSize`, most recent first), `GET …/Calls/{sid}.json` (fetch), `POST …/Calls/{sid}.json` (hang
//! up, cancel, redirect). Every request passes the same gate first — the concurrent-request
//! cap (429 + 20429, `Retry-After`, `Twilio-Concurrent-Requests`), the next queued fault,
//! HTTP Basic auth (401 + 20003), the account in the path (404 + 20404) — and is recorded with
//! its answer. Creating beyond the open-call cap is refused with 429 + 20429 too.
//!
//! Handlers never block: a call's life runs in its own task.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::Value;
use tokio::sync::watch;

use super::call::CallTask;
use super::observed::SeenRequest;
use super::request::{Answer, Hook, Refusal, is_http_url, parse_create};
use super::state::{CallEntry, Control, Status};
use super::{Shared, new_sid};
use crate::fakes::Fault;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Calls.json",
            post(create).get(list),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Calls/{call}",
            get(fetch).post(update),
        )
        .fallback(not_found)
        .with_state(shared)
}

/// Counts a request in flight until dropped.
struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a handler answers, before recording.
enum Answered {
    Ok(u16, Value, Option<String>),
    Refused(Refusal, Option<usize>),
}

struct Req {
    method: &'static str,
    path: String,
    params: Vec<(String, String)>,
}

async fn create(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req {
        method: "POST",
        path: "/Calls.json".into(),
        params: form(&body),
    };
    gate(&shared, req, &headers, &account, |s, params| {
        let call = match parse_create(params, &s.config.owned_numbers) {
            Ok(c) => c,
            Err(r) => return Answered::Refused(r, None),
        };
        let sid = new_sid("CA");
        let (tx, rx) = watch::channel(Control::Run);
        let now = SystemTime::now();
        let answer = call.answer.clone();
        let entry = CallEntry {
            to: call.to.clone(),
            from: call.from.clone(),
            status: Status::Queued,
            created: now,
            updated: now,
            start: None,
            end: None,
            answered_by: None,
            duration_secs: None,
            answer,
            control: tx,
        };
        if !s.table.insert(&sid, entry, s.config.max_active_calls) {
            let r = Refusal::new(
                429,
                20429,
                "Too Many Requests: the account's concurrent call limit is reached",
            );
            return Answered::Refused(r, None);
        }
        s.table.set_status(&s.observed, &sid, Status::Queued);
        let (attempt, callee) = s.table.next_callee(&call.to, &s.config.default_callee);
        let task = CallTask::new(Arc::clone(s), sid.clone(), call, callee, attempt, rx);
        tokio::spawn(task.run());
        let resource = resource(s, &sid).unwrap_or_default();
        Answered::Ok(201, resource, Some(sid))
    })
    .await
}

/// Twilio's list resource: one page, no further pages (`next_page_uri` null).
async fn list(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let params = form(uri.query().unwrap_or("").as_bytes());
    let req = Req {
        method: "GET",
        path: "/Calls.json".into(),
        params,
    };
    gate(&shared, req, &headers, &account, |s, params| {
        let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let page_size = match get("PageSize").map(str::parse::<usize>) {
            None => 50,
            Some(Ok(n)) if (1..=1000).contains(&n) => n,
            Some(_) => {
                return Answered::Refused(
                    Refusal::new(400, 20001, "PageSize must be between 1 and 1000"),
                    None,
                );
            }
        };
        let (to, from, status) = (get("To"), get("From"), get("Status"));
        let calls = s.table.list(&s.config.account_sid, page_size, |e| {
            to.is_none_or(|t| e.to == t)
                && from.is_none_or(|f| e.from == f)
                && status.is_none_or(|st| e.status.as_str() == st)
        });
        let uri = format!(
            "/2010-04-01/Accounts/{}/Calls.json?PageSize={page_size}&Page=0",
            s.config.account_sid
        );
        let body = serde_json::json!({
            "calls": calls,
            "end": calls.len().saturating_sub(1),
            "first_page_uri": uri,
            "next_page_uri": null,
            "page": 0,
            "page_size": page_size,
            "previous_page_uri": null,
            "start": 0,
            "uri": uri,
        });
        Answered::Ok(200, body, None)
    })
    .await
}

async fn fetch(
    State(shared): State<Arc<Shared>>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let req = Req {
        method: "GET",
        path: format!("/Calls/{call}"),
        params: Vec::new(),
    };
    gate(&shared, req, &headers, &account, |s, _| {
        let sid = call.strip_suffix(".json").unwrap_or(&call);
        match resource(s, sid) {
            Some(r) => Answered::Ok(200, r, Some(sid.to_owned())),
            None => Answered::Refused(not_found_refusal(&call), None),
        }
    })
    .await
}

async fn update(
    State(shared): State<Arc<Shared>>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req {
        method: "POST",
        path: format!("/Calls/{call}"),
        params: form(&body),
    };
    gate(&shared, req, &headers, &account, |s, params| {
        let sid = call.strip_suffix(".json").unwrap_or(&call).to_owned();
        match apply_update(s, &sid, params) {
            Ok(()) => match resource(s, &sid) {
                Some(r) => Answered::Ok(200, r, Some(sid)),
                None => Answered::Refused(not_found_refusal(&call), None),
            },
            Err(r) => Answered::Refused(r, None),
        }
    })
    .await
}

fn apply_update(s: &Shared, sid: &str, params: &[(String, String)]) -> Result<(), Refusal> {
    let get = |n: &str| {
        params
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let bad = |msg: &str| Refusal::new(400, 21200, msg);
    let redirect = match (get("Twiml"), get("Url")) {
        (Some(t), None) => Some(Answer::Twiml(t.to_owned())),
        (None, Some(u)) if is_http_url(u) => {
            let method = match get("Method").map(str::to_ascii_uppercase).as_deref() {
                Some("GET") => "GET",
                None | Some("POST") => "POST",
                Some(_) => return Err(bad("Method must be GET or POST")),
            };
            Some(Answer::Url(Hook {
                url: u.to_owned(),
                method,
            }))
        }
        (None, Some(u)) => {
            return Err(Refusal::new(
                400,
                21205,
                format!("Url is not a valid URL: {u}"),
            ));
        }
        (Some(_), Some(_)) => return Err(bad("Specify either Url or Twiml, not both")),
        (None, None) => None,
    };
    let status = get("Status");
    if redirect.is_none() && status.is_none() {
        return Err(bad("Nothing to update: give Status, Url or Twiml"));
    }
    s.table
        .with(sid, |e| {
            match status {
                None => {}
                Some("completed") if !e.status.is_final() => {
                    e.control.send_replace(Control::Hangup);
                    return Ok(());
                }
                Some("canceled")
                    if matches!(
                        e.status,
                        Status::Queued | Status::Initiated | Status::Ringing
                    ) =>
                {
                    e.control.send_replace(Control::Hangup);
                    return Ok(());
                }
                Some("completed" | "canceled") => return Ok(()), // nothing left to end
                Some(other) => {
                    return Err(bad(&format!(
                        "Status must be completed or canceled, not {other}"
                    )));
                }
            }
            if let Some(answer) = redirect {
                match e.status {
                    st if st.is_final() => {
                        return Err(Refusal::new(
                            400,
                            21220,
                            "Call is not in-progress. Cannot redirect.",
                        ));
                    }
                    Status::InProgress => {
                        e.control.send_replace(Control::Redirect(answer));
                    }
                    _ => e.answer = answer,
                }
            }
            Ok(())
        })
        .unwrap_or_else(|| Err(not_found_refusal(sid)))
}

/// The shared gate, then `op`, then the recorded answer.
async fn gate(
    shared: &Arc<Shared>,
    req: Req,
    headers: &HeaderMap,
    account: &str,
    op: impl FnOnce(&Arc<Shared>, &[(String, String)]) -> Answered,
) -> Response {
    let arrived = Instant::now();
    let n = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlight(shared);
    let cfg = &shared.config;
    let mut post_fault = None;
    let answered = if cfg.max_concurrent_requests.is_some_and(|max| n > max) {
        Answered::Refused(
            Refusal::new(
                429,
                20429,
                "Too Many Requests: concurrent requests limit exceeded",
            ),
            Some(n),
        )
    } else {
        match shared.faults.next() {
            Some(Fault::Status(code)) => Answered::Refused(fault_refusal(code), Some(n)),
            Some(Fault::Stall(d)) => {
                tokio::time::sleep(d).await;
                authorized(shared, headers, account, &req, op).await
            }
            Some(f) => {
                post_fault = Some(f);
                authorized(shared, headers, account, &req, op).await
            }
            None => authorized(shared, headers, account, &req, op).await,
        }
    };
    let (status, code, sid) = match &answered {
        Answered::Ok(status, _, sid) => (*status, None, sid.clone()),
        Answered::Refused(r, _) => (r.status, Some(r.code), None),
    };
    shared.observed.requests.push(SeenRequest {
        at: arrived,
        method: req.method,
        path: req.path,
        params: req.params,
        status,
        error_code: code,
        call_sid: sid,
    });
    respond(answered, post_fault, cfg.retry_after_secs)
}

async fn authorized(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    account: &str,
    req: &Req,
    op: impl FnOnce(&Arc<Shared>, &[(String, String)]) -> Answered,
) -> Answered {
    let cfg = &shared.config;
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", cfg.account_sid, cfg.auth_token));
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    if given != Some(expected.as_str()) {
        return Answered::Refused(Refusal::new(401, 20003, "Authenticate"), None);
    }
    if account != cfg.account_sid {
        return Answered::Refused(not_found_refusal(account), None);
    }
    if !cfg.request_delay.is_zero() {
        tokio::time::sleep(cfg.request_delay).await;
    }
    op(shared, &req.params)
}

fn respond(answered: Answered, fault: Option<Fault>, retry_after: Option<u64>) -> Response {
    match answered {
        Answered::Ok(status, body, _) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            match fault {
                Some(Fault::Malformed) => (
                    status,
                    [("content-type", "application/json")],
                    "{\"sid\": \"CA",
                )
                    .into_response(),
                Some(Fault::DisconnectAfter(_)) => {
                    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                        Ok(Bytes::from_static(b"{\"sid\":")),
                        Err(std::io::Error::other("fault: connection dropped")),
                    ];
                    let body = Body::from_stream(futures_util::stream::iter(chunks));
                    (status, [("content-type", "application/json")], body).into_response()
                }
                _ => (status, axum::Json(body)).into_response(),
            }
        }
        Answered::Refused(r, concurrent) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
            let mut resp = (status, axum::Json(r.body())).into_response();
            let h = resp.headers_mut();
            if r.status == 429 {
                if let Some(secs) = retry_after {
                    h.insert("retry-after", HeaderValue::from(secs));
                }
                if let Some(n) = concurrent {
                    h.insert("twilio-concurrent-requests", HeaderValue::from(n));
                }
            }
            if r.status == 401 {
                h.insert(
                    "www-authenticate",
                    HeaderValue::from_static("Basic realm=\"Twilio API\""),
                );
            }
            resp
        }
    }
}

async fn not_found(uri: Uri) -> Response {
    let r = not_found_refusal(uri.path());
    (StatusCode::NOT_FOUND, axum::Json(r.body())).into_response()
}

fn not_found_refusal(what: &str) -> Refusal {
    Refusal::new(
        404,
        20404,
        format!("The requested resource {what} was not found"),
    )
}

fn fault_refusal(status: u16) -> Refusal {
    let (code, msg) = match status {
        429 => (20429, "Too Many Requests"),
        401 => (20003, "Authenticate"),
        404 => (20404, "The requested resource was not found"),
        500..=599 => (20500, "Internal Server Error"),
        _ => (20001, "Bad request (injected fault)"),
    };
    Refusal::new(status, code, msg)
}

fn resource(s: &Shared, sid: &str) -> Option<Value> {
    s.table
        .with(sid, |e| e.resource(&s.config.account_sid, sid))
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}
