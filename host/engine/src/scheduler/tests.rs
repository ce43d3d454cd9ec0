//! The scheduler's unit tests: admission, chunking, preemption, fairness.

use super::*;
use std::sync::Arc;

fn sched(blocks: usize, budget: usize) -> Scheduler {
    Scheduler::new(
        SchedulerConfig { max_batched_tokens: budget, max_num_seqs: 8, watermark_blocks: 0 },
        BlockManager::new(blocks, 4, true),
        Box::new(Fcfs),
    )
}

fn run_step(s: &mut Scheduler, next: u32) -> StepPlan {
    let plan = s.schedule();
    for sc in &plan.scheduled {
        s.complete(sc);
        if sc.want_logits {
            s.append_token(sc.id, next);
        }
    }
    plan
}

#[test]
fn chunked_prefill_then_decode() {
    let mut s = sched(16, 6);
    s.add(1, "a".into(), 0, (0..10).collect());
    let p = run_step(&mut s, 99);
    assert_eq!(p.scheduled, vec![Scheduled { id: 1, start: 0, len: 6, want_logits: false }]);
    let p = run_step(&mut s, 99);
    assert_eq!(p.scheduled, vec![Scheduled { id: 1, start: 6, len: 4, want_logits: true }]);
    s.add(2, "a".into(), 0, (0..3).collect());
    let p = run_step(&mut s, 99);
    // Decode of 1 comes first, then 2's prefill within the budget.
    assert_eq!(p.scheduled[0], Scheduled { id: 1, start: 10, len: 1, want_logits: true });
    assert_eq!(p.scheduled[1], Scheduled { id: 2, start: 0, len: 3, want_logits: true });
}

#[test]
fn prefix_hit_skips_cached_blocks() {
    let mut s = sched(16, 64);
    s.add(1, "a".into(), 0, (0..10).collect());
    run_step(&mut s, 7);
    s.remove(1);
    s.add(2, "a".into(), 0, (0..9).chain([42]).collect());
    let p = run_step(&mut s, 7);
    assert_eq!(p.scheduled[0].start, 8, "two full blocks of 4 reused");
    assert_eq!(s.get(2).unwrap().cached_prompt_tokens, Some(8));
}

#[test]
fn preempts_most_recent_when_blocks_run_out() {
    let mut s = sched(4, 64);
    s.add(1, "a".into(), 0, (0..7).collect()); // 2 blocks
    s.add(2, "a".into(), 0, (100..107).collect()); // 2 blocks
    run_step(&mut s, 1);
    run_step(&mut s, 1);
    // Both at 9 tokens now; the next decode needs a third block each -> preempt 2.
    let p = run_step(&mut s, 1);
    assert_eq!(p.preempted, vec![2]);
    assert_eq!(s.preemptions(), 1);
    assert_eq!(s.num_waiting(), 1);
    s.remove(1);
    s.remove(2);
    s.block_manager().check_idle().unwrap();
}

#[test]
fn lone_sequence_that_cannot_grow_is_reported() {
    let mut s = sched(2, 64);
    s.add(1, "a".into(), 0, (0..8).collect());
    run_step(&mut s, 1);
    let p = run_step(&mut s, 1);
    assert_eq!(p.out_of_memory, vec![1]);
}

/// Two tenants keep the queue full; VTC must serve them tokens in the ratio of their weights.
#[test]
fn vtc_serves_saturating_tenants_by_weight() {
    for (wa, want) in [(1.0, 1.0), (2.0, 2.0)] {
        let shares: TenantShares = Default::default();
        shares.write().unwrap().insert("A".into(), TenantShare { weight: wa, max_kv_fraction: 1.0 });
        let mut s = Scheduler::new(
            SchedulerConfig { max_batched_tokens: 256, max_num_seqs: 8, watermark_blocks: 0 },
            BlockManager::new(4096, 16, false),
            Box::new(Vtc::new(shares)),
        );
        let mut next_id = 0u64;
        let mut tenant_of = std::collections::HashMap::new();
        let mut add = |s: &mut Scheduler, t: &str, tenant_of: &mut std::collections::HashMap<u64, String>| {
            next_id += 1;
            s.add(next_id, Arc::from(t), 0, (0..32).collect());
            tenant_of.insert(next_id, t.to_string());
        };
        for _ in 0..16 {
            add(&mut s, "A", &mut tenant_of);
            add(&mut s, "B", &mut tenant_of);
        }
        let mut served = std::collections::HashMap::<String, usize>::new();
        for _ in 0..3000 {
            let plan = run_step(&mut s, 5);
            for sc in &plan.scheduled {
                if sc.want_logits {
                    *served.entry(tenant_of[&sc.id].clone()).or_default() += 1;
                }
            }
            let done: Vec<u64> = s.ids().filter(|id| s.get(*id).is_some_and(|q| q.tokens.len() >= 32 + 16)).collect();
            for id in done {
                s.remove(id);
                let t = tenant_of[&id].clone();
                add(&mut s, &t, &mut tenant_of);
            }
        }
        let ratio = served["A"] as f64 / served["B"] as f64;
        assert!((ratio / want - 1.0).abs() < 0.1, "weight {wa}: A/B = {ratio:.2} ({served:?})");
    }
}

/// A floods every slot; B, arriving later, is admitted within a bounded
/// number of steps by preempting one of A's sequences, not when one ends.
#[test]
fn vtc_admits_an_under_served_tenant_within_a_few_steps() {
    let mut s = Scheduler::new(
        SchedulerConfig { max_batched_tokens: 256, max_num_seqs: 4, watermark_blocks: 0 },
        BlockManager::new(4096, 16, false),
        Box::new(Vtc::new(Default::default())),
    );
    for id in 1..=8 {
        s.add(id, Arc::from("A"), 0, (0..32).collect());
    }
    for _ in 0..4 {
        run_step(&mut s, 5);
    }
    assert_eq!(s.num_running(), 4, "A holds every slot");
    s.add(100, Arc::from("B"), 0, (0..32).collect());
    let mut steps = 0;
    while !s.get(100).unwrap().running {
        let plan = run_step(&mut s, 5);
        steps += 1;
        assert!(steps <= MIN_RUN_STEPS + 2, "B still waiting after {steps} steps");
        if s.fair_preemptions() == 1 {
            // The preemption's own step admits B and computes its prompt.
            assert!(plan.scheduled.iter().any(|c| c.id == 100), "B admitted in the preemption's step");
        }
    }
    assert_eq!(s.fair_preemptions(), 1);
    // Once B runs its share, A is not preempted again: no thrashing.
    for _ in 0..50 {
        run_step(&mut s, 5);
    }
    assert_eq!(s.fair_preemptions(), 1);
}
