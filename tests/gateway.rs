//! weft as a model server behind the Gateway API Inference Extension: several
//! models in one server, the vLLM-named metrics an Endpoint Picker scrapes
//! (parsed as Prometheus text, with types and labels), a trusted gateway's
//! fairness id keying the fair scheduler, and the memory budget.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::*;

const ADMIN_KEY: &str = "gateway-test-admin-key-0123";

fn scrape_text(s: &Server) -> String {
    client().get(format!("{}/metrics", s.base)).send().unwrap().text().unwrap()
}

/// Every sample of `/metrics` as (sample name, labels, value), and each
/// family's declared type, from the Prometheus client library's parser.
fn scrape(s: &Server) -> (Vec<PromSample>, HashMap<String, String>) {
    let families = parse_prometheus(&scrape_text(s));
    let types = families.iter().map(|(name, (kind, _))| (name.clone(), kind.clone())).collect();
    let samples = families.into_values().flat_map(|(_, samples)| samples).collect();
    (samples, types)
}

fn value(samples: &[PromSample], name: &str, model: &str) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && l.get("model_name").map(String::as_str) == Some(model))
        .map(|(_, _, v)| *v)
        .sum()
}

fn complete(s: &Server, model: &str, max_tokens: u32) -> (u16, Value) {
    let r = client()
        .post(format!("{}/v1/completions", s.base))
        .json(&json!({"model": model, "prompt": "The sea is", "max_tokens": max_tokens, "ignore_eos": true}))
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

#[test]
fn two_models_answer_under_their_names_with_their_own_vllm_metrics() {
    let admin_port = free_port();
    let models =
        "[[models]]\nname = \"smol\"\n\n[[models]]\nname = \"smol-q8\"\nquantize = \"q8_0\"\nkv_cache_mib = 64\n";
    let head = format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\nkey = \"{ADMIN_KEY}\"\nwatch = false\n\n");
    let cfg = write_config("two-models", &format!("{head}{models}"));
    let s = start(&["--config", cfg.to_str().unwrap()]).0;

    let listed: Value = client().get(format!("{}/v1/models", s.base)).send().unwrap().json().unwrap();
    let mut ids: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["smol", "smol-q8"]);
    let (st, v) = complete(&s, "gpt-4", 4);
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["error"]["code"], "model_not_found", "{v}");

    // The contract the Endpoint Picker reads, by name and type, labelled per model.
    let (samples, types) = scrape(&s);
    for (name, kind) in [
        ("vllm:num_requests_waiting", "gauge"),
        ("vllm:num_requests_running", "gauge"),
        ("vllm:kv_cache_usage_perc", "gauge"),
        ("vllm:cache_config_info", "gauge"),
        ("vllm:lora_requests_info", "gauge"),
        ("vllm:time_to_first_token_seconds", "histogram"),
        ("vllm:inter_token_latency_seconds", "histogram"),
        ("vllm:e2e_request_latency_seconds", "histogram"),
        ("weft_requests_waiting", "gauge"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name} declared as {kind}");
    }
    for model in ["smol", "smol-q8"] {
        for name in ["vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"] {
            assert!(
                samples.iter().any(|(n, l, _)| n == name && l.get("model_name").map(String::as_str) == Some(model)),
                "{name} for {model}"
            );
        }
        let info = samples
            .iter()
            .find(|(n, l, _)| n == "vllm:cache_config_info" && l["model_name"] == model)
            .unwrap_or_else(|| panic!("cache_config_info for {model}"));
        assert_eq!(info.1["block_size"], "16");
        assert!(info.1["num_gpu_blocks"].parse::<usize>().unwrap() > 0);
        let lora = samples.iter().find(|(n, l, _)| n == "vllm:lora_requests_info" && l["model_name"] == model);
        assert_eq!(lora.unwrap().1["max_lora"], "0");
    }
    let kv_blocks = |m: &str| {
        samples.iter().find(|(n, l, _)| n == "vllm:cache_config_info" && l["model_name"] == m).unwrap().1
            ["num_gpu_blocks"]
            .parse::<usize>()
            .unwrap()
    };
    assert!(kv_blocks("smol") > kv_blocks("smol-q8"), "each model has its own KV cache (512 vs 64 MiB)");

    // Values move: a long request shows as running and holding KV on its model only.
    let busy = {
        let base = s.base.clone();
        std::thread::spawn(move || {
            let body = json!({"model": "smol", "prompt": "Once upon a time", "max_tokens": 300, "ignore_eos": true});
            client().post(format!("{base}/v1/completions")).json(&body).send().unwrap().status().as_u16()
        })
    };
    let t0 = Instant::now();
    loop {
        let (now, _) = scrape(&s);
        if value(&now, "vllm:num_requests_running", "smol") >= 1.0 {
            assert!(value(&now, "vllm:kv_cache_usage_perc", "smol") > 0.0);
            assert_eq!(value(&now, "vllm:num_requests_running", "smol-q8"), 0.0);
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the request never showed as running");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(busy.join().unwrap(), 200);
    let (st, v) = complete(&s, "smol-q8", 6);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["model"], "smol-q8");
    assert_eq!(v["usage"]["completion_tokens"], 6);
    let (after, _) = scrape(&s);
    for (model, tokens) in [("smol", 300.0), ("smol-q8", 6.0)] {
        assert_eq!(value(&after, "vllm:generation_tokens_total", model), tokens, "{model}");
        assert_eq!(value(&after, "vllm:request_success_total", model), 1.0, "{model}");
        assert_eq!(value(&after, "vllm:e2e_request_latency_seconds_count", model), 1.0, "{model}: one observation");
        assert_eq!(value(&after, "vllm:time_to_first_token_seconds_count", model), 1.0, "{model}");
        assert_eq!(value(&after, "weft_engine_sequences_finished_total", model), 1.0, "{model}");
    }

    // What a scrape costs the server (printed; the picker scrapes every 50 ms).
    let n = 50;
    let t0 = Instant::now();
    let mut render: Vec<f64> = (0..n)
        .filter_map(|_| {
            let text = scrape_text(&s);
            text.lines().find_map(|l| l.strip_prefix("weft_metrics_render_seconds ")?.trim().parse().ok())
        })
        .collect();
    assert_eq!(render.len(), n, "every scrape reports its own cost");
    render.sort_by(f64::total_cmp);
    eprintln!(
        "/metrics: {:.2} ms per scrape over loopback (client side), server render p50 {:.3} ms, max {:.3} ms, {n} scrapes",
        t0.elapsed().as_secs_f64() * 1e3 / n as f64,
        render[n / 2] * 1e3,
        render[n - 1] * 1e3
    );

    // Adding a model needs a restart, and the reload says so.
    std::fs::write(&cfg, format!("{head}{models}\n[[models]]\nname = \"third\"\n")).unwrap();
    let r = client().post(format!("http://127.0.0.1:{admin_port}/admin/reload")).bearer_auth(ADMIN_KEY).send().unwrap();
    let report: Value = r.json().unwrap();
    let restart = report["restart_needed"].to_string();
    assert!(restart.contains("adding, removing or renaming a model"), "{report}");
    let listed: Value = client().get(format!("{}/v1/models", s.base)).send().unwrap().json().unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2, "still the two models until a restart");
}

