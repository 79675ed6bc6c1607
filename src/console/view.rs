//! Turning templates into responses (HTML with the console's security headers), the error page
//! every handler falls back to, and small formatting helpers shared by the pages.
//!
//! Nothing here reads the store; it only presents.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::api::Problem;

/// What every page's frame needs: the navigation, the sign-out form's CSRF token.
#[derive(Debug, Clone)]
pub struct Nav {
    /// `live`, `calls`, `campaigns` or empty.
    pub active: &'static str,
    pub csrf: String,
    pub signed_in: bool,
}

impl Nav {
    pub fn new(active: &'static str, csrf: &str) -> Self {
        Self {
            active,
            csrf: csrf.to_owned(),
            signed_in: true,
        }
    }

    pub fn anonymous() -> Self {
        Self {
            active: "",
            csrf: String::new(),
            signed_in: false,
        }
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    nav: Nav,
    title: &'a str,
    detail: &'a str,
    status: u16,
}

/// A page that could not be shown: the sign-in redirect, or an error page with its status.
#[derive(Debug)]
pub enum PageError {
    /// No open session: go to the sign-in page.
    SignIn,
    Page {
        status: StatusCode,
        title: String,
        detail: String,
    },
}

impl PageError {
    pub fn new(status: StatusCode, title: &str, detail: impl Into<String>) -> Self {
        Self::Page {
            status,
            title: title.to_owned(),
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad request", detail)
    }
}

impl From<Problem> for PageError {
    fn from(p: Problem) -> Self {
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(status = p.status, detail = %p.detail, "console page error");
        }
        Self::new(status, &p.title, p.detail)
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        Problem::from(e).into()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn => Redirect::to("/console/signin").into_response(),
            PageError::Page {
                status,
                title,
                detail,
            } => {
                let page = ErrorPage {
                    nav: Nav::anonymous(),
                    title: &title,
                    detail: &detail,
                    status: status.as_u16(),
                };
                html(status, &page)
            }
        }
    }
}

/// A rendered template as an HTML response with the console's headers.
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => {
            let mut res = (status, body).into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            secure_headers(h);
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed").into_response()
        }
    }
}

/// CSP (own scripts and styles only, no framing), no caching of operator data, no sniffing.
pub fn secure_headers(h: &mut axum::http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// `m:ss` (or `h:mm:ss`) of milliseconds.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// `mm:ss.t` of an offset into a call.
pub fn offset(ms: u64) -> String {
    format!("{:02}:{:02}.{}", ms / 60_000, ms / 1000 % 60, ms / 100 % 10)
}

/// A time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An optional text, or an em dash.
pub fn or_dash(v: Option<&str>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or("—").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(duration(61_500), "1:01");
        assert_eq!(duration(3_723_000), "1:02:03");
        assert_eq!(offset(62_345), "01:02.3");
        assert_eq!(or_dash(None), "—");
        assert_eq!(or_dash(Some("")), "—");
        assert_eq!(or_dash(Some("x")), "x");
    }
}
