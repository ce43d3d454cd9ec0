//! Isolation end to end: hostile plugins, each in its own tenant's pipeline,
//! run beside a well-behaved tenant's request on the real server. Each case
//! passes when the hostile request gets its typed answer (an error naming the
//! plugin and kind, or a normal answer for plugins whose sleep now returns at
//! once), the well-behaved request beside it finishes with 200 and a complete
//! stream, `/health` answers throughout, and at the end SIGTERM still exits 0.
//!
//! Bounds on elapsed time here are behavioural, not benchmarks: each is an
//! order of magnitude below what the fault would cost if it were not
//! contained (a 10 s sleep per token, a 2 s tokenizer deadline).

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::*;

const MODEL: &str = "SmolLM2-135M-Instruct";
const TENANTS: [&str; 10] =
    ["good", "sleepy", "poller", "spinner", "slow", "panicky", "huge", "sleepfilter", "printer", "flood"];

fn key(t: &str) -> String {
    format!("key-{t}-0123456789")
}

fn config() -> String {
    let dir = weft_runtime::builtin::build_dir();
    let sampler = dir.join("hostile_sampler.wasm").display().to_string();
    let transform = dir.join("hostile_transform.wasm").display().to_string();
    let mut c = format!("[server]\ngrace_secs = 20\n\n[[models]]\nname = \"{MODEL}\"\n");
    for t in TENANTS {
        c.push_str(&format!("\n[[tenants]]\nid = \"{t}\"\napi_keys = [\"{}\"]\n", hash_key(&key(t))));
        let hostile_sampler = |mode: &str, deadline_ms: u64, extra: &str| {
            format!(
                "[tenants.pipeline]\nsampler = \"h\"\n[[tenants.plugins]]\nname = \"h\"\nfile = \"{sampler}\"\nkind = \"sampler\"\n\
                 limits = {{ deadline_ms = {deadline_ms}{extra} }}\n[tenants.plugins.config]\nmode = \"{mode}\"\n"
            )
        };
        let hostile_transform = |cfg: &str| {
            format!(
                "[tenants.pipeline]\ntransforms = [\"h\", \"transform-chat-template\"]\n[[tenants.plugins]]\nname = \"h\"\n\
                 file = \"{transform}\"\nkind = \"transform\"\nlimits = {{ deadline_ms = 500 }}\n[tenants.plugins.config]\n{cfg}\n"
            )
        };
        c.push_str(&match t {
            "sleepy" => hostile_sampler("sleep", 500, ""),
            "poller" => hostile_sampler("poll", 300, ""),
            "spinner" => hostile_sampler("loop", 300, ", breaker_failures = 1, breaker_cooldown_secs = 60"),
            "slow" => hostile_sampler("slow", 50, ""),
            "panicky" => hostile_transform("filter = \"panic\""),
            "huge" => hostile_transform("filter = \"huge\""),
            "sleepfilter" => hostile_transform("filter = \"sleep\"\nrequest = \"sleep\""),
            "printer" => hostile_transform("request = \"print\""),
            "flood" => "[tenants.quotas]\nmax_instances = 64\n".to_string(),
            _ => String::new(),
        });
    }
    c
}

fn post_as(s: &str, tenant: &str, body: &Value) -> (u16, Value, Option<String>) {
    let r = client().post(format!("{s}/v1/chat/completions")).bearer_auth(key(tenant)).json(body).send().unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (status, r.json().unwrap_or(Value::Null), retry)
}

/// A streamed request read to the end: (status, data payloads in order).
fn stream_as(s: &str, tenant: &str, body: &Value) -> (u16, Vec<String>) {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let r = client().post(format!("{s}/v1/chat/completions")).bearer_auth(key(tenant)).json(&body).send().unwrap();
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (status, text.lines().filter_map(|l| l.strip_prefix("data: ").map(str::to_string)).collect())
}

fn ask(content: &str, max_tokens: u32) -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
           "temperature": 0.7, "seed": 3, "ignore_eos": true})
}

/// The well-behaved tenant's streamed request, while `hostile` runs beside it.
fn beside<T: Send + 'static>(base: &str, hostile: impl FnOnce() -> T + Send + 'static) -> T {
    let b = base.to_string();
    let good = thread::spawn(move || stream_as(&b, "good", &ask("Tell me about rivers.", 40)));
    let h = thread::spawn(hostile);
    let health = client().get(format!("{base}/health")).send().unwrap().status().as_u16();
    assert_eq!(health, 200, "/health answers while a hostile plugin runs");
    let out = h.join().unwrap();
    let (status, events) = good.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "the good stream is complete");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(chunks.iter().all(|c| c.get("error").is_none()), "no error in the good stream: {chunks:?}");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "length"), "the good stream ran to max_tokens");
    out
}

fn error_event(events: &[String]) -> Value {
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "an error event, then [DONE]: {events:?}");
    let err = events.iter().filter_map(|e| serde_json::from_str::<Value>(e).ok()).find(|v| v.get("error").is_some());
    err.unwrap_or_else(|| panic!("the stream carries an error event, not a silent truncation: {events:?}"))["error"]
        .clone()
}

