//! End to end: the real `weft serve` on a free localhost port, spoken to over HTTP.

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::*;

#[test]
fn serves_the_openai_api_on_the_default_model() {
    let (s, first_ready) = start(&[]);
    assert!(first_ready == 503 || first_ready == 200);
    let c = client();

    // Models.
    let m: Value = c.get(format!("{}/v1/models", s.base)).send().unwrap().json().unwrap();
    assert_eq!(m["data"][0]["id"], "SmolLM2-135M-Instruct");

    // Non-streaming and streaming give the same text for the same seed.
    let (st, full) = post(&s, "/v1/chat/completions", &chat("Name three colors.", json!({})));
    assert_eq!(st, 200, "{full}");
    let text = full["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(!text.is_empty());
    assert!(["stop", "length"].contains(&full["choices"][0]["finish_reason"].as_str().unwrap()));
    let usage = &full["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 5);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    let chunks = sse(
        &s.base,
        "/v1/chat/completions",
        &chat("Name three colors.", json!({"stream": true, "stream_options": {"include_usage": true}})),
    );
    let streamed: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(streamed, text);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], usage["completion_tokens"]);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");

    // Prefix cache: the same prompt again reports cached prompt tokens.
    let (_, again) = post(&s, "/v1/chat/completions", &chat("Name three colors.", json!({})));
    assert!(again["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap() > 0, "{again}");

    // n, logprobs.
    let (st, multi) = post(
        &s,
        "/v1/chat/completions",
        &chat("Say hi", json!({"n": 3, "logprobs": true, "top_logprobs": 2, "max_tokens": 5})),
    );
    assert_eq!(st, 200, "{multi}");
    assert_eq!(multi["choices"].as_array().unwrap().len(), 3);
    let lp = &multi["choices"][0]["logprobs"]["content"][0];
    assert!(lp["logprob"].as_f64().unwrap() <= 0.0);
    assert_eq!(lp["top_logprobs"].as_array().unwrap().len(), 2);

    // Completions with a stop string: the stop string never reaches the client.
    let body = json!({"model": "SmolLM2-135M-Instruct", "prompt": "1, 2, 3, 4,", "max_tokens": 30, "temperature": 0, "stop": [" 7"]});
    let (st, comp) = post(&s, "/v1/completions", &body);
    assert_eq!(st, 200, "{comp}");
    let t = comp["choices"][0]["text"].as_str().unwrap();
    assert!(!t.contains(" 7"), "{t:?}");
    if t.contains('6') {
        assert_eq!(comp["choices"][0]["finish_reason"], "stop", "{t:?}");
    }
    let chunks = sse(
        &s.base,
        "/v1/completions",
        &json!({"model": "SmolLM2-135M-Instruct", "prompt": "1, 2, 3, 4,", "max_tokens": 30, "temperature": 0, "stop": [" 7"], "stream": true}),
    );
    let streamed: String = chunks.iter().filter_map(|c| c["choices"][0]["text"].as_str()).collect();
    assert_eq!(streamed, t);

    // 16 concurrent streams all complete.
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let base = s.base.clone();
            std::thread::spawn(move || {
                let chunks = sse(
                    &base,
                    "/v1/chat/completions",
                    &chat(&format!("Count to {i}."), json!({"stream": true, "max_tokens": 16})),
                );
                chunks.iter().any(|c| c["choices"][0]["finish_reason"].is_string())
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap(), "every stream finishes");
    }

    // A client that disconnects mid-stream frees its KV blocks.
    let mut r = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&chat("Write a very long story.", json!({"stream": true, "max_tokens": 4000, "ignore_eos": true})))
        .send()
        .unwrap();
    let mut buf = [0u8; 256];
    let _ = r.read(&mut buf).unwrap();
    assert!(metric(&s, "weft_kv_blocks_used") > 0.0);
    drop(r);
    let t0 = Instant::now();
    while metric(&s, "weft_kv_blocks_used") > 0.0 || metric(&s, "weft_requests_running") > 0.0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "blocks not freed after disconnect");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Every bad input gets its status and an OpenAI error body.
    let raw = |body: &str| {
        let r = client()
            .post(format!("{}/v1/chat/completions", s.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let (st, e) = raw("{not json");
    assert_eq!(st, 400);
    assert!(e["error"]["message"].as_str().unwrap().contains("not valid JSON"));
    let (st, e) = post(&s, "/v1/chat/completions", &chat("x", json!({"temperature": -1})));
    assert_eq!((st, e["error"]["param"].as_str()), (400, Some("temperature")), "{e}");
    let (st, e) = post(&s, "/v1/chat/completions", &chat("x", json!({"max_tokens": "many"})));
    assert_eq!((st, e["error"]["param"].as_str()), (400, Some("max_tokens")), "{e}");
    let (st, e) = post(&s, "/v1/chat/completions", &chat("x", json!({"model": "gpt-9"})));
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("model_not_found")), "{e}");
    let (st, e) = post(&s, "/v1/chat/completions", &chat(&"word ".repeat(10_000), json!({})));
    assert_eq!(st, 400, "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("8192") && msg.contains("tokens"), "names both counts: {msg}");
    let (st, e) = post(&s, "/v1/chat/completions", &chat(&"x".repeat(5 << 20), json!({})));
    assert_eq!(st, 413, "{e}");
    assert!(e["error"]["message"].is_string());
    let (st, _) = post(&s, "/v1/nothing", &json!({}));
    assert_eq!(st, 404);
    // Strict validation, OpenAI's way: each a 400 naming the parameter.
    let many: serde_json::Map<String, Value> = (0..301).map(|i| (i.to_string(), json!(1))).collect();
    let schema = json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}});
    for (extra, param) in [
        (json!({"logit_bias": many}), "logit_bias"),
        (json!({"logit_bias": {"10000000": 5}}), "logit_bias"),
        (json!({"logit_bias": {"42": 150}}), "logit_bias"),
        (json!({"logprobs": true, "top_logprobs": 500}), "top_logprobs"),
        (json!({"tools": [{"type": "function", "function": {"name": "f"}}]}), "tools"),
        (json!({"tool_choice": "required"}), "tool_choice"),
        (json!({"frobnicate": 1}), "frobnicate"),
        (json!({"stop": ["}"], "response_format": schema}), "stop"),
    ] {
        let (st, e) = post(&s, "/v1/chat/completions", &chat("x", extra.clone()));
        assert_eq!((st, e["error"]["param"].as_str()), (400, Some(param)), "{extra}: {e}");
    }
    let (st, e) = post(&s, "/v1/completions", &json!({"model": "SmolLM2-135M-Instruct", "prompt": "x", "echo": true}));
    assert_eq!((st, e["error"]["param"].as_str()), (400, Some("echo")), "{e}");
    let deep = format!("{{\"model\": {}1{}}}", "[".repeat(200), "]".repeat(200));
    let (st, e) = raw(&deep);
    assert_eq!((st, e["error"]["param"].as_str()), (400, Some("body")), "nesting past the limit: {e}");
    // Still serving.
    let (st, _) = post(&s, "/v1/chat/completions", &chat("Still there?", json!({"max_tokens": 4})));
    assert_eq!(st, 200);

    // Metrics carry the engine, latency and plugin families.
    for m in [
        "weft_prompt_tokens_total",
        "weft_generation_tokens_total",
        "weft_kv_cache_usage_ratio",
        "weft_prefix_cache_hit_rate",
        "weft_preemptions_total",
    ] {
        assert!(metric(&s, m).is_finite(), "{m}");
    }
    assert!(metric(&s, "weft_generation_tokens_total") > 0.0);
    let text = client().get(format!("{}/metrics", s.base)).send().unwrap().text().unwrap();
    assert!(
        text.contains("weft_time_to_first_token_seconds_bucket")
            && text.contains("weft_plugin_call_duration_seconds_bucket{plugin=\"sampler-standard\"")
    );
}

