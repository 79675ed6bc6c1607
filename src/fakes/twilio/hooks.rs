//! Requests the fake makes to the application, signed as Twilio signs them
//! (`X-Twilio-Signature` = HMAC-SHA1 of the URL plus the sorted POST parameters, keyed by the
//! auth token; for GET the parameters go in the query and only the URL is signed): the TwiML
//! fetch, status callbacks, the async AMD verdict and stream status callbacks.
//!
//! Each call's callbacks go through its own bounded queue and one delivery task, so they
//! arrive in the order the call produced them and a slow receiver never holds up the call.
//! When the queue is full a callback is dropped and recorded as undelivered. Every attempt
//! is recorded in [`Delivered`], with the receiver's status or the transport error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Shared;
use super::observed::{CallbackKind, Delivered};
use super::request::Hook;
use crate::twilio::signature;

/// Twilio gives up on a webhook after 15 s.
const HOOK_TIMEOUT: Duration = Duration::from_secs(15);
/// Callbacks a call may have waiting for delivery.
const QUEUE: usize = 64;
/// Largest TwiML document read.
const MAX_TWIML_BYTES: usize = 64 * 1024;

/// Send one signed request; the answer's status and body (TwiML), or why there was none.
pub async fn request(
    shared: &Shared,
    call_sid: &str,
    kind: CallbackKind,
    hook: &Hook,
    params: Vec<(String, String)>,
) -> Result<(u16, String), String> {
    let token = &shared.config.auth_token;
    let (url, signature, builder) = if hook.method == "GET" {
        let query = serde_urlencoded::to_string(&params).unwrap_or_default();
        let sep = if hook.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}{query}", hook.url);
        let sig = signature::compute(token, &url, &[]);
        let b = shared.http.get(&url);
        (url, sig, b)
    } else {
        let sig = signature::compute(token, &hook.url, &params);
        let body = serde_urlencoded::to_string(&params).unwrap_or_default();
        let b = shared
            .http
            .post(&hook.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        (hook.url.clone(), sig, b)
    };
    let sent = builder
        .header("x-twilio-signature", &signature)
        .header("user-agent", "TwilioProxy/1.1")
        .header("i-twilio-idempotency-token", uuidish())
        .timeout(HOOK_TIMEOUT)
        .send()
        .await;
    let result = match sent {
        Err(e) => Err(e.without_url().to_string()),
        Ok(mut r) => {
            let status = r.status().as_u16();
            let mut body = Vec::new();
            while let Ok(Some(chunk)) = r.chunk().await {
                if body.len() + chunk.len() > MAX_TWIML_BYTES {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        }
    };
    shared.observed.callbacks.push(Delivered {
        at: Instant::now(),
        call_sid: call_sid.to_owned(),
        kind,
        url,
        params,
        signature,
        response: result.as_ref().map(|(s, _)| *s).map_err(Clone::clone),
    });
    result
}

/// A callback waiting for delivery.
struct Queued {
    kind: CallbackKind,
    hook: Hook,
    params: Vec<(String, String)>,
}

/// One call's callback queue and its delivery task.
pub struct CallbackQueue {
    tx: mpsc::Sender<Queued>,
    task: JoinHandle<()>,
    shared: Arc<Shared>,
    call_sid: String,
}

impl CallbackQueue {
    pub fn start(shared: Arc<Shared>, call_sid: &str) -> Self {
        let (tx, mut rx) = mpsc::channel::<Queued>(QUEUE);
        let (s, sid) = (Arc::clone(&shared), call_sid.to_owned());
        let task = tokio::spawn(async move {
            while let Some(q) = rx.recv().await {
                let copies = if q.kind == CallbackKind::Status && s.config.duplicate_callbacks {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let _ = request(&s, &sid, q.kind, &q.hook, q.params.clone()).await;
                }
            }
        });
        Self {
            tx,
            task,
            shared,
            call_sid: call_sid.to_owned(),
        }
    }

    /// Queue a callback (dropped, and recorded as such, when the queue is full).
    pub fn push(&self, kind: CallbackKind, hook: &Hook, params: Vec<(String, String)>) {
        let q = Queued {
            kind,
            hook: hook.clone(),
            params,
        };
        if let Err(e) = self.tx.try_send(q) {
            let q = match e {
                mpsc::error::TrySendError::Full(q) | mpsc::error::TrySendError::Closed(q) => q,
            };
            self.shared.observed.callbacks.push(Delivered {
                at: Instant::now(),
                call_sid: self.call_sid.clone(),
                kind: q.kind,
                url: q.hook.url,
                params: q.params,
                signature: String::new(),
                response: Err("callback queue full: dropped".into()),
            });
        }
    }

    /// Deliver what is queued, then stop.
    pub async fn drain(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

/// A value in the shape of Twilio's idempotency token (unique per request).
fn uuidish() -> String {
    super::new_sid("")
}
