//! Virtual Token Counter fair scheduling ("Fairness in Serving Large Language
//! Models", Sheng et al., OSDI 2024), weighted per tenant.
//!
//! Each tenant has a counter of the service it received: prompt tokens count
//! 1 and generated tokens 2 (the paper's weights: decoding costs more),
//! divided by the tenant's weight. The next admission goes to the waiting
//! tenant with the smallest counter, so a tenant flooding the queue is served
//! only its share while others wait. A tenant that becomes active again is
//! lifted to the smallest counter among active tenants, so idle time is not
//! banked as credit. Preemption takes from the tenant with the largest
//! counter. A tenant at its KV share cap is not admitted until it frees blocks.
//!
//! Shares can change while the engine runs (config reload): they are read
//! through a shared map at every decision.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use super::policy::{SchedulingPolicy, SeqView};

/// Cost of a prompt token and of a generated token.
const PROMPT_COST: f64 = 1.0;
const OUTPUT_COST: f64 = 2.0;

/// One tenant's share of the engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TenantShare {
    /// Relative share of service (> 0).
    pub weight: f64,
    /// Most of the KV cache the tenant may hold, as a fraction (0, 1].
    pub max_kv_fraction: f64,
}

impl Default for TenantShare {
    fn default() -> Self {
        Self { weight: 1.0, max_kv_fraction: 1.0 }
    }
}

/// Shares by tenant id, shared with whoever reconfigures them.
pub type TenantShares = Arc<RwLock<HashMap<String, TenantShare>>>;

/// The VTC policy.
pub struct Vtc {
    shares: TenantShares,
    counters: HashMap<String, f64>,
    /// Tenants with a sequence waiting or running at the last decision.
    active: HashSet<String>,
}

impl Vtc {
    pub fn new(shares: TenantShares) -> Self {
        Self { shares, counters: HashMap::new(), active: HashSet::new() }
    }

    fn share(&self, tenant: &str) -> TenantShare {
        self.shares.read().ok().and_then(|s| s.get(tenant).copied()).unwrap_or_default()
    }

    /// Service counted so far, per tenant (for tests and metrics).
    pub fn counters(&self) -> &HashMap<String, f64> {
        &self.counters
    }
}

