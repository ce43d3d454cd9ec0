//! The admin API, on its own listener (default 127.0.0.1:8081) and guarded by
//! the admin key from the config (`Authorization: Bearer KEY`):
//!
//! - `GET  /admin/plugins`: every plugin of the serving version (kind,
//!   contract and plugin versions, content hash, origin, load time, status,
//!   last refused update, call and error counts, rollback depth);
//! - `PUT  /admin/plugins/{name}`: upload a new component for a pipeline plugin;
//! - `POST /admin/reload`: re-read the config file and plugin files;
//! - `POST /admin/plugins/{name}/rollback`: back to the previous good version.
//!
//! A refused update answers 422 with the reason; the serving version stays.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;

use super::{Reloader, Report, build::BuildError};

/// Largest component an upload may carry.
const MAX_UPLOAD: usize = 64 << 20;

#[derive(Clone)]
struct Admin {
    reloader: Arc<Reloader>,
    key_sha256: [u8; 32],
}

pub fn router(reloader: Arc<Reloader>, key: &str) -> Router {
    let state = Admin { reloader, key_sha256: crate::tenancy::keys::digest(key) };
    Router::new()
        .route("/admin/plugins", get(list))
        .route("/admin/plugins/{name}", put(upload))
        .route("/admin/plugins/{name}/rollback", post(rollback))
        .route("/admin/reload", post(reload))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .layer(axum::middleware::from_fn_with_state(state.clone(), authorized))
        .with_state(state)
}

/// Checks the admin key before anything else runs, the body included: an
/// unauthenticated upload is refused without reading a byte of it.
async fn authorized(State(a): State<Admin>, req: Request, next: Next) -> Response {
    if crate::tenancy::keys::matches(req.headers(), &a.key_sha256) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": {"message": "missing or wrong admin key", "type": "authentication_error"}})),
    )
        .into_response()
}

fn answer(r: Result<Report, BuildError>) -> Response {
    match r {
        Ok(rep) => (StatusCode::OK, axum::Json(rep.json())).into_response(),
        Err(e) => {
            let body = json!({"error": {"message": format!("update refused, the serving version stays: {e}"), "type": "reload_refused", "plugin": e.plugin}});
            (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("reload task panicked")
}

async fn list(State(a): State<Admin>) -> Response {
    axum::Json(a.reloader.describe()).into_response()
}

async fn upload(State(a): State<Admin>, Path(name): Path<String>, body: Bytes) -> Response {
    let r = a.reloader.clone();
    answer(blocking(move || r.upload(&name, body.to_vec())).await)
}

async fn rollback(State(a): State<Admin>, Path(name): Path<String>) -> Response {
    let r = a.reloader.clone();
    answer(blocking(move || r.rollback(&name)).await)
}

async fn reload(State(a): State<Admin>) -> Response {
    let r = a.reloader.clone();
    answer(blocking(move || r.reload("admin")).await)
}
