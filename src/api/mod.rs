//! The REST API under `/api`: call records (list, record, transcript, recording), calls in
//! progress (list, hang up), outbound calls and campaigns, the do-not-call list, and its own description (`/api/openapi.json`, `/api/docs`).
//!
//! [`router`] returns a self-contained `axum::Router` (its own [`ApiState`]), to be merged into
//! the server's router; it must be served with
//! `into_make_service_with_connect_info::<SocketAddr>()` so loopback-only access can see the
//! peer. Every route is registered through utoipa's `OpenApiRouter`, so the router and the
//! OpenAPI document come from the same list and cannot drift apart. Handlers only read the
//! store and ask the live-calls registry; they never reach into a call.

pub mod auth;
pub mod calls;
pub mod campaigns;
pub mod dnc;
pub mod docs;
pub mod live;
pub mod outbound;
pub mod problem;
pub mod query;
pub mod recording;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{ApiAuth, AuthError};
pub use live::{LiveCall, Speaking};
pub use problem::Problem;

use crate::call::live::LiveCalls;
use crate::store::recordings::RecordingStore;
use crate::store::{CallRecord, CallStore};

/// What the API handlers share.
pub struct ApiState {
    /// `None` when records are off (`store.url = ""`): record routes answer 503.
    pub store: Option<Arc<dyn CallStore>>,
    /// The calls in progress on this instance.
    pub live: Arc<LiveCalls>,
    /// The recording files the records point to.
    pub recordings: RecordingStore,
    pub auth: ApiAuth,
    /// Outbound calls and campaigns (`None` without a store: those routes answer 503).
    pub dialer: Option<Arc<crate::dialer::Dialer>>,
}

impl ApiState {
    pub fn new(
        store: Option<Arc<dyn CallStore>>,
        live: Arc<LiveCalls>,
        recordings: RecordingStore,
        auth: ApiAuth,
    ) -> Arc<Self> {
        Self::with_dialer(store, live, recordings, auth, None)
    }

    /// [`ApiState::new`] with the dialer for `/api/calls` (POST), `/api/campaigns`, `/api/dnc`.
    pub fn with_dialer(
        store: Option<Arc<dyn CallStore>>,
        live: Arc<LiveCalls>,
        recordings: RecordingStore,
        auth: ApiAuth,
        dialer: Option<Arc<crate::dialer::Dialer>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            live,
            recordings,
            auth,
            dialer,
        })
    }

    fn store(&self) -> Result<&Arc<dyn CallStore>, Problem> {
        self.store
            .as_ref()
            .ok_or_else(|| Problem::unavailable("call records are off (store.url is empty)"))
    }

    async fn record(&self, call_sid: &str) -> Result<CallRecord, Problem> {
        self.store()?
            .get(call_sid)
            .await?
            .ok_or_else(|| Problem::not_found(format!("no call record {call_sid}")))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "voxbridge REST API",
        description = "Call records (transcript, quality, outcome, recording) and calls in progress. \
            Authenticate with `Authorization: Bearer <token>` (tokens from VOXBRIDGE_API_TOKENS); \
            with no token configured the API answers only to loopback clients. Errors are \
            application/problem+json.",
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "calls", description = "Call records"),
        (name = "recordings", description = "Call recordings"),
        (name = "live", description = "Calls in progress"),
        (name = "campaigns", description = "Outbound campaigns and the do-not-call list"),
        (name = "docs", description = "This description"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Routes that need a token (or a loopback client).
fn protected() -> OpenApiRouter<Arc<ApiState>> {
    OpenApiRouter::new()
        .routes(routes!(calls::list, outbound::create))
        .routes(routes!(live::list))
        .routes(routes!(calls::get))
        .routes(routes!(calls::transcript))
        .routes(routes!(recording::get, recording::delete))
        .routes(routes!(live::hangup))
        .routes(routes!(campaigns::create, campaigns::list))
        .routes(routes!(campaigns::get))
        .routes(routes!(campaigns::upload, campaigns::contacts))
        .routes(routes!(campaigns::results))
        .routes(routes!(campaigns::start))
        .routes(routes!(campaigns::pause))
        .routes(routes!(campaigns::resume))
        .routes(routes!(campaigns::cancel))
        .routes(routes!(dnc::list, dnc::add))
        .routes(routes!(dnc::remove))
}

/// Routes anyone may read.
fn public() -> OpenApiRouter<Arc<ApiState>> {
    OpenApiRouter::new()
        .routes(routes!(docs::openapi_json))
        .routes(routes!(docs::page))
}

/// The OpenAPI 3.1 document of every route [`router`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = OpenApiRouter::<Arc<ApiState>>::with_openapi(ApiDoc::openapi())
        .merge(protected())
        .merge(public())
        .into_openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The `/api` router, ready to merge into the server's.
pub fn router(state: Arc<ApiState>) -> Router {
    let guarded = protected().layer(middleware::from_fn_with_state(
        Arc::clone(&state),
        auth::require,
    ));
    let (router, _doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(guarded)
        .merge(public())
        .split_for_parts();
    router.with_state(state)
}
