//! `weft bench tenants`: fair scheduling between tenants on the default model,
//! in-process, both policies in the same run.
//!
//! 1. Tenant A keeps 64 long requests in flight; B sends one short request at
//!    a time. B's time to first token alone, and under FCFS and under VTC
//!    (which preempts one of A's sequences to admit B), with the preemption
//!    count and the engine's token throughput during the flood.
//! 2. A and B both saturate the engine with weights 1:1 and 2:1: the ratio of
//!    tokens each is served over a fixed window.
//! 3. B's inter-token latency while A's sampler plugin is slow (near its
//!    deadline) against A's ordinary sampler plugin.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use weft_engine::{
    Engine, EngineConfig, EngineHandle, Event, Fcfs, LoadOptions, Request, SamplingParams, SchedulerConfig,
    TenantShare, TenantShares, Vtc,
};
use weft_runtime::WasmSamplerFactory;

use super::pct;

const MAX_SEQS: usize = 8;

fn prompt(seed: usize, len: usize) -> Vec<u32> {
    (0..len as u32).map(|j| 1000 + (j * 7919 + seed as u32 * 104_729) % 30_000).collect()
}

fn request(tenant: &str, seed: usize, prompt_len: usize, new_tokens: usize) -> Request {
    // Distinct prompts per tenant: a prefix cached by one tenant must not make the other's cheaper.
    let seed = seed + tenant.bytes().map(|b| b as usize).sum::<usize>() * 1_000_003;
    let mut r = Request::new(prompt(seed, prompt_len), new_tokens)
        .with_params(SamplingParams { temperature: 0.0, ..Default::default() });
    r.ignore_eos = true;
    r.tenant = Arc::from(tenant);
    r
}

fn engine(model: &std::path::Path, fair: Option<TenantShares>) -> anyhow::Result<EngineHandle> {
    let cfg = EngineConfig {
        scheduler: SchedulerConfig { max_num_seqs: MAX_SEQS, ..Default::default() },
        ..Default::default()
    };
    let policy: Box<dyn weft_engine::SchedulingPolicy> = match fair {
        Some(s) => Box::new(Vtc::new(s)),
        None => Box::new(Fcfs),
    };
    Ok(Engine::start_with_policy(weft_engine::model::load(model, LoadOptions::default())?, cfg, policy)?)
}

/// Keeps `n` requests of `tenant` in flight until `stop`; counts their tokens.
fn flood<'s>(
    sc: &'s std::thread::Scope<'s, '_>,
    h: &'s EngineHandle,
    tenant: &'static str,
    n: usize,
    new_tokens: usize,
    stop: &'s AtomicBool,
    tokens: &'s AtomicUsize,
) {
    for i in 0..n {
        sc.spawn(move || {
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let Ok(mut s) = h.submit(request(tenant, i * 1000 + k, 64, new_tokens)) else { return };
                while let Some(ev) = s.blocking_next() {
                    match ev {
                        Event::Token { .. } => {
                            tokens.fetch_add(1, Ordering::Relaxed);
                            if stop.load(Ordering::Relaxed) {
                                return; // dropping the stream cancels
                            }
                        }
                        _ => break,
                    }
                }
            }
        });
    }
}

