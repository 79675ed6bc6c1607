//! Errors as RFC 9457 problem details (`application/problem+json`): every error the API returns
//! goes through [`Problem`], which also counts it (`voxbridge_api_problems_total{status}`) and
//! logs it once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics::counter;
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::metrics::API_PROBLEMS;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem detail document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, in words.
    pub detail: String,
    /// For a bad request: the query or path parameter at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl Problem {
    fn new(kind: &str, title: &str, status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:voxbridge:problem:{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            parameter: None,
        }
    }

    /// 400 naming the parameter.
    pub fn bad_parameter(name: &str, detail: impl std::fmt::Display) -> Self {
        let mut p = Self::new(
            "bad-parameter",
            "Bad request parameter",
            StatusCode::BAD_REQUEST,
            format!("{name}: {detail}"),
        );
        p.parameter = Some(name.to_owned());
        p
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new("not-found", "Not found", StatusCode::NOT_FOUND, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            "unauthorized",
            "Unauthorized",
            StatusCode::UNAUTHORIZED,
            detail,
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new("forbidden", "Forbidden", StatusCode::FORBIDDEN, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new("conflict", "Conflict", StatusCode::CONFLICT, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            "unavailable",
            "Service unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            detail,
        )
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            "internal",
            "Internal error",
            StatusCode::INTERNAL_SERVER_ERROR,
            detail,
        )
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound(sid) => Problem::not_found(format!("no call record {sid}")),
            e if e.is_transient() => Problem::unavailable(format!("call record store: {e}")),
            e => Problem::internal(format!("call record store: {e}")),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        counter!(API_PROBLEMS, "status" => status_label(status)).increment(1);
        if status.is_server_error() {
            tracing::warn!(status = self.status, detail = %self.detail, "api error");
        } else {
            tracing::info!(status = self.status, detail = %self.detail, "api request refused");
        }
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"voxbridge\""),
            );
        }
        res
    }
}

/// The fixed set of status labels (no unbounded label values).
fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        406 => "406",
        409 => "409",
        503 => "503",
        s if s >= 500 => "5xx",
        _ => "4xx",
    }
}