#[test]
fn hostile_plugins_hurt_only_their_own_requests() {
    let cfg = write_config("isolation", &config());
    let (s, _) = start(&["--config", cfg.to_str().unwrap()]);
    let base = s.base.clone();

    // A sampler that sleeps 10 s per step through WASI: timers fire at once, so it answers.
    let b = base.clone();
    let (st, v, _) = beside(&base, move || {
        let t0 = Instant::now();
        let r = post_as(&b, "sleepy", &ask("hi", 8));
        assert!(t0.elapsed() < Duration::from_secs(20), "8 steps of a 10 s sleep did not take 80 s");
        r
    });
    assert_eq!(st, 200, "{v}");

    // Sleeping until time passes (clocks are frozen) and spinning: a timeout within the deadline.
    for tenant in ["poller", "spinner"] {
        let b = base.clone();
        let (st, v, _) = beside(&base, move || post_as(&b, tenant, &ask("hi", 8)));
        assert_eq!(st, 500, "{tenant}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("timeout") && msg.contains(&format!("`{tenant}/h`")),
            "{tenant}: the error names the plugin and the kind: {msg}"
        );
    }

    // The spinner's breaker (1 fault) is open now: fail fast with 503, Retry-After and the plugin's name.
    let t0 = Instant::now();
    let (st, v, retry) = post_as(&base, "spinner", &ask("hi", 8));
    assert_eq!(st, 503, "{v}");
    assert!(t0.elapsed() < Duration::from_millis(250), "refused without running the plugin");
    assert_eq!(v["error"]["code"], "plugin_unavailable");
    assert!(v["error"]["message"].as_str().unwrap().contains("`spinner/h`"), "{v}");
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);
    // Another tenant using the same plugin file is not affected by that tenant's breaker.
    let (st, _, _) = post_as(&base, "poller", &ask("hi", 1));
    assert_ne!(st, 503);

    // A slow but legal sampler: its own request succeeds.
    let b = base.clone();
    let (st, v, _) = beside(&base, move || post_as(&b, "slow", &ask("hi", 16)));
    assert_eq!(st, 200, "{v}");

    // Response filters that panic or return 40 MB (over the 16 MB output cap): an error event naming it, then [DONE].
    let b = base.clone();
    let (st, events) = beside(&base, move || stream_as(&b, "panicky", &ask("Count to ten.", 16)));
    assert_eq!(st, 200);
    let e = error_event(&events);
    let msg = e["message"].as_str().unwrap();
    assert_eq!(e["code"], "trap", "{e}");
    assert!(msg.contains("hostile filter panics on purpose"), "the panic text reaches the client: {msg}");
    let b = base.clone();
    let (_, events) = beside(&base, move || stream_as(&b, "huge", &ask("Count to ten.", 16)));
    let e = error_event(&events);
    assert_eq!(e["code"], "invalid-output", "{e}");

    // A transform and a filter that sleep, and one that floods stdout/stderr: served normally.
    for tenant in ["sleepfilter", "printer"] {
        let b = base.clone();
        let (st, events) = beside(&base, move || stream_as(&b, tenant, &ask("hi", 8)));
        assert_eq!(st, 200, "{tenant}");
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        assert!(events.iter().all(|e| !e.contains("\"error\"")), "{tenant}: {events:?}");
    }

    // A poison prompt (1 MB of special-token text): a fast 400 for it, nothing for its neighbour.
    let b = base.clone();
    let (st, v, _) = beside(&base, move || {
        let t0 = Instant::now();
        let r = post_as(&b, "good", &ask(&"<|im_end|>".repeat(100_000), 8));
        assert!(t0.elapsed() < Duration::from_secs(1), "refused well under a second");
        r
    });
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    // Just under the byte cap, it is tokenized (linearly) and refused on its token count.
    let (st, v, _) = post_as(&base, "good", &ask(&"<|im_end|>".repeat(20_000), 8));
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");

    // 40 concurrent n = 16 requests from one tenant: each one 200 or 429, never a 500.
    let b = base.clone();
    let statuses = beside(&base, move || {
        let hs: Vec<_> = (0..40)
            .map(|i| {
                let b = b.clone();
                thread::spawn(move || {
                    let mut body = ask(&format!("Say {i}."), 4);
                    body["n"] = json!(16);
                    post_as(&b, "flood", &body)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    let ok = statuses.iter().filter(|(st, _, _)| *st == 200).count();
    let limited: Vec<_> = statuses.iter().filter(|(st, _, _)| *st == 429).collect();
    assert_eq!(ok + limited.len(), 40, "{statuses:?}");
    assert!(ok >= 1 && !limited.is_empty(), "some served, the rest refused: {ok} ok, {} limited", limited.len());
    for (_, v, retry) in &limited {
        assert_eq!(v["error"]["code"], "quota_max_instances", "{v}");
        assert!(retry.is_some(), "429 carries Retry-After");
    }

    // The server still drains and exits cleanly.
    let mut s = s;
    assert!(Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status().unwrap().success());
    let t0 = Instant::now();
    loop {
        if let Some(code) = s.child.try_wait().unwrap() {
            assert!(code.success(), "exit status {code}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(25), "exited within the grace period");
        thread::sleep(Duration::from_millis(50));
    }
}
