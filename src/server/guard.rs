//! Who may talk to us, and how much: Twilio signature checks for the webhooks and the media
//! WebSocket upgrade, per-IP request rate limits, and the public URL a request was signed for.
//!
//! Refusals are clean HTTP answers (403 bad signature, 429 too many requests) counted in
//! `voxbridge_requests_refused_total{reason}`. Secrets are only ever used, never logged.
//! This module decides admission; it never sees call state.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::counter;
use tracing::warn;

use super::AppState;
use crate::twilio::signature;

pub use crate::metrics::REQUESTS_REFUSED;

/// Count and answer a refusal.
pub fn refuse(status: StatusCode, reason: &'static str) -> Response {
    counter!(REQUESTS_REFUSED, "reason" => reason).increment(1);
    (status, format!("{reason}\n")).into_response()
}

/// The client's address: the socket peer, or the first X-Forwarded-For hop behind a trusted
/// proxy.
pub fn client_ip(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Option<IpAddr> {
    if state.config.security.trust_proxy
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(ip);
    }
    peer.map(|p| p.ip())
}

/// (scheme, host) of the public URL Twilio used for this request.
pub fn public_origin(state: &AppState, headers: &HeaderMap, websocket: bool) -> (String, String) {
    let sec = &state.config.security;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut scheme = sec.public_scheme.clone();
    let mut host = header(header::HOST.as_str()).unwrap_or_default();
    if !state.config.server.public_host.is_empty() {
        host = state.config.server.public_host.clone();
    }
    if sec.trust_proxy {
        if let Some(proto) = header("x-forwarded-proto") {
            scheme = proto.split(',').next().unwrap_or("https").trim().to_owned();
        }
        if let Some(h) = header("x-forwarded-host") {
            host = h.split(',').next().unwrap_or_default().trim().to_owned();
        }
    }
    if websocket {
        scheme = if scheme == "http" || scheme == "ws" {
            "ws".into()
        } else {
            "wss".into()
        };
    }
    (scheme, host)
}

/// Is this request signed by Twilio? `true` when validation is off or no token is set.
pub fn signed(
    state: &AppState,
    headers: &HeaderMap,
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
    let (scheme, host) = public_origin(state, headers, websocket);
    signature::candidate_urls(&scheme, &host, path_and_query)
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
    if !signed(&state, &parts.headers, path, &params, false) {
        warn!(path, "webhook refused: bad or missing X-Twilio-Signature");
        return refuse(StatusCode::FORBIDDEN, "bad_signature");
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Middleware: per-IP token bucket over every request (WebSocket upgrades included).
pub async fn rate_limit(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(ip) = client_ip(&state, req.headers(), peer)
        && !state.rate.admit(ip, Instant::now())
    {
        return refuse(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    }
    next.run(req).await
}

/// Per-IP token buckets: `per_minute` requests a minute, bursts up to the same number.
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Buckets kept before idle (full) ones are swept.
const MAX_TRACKED_IPS: usize = 10_000;

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token for `ip`; false when its bucket is empty. `per_minute = 0`: no limit.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let cap = f64::from(self.per_minute);
        let rate = cap / 60.0;
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        if buckets.len() > MAX_TRACKED_IPS {
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < cap
            });
        }
        let (tokens, at) = buckets.entry(ip).or_insert((cap, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(cap);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_bucket_refills() {
        let r = RateLimiter::new(60);
        let ip: IpAddr = "127.0.0.1".parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let t0 = Instant::now();
        assert!((0..60).all(|_| r.admit(ip, t0)));
        assert!(!r.admit(ip, t0));
        assert!(r.admit(ip, t0 + Duration::from_secs(1)));
        assert!(!r.admit(ip, t0 + Duration::from_secs(1)));
        let other: IpAddr = IpAddr::from([10, 0, 0, 1]);
        assert!(r.admit(other, t0));
        assert!(RateLimiter::new(0).admit(ip, t0));
    }
}
