//! Per-request sampling parameters (the OpenAI set plus top-k, min-p and
//! repetition penalty, as vLLM accepts them).

use std::collections::HashMap;

/// Most `logit_bias` entries a request may carry (OpenAI's limit).
pub const MAX_LOGIT_BIAS: usize = 300;

/// A sampling parameter out of range: which one (as the API names it) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidParam {
    pub param: &'static str,
    pub message: String,
}

/// Sampling parameters of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// 1.0 disables.
    pub top_p: f32,
    /// 0 disables.
    pub top_k: usize,
    /// 0.0 disables.
    pub min_p: f32,
    /// Multiplicative penalty on tokens seen in prompt or output (1.0 disables).
    pub repetition_penalty: f32,
    /// Subtracted once from tokens present in the output.
    pub presence_penalty: f32,
    /// Subtracted per occurrence in the output.
    pub frequency_penalty: f32,
    /// Added to the logits of the listed tokens.
    pub logit_bias: HashMap<u32, f32>,
    /// Same seed, same output, whatever else is in the batch.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: HashMap::new(),
            seed: None,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self { temperature: 0.0, ..Self::default() }
    }

    /// Checks every parameter's range: the one place the rules live, for API
    /// requests and for plugin sampling plans alike. The error names the
    /// parameter as the OpenAI API spells it.
    pub fn validate(&self) -> Result<(), InvalidParam> {
        let bad = |param: &'static str, message: String| Err(InvalidParam { param, message });
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature", format!("temperature must be >= 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p", format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(
                "repetition_penalty",
                format!("repetition_penalty must be > 0, got {}", self.repetition_penalty),
            );
        }
        for (name, v) in [("presence_penalty", self.presence_penalty), ("frequency_penalty", self.frequency_penalty)] {
            if !(-2.0..=2.0).contains(&v) {
                return bad(name, format!("{name} must be in [-2, 2], got {v}"));
            }
        }
        if self.logit_bias.len() > MAX_LOGIT_BIAS {
            return bad(
                "logit_bias",
                format!("logit_bias has {} entries; at most {MAX_LOGIT_BIAS}", self.logit_bias.len()),
            );
        }
        if let Some((t, b)) = self.logit_bias.iter().find(|(_, b)| !(-100.0..=100.0).contains(*b)) {
            return bad("logit_bias", format!("logit_bias values must be in [-100, 100], got {b} for token {t}"));
        }
        Ok(())
    }

    /// [`SamplingParams::validate`], and every token id inside a vocabulary of `vocab_size`.
    pub fn validate_for(&self, vocab_size: usize) -> Result<(), InvalidParam> {
        self.validate()?;
        if let Some(t) = self.logit_bias.keys().find(|&&t| t as usize >= vocab_size) {
            return Err(InvalidParam {
                param: "logit_bias",
                message: format!("logit_bias names token {t}, outside the vocabulary of {vocab_size} tokens"),
            });
        }
        Ok(())
    }
}
