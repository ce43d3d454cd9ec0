//! Tenants end to end: keys pick the tenant and its own pipeline, models a
//! tenant may not use do not exist for it, a tenant whose plugin traps does
//! not change another's answers, every quota refuses with its own 429, and a
//! key rotated in the config takes effect on reload, and a reload that would
//! drop the tenants (and so the keys) is refused.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::*;

const ADMIN_KEY: &str = "tenant-test-admin-key-0123";
const MODEL: &str = "SmolLM2-135M-Instruct";

fn config(admin_port: u16, beta_key: &str) -> String {
    let dir = weft_runtime::builtin::build_dir();
    format!(
        r#"
[admin]
listen = "127.0.0.1:{admin_port}"
key = "{ADMIN_KEY}"

[[plugins]]
name = "tagger"
file = "{tagger}"
kind = "transform"

[[plugins]]
name = "hostile"
file = "{hostile}"
kind = "sampler"
[plugins.config]
mode = "trap"

[[models]]
name = "{MODEL}"

[[tenants]]
id = "alpha"
api_keys = ["{alpha}"]
[tenants.pipeline]
transforms = ["tagger", "transform-chat-template"]
sampler = "native"

[[tenants]]
id = "beta"
api_keys = ["{beta}"]

[[tenants]]
id = "gamma"
api_keys = ["{gamma}"]
[tenants.quotas]
max_concurrent = 1
requests_per_minute = 4
tokens_per_minute = 40
max_tokens = 8

[[tenants]]
id = "delta"
api_keys = ["{delta}"]
models = []

[[tenants]]
id = "theta"
api_keys = ["{theta}"]
[tenants.quotas]
tokens_per_minute = 300

[[tenants]]
id = "zeta"
api_keys = ["{zeta}"]
cache_group = "shared"

[[tenants]]
id = "eta"
api_keys = ["{eta}"]
cache_group = "shared"

[[tenants]]
id = "evil"
api_keys = ["{evil}"]
weight = 0.5
[tenants.pipeline]
sampler = "hostile"
"#,
        tagger = dir.join("tagger_a.wasm").display(),
        hostile = dir.join("hostile_sampler.wasm").display(),
        alpha = hash_key("alpha-key-0001"),
        beta = hash_key(beta_key),
        gamma = hash_key("gamma-key-0003"),
        delta = hash_key("delta-key-0004"),
        evil = hash_key("evil-key-0005"),
        zeta = hash_key("zeta-key-0006"),
        theta = hash_key("theta-key-0008"),
        eta = hash_key("eta-key-0007"),
    )
}

fn call(s: &Server, key: Option<&str>, path: &str, body: &Value) -> (u16, Value, Option<String>) {
    let mut r = client().post(format!("{}{path}", s.base)).json(body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let r = r.send().unwrap();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), r.json().unwrap_or(Value::Null), retry)
}

fn ask(s: &Server, key: &str) -> (u16, Value) {
    let (st, v, _) = call(s, Some(key), "/v1/chat/completions", &chat("Name a fruit.", json!({"max_tokens": 12})));
    (st, v)
}

