//! Sign-in (an API token exchanged for a session cookie) and sign-out.
//!
//! The token is checked by the API's [`crate::api::ApiAuth`] (constant time) and never stored.
//! With no token configured, direct loopback clients sign in with an empty token.

use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use metrics::counter;
use serde::Deserialize;

use crate::console::ConsoleState;
use crate::console::auth::{Operator, loopback_rule, refuse};
use crate::console::session;
use crate::console::view::{Nav, PageError, html};
use crate::metrics::CONSOLE_SIGNINS;

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignInPage {
    nav: Nav,
    /// No token configured: loopback clients sign in without one.
    open: bool,
    error: String,
}

/// `GET /console/signin`.
pub async fn form(State(state): State<Arc<ConsoleState>>, parts: Parts) -> Response {
    if let Err(e) = loopback_rule(&state, &parts) {
        return e.into_response();
    }
    page(&state, StatusCode::OK, "")
}

fn page(state: &ConsoleState, status: StatusCode, error: &str) -> Response {
    html(
        status,
        &SignInPage {
            nav: Nav::anonymous(),
            open: state.api.auth.is_open(),
            error: error.to_owned(),
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct SignIn {
    #[serde(default)]
    token: String,
}

/// `POST /console/signin`: a good token opens a session (cookie) and goes to the live page.
pub async fn submit(
    State(state): State<Arc<ConsoleState>>,
    parts: Parts,
    Form(form): Form<SignIn>,
) -> Response {
    if let Err(e) = loopback_rule(&state, &parts) {
        return e.into_response();
    }
    if !session::same_origin(&parts.headers, &state.public_host) {
        refuse("origin", "sign-in from another origin");
        return page(
            &state,
            StatusCode::FORBIDDEN,
            "This sign-in did not come from the console's own page.",
        );
    }
    let token = form.token.trim();
    let accepted = state.api.auth.is_open() || state.api.auth.accepts(token);
    if !accepted {
        counter!(CONSOLE_SIGNINS, "result" => "refused").increment(1);
        tracing::info!("console sign-in refused: the token is not accepted");
        return page(
            &state,
            StatusCode::UNAUTHORIZED,
            "That token is not accepted. Use one of the API tokens (VOXBRIDGE_API_TOKENS).",
        );
    }
    let (id, _csrf) = match state.sessions.create(Instant::now()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "console session could not be opened");
            return PageError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in unavailable",
                "The server could not open a session (no randomness); try again.",
            )
            .into_response();
        }
    };
    counter!(CONSOLE_SIGNINS, "result" => "ok").increment(1);
    tracing::info!(sessions = state.sessions.len(), "console sign-in");
    let mut res = Redirect::to("/console/live").into_response();
    let limits = state.sessions.limits();
    if let Some(cookie) = session::set_cookie(&id, state.secure_cookie, limits.absolute) {
        res.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    res
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /console/signout`.
pub async fn signout(
    State(state): State<Arc<ConsoleState>>,
    op: Operator,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    op.allow_change(&state, &headers, Some(&form.csrf))?;
    state.sessions.remove(&op.session);
    let mut res = Redirect::to("/console/signin").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        session::clear_cookie(state.secure_cookie),
    );
    Ok(res)
}