#[test]
fn queue_limit_gives_429_and_sigterm_drains_and_exits_zero() {
    let (mut s, _) = start(&["--max-queued", "2", "--grace-secs", "20"]);
    let base = s.base.clone();
    let long = chat("Tell a long story.", json!({"max_tokens": 200, "ignore_eos": true}));
    let running: Vec<_> = (0..2)
        .map(|_| {
            let (b, body) = (base.clone(), long.clone());
            std::thread::spawn(move || {
                client().post(format!("{b}/v1/chat/completions")).json(&body).send().unwrap().status().as_u16()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let r = client().post(format!("{base}/v1/chat/completions")).json(&chat("one more", json!({}))).send().unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // SIGTERM while two requests run: they finish, /ready turns 503, the process exits 0.
    assert!(Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(200));
    if let Ok(r) = client().get(format!("{base}/ready")).send() {
        assert_eq!(r.status(), 503);
    }
    for h in running {
        assert_eq!(h.join().unwrap(), 200, "in-flight requests finish during the drain");
    }
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "server did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

fn config_with_hostile_sampler(policy: &str) -> std::path::PathBuf {
    let wasm = weft_runtime::builtin::build_dir().join("hostile_sampler.wasm");
    let text = format!(
        "[[models]]\nname = \"SmolLM2-135M-Instruct\"\n[models.pipeline]\nsampler = \"hostile\"\n[models.pipeline.failure]\nsampler = \"{policy}\"\n\
         [[plugins]]\nname = \"hostile\"\nfile = \"{}\"\nkind = \"sampler\"\n[plugins.config]\nmode = \"trap\"\n",
        wasm.display()
    );
    let p = std::env::temp_dir().join(format!("weft-serve-{policy}-{}.toml", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn sampler_failure_policy_closed_fails_with_the_plugin_named_and_fallback_serves() {
    let closed = config_with_hostile_sampler("closed");
    let (s, _) = start(&["--config", closed.to_str().unwrap()]);
    let (st, e) = post(&s, "/v1/chat/completions", &chat("hi", json!({"max_tokens": 4})));
    assert_eq!(st, 500, "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("hostile") && msg.contains("trap"), "{msg}");
    drop(s);
    let fallback = config_with_hostile_sampler("fallback");
    let (s, _) = start(&["--config", fallback.to_str().unwrap()]);
    let (st, body) = post(&s, "/v1/chat/completions", &chat("hi", json!({"max_tokens": 4})));
    assert_eq!(st, 200, "{body}");
    let text = client().get(format!("{}/metrics", s.base)).send().unwrap().text().unwrap();
    assert!(text.contains("weft_plugin_errors_total{plugin=\"hostile\",tenant=\"\",kind=\"trap\"}"), "{text}");
}

#[test]
fn slow_clients_are_cut_off_and_others_are_served() {
    use std::io::{Read, Write};
    let cfg = write_config(
        "slow",
        "[server]\nheader_read_timeout_secs = 1\nbody_read_timeout_secs = 1\n\n[[models]]\nname = \"SmolLM2-135M-Instruct\"\n",
    );
    let (s, _) = start(&["--config", cfg.to_str().unwrap()]);
    let addr = s.base.trim_start_matches("http://").to_string();
    let t0 = std::time::Instant::now();
    // Headers that never end: the server closes the connection after the header timeout.
    let mut loris = std::net::TcpStream::connect(&addr).unwrap();
    loris.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n").unwrap();
    // A body that never completes: 408 after the body timeout.
    let mut trickle = std::net::TcpStream::connect(&addr).unwrap();
    trickle
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":")
        .unwrap();
    // Meanwhile an ordinary client is served.
    let (st, _) = post(&s, "/v1/chat/completions", &chat("Hi", json!({"max_tokens": 2})));
    assert_eq!(st, 200);
    for c in [&loris, &trickle] {
        c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    }
    let mut buf = Vec::new();
    trickle.read_to_end(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    let mut buf = Vec::new();
    let n = loris.read_to_end(&mut buf).expect("closed, not left hanging");
    assert!(n == 0 || String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(&buf));
    assert!(t0.elapsed() < std::time::Duration::from_secs(8), "both were cut within their timeouts");
}
