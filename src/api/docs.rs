//! The API's description: the OpenAPI 3.1 document (`GET /api/openapi.json`, generated from the
//! handlers' annotations) and a plain server-rendered page listing the operations
//! (`GET /api/docs`). Nothing is fetched from elsewhere; neither needs a token.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{OpenApi, RefOr, Required};

static DOC_JSON: LazyLock<String> = LazyLock::new(|| {
    super::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
});

static DOC_HTML: LazyLock<String> = LazyLock::new(|| render(&super::openapi()));

/// The OpenAPI document
///
/// This API described in OpenAPI 3.1, generated from the server's code.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "getOpenApi",
    tag = "docs",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object, content_type = "application/json"))
)]
pub async fn openapi_json() -> Response {
    let mut res = DOC_JSON.as_str().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// The API reference page
///
/// Every operation with its parameters and responses, as a plain HTML page.
#[utoipa::path(
    get,
    path = "/api/docs",
    operation_id = "getDocs",
    tag = "docs",
    responses((status = 200, description = "The reference page", body = String, content_type = "text/html"))
)]
pub async fn page() -> Html<&'static str> {
    Html(DOC_HTML.as_str())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page for `doc`.
pub fn render(doc: &OpenApi) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>voxbridge REST API</title><style>\
         body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.4}\
         code{background:#f2f2f2;padding:0 .2em}.op{border-top:1px solid #ccc;padding:.5rem 0}\
         .m{font-weight:bold;display:inline-block;min-width:4.5em}table{border-collapse:collapse}\
         td,th{text-align:left;padding:.1rem .6rem .1rem 0;vertical-align:top}\
         </style></head><body>\n",
    );
    out.push_str(&format!(
        "<h1>{} <small>{}</small></h1>\n",
        esc(&doc.info.title),
        esc(&doc.info.version)
    ));
    if let Some(d) = &doc.info.description {
        out.push_str(&format!("<p>{}</p>\n", esc(d)));
    }
    out.push_str(
        "<p>Machine-readable: <a href=\"/api/openapi.json\"><code>/api/openapi.json</code></a>.</p>\n",
    );
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                operation(&mut out, method, path, op);
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}

fn operation(out: &mut String, method: &str, path: &str, op: &Operation) {
    out.push_str(&format!(
        "<section class=\"op\"><h2><span class=\"m\">{method}</span> <code>{}</code></h2>\n",
        esc(path)
    ));
    if let Some(s) = &op.summary {
        out.push_str(&format!("<p><strong>{}</strong></p>\n", esc(s)));
    }
    if let Some(d) = &op.description {
        out.push_str(&format!("<p>{}</p>\n", esc(d)));
    }
    if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
        out.push_str("<p>Needs <code>Authorization: Bearer &lt;token&gt;</code> (or, with no token configured, a loopback client).</p>\n");
    }
    let params: Vec<_> = op
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some(p),
            RefOr::Ref(_) => None,
        })
        .collect();
    if !params.is_empty() {
        out.push_str(
            "<table><tr><th>parameter</th><th>in</th><th></th><th>description</th></tr>\n",
        );
        for p in params {
            let place = match p.parameter_in {
                ParameterIn::Path => "path",
                ParameterIn::Query => "query",
                ParameterIn::Header => "header",
                _ => "other",
            };
            let required = if matches!(p.required, Required::True) {
                "required"
            } else {
                ""
            };
            out.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{place}</td><td>{required}</td><td>{}</td></tr>\n",
                esc(&p.name),
                esc(p.description.as_deref().unwrap_or(""))
            ));
        }
        out.push_str("</table>\n");
    }
    out.push_str("<p>Responses:</p><ul>\n");
    for (status, response) in &op.responses.responses {
        let text = match response {
            RefOr::T(r) => r.description.clone(),
            RefOr::Ref(_) => String::new(),
        };
        out.push_str(&format!(
            "<li><code>{}</code> {}</li>\n",
            esc(status),
            esc(&text)
        ));
    }
    out.push_str("</ul></section>\n");
}
