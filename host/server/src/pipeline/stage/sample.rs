//! The sampler stage: starting a sampler session for one sequence. The native
//! twin is the engine's own sampler, which needs no session: a stage skipped
//! under `open` or `fallback` leaves the sequence to it.
//!
//! Sessions then sample inside the engine's step, where the guard cannot
//! reach; they carry the policy with them (`WasmSampler::with_fallback`).

use std::sync::Arc;

use weft_engine::SamplingParams;
use weft_engine::sampling::SequenceSampler;
use weft_runtime::{LoadedPlugin, WasmSamplerFactory};

use super::{Component, Fault};

/// What a sampler session is started from.
pub struct SessionArgs<'a> {
    pub params: &'a SamplingParams,
    pub max_tokens: u32,
    /// The structured-output sampler's constraint ("" for a plain sampler).
    pub args: &'a str,
    pub prompt: &'a [u32],
    pub vocab_size: usize,
    /// Whether the session falls back to the native sampler when a later call fails.
    pub fallback: bool,
}

/// Starts a sampler session for one sequence.
pub trait Sample: Component {
    fn session(&self, a: SessionArgs<'_>) -> Result<Box<dyn SequenceSampler>, Fault>;
}

impl Component for WasmSamplerFactory {
    fn plugin(&self) -> Option<&Arc<LoadedPlugin>> {
        Some(WasmSamplerFactory::plugin(self))
    }
}

impl Sample for WasmSamplerFactory {
    fn session(&self, a: SessionArgs<'_>) -> Result<Box<dyn SequenceSampler>, Fault> {
        let s = WasmSamplerFactory::session(self, a.params, a.max_tokens, a.args, a.prompt, a.vocab_size)?;
        Ok(Box::new(s.with_fallback(a.fallback)))
    }
}
