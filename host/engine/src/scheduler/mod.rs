//! Iteration-level scheduling (continuous batching with chunked prefill).
//!
//! Every step: first all running sequences, each getting its next token (decode)
//! or its next prefill chunk, in priority-then-admission order; then, if no
//! sequence had to be preempted this step, new sequences are admitted (policy's
//! choice) while the per-step token budget and sequence cap allow. A sequence is
//! admitted only when the blocks for its first chunk are available after reusing
//! its cached prefix. When decode runs out of blocks, the policy's victim (by
//! default lowest priority, most recently admitted) is preempted: its blocks are
//! released (full ones stay in the prefix cache) and it is recomputed later.

mod fcfs;
mod policy;
mod vtc;

use std::collections::HashMap;
use std::sync::Arc;

pub use fcfs::Fcfs;
pub use policy::{SchedulingPolicy, SeqView};
pub use vtc::{TenantShare, TenantShares, Vtc};

use crate::kv::block_manager::prefix_hashes_from;
use crate::kv::{BlockId, BlockManager, KvStats, block_hash};

/// Identifier of a sequence, unique for the engine's lifetime.
pub type SeqId = u64;

/// Limits of one step.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// Token budget per step (decode tokens + prefill chunk tokens).
    pub max_batched_tokens: usize,
    /// Sequences per step (and running at once).
    pub max_num_seqs: usize,
    /// Blocks kept free at admission so running sequences can grow.
    pub watermark_blocks: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self { max_batched_tokens: 512, max_num_seqs: 64, watermark_blocks: 1 }
    }
}

/// Scheduling state of one sequence.
#[derive(Debug, Clone)]
pub struct SeqState {
    pub id: SeqId,
    pub tenant: Arc<str>,
    pub priority: i32,
    pub arrival: u64,
    pub admitted_at: u64,
    /// The scheduler step of the latest admission.
    admitted_step: u64,
    /// Tokens computed before the latest preemption: computing them again is
    /// the scheduler's cost, not service to the tenant, and is not charged.
    recompute_until: usize,
    /// Prompt followed by generated tokens.
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
    /// Tokens whose keys/values are in the cache.
    pub num_computed: usize,
    pub block_table: Vec<BlockId>,
    registered_blocks: usize,
    last_hash: Option<u64>,
    /// Parent of the first block: which prefix cache this sequence shares (see `kv::cache_root`).
    cache_root: Option<u64>,
    /// Prompt tokens served from the prefix cache at first admission.
    pub cached_prompt_tokens: Option<usize>,
    pub running: bool,
}

impl SeqState {
    fn view(&self) -> SeqView<'_> {
        SeqView {
            id: self.id,
            tenant: &self.tenant,
            priority: self.priority,
            arrival: self.arrival,
            admitted_at: self.admitted_at,
            prompt_len: self.prompt_len,
            num_tokens: self.tokens.len(),
            blocks: self.block_table.len(),
        }
    }
}

/// One sequence's share of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    pub id: SeqId,
    /// Position of the first token processed.
    pub start: usize,
    pub len: usize,
    /// True when this chunk reaches the end of the known tokens, so a next token is sampled.
    pub want_logits: bool,
}

/// The outcome of [`Scheduler::schedule`].
#[derive(Debug, Default, Clone)]
pub struct StepPlan {
    pub scheduled: Vec<Scheduled>,
    /// Sequences that cannot grow even with the whole cache to themselves; the caller ends them.
    pub out_of_memory: Vec<SeqId>,
    pub preempted: Vec<SeqId>,
}

/// The continuous batcher.
pub struct Scheduler {
    cfg: SchedulerConfig,
    blocks: BlockManager,
    policy: Box<dyn SchedulingPolicy>,
    seqs: HashMap<SeqId, SeqState>,
    waiting: Vec<SeqId>,
    running: Vec<SeqId>,
    arrivals: u64,
    admissions: u64,
    preemptions: u64,
    /// Of those, preemptions that made room for an under-served tenant.
    fair_preemptions: u64,
    /// Preemptions by the preempted sequence's tenant.
    preemptions_by_tenant: std::collections::BTreeMap<Arc<str>, u64>,
    steps: u64,
}

