//! The engine's one error type.
//!
//! Every failure the inference core can report is a variant here, and each has
//! a stable `kind()` string. The server uses that string verbatim in API error
//! bodies and as a metric label, so renaming a kind is a breaking change.

use std::path::PathBuf;

/// Errors raised by the inference core.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The model file or directory could not be read or is malformed.
    #[error("model {path}: {reason}")]
    ModelLoad { path: PathBuf, reason: String },
    /// The model's architecture is not one this engine implements.
    #[error("model {path}: unsupported architecture `{arch}` (supported: llama, qwen2, smollm)")]
    UnsupportedArchitecture { path: PathBuf, arch: String },
    /// Fetching the default model failed (pip missing, registry unreachable, hash mismatch).
    #[error("fetching model: {0}")]
    Fetch(String),
    /// A request was refused before it entered the queue.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A sampling parameter out of range, named as the API names it.
    #[error(transparent)]
    InvalidParam(#[from] crate::sampling::InvalidParam),
    /// The prompt does not fit in the model's context window.
    #[error("prompt has {prompt_tokens} tokens but the context window is {max_context} tokens")]
    PromptTooLong { prompt_tokens: usize, max_context: usize },
    /// The prompt needs more KV blocks than the whole cache holds.
    #[error("request needs {needed} KV blocks but the cache has only {capacity}")]
    KvCapacity { needed: usize, capacity: usize },
    /// A sampler failed for one sequence; the sequence ends with this error.
    #[error("sampler: {0}")]
    Sampler(String),
    /// The tensor backend failed during a forward pass.
    #[error("forward pass: {0}")]
    Forward(String),
    /// The engine thread has stopped; no further requests can be served.
    #[error("engine is shut down")]
    Shutdown,
}

impl EngineError {
    /// A stable, machine-readable name for this error, used in API bodies and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::ModelLoad { .. } => "model_load",
            EngineError::UnsupportedArchitecture { .. } => "unsupported_architecture",
            EngineError::Fetch(_) => "model_fetch",
            EngineError::InvalidRequest(_) | EngineError::InvalidParam(_) => "invalid_request",
            EngineError::PromptTooLong { .. } => "prompt_too_long",
            EngineError::KvCapacity { .. } => "kv_capacity",
            EngineError::Sampler(_) => "sampler",
            EngineError::Forward(_) => "forward",
            EngineError::Shutdown => "shutdown",
        }
    }

    pub(crate) fn load(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        EngineError::ModelLoad { path: path.into(), reason: reason.to_string() }
    }
}

impl From<candle_core::Error> for EngineError {
    fn from(e: candle_core::Error) -> Self {
        EngineError::Forward(e.to_string())
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
