//! Several engines behind one model name, chosen per request by a router
//! plugin: least-loaded keeps in-flight counts balanced under concurrent
//! clients, and prefix-affinity keeps each system prompt on the engine that
//! caches it, for a prefix-cache hit rate well above least-loaded's.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::*;

fn two_engines(tag: &str, router: &str, kv_mib: usize) -> std::path::PathBuf {
    write_config(
        tag,
        &format!(
            "[[models]]\nname = \"SmolLM2-135M-Instruct\"\nreplicas = 2\nkv_cache_mib = {kv_mib}\n[models.pipeline]\nrouter = \"{router}\"\n"
        ),
    )
}

/// `name{engine="engine-N"}` for both engines.
fn per_engine(text: &str, name: &str) -> [f64; 2] {
    let mut v = [0.0; 2];
    for line in text.lines() {
        for (i, slot) in v.iter_mut().enumerate() {
            if let Some(rest) =
                line.strip_prefix(&format!("{name}{{model_name=\"SmolLM2-135M-Instruct\",engine=\"engine-{i}\"}} "))
            {
                *slot = rest.trim().parse().unwrap();
            }
        }
    }
    v
}

fn scrape(s: &Server) -> String {
    client().get(format!("{}/metrics", s.base)).send().unwrap().text().unwrap()
}

#[test]
fn least_loaded_keeps_two_engines_within_one_request_under_16_clients() {
    let cfg = two_engines("least-loaded", "router-least-loaded", 256);
    let (s, _) = start(&["--config", cfg.to_str().unwrap()]);
    let stop = AtomicBool::new(false);
    let samples = Mutex::new(Vec::<[f64; 2]>::new());
    let served = Mutex::new([0usize; 1]);
    std::thread::scope(|sc| {
        for c in 0..16 {
            let (s, stop, served) = (&s, &stop, &served);
            sc.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    // Varied lengths so completions do not line up.
                    let body = chat(
                        &format!("client {c} request {i}: say something"),
                        json!({"max_tokens": 8 + (c * 7 + i * 3) % 24}),
                    );
                    let (st, b) = post(s, "/v1/chat/completions", &body);
                    assert_eq!(st, 200, "{b}");
                    served.lock().unwrap()[0] += 1;
                    i += 1;
                }
            });
        }
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            let v = per_engine(&scrape(&s), "weft_requests_in_flight");
            samples.lock().unwrap().push(v);
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let samples = samples.into_inner().unwrap();
    let full: Vec<_> = samples.iter().filter(|v| v[0] + v[1] == 16.0).collect();
    let max_diff_full = full.iter().map(|v| (v[0] - v[1]).abs()).fold(0.0, f64::max);
    let within_one = samples.iter().filter(|v| (v[0] - v[1]).abs() <= 1.0).count();
    let max_diff = samples.iter().map(|v| (v[0] - v[1]).abs()).fold(0.0, f64::max);
    let text = scrape(&s);
    let steps = per_engine(&text, "weft_engine_steps_total");
    eprintln!(
        "least-loaded, 16 clients, 20 s: {} requests served; {} samples, {:.1}% within one request (max difference {max_diff}); \
         with all 16 in flight: {} samples, max difference {max_diff_full}; engine steps {steps:?}",
        served.lock().unwrap()[0],
        samples.len(),
        100.0 * within_one as f64 / samples.len() as f64,
        full.len()
    );
    assert!(full.len() >= 20, "too few samples with all clients in flight: {}", full.len());
    assert!(max_diff_full <= 1.0, "with 16 requests in flight the engines differ by {max_diff_full}");
    assert!(steps[0] > 0.0 && steps[1] > 0.0, "both engines served: {steps:?}");
}

/// Four long, distinct system prompts (about 300 tokens each).
fn system_prompts() -> Vec<String> {
    let topics = ["astronomy", "cooking", "tax law", "sailing"];
    topics
        .iter()
        .enumerate()
        .map(|(k, t)| {
            (0..15)
                .map(|i| {
                    format!(
                        "Rule {i} for the {t} assistant number {k}: answer about {t} with care, item {}. ",
                        i * 31 + k
                    )
                })
                .collect()
        })
        .collect()
}

/// Hit rate over both engines after a fixed workload: 48 requests, 4 clients,
/// each request one of the four system prompts plus a short question.
fn hit_rate(router: &str) -> (f64, f64, f64) {
    let cfg = two_engines(router, router, 20);
    let (s, _) = start(&["--config", cfg.to_str().unwrap()]);
    let prompts = system_prompts();
    let next = Mutex::new(0usize);
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    if i >= 48 {
                        return;
                    }
                    // A fixed, scrambled order of the four prompts.
                    let p = &prompts[(i * 7 + i / 5) % 4];
                    let body: Value = json!({"model": "SmolLM2-135M-Instruct", "max_tokens": 4, "temperature": 0,
                        "messages": [{"role": "system", "content": p}, {"role": "user", "content": format!("question {i}?")}]});
                    let (st, b) = post(&s, "/v1/chat/completions", &body);
                    assert_eq!(st, 200, "{b}");
                }
            });
        }
    });
    let text = scrape(&s);
    let hits = per_engine(&text, "weft_prefix_cache_hits_total");
    let queries = per_engine(&text, "weft_prefix_cache_queries_total");
    let preempt = per_engine(&text, "weft_preemptions_total");
    ((hits[0] + hits[1]) / (queries[0] + queries[1]), queries[0] / (queries[0] + queries[1]), preempt[0] + preempt[1])
}

#[test]
fn prefix_affinity_beats_least_loaded_on_prefix_cache_hits() {
    let (ll, ll_share, ll_pre) = hit_rate("router-least-loaded");
    let (pa, pa_share, pa_pre) = hit_rate("router-prefix-affinity");
    eprintln!(
        "4 system prompts x 12 requests, 2 engines with 20 MiB of f16 KV each: prefix-cache hit rate least-loaded {:.1}% \
         (engine-0 share of lookups {:.0}%, preemptions {ll_pre}), prefix-affinity {:.1}% (share {:.0}%, preemptions {pa_pre})",
        ll * 100.0,
        ll_share * 100.0,
        pa * 100.0,
        pa_share * 100.0
    );
    assert!(pa > ll + 0.15, "prefix-affinity {pa:.3} is not well above least-loaded {ll:.3}");
    assert!(pa_share > 0.2 && pa_share < 0.8, "affinity still uses both engines: {pa_share:.2}");
}
