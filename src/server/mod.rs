//! The HTTP/WebSocket server: router, shared state, start-up and graceful shutdown.
//!
//! [`Server::bind`] starts serving on the configured address (port 0 picks a free one) through
//! our own accept loop ([`listener`]: connection caps and slow-client timeouts) and returns a
//! handle; [`Server::shutdown`] drains: it stops accepting, waits for active calls up to
//! `server.drain_timeout_secs`, then closes the rest with 1001. State shared by handlers lives
//! in one `Arc<AppState>`; per-call state never does.

pub mod client_ip;
pub mod conn_limit;
mod guard;
mod http;
pub mod listener;
mod media;
pub mod origin;
pub mod rate_limit;
mod registry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use guard::{Admission, OPEN_CONNECTIONS, REFUSAL_REASONS, REQUESTS_REFUSED};
pub use registry::CallRegistry;

use crate::call::recorder::{RecordingThreads, Recordings};
use crate::call::services::CallServices;
use crate::call::summary::CallSummary;
use crate::config::Config;
use crate::metrics::{self, Metrics};
use crate::quality::notify::QualityOutlets;
use crate::store::RecordWriter;

/// How long shutdown waits for call records still being written.
const RECORDS_FLUSH: Duration = Duration::from_secs(10);

/// How long shutdown waits for the recording writer to complete the last files.
const RECORDINGS_FLUSH: Duration = Duration::from_secs(5);

/// Start call recording as `config.recording` asks, unless the caller brought its own.
fn start_recordings(config: &Config, services: &mut CallServices) -> Option<RecordingThreads> {
    if services.recordings.is_some() {
        return None;
    }
    let (recordings, threads) = Recordings::start(config)?;
    services.recordings = Some(recordings);
    Some(threads)
}

/// What every handler can see.
pub struct AppState {
    pub config: Arc<Config>,
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
    /// Rate limit, connection caps, trusted proxies, call permits.
    pub admission: Admission,
    /// Writes call records in the background (`None` when `store.url` is empty).
    pub records: Option<RecordWriter>,
    /// Outbound calls and campaigns (`None` when `store.url` is empty).
    pub dialer: Option<Arc<crate::dialer::Dialer>>,
}

/// The public router (Twilio-facing), plus the admin routes unless they have their own listener.
pub fn router(state: Arc<AppState>) -> Router {
    let webhooks = Router::new()
        .route("/twilio/voice", post(http::voice))
        .route("/twilio/status", post(http::status))
        .route("/twilio/amd", post(http::amd))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            guard::webhook_signature,
        ));
    let mut app = Router::new()
        .merge(webhooks)
        .route("/twilio/media", get(media::upgrade));
    if state.config.security.admin_listen.is_empty() {
        app = app.merge(admin_routes());
    }
    app.layer(middleware::from_fn_with_state(
        Arc::clone(&state),
        guard::rate_limit,
    ))
    .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes))
    .with_state(state)
}

fn admin_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        .route("/metrics", get(http::metrics))
}

/// The dialer on the record store's database; Twilio reaches us at the public host (else the
/// bound address, for local runs).
fn dialer_for(
    config: &Config,
    sql: &crate::store::SqlStore,
    records: Option<Arc<dyn crate::store::CallStore>>,
    services: &CallServices,
    calls: &Arc<CallRegistry>,
    addr: SocketAddr,
) -> Arc<crate::dialer::Dialer> {
    use crate::store::CallStore as _;
    let host = match config.server.public_host.as_str() {
        "" => addr.to_string(),
        h => h.to_owned(),
    };
    let calls = Arc::clone(calls);
    crate::dialer::Dialer::new(crate::dialer::DialerParts {
        store: crate::dialer::DialerStore::new(sql.pool().clone(), sql.backend()),
        records,
        twilio: services.twilio.clone(),
        cfg: config.dialer.clone(),
        profile_voicemail: config.voicemail_messages(),
        public_base: format!("{}://{host}", config.security.public_scheme),
        max_calls: config.limits.max_calls,
        active_calls: Arc::new(move || calls.active()),
    })
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    state: Arc<AppState>,
    task: JoinHandle<std::io::Result<()>>,
    recording_threads: Option<RecordingThreads>,
}

impl Server {
    /// Bind `config.server.listen` and start serving in the background.
    pub async fn bind(config: Config) -> std::io::Result<Self> {
        Self::bind_with(config, CallServices::echo()).await
    }

