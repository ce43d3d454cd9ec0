//! weft-engine: the batched inference core.
//!
//! The request path inside the engine, one folder per stage:
//! - [`model`]: loading GGUF / Hugging Face weights and the ragged-batch forward pass;
//! - [`kv`]: the paged KV cache (block manager with prefix caching, KV store);
//! - [`scheduler`]: continuous batching with chunked prefill and preemption;
//! - [`sampling`]: the per-sequence sampler seam and the native sampler;
//! - [`engine`]: the step loop thread and the handle callers submit through.
//!
//! This crate knows nothing of HTTP or WebAssembly: its plugin seams are the
//! Rust traits [`sampling::SequenceSampler`] and [`scheduler::SchedulingPolicy`].

pub mod engine;
pub mod error;
pub mod kv;
pub mod model;
pub mod sampling;
pub mod scheduler;

pub use engine::{
    Engine, EngineConfig, EngineHandle, EngineMetrics, Event, FinishReason, ModelInfo, Request, RequestStream, Usage,
};
pub use error::EngineError;
pub use kv::{KvCapacity, KvDtype};
pub use model::fetch::{DefaultModel, ensure_default_model};
pub use model::{LoadOptions, LoadedModel, Quantize, TokenizerSpec};
pub use sampling::SamplingParams;
pub use scheduler::{Fcfs, SchedulerConfig, SchedulingPolicy, TenantShare, TenantShares, Vtc};
