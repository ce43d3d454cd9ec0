//! The pipeline's one error type. The pipeline knows nothing of HTTP: the API
//! edge turns a [`PipelineError`] into a status and an OpenAI error body once
//! (`api::error`), and [`PipelineError::kind`] is the stable label used there
//! and in logs.

use weft_engine::EngineError;
use weft_runtime::{ExecError, PluginError};

use crate::quota::Exceeded;

/// A stage of the request path, as errors, logs and metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Transform,
    Tokenizer,
    Router,
    Sampler,
    /// The structured-output sampler (requests with `response_format`).
    Structured,
    /// The response side of a transform, run on every chunk.
    ResponseFilter,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Transform => "transform",
            Stage::Tokenizer => "tokenizer",
            Stage::Router => "router",
            Stage::Sampler => "sampler",
            Stage::Structured => "structured-output sampler",
            Stage::ResponseFilter => "response transform",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The request cannot be served as asked; `param` names the offending field.
    #[error("{message}")]
    Invalid { param: &'static str, message: String, code: Option<&'static str> },
    /// A plugin answered by refusing the request, with the status it chose.
    #[error("{message}")]
    Rejected { stage: Stage, status: u16, message: String },
    /// A plugin failed (or its breaker is open) and the stage's failure policy is `closed`.
    #[error("{stage} stage failed: plugin `{}` ({}): {}", .error.plugin, .error.kind(), .error.message)]
    Plugin { stage: Stage, error: PluginError },
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The plugin executor could not take the call.
    #[error(transparent)]
    Executor(#[from] ExecError),
    #[error("{}", .0.message)]
    Quota(Exceeded),
}

impl PipelineError {
    pub fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        PipelineError::Invalid { param, message: message.into(), code: None }
    }

    pub fn context_length(message: impl Into<String>) -> Self {
        PipelineError::Invalid { param: "messages", message: message.into(), code: Some("context_length_exceeded") }
    }

    pub fn plugin(stage: Stage, error: PluginError) -> Self {
        PipelineError::Plugin { stage, error }
    }

    /// Stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PipelineError::Invalid { .. } => "invalid_request",
            PipelineError::Rejected { .. } => "rejected",
            PipelineError::Plugin { error, .. } => error.kind(),
            PipelineError::Engine(e) => e.kind(),
            PipelineError::Executor(ExecError::Busy(_)) => "executor_busy",
            PipelineError::Executor(ExecError::Shutdown) => "shutdown",
            PipelineError::Executor(ExecError::Panicked(_)) => "executor_panic",
            PipelineError::Quota(_) => "quota",
        }
    }
}

impl From<Exceeded> for PipelineError {
    fn from(e: Exceeded) -> Self {
        PipelineError::Quota(e)
    }
}
