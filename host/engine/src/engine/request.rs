//! What callers submit to the engine and what they get back.

use std::sync::Arc;

use crate::sampling::{SamplingParams, SequenceSampler, TokenLogprob};

/// A generation request: token ids in, token events out.
pub struct Request {
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
    /// Upper bound on generated tokens (clipped to the context window).
    pub max_tokens: usize,
    /// Extra token ids that end the sequence (not reported as output).
    pub stop_token_ids: Vec<u32>,
    /// Keep generating past the model's end-of-sequence tokens.
    pub ignore_eos: bool,
    /// Report the chosen token's log-probability and this many alternatives.
    pub logprobs: Option<usize>,
    /// Larger is more important; the lowest is preempted first.
    pub priority: i32,
    /// Opaque tenant id, seen by the scheduling policy.
    pub tenant: Arc<str>,
    /// Which prefix cache the sequence shares: sequences share cached KV
    /// blocks only with sequences of the same salt ("": the common cache).
    pub cache_salt: Arc<str>,
    /// A sampler session (e.g. a Wasm plugin); `None` uses the native sampler.
    pub sampler: Option<Box<dyn SequenceSampler>>,
}

impl Request {
    /// A request with default sampling for `prompt`.
    pub fn new(prompt: Vec<u32>, max_tokens: usize) -> Self {
        Self {
            prompt,
            params: SamplingParams::default(),
            max_tokens,
            stop_token_ids: Vec::new(),
            ignore_eos: false,
            logprobs: None,
            priority: 0,
            tenant: Arc::from("default"),
            cache_salt: Arc::from(""),
            sampler: None,
        }
    }

    pub fn with_params(mut self, params: SamplingParams) -> Self {
        self.params = params;
        self
    }
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token, a stop token id, or the sampler said so.
    Stop,
    /// `max_tokens`, the context window, or the KV cache could not hold it.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Token counts of a finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV came from the prefix cache.
    pub cached_prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// One event of a request's stream.
#[derive(Debug, Clone)]
pub enum Event {
    /// A generated token (stop tokens that end the sequence are not sent).
    Token { id: u32, logprob: Option<TokenLogprob> },
    /// The last event of a successful request.
    Finished { reason: FinishReason, usage: Usage },
    /// The last event of a failed request.
    Error(crate::EngineError),
}
