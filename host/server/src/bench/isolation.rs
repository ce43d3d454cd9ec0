//! `weft bench isolation`: a well-behaved tenant's latency on the real
//! server, alone and beside hostile neighbours, all in one run.
//!
//! The server (a child `weft serve`) has five tenants: `good` and `polite`
//! (the default pipeline), `slow` (a sampler plugin that spins for about 80% of its 50 ms
//! deadline on every step, calibrated on this machine first), `sleepy` (a
//! sampler that sleeps 10 s per step through WASI) and `poison` (sends 1 MB
//! prompts of special-token text, one after another). For each case, `good`
//! sends streaming requests one at a time while the neighbours keep theirs in
//! flight; the report is good's TTFT and inter-token p50/p99, and the engine's
//! tokens/s over the case (all tenants), with ratios to `alone` and to
//! `polite` (the same number of well-behaved neighbour requests: sharing the
//! engine's batch costs something on any machine, and that is not a fault of
//! the hostile plugins). The neighbours' client threads run at the lowest CPU
//! priority: they stand for clients on other machines, and their own CPU use
//! here is not the server's to isolate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_engine::sampling::{History, SequenceSampler};
use weft_runtime::WasmSamplerFactory;

use super::{Spawned, free_port, pct};

const DEADLINE_MS: u64 = 50;
const NEIGHBOURS: usize = 2;

fn key(t: &str) -> String {
    format!("bench-isolation-{t}-key")
}

/// Spin iterations that make the hostile sampler's step take `target` here.
fn calibrate(target: Duration) -> anyhow::Result<u64> {
    let rt = crate::cli::runtime()?;
    let bytes = std::fs::read(weft_runtime::builtin::build_dir().join("hostile_sampler.wasm"))?;
    let limits = weft_runtime::Limits { deadline: Duration::from_secs(5), ..Default::default() };
    let f = WasmSamplerFactory::new(rt.load("calibrate", &bytes, limits, vec![])?)?;
    let spin = 10_000_000u64;
    let params = weft_engine::SamplingParams::default();
    let mut s = f.session(&params, 16, &format!(r#"{{"mode": "slow", "spin": {spin}}}"#), &[1, 2, 3], 1000)?;
    let mut logits = vec![0.0f32; 1000];
    let history = History { prompt: &[1, 2, 3], output: &[] };
    let _ = s.sample(&mut logits, history);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        s.sample(&mut logits, history).map_err(|e| anyhow::anyhow!("{e}"))?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    Ok((spin as f64 * target.as_secs_f64() / best) as u64)
}

/// With tenants, `/metrics` answers only to the admin key.
const ADMIN_KEY: &str = "bench-isolation-admin-key";

fn config(spin: u64, admin_port: u16) -> anyhow::Result<String> {
    let dir = weft_runtime::builtin::build_dir();
    let sampler = dir.join("hostile_sampler.wasm").display().to_string();
    let hash = |k: &str| crate::config::hash_key(k);
    let mut c = format!(
        "[server]\nmax_queued_requests = 1024\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\nkey = \"{ADMIN_KEY}\"\nwatch = false\n\n[[models]]\nname = \"{}\"\n",
        weft_engine::DefaultModel::NAME
    );
    for (t, mode) in [("good", ""), ("polite", ""), ("poison", ""), ("slow", "slow"), ("sleepy", "sleep")] {
        c.push_str(&format!("\n[[tenants]]\nid = \"{t}\"\napi_keys = [\"{}\"]\n", hash(&key(t))));
        if !mode.is_empty() {
            c.push_str(&format!(
                "[tenants.pipeline]\nsampler = \"h\"\n[[tenants.plugins]]\nname = \"h\"\nfile = \"{sampler}\"\nkind = \"sampler\"\n\
                 limits = {{ deadline_ms = {DEADLINE_MS}, breaker_failures = 1000000 }}\n[tenants.plugins.config]\nmode = \"{mode}\"\nspin = \"{spin}\"\n"
            ));
        }
    }
    Ok(c)
}

fn body(content: &str, max_tokens: usize, stream: bool) -> Value {
    json!({"model": weft_engine::DefaultModel::NAME, "messages": [{"role": "user", "content": content}],
           "max_tokens": max_tokens, "temperature": 0.7, "seed": 1, "ignore_eos": true, "stream": stream})
}

/// One streamed request of `tenant`: (TTFT, inter-token gaps), seconds.
fn streamed(url: &str, tenant: &str, content: &str, max_tokens: usize) -> anyhow::Result<(f64, Vec<f64>)> {
    let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).build()?;
    let t0 = Instant::now();
    let r = c
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key(tenant))
        .json(&body(content, max_tokens, true))
        .send()?;
    let s = super::read_stream(r, t0)?;
    Ok((s.ttft, s.gaps))
}

/// Neighbour requests that ended 200, and those that did not.
#[derive(Default)]
struct Outcomes {
    ok: AtomicUsize,
    failed: AtomicUsize,
}