/// Tells the policy about `n` tokens scheduled from `start`, leaving out those
/// being recomputed after a preemption.
fn charge(policy: &mut dyn SchedulingPolicy, seq: &SeqState, start: usize, n: usize) {
    let fresh = (start + n).saturating_sub(seq.recompute_until.max(start));
    if fresh > 0 {
        policy.on_scheduled(&seq.view(), fresh);
    }
}

/// Steps a sequence runs after admission before a fairness preemption may
/// take it: together with at most one such preemption per step, this bounds
/// the recomputation fairness costs and keeps it from thrashing.
const MIN_RUN_STEPS: u64 = 8;

impl Scheduler {
    pub fn new(cfg: SchedulerConfig, blocks: BlockManager, policy: Box<dyn SchedulingPolicy>) -> Self {
        Self {
            cfg,
            blocks,
            policy,
            seqs: HashMap::new(),
            waiting: Vec::new(),
            running: Vec::new(),
            arrivals: 0,
            admissions: 0,
            preemptions: 0,
            fair_preemptions: 0,
            preemptions_by_tenant: Default::default(),
            steps: 0,
        }
    }

    /// Queues a new sequence that shares the common prefix cache.
    pub fn add(&mut self, id: SeqId, tenant: Arc<str>, priority: i32, prompt: Vec<u32>) {
        self.add_salted(id, tenant, priority, prompt, None);
    }

    /// Queues a new sequence whose cached blocks are shared only with sequences of the same `cache_root`.
    pub fn add_salted(
        &mut self,
        id: SeqId,
        tenant: Arc<str>,
        priority: i32,
        prompt: Vec<u32>,
        cache_root: Option<u64>,
    ) {
        self.arrivals += 1;
        let seq = SeqState {
            id,
            tenant,
            priority,
            arrival: self.arrivals,
            admitted_at: 0,
            admitted_step: 0,
            recompute_until: 0,
            prompt_len: prompt.len(),
            tokens: prompt,
            num_computed: 0,
            block_table: Vec::new(),
            registered_blocks: 0,
            last_hash: cache_root,
            cache_root,
            cached_prompt_tokens: None,
            running: false,
        };
        self.seqs.insert(id, seq);
        self.waiting.push(id);
    }

    pub fn get(&self, id: SeqId) -> Option<&SeqState> {
        self.seqs.get(&id)
    }

    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_idle(&self) -> bool {
        self.seqs.is_empty()
    }

    pub fn preemptions(&self) -> u64 {
        self.preemptions
    }

    pub fn fair_preemptions(&self) -> u64 {
        self.fair_preemptions
    }

    /// Preemptions so far, by the tenant whose sequence was preempted.
    pub fn preemptions_by_tenant(&self) -> impl Iterator<Item = (&str, u64)> {
        self.preemptions_by_tenant.iter().map(|(t, n)| (&**t, *n))
    }

    /// When the policy's next pick cannot be admitted (every slot or too many
    /// blocks taken), asks the policy whether to preempt a sequence for it.
    fn fair_preemption(&mut self) -> Option<SeqId> {
        if self.waiting.is_empty() || self.running.is_empty() {
            return None;
        }
        let (idx, need) = {
            let views: Vec<SeqView<'_>> = self.waiting.iter().map(|w| self.seqs[w].view()).collect();
            let running: Vec<SeqView<'_>> = self.running.iter().map(|r| self.seqs[r].view()).collect();
            let idx = self.policy.pick_next(&views, &running, self.blocks.num_blocks())?;
            let len = self.seqs[&self.waiting[idx]].tokens.len().min(self.cfg.max_batched_tokens);
            (idx, self.blocks.blocks_for(len))
        };
        let starved = self.running.len() >= self.cfg.max_num_seqs
            || self.blocks.num_available() < need + self.cfg.watermark_blocks;
        if !starved {
            return None;
        }
        let settled: Vec<SeqId> = self
            .running
            .iter()
            .copied()
            .filter(|r| self.steps.saturating_sub(self.seqs[r].admitted_step) >= MIN_RUN_STEPS)
            .collect();
        if settled.is_empty() {
            return None;
        }
        let views: Vec<SeqView<'_>> = settled.iter().map(|r| self.seqs[r].view()).collect();
        let all: Vec<SeqView<'_>> = self.running.iter().map(|r| self.seqs[r].view()).collect();
        let candidate = self.seqs[&self.waiting[idx]].view();
        let i = self.policy.preempt_for(&candidate, &views, &all, self.cfg.max_num_seqs)?;
        Some(settled[i])
    }

