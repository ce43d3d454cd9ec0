//! A snapshot of the engine's state, refreshed after each step. Readers copy it
//! under a short lock; the engine never holds the lock across a step.

use crate::kv::KvStats;

/// Engine gauges and counters.
#[derive(Debug, Clone, Default)]
pub struct EngineMetrics {
    pub running: usize,
    pub waiting: usize,
    pub kv: KvStats,
    pub preemptions: u64,
    /// Of those, preemptions that let an under-served tenant in (fair admission).
    pub fair_preemptions: u64,
    /// Preemptions by the preempted sequence's tenant (the empty id: no tenants).
    pub preemptions_by_tenant: Vec<(String, u64)>,
    pub steps: u64,
    /// Duration of the last step, seconds.
    pub last_step_secs: f64,
    /// Sum of step durations, seconds.
    pub total_step_secs: f64,
    /// Of that, time in the model's forward pass; the rest is the step's own
    /// overhead (scheduling, batch assembly, sampling, emitting events).
    pub forward_secs: f64,
    pub prompt_tokens: u64,
    /// Prompt tokens computed (not served from the prefix cache), including recomputation.
    pub prefill_tokens: u64,
    pub generation_tokens: u64,
    pub finished: u64,
    pub cancelled: u64,
    /// Samples that missed their step's budget and were taken by a later step.
    pub deferred_samples: u64,
    /// Sequences whose sampler is running past the step now.
    pub sampling_late: usize,
}

impl EngineMetrics {
    pub fn prefix_hit_rate(&self) -> f64 {
        self.kv.hit_rate()
    }
}