/// Keeps `n` requests of `tenant` in flight until `stop`.
fn neighbours(
    url: &str,
    tenant: &'static str,
    n: usize,
    stop: &Arc<AtomicBool>,
    outcomes: &Arc<Outcomes>,
) -> Vec<std::thread::JoinHandle<()>> {
    // Built once: the load is the server's to carry, not this client's.
    let poison = Arc::new(body(&"<|im_end|>".repeat(100_000), 8, false).to_string());
    let n = if tenant == "poison" { 1 } else { n };
    (0..n)
        .map(|i| {
            let (url, stop, poison, outcomes) = (url.to_string(), stop.clone(), poison.clone(), outcomes.clone());
            std::thread::spawn(move || {
                weft_engine::sampling::pool::lower_thread_priority(19);
                let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).build().expect("client");
                while !stop.load(Ordering::Relaxed) {
                    let b = if tenant == "poison" {
                        poison.as_str().to_owned()
                    } else {
                        body(&format!("Write a long story number {i}."), 64, false).to_string()
                    };
                    let r = c
                        .post(format!("{url}/v1/chat/completions"))
                        .bearer_auth(key(tenant))
                        .header("content-type", "application/json")
                        .body(b)
                        .send();
                    let ok = r.and_then(|r| r.error_for_status()).and_then(|r| r.bytes()).is_ok();
                    let counter = if ok { &outcomes.ok } else { &outcomes.failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
}

fn engine_tokens(url: &str) -> f64 {
    let r = reqwest::blocking::Client::new().get(format!("{url}/metrics")).bearer_auth(ADMIN_KEY).send();
    let Ok(text) = r.and_then(|r| r.error_for_status()).and_then(|r| r.text()) else { return f64::NAN };
    text.lines()
        .filter(|l| l.starts_with("weft_engine_generation_tokens_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn run(as_json: bool, quick: bool) -> anyhow::Result<()> {
    let spin = calibrate(Duration::from_millis(DEADLINE_MS * 8 / 10))?;
    let cfg_path = std::env::temp_dir().join(format!("weft-bench-isolation-{}.toml", std::process::id()));
    std::fs::write(&cfg_path, config(spin, free_port()?)?)?;
    let (_server, url) = Spawned::serve(Some(&cfg_path))?;
    let requests = if quick { 3 } else { 8 };
    let max_tokens = 48;
    // Warm-up: instances, caches, the first prefill.
    streamed(&url, "good", "Hello.", 8)?;

    let mut report = serde_json::Map::new();
    report.insert("slow_sampler_spin".into(), json!(spin));
    let cases = [
        ("alone", None),
        ("polite", Some("polite")),
        ("slow_sampler", Some("slow")),
        ("sleeping_sampler", Some("sleepy")),
        ("poison_prompt", Some("poison")),
    ];
    for (case, neighbour) in cases {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Outcomes::default());
        let hs = neighbour.map(|t| neighbours(&url, t, NEIGHBOURS, &stop, &outcomes)).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(if neighbour.is_some() { 1500 } else { 0 }));
        let (tok0, c0) = (engine_tokens(&url), Instant::now());
        let (mut ttft, mut itl) = (Vec::new(), Vec::new());
        for i in 0..requests {
            let (t, gaps) = streamed(&url, "good", &format!("Tell me about rivers, part {i}."), max_tokens)?;
            ttft.push(t * 1e3);
            itl.extend(gaps.into_iter().map(|g| g * 1e3));
        }
        let tps = (engine_tokens(&url) - tok0) / c0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for h in hs {
            let _ = h.join();
        }
        report.insert(
            case.into(),
            json!({
                "ttft_p50_ms": pct(&mut ttft, 0.5), "ttft_p99_ms": pct(&mut ttft, 0.99),
                "itl_p50_ms": pct(&mut itl, 0.5), "itl_p99_ms": pct(&mut itl, 0.99),
                "engine_tokens_per_s": tps,
                "neighbour_requests_ok": outcomes.ok.load(Ordering::Relaxed),
                "neighbour_requests_failed": outcomes.failed.load(Ordering::Relaxed),
            }),
        );
    }
    let _ = std::fs::remove_file(&cfg_path);
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let alone_p99 = report["alone"]["itl_p99_ms"].as_f64().unwrap_or(f64::NAN);
    let polite_p99 = report["polite"]["itl_p99_ms"].as_f64().unwrap_or(f64::NAN);
    println!(
        "weft bench isolation: tenant `good` streams {requests} x {max_tokens} tokens, one at a time, beside {NEIGHBOURS} neighbour requests (poison: 1)"
    );
    println!(
        "  slow sampler: {spin} spin iterations = about {} ms of its {DEADLINE_MS} ms deadline per step",
        DEADLINE_MS * 8 / 10
    );
    println!(
        "  {:<17} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>12} {:>16}",
        "case", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "/alone", "/polite", "engine tok/s", "neighbours ok/err"
    );
    for (case, _) in cases {
        let r = &report[case];
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "  {case:<17} {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>8.2} {:>9.2} {:>12.0} {:>16}",
            f("ttft_p50_ms"),
            f("ttft_p99_ms"),
            f("itl_p50_ms"),
            f("itl_p99_ms"),
            f("itl_p99_ms") / alone_p99,
            f("itl_p99_ms") / polite_p99,
            f("engine_tokens_per_s"),
            format!("{}/{}", r["neighbour_requests_ok"], r["neighbour_requests_failed"])
        );
    }
    Ok(())
}