    pub fn kv_stats(&self) -> KvStats {
        self.blocks.stats()
    }

    pub fn block_manager(&self) -> &BlockManager {
        &self.blocks
    }

    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }

    pub fn ids(&self) -> impl Iterator<Item = SeqId> + '_ {
        self.seqs.keys().copied()
    }

    /// Removes a sequence (finished or cancelled) and releases its blocks.
    pub fn remove(&mut self, id: SeqId) -> Option<SeqState> {
        let mut seq = self.seqs.remove(&id)?;
        self.blocks.release_all(&mut seq.block_table);
        self.waiting.retain(|&w| w != id);
        self.running.retain(|&r| r != id);
        Some(seq)
    }

    /// Appends a sampled token to a sequence.
    pub fn append_token(&mut self, id: SeqId, token: u32) {
        if let Some(s) = self.seqs.get_mut(&id) {
            s.tokens.push(token);
        }
    }

    fn preempt(&mut self, id: SeqId) {
        let seq = self.seqs.get_mut(&id).expect("preempting a live sequence");
        self.blocks.release_all(&mut seq.block_table);
        seq.recompute_until = seq.recompute_until.max(seq.num_computed);
        seq.num_computed = 0;
        seq.registered_blocks = 0;
        seq.last_hash = seq.cache_root;
        seq.running = false;
        let tenant = seq.tenant.clone();
        self.running.retain(|&r| r != id);
        self.waiting.push(id);
        self.preemptions += 1;
        *self.preemptions_by_tenant.entry(tenant).or_default() += 1;
    }

    /// Plans the next step and reserves the blocks it needs.
    pub fn schedule(&mut self) -> StepPlan {
        let mut plan = StepPlan::default();
        let mut budget = self.cfg.max_batched_tokens;
        let bs = self.blocks.block_size();
        self.steps += 1;
        if let Some(victim) = self.fair_preemption() {
            plan.preempted.push(victim);
            self.preempt(victim);
            self.fair_preemptions += 1;
            // The room was made for the waiting tenant: admit it before the
            // running sequences' prefill chunks take this step's token budget.
            self.admit(&mut plan, &mut budget, bs);
        }
        let fair = plan.preempted.len();

        {
            let seqs = &self.seqs;
            self.running.sort_by_key(|id| {
                let s = &seqs[id];
                (std::cmp::Reverse(s.priority), s.admitted_at)
            });
        }
        let mut i = 0;
        while i < self.running.len() {
            if budget == 0 || plan.scheduled.len() >= self.cfg.max_num_seqs {
                break;
            }
            let id = self.running[i];
            if plan.scheduled.iter().any(|s| s.id == id) {
                // Admitted above this step, after a fairness preemption.
                i += 1;
                continue;
            }
            let (computed, total, have) = {
                let s = &self.seqs[&id];
                (s.num_computed, s.tokens.len(), s.block_table.len())
            };
            if computed == total {
                // Everything is computed and its next token is still being sampled
                // (a late sampler, see `sampling::pool`): nothing to do this step.
                i += 1;
                continue;
            }
            let n = (total - computed).min(budget);
            let need = self.blocks.blocks_for(computed + n).saturating_sub(have);
            let mut fits = true;
            while self.blocks.num_available() < need {
                if self.running.len() == 1 {
                    // Alone and still short: it can never grow.
                    plan.out_of_memory.push(id);
                    fits = false;
                    break;
                }
                // Every running sequence is a candidate, the one asking too: a
                // tenant over its KV share gives its own blocks back rather than
                // take another's, wherever its sequences sit in the batch. (The
                // default policy picks the least important, newest sequence,
                // which is never ahead of the one asking.)
                let views: Vec<SeqView<'_>> = self.running.iter().map(|r| self.seqs[r].view()).collect();
                let at = self.policy.pick_victim(&views, &views, self.blocks.num_blocks());
                let victim = self.running[at];
                if victim == id {
                    plan.preempted.push(id);
                    self.preempt(id);
                    fits = false;
                    break;
                }
                if at < i {
                    i -= 1;
                }
                plan.preempted.push(victim);
                self.preempt(victim);
                // A sequence admitted earlier this step gives its chunk back too.
                if let Some(k) = plan.scheduled.iter().position(|s| s.id == victim) {
                    budget += plan.scheduled.remove(k).len;
                }
            }
            if !fits {
                if plan.out_of_memory.contains(&id) {
                    i += 1;
                }
                continue;
            }
            let seq = self.seqs.get_mut(&id).expect("running sequence exists");
            for _ in 0..need {
                seq.block_table.push(self.blocks.allocate().expect("availability checked"));
            }
            charge(&mut *self.policy, seq, computed, n);
            plan.scheduled.push(Scheduled { id, start: computed, len: n, want_logits: computed + n == total });
            budget -= n;
            i += 1;
        }

        // Short of memory this step: admit nobody. A fairness preemption made room for an admission.
        if plan.preempted.len() == fair {
            self.admit(&mut plan, &mut budget, bs);
        }
        plan
    }

    fn admit(&mut self, plan: &mut StepPlan, budget: &mut usize, bs: usize) {
        while *budget > 0
            && !self.waiting.is_empty()
            && plan.scheduled.len() < self.cfg.max_num_seqs
            && self.running.len() < self.cfg.max_num_seqs
        {
            let views: Vec<SeqView<'_>> = self.waiting.iter().map(|w| self.seqs[w].view()).collect();
            let running: Vec<SeqView<'_>> = self.running.iter().map(|r| self.seqs[r].view()).collect();
            let Some(idx) = self.policy.pick_next(&views, &running, self.blocks.num_blocks()) else { break };
            let id = self.waiting[idx];
            let seq = &self.seqs[&id];
            // Leave the last token uncached so the step produces logits for it.
            let known = &seq.tokens[..seq.tokens.len() - 1];
            let hashes = prefix_hashes_from(seq.cache_root, known, bs);
            let total = seq.tokens.len();
            let cached = self.blocks.cached_prefix_len(seq.cache_root, &hashes, known);
            let computed = cached * bs;
            let n = (total - computed).min(*budget);
            let need = self.blocks.blocks_for(computed + n) - cached;
            let reserve = if self.running.is_empty() { 0 } else { self.cfg.watermark_blocks };
            // Taking the cached blocks may consume evictable ones, so check after taking them.
            let mut table = self.blocks.acquire_prefix(seq.cache_root, &hashes, known);
            debug_assert_eq!(table.len(), cached);
            if self.blocks.num_available() < need + reserve {
                self.blocks.release_all(&mut table);
                break;
            }
            self.blocks.record_prefix_lookup(hashes.len(), cached);
            for _ in 0..need {
                table.push(self.blocks.allocate().expect("availability checked"));
            }
            self.admissions += 1;
            let seq = self.seqs.get_mut(&id).expect("waiting sequence exists");
            seq.block_table = table;
            seq.num_computed = computed;
            seq.registered_blocks = cached;
            seq.last_hash = cached.checked_sub(1).map(|i| hashes[i]).or(seq.cache_root);
            seq.cached_prompt_tokens.get_or_insert(computed.min(seq.prompt_len));
            seq.admitted_at = self.admissions;
            seq.admitted_step = self.steps;
            seq.running = true;
            charge(&mut *self.policy, seq, computed, n);
            plan.scheduled.push(Scheduled { id, start: computed, len: n, want_logits: computed + n == total });
            self.waiting.remove(idx);
            self.running.push(id);
            *budget -= n;
        }
    }

    /// Records that a planned chunk was computed: advances the sequence and
    /// publishes its newly full blocks to the prefix cache.
    pub fn complete(&mut self, s: &Scheduled) {
        let bs = self.blocks.block_size();
        let Some(seq) = self.seqs.get_mut(&s.id) else { return };
        seq.num_computed = s.start + s.len;
        while (seq.registered_blocks + 1) * bs <= seq.num_computed {
            let b = seq.registered_blocks;
            let tokens = &seq.tokens[b * bs..(b + 1) * bs];
            let h = block_hash(seq.last_hash, tokens);
            self.blocks.register_full(seq.block_table[b], h, seq.last_hash, tokens);
            seq.last_hash = Some(h);
            seq.registered_blocks += 1;
        }
    }
}

#[cfg(test)]
mod tests;