    /// Like [`Server::bind`], with the providers to use.
    pub async fn bind_with(config: Config, mut services: CallServices) -> std::io::Result<Self> {
        let recording_threads = start_recordings(&config, &mut services);
        let prometheus = metrics::install();
        let public_tcp = listener::bind(config.server.listen)?;
        let addr = public_tcp.local_addr()?;
        let quality = QualityOutlets::start(&config.quality, &config.alerts);
        guard::register_reasons();
        listener::check_fd_limit(config.limits.max_connections);
        let admin_listen = config.security.admin_listen.clone();
        if !config.security.validate_signatures {
            tracing::warn!(
                "Twilio signature validation is switched off (security.validate_signatures = false)"
            );
        } else if services.auth_token.is_none() {
            tracing::warn!("TWILIO_AUTH_TOKEN not set: Twilio signatures are not checked");
        }
        let sql = match config.store.url.as_str() {
            "" => {
                info!("call records are off (store.url is empty)");
                None
            }
            _ => Some(Arc::new(
                crate::store::SqlStore::open(&config.store)
                    .await
                    .map_err(std::io::Error::other)?,
            )),
        };
        let store = sql.clone().map(|s| s as Arc<dyn crate::store::CallStore>);
        let api_auth = crate::api::ApiAuth::from_env(config.security.production)
            .map_err(std::io::Error::other)?;
        let records = store
            .as_ref()
            .map(|s| RecordWriter::start(Arc::clone(s), &config.store));
        services.records = records.clone();
        let services = Arc::new(services);
        let calls = Arc::new(CallRegistry::default());
        let dialer =
            sql.map(|sql| dialer_for(&config, &sql, store.clone(), &services, &calls, addr));
        let api_state = crate::api::ApiState::with_dialer(
            store,
            Arc::clone(&services.live),
            crate::store::recordings::RecordingStore::new(&config.recording),
            api_auth,
            dialer.clone(),
        );
        // The console shares the API's state (tokens, store, live calls, dialer).
        let api = crate::api::router(Arc::clone(&api_state))
            .merge(crate::console::router(api_state, &config));
        let state = Arc::new(AppState {
            services,
            metrics: Metrics::new(),
            prometheus,
            quality,
            calls,
            draining: CancellationToken::new(),
            force_close: CancellationToken::new(),
            admission: Admission::new(&config),
            config: Arc::new(config),
            records,
            dialer,
        });
        if let (Some(dialer), true) = (&state.dialer, state.config.dialer.enabled) {
            dialer.start(state.draining.clone());
        }
        let public = listener::Listener {
            listener: public_tcp,
            router: router(Arc::clone(&state)).merge(api),
            limits: Arc::clone(&state.admission.connections),
            trusted: state.admission.trusted.clone(),
            timeouts: listener::Timeouts::from_config(&state.config.limits),
            draining: state.draining.clone(),
        };
        let task = tokio::spawn(listener::serve(public));
        info!(%addr, "voxbridge listening");
        let admin_addr = match admin_listen.parse::<SocketAddr>() {
            Ok(admin) => {
                let admin_tcp = listener::bind(admin)?;
                let admin_addr = admin_tcp.local_addr()?;
                let limits = &state.config.limits;
                // Its own caps: a flood on the public side must not lock out the scraper.
                let admin = listener::Listener {
                    listener: admin_tcp,
                    router: admin_routes().with_state(Arc::clone(&state)),
                    limits: conn_limit::ConnLimits::new(
                        limits.max_connections,
                        limits.max_connections_per_ip,
                    ),
                    trusted: state.admission.trusted.clone(),
                    timeouts: listener::Timeouts::from_config(limits),
                    draining: state.draining.clone(),
                };
                tokio::spawn(listener::serve(admin));
                info!(addr = %admin_addr, "admin listener (metrics, health)");
                Some(admin_addr)
            }
            Err(_) => None,
        };
        Ok(Self {
            addr,
            admin_addr,
            state,
            task,
            recording_threads,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where /metrics and health are served when `security.admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
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
        if let Some(threads) = self.recording_threads {
            // Completes the files of the calls that ended (bounded), off the async threads.
            let stop = tokio::task::spawn_blocking(move || threads.stop(RECORDINGS_FLUSH));
            let _ = stop.await;
        }
        if let Some(records) = &self.state.records {
            records.shutdown(RECORDS_FLUSH).await;
        }
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Err(e))) => warn!(error = %e, "server error during shutdown"),
            Err(_) => warn!("http connections still open after shutdown; exiting anyway"),
            _ => {}
        }
        info!("shutdown complete");
    }
}
