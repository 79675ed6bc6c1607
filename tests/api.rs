//! The REST API through a real axum server on 127.0.0.1 with a SQLite store: auth, problem
//! details, filters, transcript negotiation, recordings with range requests and deletion, the
//! live-call routes, and the OpenAPI document against the router.

mod store_support;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use serde_json::Value;
use store_support::{at, full_record};
use tower::ServiceExt;
use voxbridge::api::{self, ApiAuth, ApiState};
use voxbridge::call::context::{CallContext, Direction as CallDirection, EngineKind};
use voxbridge::call::live::{Control, LiveCalls};
use voxbridge::store::CallStore;
use voxbridge::store::record::{Direction, Recording};
use voxbridge::store::recordings::RecordingStore;

const TOKEN: &str = "test-token-0123456789abcdef";

/// A call in progress, as a session registers it.
fn live_context() -> CallContext {
    CallContext {
        call_sid: "CA_live".into(),
        stream_sid: "MZ_live".into(),
        direction: CallDirection::Inbound,
        from: "+14155550100".into(),
        to: String::new(),
        profile: "support".into(),
        engine: EngineKind::Echo,
        parameters: Default::default(),
        started_at: std::time::SystemTime::now(),
    }
}

fn recordings() -> RecordingStore {
    RecordingStore::new(&voxbridge::config::Config::default().recording)
}

struct Api {
    base: String,
    store: Arc<dyn CallStore>,
    live: Arc<LiveCalls>,
    state: Arc<ApiState>,
    http: reqwest::Client,
}

async fn start(tokens: &str) -> Api {
    let store = store_support::sqlite().await;
    let live = Arc::new(LiveCalls::default());
    let auth = ApiAuth::from_list(tokens, false).unwrap();
    let state = ApiState::new(Some(Arc::clone(&store)), live.clone(), recordings(), auth);
    let app = api::router(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Api {
        base: format!("http://{addr}"),
        store,
        live,
        state,
        http: reqwest::Client::new(),
    }
}

impl Api {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }
}

async fn problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(ct, "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:voxbridge:problem:")
    );
    assert!(!body["title"].as_str().unwrap().is_empty());
    assert!(!body["detail"].as_str().unwrap().is_empty());
    body
}

#[tokio::test]
async fn without_tokens_loopback_is_served_and_others_are_not() {
    let api = start("").await;
    assert_eq!(api.get("/api/calls").await.status(), 200);
    // Through a proxy (forwarding headers) even a loopback peer is refused.
    let res = api
        .http
        .get(format!("{}/api/calls", api.base))
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let body = problem(res, 403).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("VOXBRIDGE_API_TOKENS")
    );
    // A peer off loopback (as axum's ConnectInfo reports it) is refused.
    let router = api::router(Arc::clone(&api.state));
    let mut req = Request::get("/api/calls").body(Body::empty()).unwrap();
    let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let res = router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 403);
    // The description is public.
    assert_eq!(api.get("/api/openapi.json").await.status(), 200);
}

