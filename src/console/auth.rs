//! Who may use the console: the [`Operator`] extractor (an open session, and the API's
//! production rules: with no token configured only direct loopback clients are served) and the
//! checks every state-changing request passes (same origin, the session's CSRF token).
//!
//! Refusals are counted (`voxbridge_console_refused_total{reason}`) and logged once. This module
//! renders no page of its own beyond what [`PageError`] stands for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use metrics::counter;

use super::ConsoleState;
use super::session::{self, COOKIE, CSRF_HEADER};
use super::view::PageError;
use crate::metrics::CONSOLE_REFUSED;

/// A signed-in operator (the request carried an open session's cookie).
#[derive(Debug, Clone)]
pub struct Operator {
    /// The cookie value (the session id).
    pub session: String,
    /// This session's CSRF token, for the page's forms and scripts.
    pub csrf: String,
    /// A message left for this page.
    pub flash: Vec<String>,
}

/// Count and log a refusal.
pub fn refuse(reason: &'static str, detail: &str) {
    counter!(CONSOLE_REFUSED, "reason" => reason).increment(1);
    tracing::info!(reason, detail, "console request refused");
}

/// With no API token configured, only direct loopback clients (not through a proxy) may use
/// the console, as with the API.
pub fn loopback_rule(state: &ConsoleState, parts: &Parts) -> Result<(), PageError> {
    if !state.api.auth.is_open() {
        return Ok(());
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let proxied = ["x-forwarded-for", "forwarded", "x-real-ip"]
        .iter()
        .any(|h| parts.headers.contains_key(*h));
    match peer {
        Some(addr) if addr.ip().is_loopback() && !proxied => Ok(()),
        _ => {
            refuse("not_loopback", "no API token configured");
            Err(PageError::new(
                StatusCode::FORBIDDEN,
                "Console not available",
                "No API token is configured (VOXBRIDGE_API_TOKENS), so the console answers only \
                 to clients on this machine (127.0.0.1, ::1) that do not come through a proxy.",
            ))
        }
    }
}

impl FromRequestParts<Arc<ConsoleState>> for Operator {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ConsoleState>,
    ) -> Result<Self, Self::Rejection> {
        loopback_rule(state, parts)?;
        let Some(id) = session::cookie(&parts.headers, COOKIE) else {
            return Err(PageError::SignIn);
        };
        match state.sessions.lookup(id, Instant::now()) {
            Some(signed) => Ok(Self {
                session: id.to_owned(),
                csrf: signed.csrf,
                flash: signed.flash,
            }),
            None => Err(PageError::SignIn),
        }
    }
}

impl Operator {
    /// The checks of a state-changing request: it comes from our own origin and carries this
    /// session's CSRF token (header `X-CSRF-Token`, else the form's `csrf` field).
    pub fn allow_change(
        &self,
        state: &ConsoleState,
        headers: &HeaderMap,
        form_token: Option<&str>,
    ) -> Result<(), PageError> {
        if !session::same_origin(headers, &state.public_host) {
            refuse("origin", "Origin/Referer is not this server");
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "Request refused",
                "This request did not come from the console's own pages (Origin check).",
            ));
        }
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .or(form_token)
            .unwrap_or("");
        if !session::csrf_matches(&self.csrf, presented) {
            refuse("csrf", "missing or wrong CSRF token");
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "Request refused",
                "The form's security token is missing or out of date. Reload the page and try again.",
            ));
        }
        Ok(())
    }
}