/// Behind a trusted gateway, the fairness-id header is the fair scheduler's
/// key: while one id floods, another's request is let in by a preemption of
/// the flood (labelled with the flooding id), and finishes first. Without the
/// setting the header is ignored: first come, first served.
#[test]
fn a_trusted_gateways_fairness_id_keys_the_fair_scheduler() {
    for trusted in [true, false] {
        let cfg = write_config(
            &format!("gateway-{trusted}"),
            &format!(
                "[server]\ntrusted_gateway = {trusted}\n\n[[models]]\nname = \"SmolLM2-135M-Instruct\"\nmax_sequences = 4\n"
            ),
        );
        let s = start(&["--config", cfg.to_str().unwrap()]).0;
        let flooding = flood(&s, 8, 160, |r| r.header("x-gateway-inference-fairness-id", "flood"));
        let t0 = Instant::now();
        while metric(&s, "weft_requests_waiting") < 1.0 {
            assert!(t0.elapsed() < Duration::from_secs(60), "the flood never filled the engine");
            std::thread::sleep(Duration::from_millis(50));
        }
        let r = client()
            .post(format!("{}/v1/completions", s.base))
            .header("x-llm-d-inference-fairness-id", "quiet")
            .header("x-gateway-inference-objective", "5")
            .json(&json!({"model": "SmolLM2-135M-Instruct", "prompt": "Hello", "max_tokens": 4, "ignore_eos": true}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let flood_done = flooding.done.load(Ordering::Relaxed);
        let text = scrape_text(&s);
        let flood_preempted: f64 = text
            .lines()
            .filter(|l| l.starts_with("weft_tenant_preemptions_total{") && l.contains("tenant=\"flood\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        flooding.stop();
        drop(s);
        flooding.join();
        if trusted {
            assert!(flood_preempted > 0.0, "the quiet id was let in by preempting the flooding one:\n{text}");
            assert_eq!(flood_done, 0, "the quiet request finished before any of the flood's");
        } else {
            assert_eq!(flood_preempted, 0.0, "untrusted headers are ignored");
            assert!(flood_done > 0, "first come, first served: the quiet request waited for the flood");
        }
    }
}

#[test]
fn models_that_cannot_fit_the_memory_budget_are_refused_with_their_sizes() {
    let cfg = write_config(
        "budget",
        "[server]\nmemory_budget_mib = 300\n\n[[models]]\nname = \"a\"\n\n[[models]]\nname = \"b\"\nquantize = \"q8_0\"\nkv_cache_mib = 64\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "--port", &free_port().to_string(), "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("memory budget is 300 MiB"), "{err}");
    assert!(err.contains("`a`: weights") && err.contains("`b`: weights") && err.contains("KV 512 MiB"), "{err}");
}
