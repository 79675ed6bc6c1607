//! The HTTP/WebSocket server: router, shared state, start-up and graceful shutdown.
//!
//! [`Server::bind`] starts serving on the configured address (port 0 picks a free one) and
//! returns a handle; [`Server::shutdown`] drains: it stops accepting, waits for active calls up
//! to `server.drain_timeout_secs`, then closes the rest with 1001. State shared by handlers
//! lives in one `Arc<AppState>`; per-call state never does.

mod http;
mod media;
mod registry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use registry::CallRegistry;

use crate::call::services::CallServices;
use crate::call::summary::CallSummary;
use crate::config::Config;
use crate::metrics::{self, Metrics};
use crate::quality::notify::QualityOutlets;

/// What every handler can see.
pub struct AppState {
    pub config: Config,
    /// Speech providers and agent, shared by every call.
    pub services: Arc<CallServices>,
    pub metrics: Metrics,
    pub prometheus: PrometheusHandle,
    pub calls: Arc<CallRegistry>,
    /// Alert webhook and report file, shared by all calls.
    pub quality: QualityOutlets,
    /// Fired when shutdown starts: refuse new calls, report not ready.
    pub draining: CancellationToken,
    /// Fired when the drain deadline passes: end the calls still active.
    pub force_close: CancellationToken,
}

/// The router, without a listener (tests can drive it directly too).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/twilio/voice", post(http::voice))
        .route("/twilio/status", post(http::status))
        .route("/twilio/media", get(media::upgrade))
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        .route("/metrics", get(http::metrics))
        .with_state(state)
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    state: Arc<AppState>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Bind `config.server.listen` and start serving in the background.
    pub async fn bind(config: Config) -> std::io::Result<Self> {
        Self::bind_with(config, CallServices::echo()).await
    }

    /// Like [`Server::bind`], with the providers to use.
    pub async fn bind_with(config: Config, services: CallServices) -> std::io::Result<Self> {
        let services = Arc::new(services);
        let prometheus = metrics::install();
        let listener = TcpListener::bind(config.server.listen).await?;
        let addr = listener.local_addr()?;
        let quality = QualityOutlets::start(&config.quality, &config.alerts);
        let state = Arc::new(AppState {
            config,
            services,
            metrics: Metrics::new(),
            prometheus,
            quality,
            calls: Arc::new(CallRegistry::default()),
            draining: CancellationToken::new(),
            force_close: CancellationToken::new(),
        });
        let app = router(Arc::clone(&state));
        let draining = state.draining.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(draining.cancelled_owned())
                .await
        });
        info!(%addr, "voxbridge listening");
        Ok(Self { addr, state, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR/twilio/media`, for simulated calls against this server.
    pub fn media_url(&self) -> String {
        format!("ws://{}/twilio/media", self.addr)
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Summaries of calls that end from now on.
    pub fn subscribe_summaries(&self) -> broadcast::Receiver<Arc<CallSummary>> {
        self.state.calls.subscribe()
    }

    /// Stop accepting, let calls finish for up to `drain`, then close the rest.
    pub async fn shutdown(self, drain: Duration) {
        let active = self.state.calls.active();
        info!(
            active_calls = active,
            drain_secs = drain.as_secs(),
            "shutting down: draining calls"
        );
        self.state.draining.cancel();
        if tokio::time::timeout(drain, self.state.calls.idle())
            .await
            .is_err()
        {
            warn!(
                active_calls = self.state.calls.active(),
                "drain deadline passed: closing calls"
            );
            self.state.force_close.cancel();
            // Sessions end promptly once told; bound the wait anyway.
            let _ = tokio::time::timeout(Duration::from_secs(10), self.state.calls.idle()).await;
        }
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Err(e))) => warn!(error = %e, "server error during shutdown"),
            Err(_) => warn!("http connections still open after shutdown; exiting anyway"),
            _ => {}
        }
        info!("shutdown complete");
    }
}
