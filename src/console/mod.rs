//! The operator console under `/console`: server-rendered pages (askama templates in
//! `templates/console/`) with a little JavaScript and CSS embedded from `assets/console/`.
//!
//! Pages: sign-in, calls in progress (live over server-sent events, with hang-up), call history
//! (filters, cursor pages), one call (transcript timeline, quality in words, charts of the
//! per-second timeline, the two-channel recording with its waveform), campaigns (create from a
//! form with a CSV upload, start/pause/resume/cancel, live progress, contacts, CSV export).
//!
//! [`router`] returns a self-contained router sharing the REST API's [`ApiState`] (store, live
//! calls, recordings, dialer, tokens), to be merged into the server's router beside the API's.
//! Handlers are thin: they call the API's handlers or the same store/dialer methods and only
//! turn the result into HTML. This module never touches a call's task and keeps no data of its
//! own besides the sign-in sessions.

mod assets;
mod auth;
mod pages;
pub mod session;
mod sse;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::api::ApiState;
use crate::config::Config;
use session::{SessionLimits, Sessions};

/// What the console's handlers share.
pub struct ConsoleState {
    /// The API's state: store, live calls, recordings, tokens, dialer.
    pub api: Arc<ApiState>,
    pub sessions: Sessions,
    /// The session cookie gets `Secure` (`security.public_scheme = "https"`).
    pub secure_cookie: bool,
    /// `server.public_host`, also accepted as our origin.
    pub public_host: String,
}

impl ConsoleState {
    pub fn new(api: Arc<ApiState>, config: &Config) -> Arc<Self> {
        Arc::new(Self {
            api,
            sessions: Sessions::new(SessionLimits::default()),
            secure_cookie: config.security.public_scheme == "https",
            public_host: config.server.public_host.clone(),
        })
    }
}

/// The `/console` router, ready to merge into the server's (served with connect info, like the
/// API, so loopback-only access can see the peer).
pub fn router(api: Arc<ApiState>, config: &Config) -> Router {
    let state = ConsoleState::new(api, config);
    Router::new()
        .route("/console", get(pages::home))
        .route("/console/", get(pages::home))
        .route(
            "/console/signin",
            get(pages::signin::form).post(pages::signin::submit),
        )
        .route("/console/signout", post(pages::signin::signout))
        .route("/console/live", get(pages::live::page))
        .route("/console/live/events", get(sse::live))
        .route("/console/calls", get(pages::calls::list))
        .route("/console/calls/{call_sid}", get(pages::call::page))
        .route(
            "/console/calls/{call_sid}/recording",
            get(pages::call::recording),
        )
        .route(
            "/console/calls/{call_sid}/hangup",
            post(pages::live::hangup),
        )
        .route(
            "/console/campaigns",
            get(pages::campaigns::list).post(pages::campaigns::create),
        )
        .route("/console/campaigns/{id}", get(pages::campaign::page))
        .route(
            "/console/campaigns/{id}/live",
            get(pages::campaign::fragment),
        )
        .route(
            "/console/campaigns/{id}/results.csv",
            get(pages::campaign::export),
        )
        .route(
            "/console/campaigns/{id}/{action}",
            post(pages::campaign::change),
        )
        .route("/console/assets/{name}", get(assets::serve))
        .route("/console/{*rest}", get(pages::not_found))
        .with_state(state)
}
