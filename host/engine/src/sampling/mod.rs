//! Sampling: turning a logits row into the next token.
//!
//! The seam is [`SequenceSampler`], one session per sequence (it owns the
//! sequence's RNG and any policy state, the way a Wasm sampler session owns its
//! instance state). The engine calls [`sample_step`] once per step with every
//! row that needs a token; rows are independent and run in parallel. The native
//! implementation is [`NativeSampler`]; the plugin runtime provides another
//! implementation of the same trait.

pub mod logprobs;
pub mod native;
pub mod params;
pub mod pool;

use rayon::prelude::*;

pub use logprobs::{TokenLogprob, TopLogprob};
pub use native::NativeSampler;
pub use params::{InvalidParam, SamplingParams};

/// A sampler failure, with a stable kind (plugins report trap, timeout, ...).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct SamplerError {
    pub kind: String,
    pub message: String,
}

impl SamplerError {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self { kind: kind.into(), message: message.into() }
    }
}

/// The token history a sampler may look at (penalties, grammars).
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    pub prompt: &'a [u32],
    pub output: &'a [u32],
}

/// What [`SequenceSampler::accept`] says about the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Continue,
    /// The sampler's policy says the sequence is complete (e.g. a JSON value closed).
    Stop,
}

/// One sequence's sampler session.
pub trait SequenceSampler: Send {
    /// Picks the next token. `logits` is the raw model output for this
    /// sequence; the sampler may transform it in place.
    fn sample(&mut self, logits: &mut [f32], history: History<'_>) -> Result<u32, SamplerError>;

    /// Tells the session the token that was appended.
    fn accept(&mut self, _token: u32) -> Result<Accept, SamplerError> {
        Ok(Accept::Continue)
    }

    /// True when the sampler runs code the engine does not control (a
    /// plugin) and may take long: the engine runs it on the sampling pool
    /// under the step's budget instead of inside the step (see [`pool`]).
    fn is_external(&self) -> bool {
        false
    }
}

/// One row of a step's sampling work.
pub struct SampleRow<'a> {
    pub sampler: &'a mut dyn SequenceSampler,
    pub logits: &'a mut [f32],
    pub history: History<'a>,
    /// Top log-probabilities to report (None: none; Some(0): only the chosen token's).
    pub logprobs: Option<usize>,
}

/// What sampling produced for one row.
#[derive(Debug, Clone)]
pub struct Sampled {
    pub token: u32,
    pub logprob: Option<TokenLogprob>,
    pub accept: Accept,
}

/// Samples every row of a step, in parallel. Log-probabilities are taken from
/// the raw logits, before any sampler transform (as vLLM reports them).
pub fn sample_step(rows: &mut [SampleRow<'_>]) -> Vec<Result<Sampled, SamplerError>> {
    rows.par_iter_mut().map(|row| pool::sample_row(row.sampler, row.logits, row.history, row.logprobs)).collect()
}
