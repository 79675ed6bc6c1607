//! Server-sent events for the live calls page: every 500 ms an `calls` event with the calls in
//! progress (the API's `LiveCall` JSON), so figures move at least once a second and a call that
//! ends leaves the list within a second. The stream ends when the operator's session does.
//!
//! One stream per open page; each holds only a timer and reads the live-calls registry (a
//! snapshot of `watch` values), never a call's task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream;

use super::ConsoleState;
use super::auth::Operator;
use super::pages::live;

/// How often the live list is sent.
pub const LIVE_PERIOD: Duration = Duration::from_millis(500);

/// `GET /console/live/events`.
pub async fn live(State(state): State<Arc<ConsoleState>>, op: Operator) -> impl IntoResponse {
    let mut ticker = tokio::time::interval(LIVE_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let events = stream::unfold(
        (state, op.session, ticker),
        |(state, session, mut ticker)| async move {
            ticker.tick().await;
            if !state.sessions.is_open(&session, Instant::now()) {
                return None;
            }
            let calls = live::calls(&state).await;
            let data = serde_json::to_string(&calls).unwrap_or_else(|_| "[]".into());
            let event = Event::default().event("calls").data(data);
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (state, session, ticker),
            ))
        },
    );
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