impl SchedulingPolicy for Vtc {
    fn name(&self) -> &'static str {
        "vtc"
    }

    fn pick_next(&mut self, waiting: &[SeqView<'_>], running: &[SeqView<'_>], total_blocks: usize) -> Option<usize> {
        let mut held: HashMap<&str, usize> = HashMap::new();
        for r in running {
            *held.entry(r.tenant).or_default() += r.blocks;
        }
        // A tenant that just became active is lifted to the smallest counter of
        // those already active: idle time is not banked as credit. Only on the
        // transition: a tenant kept waiting keeps its (low) counter and goes next.
        let now_active: HashSet<&str> = running.iter().chain(waiting).map(|s| s.tenant).collect();
        let active_min = self.active.iter().filter_map(|t| self.counters.get(t).copied()).fold(f64::INFINITY, f64::min);
        for t in &now_active {
            if self.active.contains(*t) {
                continue;
            }
            let c = self.counters.entry(t.to_string()).or_insert(0.0);
            if active_min.is_finite() && *c < active_min {
                *c = active_min;
            }
        }
        self.active = now_active.iter().map(|t| t.to_string()).collect();
        waiting
            .iter()
            .enumerate()
            .filter(|(_, w)| {
                let cap = self.share(w.tenant).max_kv_fraction.clamp(0.0, 1.0);
                let blocks = *held.get(w.tenant).unwrap_or(&0);
                // Always let a tenant with nothing running in, so a cap never starves it outright.
                blocks == 0 || (blocks as f64) < cap * total_blocks as f64
            })
            .min_by(|(_, a), (_, b)| {
                let (ca, cb) = (self.counters[a.tenant], self.counters[b.tenant]);
                ca.total_cmp(&cb).then(b.priority.cmp(&a.priority)).then(a.arrival.cmp(&b.arrival))
            })
            .map(|(i, _)| i)
    }

    fn pick_victim(&mut self, candidates: &[SeqView<'_>], running: &[SeqView<'_>], total_blocks: usize) -> usize {
        // A tenant holding more than its KV share gives blocks back first.
        let mut held: HashMap<&str, usize> = HashMap::new();
        for r in running {
            *held.entry(r.tenant).or_default() += r.blocks;
        }
        let over = |t: &str| {
            let cap = self.share(t).max_kv_fraction.clamp(0.0, 1.0);
            held.get(t).copied().unwrap_or(0) as f64 > cap * total_blocks as f64
        };
        let any_over = candidates.iter().any(|c| over(c.tenant));
        candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| !any_over || over(c.tenant))
            .max_by(|(_, a), (_, b)| {
                let ca = self.counters.get(a.tenant).copied().unwrap_or(0.0);
                let cb = self.counters.get(b.tenant).copied().unwrap_or(0.0);
                ca.total_cmp(&cb).then(b.priority.cmp(&a.priority)).then(a.admitted_at.cmp(&b.admitted_at))
            })
            .map(|(i, _)| i)
            .unwrap_or(0)
    }

    /// A waiting tenant running fewer sequences than its weighted share of
    /// the slots gets in by preempting the newest sequence of the most-served
    /// tenant, if that tenant has been served more (by its weight) and the
    /// sequence is no more important than the waiting one. Tenants that both
    /// hold their share are left to the admission order alone.
    fn preempt_for(
        &mut self,
        waiting: &SeqView<'_>,
        candidates: &[SeqView<'_>],
        running: &[SeqView<'_>],
        slots: usize,
    ) -> Option<usize> {
        let tenants: HashSet<&str> = running.iter().map(|r| r.tenant).chain([waiting.tenant]).collect();
        let total: f64 = tenants.iter().map(|t| self.share(t).weight.max(1e-6)).sum();
        let fair = slots as f64 * self.share(waiting.tenant).weight.max(1e-6) / total;
        let mine = running.iter().filter(|r| r.tenant == waiting.tenant).count();
        if (mine + 1) as f64 > fair.max(1.0) {
            return None;
        }
        let counter = |t: &str| self.counters.get(t).copied().unwrap_or(0.0);
        let c = counter(waiting.tenant);
        candidates
            .iter()
            .enumerate()
            .filter(|(_, r)| r.tenant != waiting.tenant && counter(r.tenant) > c && r.priority <= waiting.priority)
            .max_by(|(_, a), (_, b)| {
                counter(a.tenant).total_cmp(&counter(b.tenant)).then(a.admitted_at.cmp(&b.admitted_at))
            })
            .map(|(i, _)| i)
    }

    fn on_scheduled(&mut self, seq: &SeqView<'_>, tokens: usize) {
        // A one-token step past the prompt is decoding; anything else is (re)computing input.
        let cost =
            if tokens == 1 && seq.num_tokens > seq.prompt_len { OUTPUT_COST } else { PROMPT_COST * tokens as f64 };
        let w = self.share(seq.tenant).weight.max(1e-6);
        *self.counters.entry(seq.tenant.to_string()).or_default() += cost / w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(id: u64, tenant: &'a str, arrival: u64, blocks: usize) -> SeqView<'a> {
        SeqView { id, tenant, priority: 0, arrival, admitted_at: 0, prompt_len: 10, num_tokens: 10, blocks }
    }

    #[test]
    fn the_least_served_tenant_goes_next_and_weights_scale_service() {
        let shares: TenantShares = Arc::default();
        shares.write().unwrap().insert("b".into(), TenantShare { weight: 2.0, max_kv_fraction: 1.0 });
        let mut p = Vtc::new(shares);
        let waiting = [view(1, "a", 1, 0), view(2, "a", 2, 0), view(3, "b", 3, 0)];
        // Both start at zero: earliest arrival wins.
        assert_eq!(p.pick_next(&waiting, &[], 100), Some(0));
        p.on_scheduled(&waiting[0], 100); // a: 100
        assert_eq!(p.pick_next(&waiting[1..], &[], 100), Some(1), "b has received nothing");
        p.on_scheduled(&waiting[2], 100); // b: 100 / 2 = 50
        assert_eq!(p.counters()["b"], 50.0);
        let running = [view(1, "a", 1, 5), view(3, "b", 3, 5)];
        assert_eq!(p.pick_victim(&running, &running, 100), 0, "preempt the most served tenant");
    }

    #[test]
    fn a_returning_tenant_is_lifted_and_kv_caps_hold() {
        let shares: TenantShares = Arc::default();
        shares.write().unwrap().insert("a".into(), TenantShare { weight: 1.0, max_kv_fraction: 0.5 });
        let mut p = Vtc::new(shares);
        let a = view(1, "a", 1, 0);
        assert_eq!(p.pick_next(&[a], &[], 100), Some(0));
        p.on_scheduled(&a, 1000);
        let running = [view(1, "a", 1, 60)];
        // a holds 60 of 100 blocks, over its 50% cap: not admitted even alone in the queue.
        assert_eq!(p.pick_next(&[view(2, "a", 2, 0)], &running, 100), None);
        let waiting = [view(2, "a", 2, 0), view(3, "c", 3, 0)];
        // c was never seen: it starts at a's counter, not at zero with 1000 tokens of credit.
        assert_eq!(p.pick_next(&waiting, &running, 100), Some(1));
        assert_eq!(p.counters()["c"], 1000.0);
        // c, kept waiting, is not lifted again: it keeps its place while a is served.
        p.on_scheduled(&a, 500);
        assert_eq!(p.pick_next(&waiting, &running, 100), Some(1));
        assert_eq!(p.counters()["c"], 1000.0);
    }

    #[test]
    fn an_under_served_tenant_preempts_the_most_served_newest_sequence() {
        let mut p = Vtc::new(Arc::default());
        let a1 = SeqView { admitted_at: 1, ..view(1, "a", 1, 4) };
        let a2 = SeqView { admitted_at: 2, ..view(2, "a", 2, 4) };
        let b = view(3, "b", 3, 0);
        p.on_scheduled(&a1, 100);
        p.on_scheduled(&a2, 100);
        assert_eq!(p.pick_next(&[b], &[a1, a2], 8), Some(0));
        // b became active at a's counter; a keeps being served while b waits.
        p.on_scheduled(&a1, 1);
        assert_eq!(p.preempt_for(&b, &[a1, a2], &[a1, a2], 2), Some(1), "a's newest sequence makes room");
        // Nobody less served than the waiting tenant is preempted, nor its own sequences.
        let a3 = view(4, "a", 4, 0);
        assert_eq!(p.preempt_for(&a3, &[a1, a2], &[a1, a2], 2), None);
        let important = SeqView { priority: 5, ..a2 };
        assert_eq!(p.preempt_for(&b, &[important], &[a1, important], 2), None, "never a more important sequence");
        // A tenant already running its share of the slots waits its turn.
        let b1 = view(5, "b", 5, 4);
        assert_eq!(p.preempt_for(&b, &[a1, a2], &[a1, a2, b1], 3), None, "b holds 1 of its 1.5 slots");
        assert_eq!(p.preempt_for(&b, &[a1, a2], &[a1, a2, b1], 8), Some(1), "b holds 1 of its 4 slots");
    }

    #[test]
    fn a_tenant_over_its_kv_share_is_preempted_first() {
        let shares: TenantShares = Arc::default();
        shares.write().unwrap().insert("a".into(), TenantShare { weight: 1.0, max_kv_fraction: 0.25 });
        let mut p = Vtc::new(shares);
        let (a, b) = (view(1, "a", 1, 40), view(2, "b", 2, 20));
        p.on_scheduled(&b, 1000); // b is far more served ...
        // ... but a holds 40 of 100 blocks, over its 25%: a goes first.
        assert_eq!(p.pick_victim(&[a, b], &[a, b], 100), 0);
        assert_eq!(p.pick_victim(&[a, b], &[a, b], 1000), 1, "under its share: the most served goes");
    }
}