fn text(v: &Value) -> String {
    v["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string()
}

fn models(s: &Server, key: &str) -> Vec<String> {
    let v: Value = client().get(format!("{}/v1/models", s.base)).bearer_auth(key).send().unwrap().json().unwrap();
    v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn tenants_get_their_own_pipelines_keys_quotas_and_isolation() {
    let admin_port = free_port();
    let dir = std::env::temp_dir().join(format!("weft-tenants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("weft.toml");
    std::fs::write(&cfg, config(admin_port, "beta-key-0002")).unwrap();
    let (s, _) = start(&["--config", cfg.to_str().unwrap()]);

    // Keys: none or unknown is a 401; each tenant its own pipeline.
    let (st, e, _) = call(&s, None, "/v1/chat/completions", &chat("hi", json!({})));
    assert_eq!((st, e["error"]["code"].as_str()), (401, Some("invalid_api_key")), "{e}");
    let (st, _, _) = call(&s, Some("not-a-key"), "/v1/chat/completions", &chat("hi", json!({})));
    assert_eq!(st, 401);
    let (st, a) = ask(&s, "alpha-key-0001");
    assert_eq!(st, 200, "{a}");
    assert!(text(&a).starts_with("[tagger-a]"), "alpha's transform chain: {a}");
    let (st, b) = ask(&s, "beta-key-0002");
    assert_eq!(st, 200, "{b}");
    assert!(!text(&b).contains("[tagger-"), "beta has no tagger: {b}");

    // A model the tenant may not use does not exist for it.
    let (st, e, _) = call(&s, Some("delta-key-0004"), "/v1/chat/completions", &chat("hi", json!({})));
    let (st2, e2, _) =
        call(&s, Some("beta-key-0002"), "/v1/chat/completions", &chat("hi", json!({"model": "no-such-model"})));
    assert_eq!((st, st2), (404, 404));
    assert_eq!(
        e["error"]["message"].as_str().unwrap().replace(MODEL, "X"),
        e2["error"]["message"].as_str().unwrap().replace("no-such-model", "X")
    );
    assert!(models(&s, "delta-key-0004").is_empty());
    assert_eq!(models(&s, "beta-key-0002"), vec![MODEL.to_string()]);

    // Evil's sampler traps on every request; beta's answers do not change.
    std::thread::scope(|sc| {
        let h = sc.spawn(|| (0..6).map(|_| ask(&s, "evil-key-0005")).collect::<Vec<_>>());
        for _ in 0..3 {
            let (st, again) = ask(&s, "beta-key-0002");
            assert_eq!(st, 200);
            assert_eq!(text(&again), text(&b), "beta's seeded answer changed while evil's plugin trapped");
        }
        for (st, e) in h.join().unwrap() {
            assert_eq!(st, 500, "{e}");
            let msg = e["error"]["message"].as_str().unwrap();
            assert!(msg.contains("evil/hostile") && !msg.contains("beta"), "{msg}");
        }
    });

    // Quotas, each with its own 429.
    let g = "gamma-key-0003";
    let (st, e, retry) =
        call(&s, Some(g), "/v1/completions", &json!({"model": MODEL, "prompt": "hi", "max_tokens": 9}));
    assert_eq!((st, e["error"]["code"].as_str(), retry), (429, Some("quota_max_tokens"), None), "{e}");
    let open = client()
        .post(format!("{}/v1/completions", s.base))
        .bearer_auth(g)
        .json(&json!({"model": MODEL, "prompt": "hello", "max_tokens": 8, "stream": true}))
        .send()
        .unwrap();
    assert_eq!(open.status(), 200);
    let (st, e, retry) = call(&s, Some(g), "/v1/completions", &json!({"model": MODEL, "prompt": "hi"}));
    assert_eq!((st, e["error"]["code"].as_str()), (429, Some("quota_max_concurrent")), "{e}");
    assert!(retry.is_some());
    drop(open.text().unwrap());
    let long_prompt = "one two three four five six seven eight nine ten ".repeat(5);
    let t0 = Instant::now();
    let (st, e, retry) = loop {
        let r = call(&s, Some(g), "/v1/completions", &json!({"model": MODEL, "prompt": long_prompt}));
        if r.0 != 429 || r.1["error"]["code"] != "quota_max_concurrent" || t0.elapsed() > Duration::from_secs(5) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!((st, e["error"]["code"].as_str()), (429, Some("quota_tokens_per_minute")), "{e}");
    // Its prompt alone is past the quota: waiting cannot help, so no Retry-After.
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(retry.is_none() && msg.contains("tokens_per_minute") && msg.contains("never fit"), "{msg}");
    // Requests refused before generating (max_tokens, max_concurrent, tokens_per_minute above)
    // do not count: of requests_per_minute = 4, the streamed one used one, three remain.
    let mut served = 0;
    let (st, e, retry) = loop {
        let r = call(&s, Some(g), "/v1/completions", &json!({"model": MODEL, "prompt": "hi", "max_tokens": 1}));
        if r.0 != 200 {
            break r;
        }
        served += 1;
    };
    assert_eq!((st, e["error"]["code"].as_str()), (429, Some("quota_requests_per_minute")), "{e}");
    assert_eq!(served, 3, "only requests that generated count against requests_per_minute");
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);

    // Tokens are reserved for the most a request can use (prompt + n x max_tokens),
    // so n = 16 cannot overshoot; what was not used is given back when it ends.
    let th = "theta-key-0008";
    let (st, e, retry) =
        call(&s, Some(th), "/v1/completions", &json!({"model": MODEL, "prompt": "hi", "n": 16, "max_tokens": 64}));
    assert_eq!((st, e["error"]["code"].as_str(), retry), (429, Some("quota_tokens_per_minute"), None), "{e}");
    let (st, v, _) = call(
        &s,
        Some(th),
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "Count: one, two,", "n": 4, "max_tokens": 40, "temperature": 0.7, "stop": [","]}),
    );
    assert_eq!(st, 200, "{v}");
    let used = v["usage"]["total_tokens"].as_u64().unwrap();
    assert!(used < 4 * 40, "stop strings ended the choices early: {v}");
    // Just more than is left of the 300 (the prompt "hi" is one token).
    let mt = (300 - used) / 16 + 1;
    let (st, e, _) =
        call(&s, Some(th), "/v1/completions", &json!({"model": MODEL, "prompt": "hi", "n": 16, "max_tokens": mt}));
    assert_eq!(st, 429, "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&format!("{used} used in the last minute")), "charged exactly what was used ({used}): {msg}");

    // The prefix cache is per tenant unless tenants opt into a shared group:
    // another tenant's identical prompt is no hit, so hit counts reveal nothing.
    let long = "Describe the water cycle in detail for a school report. ".repeat(8);
    let cached = |key: &str| {
        let (st, v, _) = call(&s, Some(key), "/v1/chat/completions", &chat(&long, json!({"max_tokens": 2})));
        assert_eq!(st, 200, "{v}");
        v["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap()
    };
    cached("beta-key-0002");
    assert!(cached("beta-key-0002") > 0, "the same tenant hits its own cache");
    assert_eq!(cached("zeta-key-0006"), 0, "another tenant does not hit beta's blocks");
    assert!(cached("eta-key-0007") > 0, "a tenant of zeta's cache group hits zeta's blocks");

    // Metrics name every tenant: a tenant's key (or none) cannot read them;
    // the admin key can, on the public listener and on the admin one.
    for key in [None, Some("alpha-key-0001")] {
        let mut r = client().get(format!("{}/metrics", s.base));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        let r = r.send().unwrap();
        assert_eq!(r.status(), 401, "{key:?}");
        assert!(!r.text().unwrap().contains("alpha"), "the refusal names no tenant");
    }
    let admin_m = client()
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(admin_m.contains("weft_tenant_tokens_total{tenant=\"alpha\""));
    // Per-tenant labels.
    let m = client().get(format!("{}/metrics", s.base)).bearer_auth(ADMIN_KEY).send().unwrap().text().unwrap();
    for needle in [
        "weft_requests_total{endpoint=\"chat\",tenant=\"beta\",status=\"200\"}",
        "weft_tenant_tokens_total{tenant=\"alpha\",kind=\"completion\"}",
        "weft_plugin_errors_total{plugin=\"evil/hostile\",tenant=\"evil\",kind=\"trap\"}",
    ] {
        assert!(m.contains(needle), "{needle} missing");
    }

    // Rotate beta's key in the config: the old one stops, the new one works.
    std::fs::write(&cfg, config(admin_port, "beta-key-rotated")).unwrap();
    let r = client().post(format!("http://127.0.0.1:{admin_port}/admin/reload")).bearer_auth(ADMIN_KEY).send().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    assert_eq!(ask(&s, "beta-key-0002").0, 401);
    let (st, again) = ask(&s, "beta-key-rotated");
    assert_eq!(st, 200);
    assert_eq!(text(&again), text(&b));

    // Fail closed: a file without [[tenants]], and one caught half written, are
    // refused with the reason (through the admin API and through the file
    // watcher alike); keys stay required and the serving config keeps serving.
    let full = config(admin_port, "beta-key-rotated");
    let no_tenants = full[..full.find("[[tenants]]").unwrap()].to_string();
    // Cut inside a quoted key, as a copy interrupted mid-write leaves it.
    let mid = full.rfind("api_keys = [\"").unwrap() + 20;
    let half = full[..mid].to_string();
    for (what, text_) in [("no tenants", no_tenants), ("half written", half)] {
        std::fs::write(&cfg, &text_).unwrap();
        let r =
            client().post(format!("http://127.0.0.1:{admin_port}/admin/reload")).bearer_auth(ADMIN_KEY).send().unwrap();
        assert_eq!(r.status(), 422, "{what}");
        let body = r.text().unwrap();
        assert!(!body.is_empty(), "{what}: the refusal says why");
        if what == "no tenants" {
            assert!(body.contains("no [[tenants]]"), "{body}");
        }
        std::thread::sleep(Duration::from_millis(400)); // the watcher has seen the file too
        let (st, _, _) = call(&s, None, "/v1/chat/completions", &chat("hi", json!({"max_tokens": 2})));
        assert_eq!(st, 401, "{what}: a request without a key is still refused");
        assert_eq!(ask(&s, "beta-key-rotated").0, 200, "{what}: the serving config still serves");
    }
    let plugins: Value = client()
        .get(format!("http://127.0.0.1:{admin_port}/admin/plugins"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(plugins["config_error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{plugins}");
}