/// B's TTFTs (ms), one request at a time, while A keeps `flood_n` requests in flight;
/// and the tokens per second the engine served over a fixed window of `window`
/// during the flood (the same length for every policy, so the figures compare).
fn ttft_under_flood(
    h: &EngineHandle,
    samples: usize,
    flood_n: usize,
    window: Duration,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let stop = AtomicBool::new(false);
    let a_tokens = AtomicUsize::new(0);
    let out = Mutex::new(Vec::new());
    let mut tok_s = 0.0;
    std::thread::scope(|sc| -> anyhow::Result<()> {
        flood(sc, h, "A", flood_n, 32, &stop, &a_tokens);
        std::thread::sleep(Duration::from_secs(2));
        let (t_start, gen0) = (Instant::now(), h.metrics().generation_tokens);
        for i in 0..samples {
            let t0 = Instant::now();
            let mut s = h.submit(request("B", 900_000 + i, 32, 4))?;
            while let Some(ev) = s.blocking_next() {
                if let Event::Token { .. } = ev {
                    out.lock().unwrap().push(t0.elapsed().as_secs_f64() * 1e3);
                    break;
                }
            }
            drop(s);
            // A breath between B's requests, as a client's think time.
            std::thread::sleep(Duration::from_millis(200));
        }
        // B's requests take longer under some policies: top the window up to its fixed length.
        if let Some(rest) = window.checked_sub(t_start.elapsed()) {
            std::thread::sleep(rest);
        }
        tok_s = (h.metrics().generation_tokens - gen0) as f64 / t_start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        Ok(())
    })?;
    Ok((out.into_inner().unwrap(), tok_s))
}

/// Tokens served to A and B over `secs` with both saturating the engine.
fn share_ratio(h: &EngineHandle, secs: f64) -> (usize, usize) {
    let stop = AtomicBool::new(false);
    let (a, b) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|sc| {
        flood(sc, h, "A", 24, 24, &stop, &a);
        flood(sc, h, "B", 24, 24, &stop, &b);
        // Let the counters settle, then measure a window.
        std::thread::sleep(Duration::from_secs(3));
        let (a0, b0) = (a.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_secs_f64(secs));
        let r = (a.load(Ordering::Relaxed) - a0, b.load(Ordering::Relaxed) - b0);
        stop.store(true, Ordering::Relaxed);
        r
    })
}

