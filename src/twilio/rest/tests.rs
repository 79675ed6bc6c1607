use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};

use super::*;
use crate::fakes::{FakeServer, Observed};

/// What the fake Twilio saw: (account, call segment, Authorization, form).
type Seen = (String, String, String, HashMap<String, String>);

#[derive(Clone, Default)]
struct Fake {
    seen: Observed<Seen>,
    reply: Arc<Mutex<Option<(u16, Value)>>>,
}

async fn start() -> (FakeServer, Fake) {
    let fake = Fake::default();
    let router = Router::new()
        .route("/2010-04-01/Accounts/{account}/Calls/{call}", post(update))
        .with_state(fake.clone());
    (FakeServer::start(router, 0).await.unwrap(), fake)
}

async fn update(
    State(fake): State<Fake>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    fake.seen.push((account, call, auth.to_string(), form));
    let reply = fake.reply.lock().unwrap().clone();
    let (status, body) = reply.unwrap_or((200, json!({"sid": "CA1", "status": "completed"})));
    (StatusCode::from_u16(status).unwrap(), Json(body))
}

fn client(server: &FakeServer) -> TwilioRest {
    TwilioRest::new(&server.http_url(), "AC123", Secret::new("tok3n")).unwrap()
}

fn basic() -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode("AC123:tok3n");
    format!("Basic {b64}")
}

#[tokio::test]
async fn hang_up_posts_status_completed_with_basic_auth() {
    let (server, fake) = start().await;
    client(&server).hang_up("CAabc").await.unwrap();
    let seen = fake.seen.snapshot();
    assert_eq!(seen.len(), 1);
    let (account, call, auth, form) = &seen[0];
    assert_eq!((account.as_str(), call.as_str()), ("AC123", "CAabc.json"));
    assert_eq!(auth, &basic());
    assert_eq!(
        form,
        &HashMap::from([("Status".to_string(), "completed".to_string())])
    );
}

#[tokio::test]
async fn transfer_posts_escaped_dial_twiml() {
    let (server, fake) = start().await;
    let rest = client(&server);
    rest.transfer("CAabc", "+15551234567").await.unwrap();
    rest.transfer("CAabc", "+1<&>").await.unwrap();
    let seen = fake.seen.snapshot();
    assert_eq!(
        seen[0].3["Twiml"],
        "<Response><Dial>+15551234567</Dial></Response>"
    );
    assert_eq!(
        seen[1].3["Twiml"],
        "<Response><Dial>+1&lt;&amp;&gt;</Dial></Response>"
    );
    assert_eq!(seen[1].3.len(), 1);
}

#[tokio::test]
async fn call_already_ended_is_ok_and_errors_classify() {
    let (server, fake) = start().await;
    let rest = client(&server);
    let set = |status: u16, body: Value| *fake.reply.lock().unwrap() = Some((status, body));
    set(
        404,
        json!({"code": 20404, "message": "The requested resource was not found", "status": 404}),
    );
    assert_eq!(rest.hang_up("CAgone").await, Ok(()));
    set(404, json!({"code": 20001, "message": "other"}));
    assert_eq!(rest.hang_up("CAx").await.unwrap_err().kind(), "rejected");
    set(401, json!({"code": 20003, "message": "Authenticate"}));
    assert_eq!(
        rest.transfer("CAx", "+15551234567")
            .await
            .unwrap_err()
            .kind(),
        "unauthorized"
    );
    set(503, json!({}));
    assert_eq!(
        rest.hang_up("CAx").await.unwrap_err().kind(),
        "server_error"
    );
}

#[tokio::test]
async fn path_segments_are_encoded_and_unreachable_hosts_fail_to_connect() {
    let (server, fake) = start().await;
    client(&server).hang_up("CA/../x y").await.unwrap_or(());
    assert!(
        fake.seen.snapshot().iter().all(|s| s.0 == "AC123"),
        "no path escape"
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let rest =
        TwilioRest::new(&format!("http://127.0.0.1:{port}"), "AC1", Secret::new("t")).unwrap();
    assert_eq!(rest.hang_up("CA1").await.unwrap_err().kind(), "connect");
    assert!(!format!("{rest:?}").contains("tok3n"));
    assert_eq!(
        TwilioRest::new("", "AC1", Secret::new("t"))
            .unwrap()
            .base_url,
        DEFAULT_BASE_URL
    );
    assert_eq!(encode("a b&c=+<"), "a%20b%26c%3D%2B%3C");
}
