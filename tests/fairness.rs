//! Fair admission through the real server: while tenant A keeps more requests
//! in flight than the engine runs at once, tenant B's request is admitted by
//! preempting one of A's sequences, and finishes while A's flood still runs.
//! Observed through the engine's metrics and the order of events, not timed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

mod common;
use common::*;

const ADMIN_KEY: &str = "fairness-test-admin-key-0123";

/// A server with an admin listener, the default model (plus the `model`
/// lines) and the `[[tenants]]` of `tenants`.
fn serve(tag: &str, model: &str, tenants: &str) -> Server {
    let admin_port = free_port();
    let cfg = write_config(
        tag,
        &format!(
            "[admin]\nlisten = \"127.0.0.1:{admin_port}\"\nkey = \"{ADMIN_KEY}\"\nwatch = false\n\n\
             [[models]]\nname = \"SmolLM2-135M-Instruct\"\n{model}\n{tenants}"
        ),
    );
    start(&["--config", cfg.to_str().unwrap()]).0
}

/// The sum of the series whose line starts with `name` and contains `label`,
/// from `/metrics` (admin key).
fn scrape(s: &Server, name: &str, label: &str) -> f64 {
    let text = client().get(format!("{}/metrics", s.base)).bearer_auth(ADMIN_KEY).send().unwrap().text().unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn an_under_served_tenant_is_admitted_while_another_floods() {
    let s = serve(
        "fairness",
        "max_sequences = 4",
        &format!(
            "[[tenants]]\nid = \"a\"\napi_keys = [\"{}\"]\n\n[[tenants]]\nid = \"b\"\napi_keys = [\"{}\"]\n",
            hash_key("fair-a-key"),
            hash_key("fair-b-key"),
        ),
    );
    let metric = |name: &str| scrape(&s, name, "");

    // A: 8 long requests at once, twice what the engine runs.
    let a = flood(&s, 8, 400, |r| r.bearer_auth("fair-a-key"));
    // Until A holds every slot and has requests waiting.
    let t0 = std::time::Instant::now();
    while metric("weft_requests_waiting") < 1.0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "A's flood never filled the engine");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = metric("weft_fair_preemptions_total");
    let (st, v) = {
        let r = client()
            .post(format!("{}/v1/completions", s.base))
            .bearer_auth("fair-b-key")
            .json(&json!({"model": "SmolLM2-135M-Instruct", "prompt": "Hello", "max_tokens": 4, "ignore_eos": true}))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(st, 200, "{v}");
    // B was let in by a preemption, not by one of A's requests ending.
    assert!(metric("weft_fair_preemptions_total") > before, "no fairness preemption happened");
    assert_eq!(a.done.load(Ordering::Relaxed), 0, "B finished while none of A's 400-token requests had");
    a.stop();
    drop(s); // ends A's requests
    a.join();
}

/// `kv_share` holds during decode, not only at admission: with a KV cache far
/// too small for the tenants' growing sequences, A (five sequences, over its
/// 20% share all along) gives its own blocks back, and B's one sequence is
/// never preempted, although B is by far the most served tenant (weight 0.25
/// against 4) and would be the victim without the share. Every request of
/// both still finishes whole.
#[test]
fn a_tenant_over_its_kv_share_is_preempted_during_decode() {
    let s = serve(
        "kv-share",
        "kv_cache_mib = 12",
        &format!(
            "[[tenants]]\nid = \"a\"\nweight = 4.0\napi_keys = [\"{}\"]\n[tenants.quotas]\nkv_share = 0.2\n\n\
             [[tenants]]\nid = \"b\"\nweight = 0.25\napi_keys = [\"{}\"]\n",
            hash_key("share-a-key"),
            hash_key("share-b-key"),
        ),
    );
    let requests: Vec<_> = (0..5)
        .map(|i| ("share-a-key", i))
        .chain([("share-b-key", 0)])
        .map(|(key, i)| {
            let base = s.base.clone();
            std::thread::spawn(move || {
                let body = json!({"model": "SmolLM2-135M-Instruct", "prompt": format!("Story {i}:"), "max_tokens": 120, "ignore_eos": true});
                let r = client().post(format!("{base}/v1/completions")).bearer_auth(key).json(&body).send().unwrap();
                (key, r.status().as_u16(), r.json::<serde_json::Value>().unwrap())
            })
        })
        .collect();
    for h in requests {
        let (key, st, v) = h.join().unwrap();
        assert_eq!(st, 200, "{key}: {v}");
        assert_eq!(v["usage"]["completion_tokens"], 120, "{key}: nothing lost to preemption: {v}");
    }
    let preempted = |tenant: &str| scrape(&s, "weft_tenant_preemptions_total{", &format!("tenant=\"{tenant}\""));
    let total = scrape(&s, "weft_preemptions_total", "");
    assert!(total > 0.0, "the cache was meant to run out during decode");
    let (a, b) = (preempted("a"), preempted("b"));
    assert!(a > 0.0 && b == 0.0, "A, over its 20%, gives back first: A {a} preemptions, B {b}");
}