/// B's inter-token latencies (ms) while 4 sequences of A run with `a_sampler`.
fn itl_beside(h: &EngineHandle, a_sampler: &WasmSamplerFactory, args: &str, vocab: usize) -> anyhow::Result<Vec<f64>> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut a_streams = Vec::new();
    for i in 0..4 {
        let mut r = request("A", 500 + i, 32, 400);
        r.sampler = Some(Box::new(a_sampler.session(&r.params, 400, args, &r.prompt, vocab)?));
        a_streams.push(h.submit(r)?);
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut itl = Vec::new();
    let mut s = h.submit(request("B", 77, 32, 48))?;
    let mut last = None::<Instant>;
    while let Some(ev) = s.blocking_next() {
        match ev {
            Event::Token { .. } => {
                let now = Instant::now();
                if let Some(l) = last {
                    itl.push((now - l).as_secs_f64() * 1e3);
                }
                last = Some(now);
            }
            _ => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(a_streams);
    Ok(itl)
}

pub fn run(as_json: bool, quick: bool) -> anyhow::Result<()> {
    let model = crate::model_source::resolve(None)?;
    let mut r = serde_json::Map::new();
    let samples = if quick { 4 } else { 10 };

    // 1. B's TTFT alone, and while A floods.
    {
        let h = engine(&model, Some(TenantShares::default()))?;
        let (mut t, _) = ttft_under_flood(&h, samples, 0, Duration::ZERO)?;
        r.insert("b_ttft_alone_p50_ms".into(), json!(pct(&mut t, 0.5)));
        r.insert("b_ttft_alone_p99_ms".into(), json!(pct(&mut t, 0.99)));
    }
    for (name, fair) in [("fcfs", None), ("vtc", Some(TenantShares::default()))] {
        let h = engine(&model, fair)?;
        let window = Duration::from_secs(if quick { 10 } else { 30 });
        let (mut t, tok_s) = ttft_under_flood(&h, samples, 64, window)?;
        let m = h.metrics();
        r.insert(format!("b_ttft_{name}_p50_ms"), json!(pct(&mut t, 0.5)));
        r.insert(format!("b_ttft_{name}_p99_ms"), json!(pct(&mut t, 0.99)));
        r.insert(format!("flood_{name}_tok_s"), json!(tok_s));
        r.insert(format!("flood_{name}_preemptions"), json!(m.preemptions));
        r.insert(format!("flood_{name}_fair_preemptions"), json!(m.fair_preemptions));
    }

    // 2. Shares under saturation, weights 1:1 and 2:1.
    let secs = if quick { 5.0 } else { 15.0 };
    for (wa, wb) in [(1.0, 1.0), (2.0, 1.0)] {
        let shares = TenantShares::default();
        shares.write().unwrap().insert("A".into(), TenantShare { weight: wa, max_kv_fraction: 1.0 });
        shares.write().unwrap().insert("B".into(), TenantShare { weight: wb, max_kv_fraction: 1.0 });
        let h = engine(&model, Some(shares))?;
        let (a, b) = share_ratio(&h, secs);
        r.insert(format!("tokens_a_b_weights_{wa}_{wb}"), json!([a, b]));
        r.insert(format!("ratio_weights_{wa}_{wb}"), json!(a as f64 / b.max(1) as f64));
    }

    // 3. B's inter-token latency beside a slow sampler plugin of A's.
    let rt = crate::cli::runtime()?;
    let h = engine(&model, Some(TenantShares::default()))?;
    let vocab = h.model().config.vocab_size;
    let bytes = std::fs::read(weft_runtime::builtin::build_dir().join("hostile_sampler.wasm"))?;
    let limits = weft_runtime::Limits { deadline: Duration::from_millis(50), ..Default::default() };
    let hostile = WasmSamplerFactory::new(rt.load("hostile", &bytes, limits, vec![])?)?;
    let mut normal = itl_beside(&h, &hostile, r#"{"mode": "ok"}"#, vocab)?;
    let mut slow = itl_beside(&h, &hostile, r#"{"mode": "slow", "spin": 30000000}"#, vocab)?;
    r.insert("b_itl_a_normal_p50_ms".into(), json!(pct(&mut normal, 0.5)));
    r.insert("b_itl_a_slow_p50_ms".into(), json!(pct(&mut slow, 0.5)));
    r.insert("b_itl_a_slow_p99_ms".into(), json!(pct(&mut slow, 0.99)));

    if as_json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    println!("weft bench tenants (default model, {MAX_SEQS} sequences per step)");
    println!("  A keeps 64 requests in flight, B sends one at a time ({samples} samples):");
    println!("    alone B's TTFT p50 {:8.0} ms   p99 {:8.0} ms", f("b_ttft_alone_p50_ms"), f("b_ttft_alone_p99_ms"));
    for p in ["fcfs", "vtc"] {
        println!(
            "    {p:<5} B's TTFT p50 {:8.0} ms   p99 {:8.0} ms   engine {:6.1} tok/s   preemptions {} (for fairness {})",
            f(&format!("b_ttft_{p}_p50_ms")),
            f(&format!("b_ttft_{p}_p99_ms")),
            f(&format!("flood_{p}_tok_s")),
            r[&format!("flood_{p}_preemptions")],
            r[&format!("flood_{p}_fair_preemptions")],
        );
    }
    println!("    throughput under VTC with preemption: {:.2}x FCFS's", f("flood_vtc_tok_s") / f("flood_fcfs_tok_s"));
    println!("  A and B both saturating, tokens served over {secs} s:");
    for (wa, wb) in [(1.0, 1.0), (2.0, 1.0)] {
        println!(
            "    weights {wa}:{wb}  A:B tokens {}  ratio {:.2} (target {:.2})",
            r[&format!("tokens_a_b_weights_{wa}_{wb}")],
            f(&format!("ratio_weights_{wa}_{wb}")),
            wa / wb
        );
    }
    println!(
        "  B's inter-token latency p50: {:.1} ms beside A's ordinary sampler plugin, {:.1} ms (p99 {:.1}) beside a slow one (deadline 50 ms)",
        f("b_itl_a_normal_p50_ms"),
        f("b_itl_a_slow_p50_ms"),
        f("b_itl_a_slow_p99_ms")
    );
    Ok(())
}
