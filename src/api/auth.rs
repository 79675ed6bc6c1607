//! API authentication: `Authorization: Bearer <token>` against the tokens in
//! `VOXBRIDGE_API_TOKENS` (comma-separated), compared in constant time (SHA-256 digests, every
//! token checked). With no token configured the API answers only to loopback clients that did
//! not come through a proxy; `security.production` refuses to start without a token.
//!
//! This module decides who may call; it holds no token in clear text after start-up.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiState;
use super::problem::Problem;

/// The environment variable holding the API tokens.
pub const TOKENS_ENV: &str = "VOXBRIDGE_API_TOKENS";
/// Shortest token accepted when `security.production` is set.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why the API cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("security.production is set but {TOKENS_ENV} holds no API token")]
    NoToken,
    #[error("{TOKENS_ENV}: token {index} is shorter than {MIN_TOKEN_LEN} characters")]
    WeakToken { index: usize },
}

/// The accepted tokens (as digests).
#[derive(Clone, Default)]
pub struct ApiAuth {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiAuth")
            .field("tokens", &self.digests.len())
            .finish()
    }
}

impl ApiAuth {
    /// Tokens from `VOXBRIDGE_API_TOKENS`, checked against the production rules.
    pub fn from_env(production: bool) -> Result<Self, AuthError> {
        let raw = std::env::var(TOKENS_ENV).unwrap_or_default();
        Self::from_list(&raw, production)
    }

    /// Tokens from a comma-separated list (blank entries ignored).
    pub fn from_list(raw: &str, production: bool) -> Result<Self, AuthError> {
        let tokens: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if production && tokens.is_empty() {
            return Err(AuthError::NoToken);
        }
        for (i, t) in tokens.iter().enumerate() {
            if t.len() < MIN_TOKEN_LEN {
                if production {
                    return Err(AuthError::WeakToken { index: i + 1 });
                }
                tracing::warn!(
                    token = i + 1,
                    "{TOKENS_ENV}: a token shorter than {MIN_TOKEN_LEN} characters is easy to guess"
                );
            }
        }
        let auth = Self {
            digests: tokens.iter().map(|t| digest(t)).collect(),
        };
        if auth.is_open() {
            tracing::warn!(
                "{TOKENS_ENV} is not set: the REST API answers only to loopback clients (127.0.0.1, ::1)"
            );
        } else {
            tracing::info!(
                tokens = auth.digests.len(),
                "REST API requires a bearer token"
            );
        }
        Ok(auth)
    }

    /// No token configured: loopback only.
    pub fn is_open(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `token` is one of ours; takes the same time whichever (if any) matches.
    pub fn accepts(&self, token: &str) -> bool {
        let presented = digest(token);
        let mut ok = subtle::Choice::from(0);
        for d in &self.digests {
            ok |= d[..].ct_eq(&presented[..]);
        }
        bool::from(ok)
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Middleware guarding the API routes.
pub async fn require(State(state): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    match check(&state.auth, &req) {
        Ok(()) => next.run(req).await,
        Err(problem) => problem.into_response(),
    }
}

fn check(auth: &ApiAuth, req: &Request) -> Result<(), Problem> {
    if auth.is_open() {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let proxied = ["x-forwarded-for", "forwarded", "x-real-ip"]
            .iter()
            .any(|h| req.headers().contains_key(*h));
        return match peer {
            Some(addr) if addr.ip().is_loopback() && !proxied => Ok(()),
            _ => Err(Problem::forbidden(format!(
                "no API token is configured ({TOKENS_ENV}), so only direct loopback clients are served"
            ))),
        };
    }
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(Problem::unauthorized(
            "missing Authorization: Bearer <token>",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match token {
        Some(t) if auth.accepts(t) => Ok(()),
        Some(_) => Err(Problem::unauthorized("the bearer token is not accepted")),
        None => Err(Problem::unauthorized(
            "the Authorization header must be Bearer <token>",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let a = ApiAuth::from_list(" first-token-0123456 , ,second-token-abcdef", true).unwrap();
        assert!(!a.is_open());
        assert!(a.accepts("first-token-0123456"));
        assert!(a.accepts("second-token-abcdef"));
        assert!(!a.accepts("second-token-abcde"));
        assert!(!a.accepts(""));
        assert!(matches!(
            ApiAuth::from_list("", true),
            Err(AuthError::NoToken)
        ));
        assert!(matches!(
            ApiAuth::from_list("long-enough-token-1,short", true),
            Err(AuthError::WeakToken { index: 2 })
        ));
        assert!(ApiAuth::from_list("short", false).unwrap().accepts("short"));
        assert!(ApiAuth::from_list("", false).unwrap().is_open());
    }
}
