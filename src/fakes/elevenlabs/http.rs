//! The fake's HTTP `stream` endpoint, and the paced chunked body shared with the OpenAI
//! speech fake.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::{AppState, ElevenLabsRequest, PACE, Transport, admit, error_response, new_record};
use crate::fakes::Fault;

/// The fields of the request body the fake uses.
#[derive(serde::Deserialize)]
struct HttpBody {
    text: String,
    #[serde(default)]
    model_id: String,
}

/// `POST /v1/text-to-speech/{voice_id}/stream`: the text spoken as a paced chunked body.
pub(super) async fn stream_http(
    State(state): State<AppState>,
    Path(voice_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut rec = new_record(Transport::Http, voice_id, &query);
    let format = match admit(&state, &headers, &mut rec) {
        Ok(format) => format,
        Err(status) => return error_response(status),
    };
    let parsed = serde_json::from_slice::<HttpBody>(&body)
        .ok()
        .filter(|b| !b.text.trim().is_empty());
    let Some(parsed) = parsed else {
        rec.status = 422;
        state.requests.push(rec);
        return error_response(422);
    };
    rec.model_id = parsed.model_id;
    rec.texts.push(parsed.text.clone());
    rec.status = 200;
    if let Some(Fault::Stall(d)) = rec.fault {
        tokio::time::sleep(d).await;
    }
    if rec.fault == Some(Fault::Malformed) {
        rec.completed = true;
        state.requests.push(rec);
        let page = "<html><body>502 Bad Gateway</body></html>";
        return ([(header::CONTENT_TYPE, "text/html")], page).into_response();
    }
    let chunks = format.speak(&parsed.text);
    let body = paced_body(chunks, rec, move |rec| state.requests.push(rec));
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// A chunked body sending `chunks` [`PACE`] apart. `rec` notes progress (`audio_messages`,
/// `audio_bytes`, `completed`, `cancelled`) and goes to `done` when the body ends; a
/// `DisconnectAfter(n)` fault in `rec.fault` aborts the body after `n` chunks.
pub(crate) fn paced_body<R, F>(chunks: Vec<Vec<u8>>, mut rec: R, done: F) -> Body
where
    R: PacedRecord + Send + 'static,
    F: FnOnce(R) + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        let cut = rec.disconnect_after();
        for (i, chunk) in chunks.into_iter().enumerate() {
            if cut == Some(i) {
                let _ = tx
                    .send(Err(std::io::Error::other("fault: disconnect")))
                    .await;
                done(rec);
                return;
            }
            let len = chunk.len();
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                rec.progress(None);
                done(rec);
                return;
            }
            rec.progress(Some(len));
            tokio::time::sleep(PACE).await;
        }
        // Wait until the body is consumed (or the client left) before reporting.
        let left = tokio::select! {
            () = tx.closed() => true,
            sent = tx.send(Ok(Bytes::new())) => sent.is_err(),
        };
        rec.finish(!left);
        done(rec);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}

/// What [`paced_body`] records about a streamed response.
pub(crate) trait PacedRecord {
    /// The `DisconnectAfter` fault, if any.
    fn disconnect_after(&self) -> Option<usize>;
    /// A chunk of `Some(bytes)` went out, or (`None`) the client went away.
    fn progress(&mut self, sent: Option<usize>);
    /// Every chunk went out; `consumed` = the client read to the end.
    fn finish(&mut self, consumed: bool);
}

impl PacedRecord for ElevenLabsRequest {
    fn disconnect_after(&self) -> Option<usize> {
        match self.fault {
            Some(Fault::DisconnectAfter(n)) => Some(n),
            _ => None,
        }
    }

    fn progress(&mut self, sent: Option<usize>) {
        match sent {
            Some(len) => {
                self.audio_messages += 1;
                self.audio_bytes += len;
                self.messages_sent += 1;
            }
            None => self.cancelled = true,
        }
    }

    fn finish(&mut self, consumed: bool) {
        self.completed = consumed;
        self.cancelled = !consumed;
    }
}
