//! Who may talk to us, and how much: the admission state ([`Admission`]: rate limiter,
//! connection caps, trusted proxies, call permits), Twilio signature checks for the webhooks
//! and the media WebSocket upgrade, and the per-client request rate limit.
//!
//! Refusals are clean HTTP answers (403 bad signature, 429 too many requests, 413) or, before
//! any request, a closed socket — all counted in `voxbridge_requests_refused_total{reason}`.
//! Secrets are only ever used, never logged. This module decides admission; it never sees call
//! state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::counter;
use tokio::sync::Semaphore;
use tracing::warn;

use super::AppState;
use super::client_ip::{Client, TrustedProxies};
use super::conn_limit::ConnLimits;
use super::origin::PublicOrigin;
use super::rate_limit::RateLimiter;
use crate::config::Config;
use crate::twilio::signature;

pub use crate::metrics::{OPEN_CONNECTIONS, REQUESTS_REFUSED};

/// Every reason [`REQUESTS_REFUSED`] is counted under.
pub const REFUSAL_REASONS: &[&str] = &[
    "bad_signature",
    "rate_limited",
    "body_too_large",
    "too_many_connections",
    "too_many_connections_per_ip",
    "header_timeout",
    "request_timeout",
];

/// Every refusal reason registered at 0 so that dashboards and alerts see the series before
/// the first refusal (called at start-up; HELP texts live in [`crate::metrics::CATALOGUE`]).
pub fn register_reasons() {
    for reason in REFUSAL_REASONS {
        counter!(REQUESTS_REFUSED, "reason" => *reason).increment(0);
    }
    for reason in crate::metrics::CALL_REFUSAL_REASONS {
        counter!(crate::metrics::CALLS_REFUSED, "reason" => *reason).increment(0);
    }
}

/// Count a refusal.
pub fn count_refusal(reason: &'static str) {
    counter!(REQUESTS_REFUSED, "reason" => reason).increment(1);
}

/// Count and answer a refusal.
pub fn refuse(status: StatusCode, reason: &'static str) -> Response {
    count_refusal(reason);
    (status, format!("{reason}\n")).into_response()
}

/// Admission state shared by the accept loop and the handlers.
pub struct Admission {
    /// Per-client request budget.
    pub rate: RateLimiter,
    /// Concurrent connections, per client and in all (public listener).
    pub connections: Arc<ConnLimits>,
    /// Whose `X-Forwarded-*` headers count.
    pub trusted: TrustedProxies,
    /// `limits.max_calls` permits: one taken before a media upgrade is accepted and held for
    /// the call's life, so concurrent upgrades can never overshoot.
    pub call_permits: Arc<Semaphore>,
}

impl Admission {
    pub fn new(config: &Config) -> Self {
        let limits = &config.limits;
        // Checked by Config::validate; an unparsable entry cannot get here.
        let networks = config.security.trusted_proxy_networks().unwrap_or_default();
        Self {
            rate: RateLimiter::new(limits.per_ip_per_minute),
            connections: ConnLimits::new(limits.max_connections, limits.max_connections_per_ip),
            trusted: TrustedProxies::new(config.security.trust_proxy, networks),
            call_permits: Arc::new(Semaphore::new(limits.max_calls)),
        }
    }
}

/// Is this request signed by Twilio? `true` when validation is off or no token is set.
pub fn signed(
    state: &AppState,
    headers: &HeaderMap,
    client: Option<&Client>,
    path_and_query: &str,
    params: &[(String, String)],
    websocket: bool,
) -> bool {
    let Some(token) = state.services.auth_token.as_ref() else {
        return true;
    };
    if !state.config.security.validate_signatures {
        return true;
    }
    let Some(given) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let via_proxy = client.is_some_and(|c| c.via_trusted_proxy);
    let origin = PublicOrigin::of(&state.config, headers, via_proxy);
    signature::candidate_urls(origin.scheme(websocket), &origin.host, path_and_query)
        .iter()
        .any(|url| signature::verify(token.expose(), url, params, given))
}

/// Middleware for the Twilio webhooks: buffer the (size-limited) form body, check the
/// signature over URL + sorted parameters, and pass the request on unchanged.
pub async fn webhook_signature(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if state.services.auth_token.is_none() || !state.config.security.validate_signatures {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, state.config.limits.max_body_bytes).await else {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    };
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let client = parts.extensions.get::<Client>();
    if !signed(&state, &parts.headers, client, path, &params, false) {
        warn!(path, "webhook refused: bad or missing X-Twilio-Signature");
        return refuse(StatusCode::FORBIDDEN, "bad_signature");
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Middleware over every request (WebSocket upgrades included): resolve the [`Client`] once
/// (handlers find it in the request's extensions) and charge its token bucket.
pub async fn rate_limit(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer {
        let client = Client::resolve(&state.admission.trusted, peer, req.headers());
        req.extensions_mut().insert(client);
        if !state.admission.rate.admit(client.ip, Instant::now()) {
            return refuse(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        }
    }
    next.run(req).await
}
