//! OpenAI-shaped errors: `{"error": {"message", "type", "param", "code"}}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::pipeline::PipelineError;
use crate::pipeline::error::Stage;

/// An API error as the client sees it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), kind, param: None, code: None, retry_after: None }
    }

    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message);
        e.param = Some(param.to_string());
        e
    }

    pub fn code(mut self, code: &str) -> Self {
        self.code = Some(code.to_string());
        self
    }

    /// A tenant quota refused the request: 429 naming the quota, with Retry-After when waiting helps.
    pub fn quota(e: crate::quota::Exceeded) -> Self {
        let mut x = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", e.message);
        x.code = Some(format!("quota_{}", e.quota));
        x.retry_after = e.retry_after;
        x
    }

    pub fn not_found_model(model: &str) -> Self {
        let mut e =
            Self::new(StatusCode::NOT_FOUND, "invalid_request_error", format!("the model `{model}` does not exist"));
        e.param = Some("model".into());
        e.code = Some("model_not_found".into());
        e
    }

    fn engine(e: weft_engine::EngineError) -> Self {
        use weft_engine::EngineError as E;
        match &e {
            E::PromptTooLong { .. } | E::KvCapacity { .. } => {
                let mut a = Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", e.to_string())
                    .code("context_length_exceeded");
                a.param = Some("messages".into());
                a
            }
            E::InvalidRequest(m) => Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", m.clone()),
            E::InvalidParam(p) => Self::invalid(p.param, p.message.clone()),
            E::Sampler(m) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "plugin_error", m.clone()).code("sampler"),
            E::Shutdown => Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", "the server is shutting down"),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e.to_string()).code(e.kind()),
        }
    }

    fn plugin(stage: Stage, e: weft_runtime::PluginError) -> Self {
        if e.kind == weft_runtime::ErrorKind::Unavailable {
            // An open breaker: the plugin is paused, not this request's fault; retry later.
            let mut x = Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "plugin_error",
                format!("{stage} stage unavailable: plugin `{}` {}", e.plugin, e.message),
            )
            .code("plugin_unavailable");
            x.retry_after = Some(e.retry_after.map_or(1, |d| d.as_secs_f64().ceil() as u64).max(1));
            return x;
        }
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "plugin_error",
            format!("{stage} stage failed: plugin `{}` ({}): {}", e.plugin, e.kind(), e.message),
        )
        .code(e.kind())
    }

    /// The plugin executor could not take the call.
    fn executor(e: weft_runtime::ExecError) -> Self {
        use weft_runtime::ExecError as E;
        match e {
            E::Busy(_) => {
                let mut x = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", format!("{e}; retry later"))
                    .code("plugin_queue_full");
                x.retry_after = Some(1);
                x
            }
            E::Shutdown => Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", "the server is shutting down"),
            E::Panicked(m) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", format!("internal error: {m}"))
            }
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert("retry-after", HeaderValue::from(s));
        }
        r
    }
}

/// The one place where the pipeline's errors become HTTP.
impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        tracing::debug!(kind = e.kind(), error = %e, "pipeline error");
        match e {
            PipelineError::Invalid { param, message, code } => {
                let mut x = Self::invalid(param, message);
                x.code = code.map(str::to_string);
                x
            }
            PipelineError::Rejected { stage, status, message } => {
                let (fallback, kind, code) = match stage {
                    Stage::Router => (StatusCode::SERVICE_UNAVAILABLE, "server_error", "rejected_by_router"),
                    _ => (StatusCode::BAD_REQUEST, "invalid_request_error", "rejected_by_transform"),
                };
                Self::new(StatusCode::from_u16(status).unwrap_or(fallback), kind, message).code(code)
            }
            PipelineError::Plugin { stage, error } => Self::plugin(stage, error),
            PipelineError::Engine(e) => Self::engine(e),
            PipelineError::Executor(e) => Self::executor(e),
            PipelineError::Quota(e) => Self::quota(e),
        }
    }
}

impl From<weft_runtime::ExecError> for ApiError {
    fn from(e: weft_runtime::ExecError) -> Self {
        Self::executor(e)
    }
}
