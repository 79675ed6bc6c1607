//! The OpenAI Realtime WebSocket client: connect (Bearer key, the beta header when
//! configured, a timeout), hand-shake (`session.created`, our `session.update`, the
//! `session.updated` echo, which must show μ-law both ways), then hand the socket to a
//! [`Connection`] (its task and channels are in `connection.rs`).
//!
//! Failures are classified once, here: HTTP 401/403 → unauthorized, 429 → rate limited,
//! close 3000 → unauthorized, a drop or other close → disconnected, no answer in time →
//! timeout, undecodable messages → malformed (counted and skipped, never fatal). Every one is
//! counted in `voxbridge_provider_errors_total{provider="openai_realtime"}` and logged once
//! with the call ids.
//!
//! What it must not do: reconnect on its own (the engine decides), or log the API key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use metrics::histogram;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, header::AUTHORIZATION};
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::{info, warn};

use super::config::{ApiShape, RealtimeConfig};
use super::connection::CLOSE_WAIT;
pub use super::connection::{Connection, RealtimeSender, SendError};
use super::wire::server::{AcceptedSession, ServerEvent, parse};
use super::wire::{BETA_HEADER, SessionSpec, session_update};
use super::{CONNECT_SECONDS, PROVIDER};
use crate::provider::{CallIds, ProviderError, Secret, count_error};

pub(super) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A connection could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The session did not take G.711 μ-law; playing it would be static on the line.
    #[error("session did not take G.711 u-law: input {input:?}, output {output:?}")]
    FormatNotTaken { input: String, output: String },
}

impl ConnectError {
    /// As a provider error, for `voxbridge_provider_errors_total{kind}` (a refused format is
    /// `rejected`).
    pub fn to_provider_error(&self) -> ProviderError {
        match self {
            ConnectError::Provider(e) => e.clone(),
            ConnectError::FormatNotTaken { .. } => ProviderError::Rejected {
                status: 400,
                message: self.to_string(),
            },
        }
    }

    pub fn kind(&self) -> &'static str {
        self.to_provider_error().kind()
    }
}

/// Opens Realtime sessions; cheap to clone and share between calls.
#[derive(Debug, Clone)]
pub struct RealtimeClient {
    opts: Arc<Options>,
}

#[derive(Debug)]
struct Options {
    cfg: RealtimeConfig,
    url: String,
    key: Secret,
    timeout: Duration,
}

impl RealtimeClient {
    /// A client for `cfg` authenticating with `key` (from `OPENAI_API_KEY`).
    pub fn new(cfg: &RealtimeConfig, key: Secret) -> Self {
        let url = format!("{}?model={}", cfg.base_url, cfg.model);
        let opts = Options {
            cfg: cfg.clone(),
            url,
            key,
            timeout: Duration::from_millis(cfg.connect_timeout_ms),
        };
        Self {
            opts: Arc::new(opts),
        }
    }

    pub fn config(&self) -> &RealtimeConfig {
        &self.opts.cfg
    }

    /// Connect and hand-shake `spec`'s session; on success the connection's task runs.
    pub async fn connect(
        &self,
        spec: &SessionSpec,
        call: &CallIds,
    ) -> Result<Connection, ConnectError> {
        let started = Instant::now();
        let result = self.handshake(spec).await;
        let api = self.opts.cfg.api;
        match result {
            Ok((ws, session)) => {
                histogram!(CONNECT_SECONDS).record(started.elapsed().as_secs_f64());
                info!(
                    call_sid = %call.call_sid, stream_sid = %call.stream_sid, provider = PROVIDER,
                    session_id = %session.id, ms = started.elapsed().as_millis() as u64,
                    "realtime session ready"
                );
                Ok(Connection::spawn(ws, api, session, call.clone()))
            }
            Err(error) => {
                let provider_error = error.to_provider_error();
                count_error(PROVIDER, &provider_error);
                warn!(
                    call_sid = %call.call_sid, stream_sid = %call.stream_sid, provider = PROVIDER,
                    kind = provider_error.kind(), %error, "realtime connect failed"
                );
                Err(error)
            }
        }
    }

