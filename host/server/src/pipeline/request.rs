//! The pipeline's input: one generation request as the API edge parsed it,
//! whatever endpoint (chat or completions) it came from.

use weft_engine::SamplingParams;

/// What the pipeline needs, whatever endpoint it came from.
pub struct GenRequest {
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    pub n: usize,
    pub max_tokens: Option<usize>,
    pub stop: Vec<String>,
    pub params: SamplingParams,
    pub ignore_eos: bool,
    pub logprobs: Option<usize>,
    /// Arguments for the structured-output sampler, if the output is constrained.
    pub constraint: Option<String>,
    /// The fair scheduler's key when a trusted gateway names one (open servers only; else the tenant).
    pub fairness: Option<String>,
    /// Higher runs first and is preempted last.
    pub priority: i32,
}