#[tokio::test]
async fn with_tokens_a_bearer_token_is_required() {
    let api = start(&format!("other-token-000000000000,{TOKEN}")).await;
    let res = api.get("/api/calls").await;
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"voxbridge\""
    );
    problem(res, 401).await;
    let wrong = api
        .http
        .get(format!("{}/api/calls", api.base))
        .bearer_auth("test-token-0123456789abcdeX")
        .send()
        .await
        .unwrap();
    problem(wrong, 401).await;
    let basic = api
        .http
        .get(format!("{}/api/calls", api.base))
        .basic_auth("user", Some(TOKEN))
        .send()
        .await
        .unwrap();
    problem(basic, 401).await;
    let ok = api
        .http
        .get(format!("{}/api/calls", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let mut entry = api.live.register(&live_context());
    let mut control = entry.take_control().unwrap();
    let live = api
        .http
        .post(format!("{}/api/calls/CA_live/hangup", api.base))
        .send()
        .await
        .unwrap();
    problem(live, 401).await;
    assert!(control.try_recv().is_err(), "refused means not done");
    assert_eq!(api.get("/api/docs").await.status(), 200);
}

#[tokio::test]
async fn bad_parameters_are_named_and_unknown_calls_are_404() {
    let api = start("").await;
    for (query, param) in [
        ("band=awful", "band"),
        ("since=yesterday", "since"),
        ("limit=1000", "limit"),
        ("cursor=bogus", "cursor"),
        ("direction=sideways", "direction"),
        ("colour=red", "colour"),
    ] {
        let body = problem(api.get(&format!("/api/calls?{query}")).await, 400).await;
        assert_eq!(body["parameter"], param, "{query}");
        assert!(
            body["detail"].as_str().unwrap().starts_with(param),
            "{body}"
        );
    }
    let body = problem(api.get("/api/calls/CA_unknown").await, 404).await;
    assert!(body["detail"].as_str().unwrap().contains("CA_unknown"));
    problem(api.get("/api/calls/CA_unknown/transcript").await, 404).await;
    problem(api.get("/api/calls/CA_unknown/recording").await, 404).await;
    let body = problem(api.get("/api/calls/bad%20sid").await, 400).await;
    assert_eq!(body["parameter"], "call_sid");
}

#[tokio::test]
async fn list_record_and_transcript() {
    let api = start("").await;
    for i in 0..5 {
        let mut r = full_record(&format!("CA_l{i}"), at(i));
        if i % 2 == 0 {
            r.direction = Direction::Outbound;
        }
        api.store.upsert(&r).await.unwrap();
    }
    let page: Value = api
        .get("/api/calls?limit=2&direction=outbound")
        .await
        .json()
        .await
        .unwrap();
    let sids: Vec<&str> = page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["CA_l4", "CA_l2"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next: Value = api
        .get(&format!(
            "/api/calls?limit=2&direction=outbound&cursor={cursor}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["calls"][0]["call_sid"], "CA_l0");
    assert!(next["next_cursor"].is_null());
    let filtered: Value = api
        .get("/api/calls?number=%2B14155550100&band=fair&reason=high_jitter&since=2023-11-14T22:13:20Z")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["calls"].as_array().unwrap().len(), 5);

    let record: Value = api.get("/api/calls/CA_l1").await.json().await.unwrap();
    assert_eq!(record["call_sid"], "CA_l1");
    assert_eq!(record["quality"]["band"], "fair");
    assert_eq!(record["events"]["turns"].as_array().unwrap().len(), 3);
    assert_eq!(record["events"]["timeline"].as_array().unwrap().len(), 12);

    let res = api.get("/api/calls/CA_l1/transcript").await;
    assert_eq!(res.headers()["content-type"], "application/json");
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["turns"][0]["role"], "agent");
    let res = api
        .http
        .get(format!("{}/api/calls/CA_l1/transcript", api.base))
        .header("Accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    let text = res.text().await.unwrap();
    assert!(
        text.starts_with("[00:00.2] agent: Hello, how can I help?\n"),
        "{text}"
    );
    assert!(text.contains("(interrupted)"));
}

#[tokio::test]
async fn recording_with_ranges_and_deletion() {
    let api = start("").await;
    let dir = store_support::temp_dir("rec");
    let path = dir.join("CA_r.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..16000 {
        w.write_sample(((i * 37) % 2000) as i16 - 1000).unwrap();
    }
    w.finalize().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let mut r = full_record("CA_r", at(0));
    r.recording = Some(Recording {
        location: path.display().to_string(),
        content_type: "audio/wav".into(),
    });
    api.store.upsert(&r).await.unwrap();

    let whole = api.get("/api/calls/CA_r/recording").await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-type"], "audio/wav");
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.unwrap(), bytes);

    let part = api
        .http
        .get(format!("{}/api/calls/CA_r/recording", api.base))
        .header("Range", "bytes=100-1123")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-1123/{}", bytes.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), &bytes[100..1124]);
    let outside = api
        .http
        .get(format!("{}/api/calls/CA_r/recording", api.base))
        .header("Range", format!("bytes={}-", bytes.len() + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), 416);

    let del = api
        .http
        .delete(format!("{}/api/calls/CA_r/recording", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert!(!path.exists(), "the file is deleted");
    let rec = api.store.get("CA_r").await.unwrap().unwrap();
    assert!(rec.recording.is_none(), "the location is cleared");
    assert!(!rec.events.turns.is_empty(), "the rest stays");
    problem(api.get("/api/calls/CA_r/recording").await, 404).await;
    let again = api
        .http
        .delete(format!("{}/api/calls/CA_r/recording", api.base))
        .send()
        .await
        .unwrap();
    problem(again, 404).await;
}

#[tokio::test]
async fn live_calls_and_hangup() {
    let api = start("").await;
    let mut entry = api.live.register(&live_context());
    let mut control = entry.take_control().unwrap();
    let live: Value = api.get("/api/calls/live").await.json().await.unwrap();
    assert_eq!(live["calls"][0]["call_sid"], "CA_live");
    assert_eq!(live["calls"][0]["speaking"], "nobody");
    assert_eq!(live["calls"][0]["agent_profile"], "support");
    assert_eq!(live["calls"][0]["engine"], "echo");
    assert_eq!(live["calls"][0]["from"], "+14155550100");
    assert!(live["calls"][0]["to"].is_null());
    let ok = api
        .http
        .post(format!("{}/api/calls/CA_live/hangup", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["hangup"], "requested");
    assert_eq!(control.try_recv().unwrap(), Control::Hangup);
    let gone = api
        .http
        .post(format!("{}/api/calls/CA_other/hangup", api.base))
        .send()
        .await
        .unwrap();
    problem(gone, 404).await;
    drop(entry);
    let live: Value = api.get("/api/calls/live").await.json().await.unwrap();
    assert_eq!(
        live["calls"].as_array().unwrap().len(),
        0,
        "unlisted when the call ends"
    );
}

#[tokio::test]
async fn records_off_answer_503_as_problem() {
    let state = ApiState::new(
        None,
        Arc::new(LiveCalls::default()),
        recordings(),
        ApiAuth::default(),
    );
    let router = api::router(state);
    let mut req = Request::get("/api/calls").body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo::<SocketAddr>("127.0.0.1:1".parse().unwrap()));
    let res = router.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

/// Every operation in the document is served by the router (not 404 for an unknown route, not
/// 405), and on every documented path the undocumented methods are refused with 405: the
/// router has no route or method the document does not describe.
#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let api = start("").await;
    let doc: Value = api.get("/api/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc,
        serde_json::to_value(api::openapi()).unwrap(),
        "served = generated"
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    let mut ids: Vec<String> = Vec::new();
    for (path, item) in paths {
        let concrete = path.replace("{call_sid}", "CA_unknown");
        for method in ["get", "post", "put", "patch", "delete"] {
            let req = api.http.request(
                method.to_uppercase().parse().unwrap(),
                format!("{}{concrete}", api.base),
            );
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            if let Some(op) = item.get(method) {
                operations += 1;
                let id = op["operationId"].as_str().expect("operationId").to_owned();
                assert!(!ids.contains(&id), "operationId {id} is not unique");
                ids.push(id);
                assert_ne!(status, 405, "{method} {path} documented but not routed");
                if status == 404 {
                    assert_eq!(
                        res.headers()["content-type"],
                        "application/problem+json",
                        "{method} {path}: a router 404 (no route), not the handler's"
                    );
                }
                assert!(
                    op["responses"].get(status.to_string()).is_some(),
                    "{method} {path} answered {status}, which the document does not list"
                );
                assert!(op["summary"].is_string(), "{method} {path} has a summary");
            } else {
                assert_eq!(status, 405, "{method} {path} is routed but not documented");
            }
        }
    }
    assert_eq!(
        operations, 23,
        "the 23 operations of the API (9 for records and live calls, 14 for outbound calls, campaigns and the do-not-call list)"
    );
    // Every $ref points at a schema the document defines.
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &piece[..piece.find('"').unwrap()];
        assert!(schemas.contains_key(name), "missing schema {name}");
    }
    for name in [
        "CallRecord",
        "CallPage",
        "Problem",
        "Transcript",
        "LiveCallList",
        "HangupAccepted",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let html = api.get("/api/docs").await.text().await.unwrap();
    for (path, _) in paths {
        assert!(html.contains(path.as_str()), "docs page lists {path}");
    }
}