    async fn handshake(&self, spec: &SessionSpec) -> Result<(Ws, AcceptedSession), ConnectError> {
        let limit = self.opts.timeout;
        let mut ws = self.open().await?;
        let created = wait_for(&mut ws, limit, "session.created", |e| {
            matches!(e, ServerEvent::SessionCreated(_))
        });
        created.await?;
        let update = session_update(&self.opts.cfg, spec);
        if let Err(e) = ws.send(Message::text(update)).await {
            return Err(ProviderError::Disconnected(e.to_string()).into());
        }
        let updated = wait_for(&mut ws, limit, "session.updated", |e| {
            matches!(e, ServerEvent::SessionUpdated(_))
        });
        let Some(ServerEvent::SessionUpdated(session)) = updated.await? else {
            return Err(ProviderError::Malformed("no session in session.updated".into()).into());
        };
        if !session.is_mulaw() {
            let _ = timeout(CLOSE_WAIT, ws.close(None)).await;
            return Err(ConnectError::FormatNotTaken {
                input: session.input_format,
                output: session.output_format,
            });
        }
        Ok((ws, session))
    }

    /// The WebSocket upgrade, classified.
    async fn open(&self) -> Result<Ws, ProviderError> {
        let mut request = self
            .opts
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ProviderError::Connect(e.to_string()))?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", self.opts.key.expose()))
            .map_err(|_| ProviderError::Connect("API key is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, auth);
        if self.opts.cfg.api == ApiShape::Beta {
            // BETA_HEADER.0, in the lower case `from_static` requires.
            headers.insert(
                HeaderName::from_static("openai-beta"),
                HeaderValue::from_static(BETA_HEADER.1),
            );
        }
        let limit = self.opts.timeout;
        match timeout(limit, tokio_tungstenite::connect_async(request)).await {
            Err(_) => Err(ProviderError::Timeout(format!(
                "no WebSocket upgrade within {} ms",
                limit.as_millis()
            ))),
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let body = response.body().as_deref().unwrap_or_default();
                let body = String::from_utf8_lossy(body);
                Err(ProviderError::from_status(
                    response.status().as_u16(),
                    &body,
                ))
            }
            Ok(Err(e)) => Err(ProviderError::Connect(e.to_string())),
        }
    }
}

/// Read until an event `wanted` accepts, within `limit`. An `error` event fails the
/// handshake (classified, else `rejected`); malformed messages are counted and skipped.
async fn wait_for(
    ws: &mut Ws,
    limit: Duration,
    what: &str,
    wanted: impl Fn(&ServerEvent) -> bool,
) -> Result<Option<ServerEvent>, ConnectError> {
    let read = async {
        loop {
            let text = match ws.next().await {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => return Err(closed(frame.as_ref()).into()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ProviderError::Disconnected(e.to_string()).into()),
                None => return Err(dropped().into()),
            };
            match parse(&text) {
                Ok(event) if wanted(&event) => return Ok(Some(event)),
                Ok(ServerEvent::Error(e)) => {
                    let error = e.failure().unwrap_or(ProviderError::Rejected {
                        status: 400,
                        message: format!("{}: {}", e.code(), e.message),
                    });
                    return Err(error.into());
                }
                Ok(_) => {}
                Err(e) => count_error(PROVIDER, &e),
            }
        }
    };
    match timeout(limit, read).await {
        Ok(result) => result,
        Err(_) => {
            Err(ProviderError::Timeout(format!("no {what} within {} ms", limit.as_millis())).into())
        }
    }
}

/// A close frame from the server, classified (3000: the key was refused).
pub(super) fn closed(frame: Option<&tungstenite::protocol::CloseFrame>) -> ProviderError {
    let (code, reason) = frame.map_or((1005, ""), |f| (u16::from(f.code), f.reason.as_str()));
    let message = format!("closed {code} {reason}");
    match code {
        3000 => ProviderError::Unauthorized {
            status: 401,
            message,
        },
        _ => ProviderError::Disconnected(message),
    }
}

pub(super) fn dropped() -> ProviderError {
    ProviderError::Disconnected("connection dropped without a close frame".into())
}
