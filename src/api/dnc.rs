//! `/api/dnc`: the do-not-call list (checked when each contact is dialled).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::outbound::json_body;
use super::problem::Problem;
use crate::dialer::model::{DncEntry, is_e164};

/// `POST /api/dnc`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDnc {
    /// E.164 number.
    pub phone: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// At most this many (default 100, max 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Skip this many first.
    #[param(minimum = 0)]
    pub offset: Option<u64>,
}

impl Page {
    /// `limit` and `offset` from the raw query string; anything else, a repeated or a bad value
    /// is a 400 problem naming the parameter.
    pub fn parse(raw: Option<&str>) -> Result<Self, Problem> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| {
                Problem::bad_parameter("query", format!("not a valid query string: {e}"))
            })?;
        let mut page = Page {
            limit: None,
            offset: None,
        };
        for (key, value) in &pairs {
            let repeated = || Problem::bad_parameter(key, "given more than once");
            match key.as_str() {
                "limit" => {
                    let n = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or_else(|| {
                            Problem::bad_parameter(
                                key,
                                format!("{value:?} is not a whole number from 1 to 1000"),
                            )
                        })?;
                    if page.limit.replace(n).is_some() {
                        return Err(repeated());
                    }
                }
                "offset" => {
                    let n = value.parse::<u64>().map_err(|_| {
                        Problem::bad_parameter(key, format!("{value:?} is not a whole number ≥ 0"))
                    })?;
                    if page.offset.replace(n).is_some() {
                        return Err(repeated());
                    }
                }
                other => {
                    return Err(Problem::bad_parameter(
                        other,
                        "unknown parameter (see GET /api/openapi.json)",
                    ));
                }
            }
        }
        Ok(page)
    }
}

/// The do-not-call list
#[utoipa::path(get, operation_id = "listDnc", path = "/api/dnc", tag = "campaigns", params(Page), security(("bearer" = [])),
    responses(
        (status = 200, description = "Numbers never dialled", body = [DncEntry]),
        (status = 400, description = "A bad query parameter (named in `parameter`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No store", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<DncEntry>>, Problem> {
    let page = Page::parse(raw.as_deref())?;
    let limit = page.limit.unwrap_or(100);
    let list = state
        .dialer()?
        .store
        .dnc_list(limit, page.offset.unwrap_or(0))
        .await?;
    Ok(Json(list))
}

/// Add a number to the do-not-call list
#[utoipa::path(post, operation_id = "addDnc", path = "/api/dnc", tag = "campaigns", request_body = NewDnc, security(("bearer" = [])),
    responses(
        (status = 201, description = "Added (or already there)", body = DncEntry),
        (status = 400, description = "Not an E.164 number", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No store", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn add(
    State(state): State<Arc<ApiState>>,
    body: Bytes,
) -> Result<(StatusCode, Json<DncEntry>), Problem> {
    let req: NewDnc = json_body(&body)?;
    if !is_e164(&req.phone) {
        return Err(Problem::bad_parameter("phone", "must be an E.164 number"));
    }
    let reason = req.reason.unwrap_or_else(|| "api".into());
    let now = Utc::now();
    state
        .dialer()?
        .store
        .dnc_add(&req.phone, &reason, now)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(DncEntry {
            phone: req.phone,
            reason,
            added_at: now,
        }),
    ))
}

/// Take a number off the do-not-call list
#[utoipa::path(delete, operation_id = "removeDnc", path = "/api/dnc/{phone}", tag = "campaigns",
    params(("phone" = String, Path, description = "E.164 number")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not on the list", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No store", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove(
    State(state): State<Arc<ApiState>>,
    Path(phone): Path<String>,
) -> Result<StatusCode, Problem> {
    if state.dialer()?.store.dnc_remove(&phone).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!(
            "{phone} is not on the do-not-call list"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::Page;

    #[test]
    fn page_parameters_are_checked_by_name() {
        let p = Page::parse(Some("limit=10&offset=20")).unwrap();
        assert_eq!((p.limit, p.offset), (Some(10), Some(20)));
        let p = Page::parse(None).unwrap();
        assert_eq!((p.limit, p.offset), (None, None));
        for (query, parameter) in [
            ("offset=-1", "offset"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=5&limit=6", "limit"),
            ("page=2", "page"),
        ] {
            let problem = Page::parse(Some(query)).unwrap_err();
            assert_eq!(problem.parameter.as_deref(), Some(parameter), "{query}");
        }
    }
}
