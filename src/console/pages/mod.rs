//! One file per console page; each handler reads through the API's state and renders a
//! template. Shared here: the home redirect and the console's 404.

pub mod call;
pub mod calls;
pub mod campaign;
pub mod campaigns;
mod charts;
pub mod live;
pub mod signin;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::Operator;
use super::view::PageError;

/// `GET /console`: the live calls page (or sign-in).
pub async fn home(_op: Operator) -> Redirect {
    Redirect::to("/console/live")
}

/// Any other path under `/console`.
pub async fn not_found() -> Response {
    PageError::new(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no console page at this address.",
    )
    .into_response()
}
