//! A call's recording: the file the record's location stands for now (the compacted Ogg/Opus
//! or WAV file, or the raw μ-law file before compaction, found by [`RecordingStore`]) served
//! with its content type and HTTP range requests (so a browser player can seek), and deleted
//! on request (privacy).
//!
//! This module does not make recordings; it serves and deletes what the record points to.
//! File system work runs on blocking threads.
//!
//! [`RecordingStore`]: crate::store::recordings::RecordingStore

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::services::ServeFile;
use utoipa::ToSchema;

use super::ApiState;
use super::problem::Problem;
use super::query::{CallSid, CallSidParam};
use crate::store::recordings::StoredRecording;

/// Audio bytes, as the OpenAPI document describes them.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct AudioBytes(#[allow(dead_code)] Vec<u8>);

/// A call's recording
///
/// The audio file (`audio/ogg` for Ogg/Opus, `audio/wav` where the build has no Opus), with
/// `Range` requests answered `206 Partial Content`.
#[utoipa::path(
    get,
    path = "/api/calls/{call_sid}/recording",
    operation_id = "getRecording",
    tag = "recordings",
    params(
        CallSidParam,
        ("Range" = Option<String>, Header, description = "A byte range, e.g. bytes=0-1023"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The whole recording", content(
            (AudioBytes = "audio/ogg"),
            (AudioBytes = "audio/wav"),
        )),
        (status = 206, description = "The requested byte range", content(
            (AudioBytes = "audio/ogg"),
            (AudioBytes = "audio/wav"),
        )),
        (status = 400, description = "Bad call_sid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token configured and the client is not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call, no recording, or its file is gone", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "The range is outside the file"),
        (status = 503, description = "Call records are off, or the database is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<Arc<ApiState>>,
    CallSid(call_sid): CallSid,
    req: Request,
) -> Result<Response, Problem> {
    let record = state.record(&call_sid).await?;
    let Some(recording) = record.recording else {
        return Err(Problem::not_found(format!(
            "call {call_sid} has no recording"
        )));
    };
    let Some(file) = resolve(&state, &call_sid, &recording.location).await? else {
        tracing::warn!(call_sid = %call_sid, location = %recording.location, "recording file missing");
        return Err(Problem::not_found(format!(
            "the recording file of call {call_sid} is missing"
        )));
    };
    let mime: mime::Mime = file
        .content_type
        .parse()
        .unwrap_or(mime::APPLICATION_OCTET_STREAM);
    let res = ServeFile::new_with_mime(&file.path, &mime)
        .try_call(req)
        .await
        .map_err(|e| {
            tracing::warn!(call_sid = %call_sid, error = %e, "recording file unreadable");
            Problem::internal(format!("the recording of call {call_sid} cannot be read"))
        })?;
    let mut res = res.map(Body::new);
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}

/// The file behind a record's recording location now (compacted or still raw), looked up on a
/// blocking thread.
async fn resolve(
    state: &ApiState,
    call_sid: &str,
    location: &str,
) -> Result<Option<StoredRecording>, Problem> {
    let store = state.recordings.clone();
    let path = PathBuf::from(location);
    let found = tokio::task::spawn_blocking(move || store.resolve(&path)).await;
    match found {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => {
            tracing::warn!(call_sid, error = %e, "recording lookup failed");
            Err(Problem::internal(format!(
                "the recording of call {call_sid} cannot be looked up"
            )))
        }
        Err(e) => {
            tracing::error!(call_sid, error = %e, "recording lookup task failed");
            Err(Problem::internal("recording lookup failed"))
        }
    }
}

/// Delete a call's recording
///
/// Deletes the file and clears the record's recording location (privacy requests). The rest
/// of the record (transcript, quality) stays.
#[utoipa::path(
    delete,
    path = "/api/calls/{call_sid}/recording",
    operation_id = "deleteRecording",
    tag = "recordings",
    params(CallSidParam),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Bad call_sid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No token configured and the client is not on loopback", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call, or it has no recording", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Call records are off, or the database is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    State(state): State<Arc<ApiState>>,
    CallSid(call_sid): CallSid,
) -> Result<Response, Problem> {
    let record = state.record(&call_sid).await?;
    let Some(recording) = record.recording else {
        return Err(Problem::not_found(format!(
            "call {call_sid} has no recording"
        )));
    };
    let store = state.recordings.clone();
    let path = PathBuf::from(&recording.location);
    let deleted = tokio::task::spawn_blocking(move || store.delete(&path)).await;
    match deleted {
        // Already gone (`false`): clearing the location finishes the job.
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(call_sid = %call_sid, location = %recording.location, error = %e, "cannot delete recording");
            return Err(Problem::internal(format!(
                "the recording of call {call_sid} could not be deleted"
            )));
        }
        Err(e) => {
            tracing::error!(call_sid = %call_sid, error = %e, "recording delete task failed");
            return Err(Problem::internal("recording delete failed"));
        }
    }
    state.store()?.set_recording(&call_sid, None).await?;
    tracing::info!(call_sid = %call_sid, "recording deleted through the API");
    Ok(StatusCode::NO_CONTENT.into_response())
}
