//! The dashboard's static files from `ApiConfig.web_dir` (`index.html` for `/` and `/3d`, the
//! build's `assets/`), read per request so a dashboard built after start is picked up; a small
//! placeholder page when it is not built.

use std::path::{Component, Path as FsPath, PathBuf};

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use super::{ApiError, ApiState};

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>twinline</title></head>
<body style="font:16px system-ui,sans-serif;margin:3rem auto;max-width:40rem">
<h1>twinline</h1>
<p>The dashboard is not built (no <code>index.html</code> in the configured web directory).
Build it with <code>npm run build</code> in <code>queries/web</code>, or set the web directory.</p>
<p>The API is up: see <a href="/docs">/docs</a>, <a href="/openapi.json">/openapi.json</a>,
<a href="/api/v1/digital-twin/state">the twin state</a> and <a href="/health">/health</a>.</p>
</body></html>
"#;

pub async fn index(State(state): State<ApiState>) -> Response {
    if let Some(dir) = &state.config.web_dir {
        if let Ok(bytes) = tokio::fs::read(dir.join("index.html")).await {
            return ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], bytes).into_response();
        }
    }
    Html(NOT_BUILT).into_response()
}

/// Only plain relative components: no `..`, no root, no prefix, so a request cannot leave the
/// assets directory.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let p = FsPath::new(path);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => out.push(part),
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn content_type(path: &FsPath) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "glb" => "model/gltf-binary",
        "gltf" => "model/gltf+json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

pub async fn asset(
    State(state): State<ApiState>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("not_found", format!("no asset {path:?}"));
    let dir = state.config.web_dir.as_ref().ok_or_else(not_found)?;
    let rel = safe_relative(&path).ok_or_else(not_found)?;
    let file = dir.join("assets").join(rel);
    let bytes = tokio::fs::read(&file).await.map_err(|_| not_found())?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&file)),
            // Vite names assets by content hash, so they never change under a name.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::safe_relative;

    #[test]
    fn rejects_traversal() {
        assert!(safe_relative("../etc/passwd").is_none());
        assert!(safe_relative("a/../../b").is_none());
        assert!(safe_relative("/etc/passwd").is_none());
        assert!(safe_relative("").is_none());
        assert_eq!(
            safe_relative("js/app.js").unwrap().to_str(),
            Some("js/app.js")
        );
    }
}
