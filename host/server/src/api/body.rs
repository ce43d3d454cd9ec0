//! The request body, read whole before any handler runs, within a deadline
//! and a size limit: a client that trickles its body in to hold a connection
//! and a task is cut off with 408 (see also `crate::http` for the headers).

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Reads the whole request body before the handler runs, within `timeout`
/// and `limit`: a body that trickles in gets 408, one that is too large 413.
pub async fn body_deadline(timeout: Duration, limit: usize, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) if e.to_string().contains("length limit") => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "the request body is larger than the server accepts",
            )
            .code("body_too_large")
            .into_response();
        }
        Ok(Err(e)) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("the request body could not be read: {e}"),
            )
            .into_response();
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                format!("the request body did not arrive within {}s", timeout.as_secs_f64()),
            )
            .code("body_timeout")
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}
