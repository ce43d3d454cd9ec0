//! The host functions plugins import: `host` for every world, `logits` and
//! `vocabulary` for samplers.

use crate::bindings::common::weft::plugin::{host, types};
use crate::bindings::sampler::weft::plugin::{logits, vocabulary};
use crate::bindings::{Candidate, LogLevel};
use crate::state::HostState;

/// Longest log line kept; the rest is cut.
const MAX_LOG_LINE: usize = 4096;

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) {
        let mut m = message;
        if m.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
            m.push('…');
        }
        let p = &*self.plugin;
        match level {
            LogLevel::Trace => tracing::trace!(plugin = p, "{m}"),
            LogLevel::Debug => tracing::debug!(plugin = p, "{m}"),
            LogLevel::Info => tracing::info!(plugin = p, "{m}"),
            LogLevel::Warn => tracing::warn!(plugin = p, "{m}"),
            LogLevel::Error => tracing::error!(plugin = p, "{m}"),
        }
    }

    fn config_get(&mut self, key: String) -> Option<String> {
        self.config.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone())
    }

    fn counter_add(&mut self, name: String, value: u64) {
        self.metrics.add_custom(&[(format!("{name}_total"), value as f64)]);
    }

    fn histogram_record(&mut self, name: String, value: f64) {
        if value.is_finite() {
            self.metrics.add_custom(&[(format!("{name}_sum"), value), (format!("{name}_count"), 1.0)]);
        }
    }
}

impl HostState {
    fn row(&self) -> &[f32] {
        self.logits.as_ref().map(|v| v.row()).unwrap_or(&[])
    }
}

impl logits::Host for HostState {
    fn top_k(&mut self, k: u32) -> Vec<Candidate> {
        let row = self.row();
        weft_engine::sampling::logprobs::top_n(row, (k as usize).min(row.len()))
            .into_iter()
            .map(|(id, logit)| Candidate { id, logit })
            .collect()
    }

    fn gather(&mut self, ids: Vec<u32>) -> Vec<f32> {
        let row = self.row();
        ids.iter().map(|&i| row.get(i as usize).copied().unwrap_or(f32::NEG_INFINITY)).collect()
    }

    fn probabilities(&mut self, ids: Vec<u32>, temperature: f32) -> Vec<f32> {
        let row = self.row();
        let t = if temperature > 0.0 && temperature.is_finite() { temperature } else { 1.0 };
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|&l| ((l - max) / t).exp()).sum();
        ids.iter().map(|&i| row.get(i as usize).map(|&l| ((l - max) / t).exp() / sum).unwrap_or(0.0)).collect()
    }

    fn vocab_size(&mut self) -> u32 {
        self.row().len() as u32
    }
}

impl vocabulary::Host for HostState {
    fn size(&mut self) -> u32 {
        self.vocabulary.tokens.len() as u32
    }

    fn token_bytes(&mut self, start: u32, count: u32) -> Vec<Vec<u8>> {
        let toks = &self.vocabulary.tokens;
        let start = (start as usize).min(toks.len());
        let end = start.saturating_add(count as usize).min(toks.len());
        toks[start..end].to_vec()
    }

    fn eos_tokens(&mut self) -> Vec<u32> {
        self.vocabulary.eos.clone()
    }
}
