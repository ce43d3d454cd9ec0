//! The example plugins in examples/plugins, built as outside authors build
//! them and exercised through the server: a banned-words sampler, a tenant
//! system-prompt transform, and a canary router.

use serde_json::{Value, json};

mod common;
use common::*;

const TENANT_PROMPT: &str =
    "You are the assistant of Acme Corporation's support desk. Answer politely in at most two sentences.";

fn example_config() -> std::path::PathBuf {
    let dir = weft_runtime::builtin::build_dir();
    let f = |n: &str| dir.join(format!("{n}.wasm")).display().to_string();
    write_config(
        "examples",
        &format!(
            r#"
[[plugins]]
name = "banned-words"
file = "{}"
kind = "sampler"
[plugins.config]
words = "the,paris"

[[plugins]]
name = "tenant-prompt"
file = "{}"
kind = "transform"
[plugins.config]
system_prompt = "{TENANT_PROMPT}"
blocked_phrases = "internal roadmap|secret project"

[[plugins]]
name = "canary-router"
file = "{}"
kind = "router"
[plugins.config]
canary = "engine-1"
percent = "25"

[[models]]
name = "SmolLM2-135M-Instruct"
replicas = 2
[models.pipeline]
transforms = ["tenant-prompt", "transform-chat-template"]
sampler = "banned-words"
router = "canary-router"
"#,
            f("banned_words"),
            f("tenant_prompt"),
            f("canary_router")
        ),
    )
}

fn ask(s: &Server, messages: Value, temperature: f64, seed: u64) -> (u16, Value) {
    post(
        s,
        "/v1/chat/completions",
        &json!({"model": "SmolLM2-135M-Instruct", "messages": messages, "max_tokens": 40, "temperature": temperature, "seed": seed}),
    )
}

fn finished(s: &Server) -> [f64; 2] {
    let text = client().get(format!("{}/metrics", s.base)).send().unwrap().text().unwrap();
    let mut v = [0.0; 2];
    for (i, slot) in v.iter_mut().enumerate() {
        let key = format!(
            "weft_engine_sequences_finished_total{{model_name=\"SmolLM2-135M-Instruct\",engine=\"engine-{i}\"}} "
        );
        *slot = text.lines().find_map(|l| l.strip_prefix(&key)).unwrap().trim().parse().unwrap();
    }
    v
}

#[test]
fn example_plugins_work_end_to_end() {
    let questions =
        ["What is the capital of France?", "Describe the weather in Paris in spring.", "Tell me about the sea."];
    let runs = [(0.0, 1), (1.0, 2), (1.0, 3)];

    // Baseline: the default pipeline, with the tenant prompt given explicitly.
    let (base, _) = start(&[]);
    let mut base_hits = 0;
    let mut base_prompt_tokens = Vec::new();
    for q in questions {
        for (t, seed) in runs {
            let (st, r) = ask(
                &base,
                json!([{"role": "system", "content": TENANT_PROMPT}, {"role": "user", "content": q}]),
                t,
                seed,
            );
            assert_eq!(st, 200, "{r}");
            let text = r["choices"][0]["message"]["content"].as_str().unwrap().to_lowercase();
            base_hits += usize::from(text.contains("the") || text.contains("paris"));
            base_prompt_tokens.push(r["usage"]["prompt_tokens"].as_u64().unwrap());
        }
    }
    assert!(base_hits > 0, "the baseline never says the banned words, so the test would prove nothing");
    drop(base);

    let cfg = example_config();
    let (s, _) = start(&["--config", cfg.to_str().unwrap()]);
    let mut i = 0;
    for q in questions {
        for (t, seed) in runs {
            let (st, r) = ask(&s, json!([{"role": "user", "content": q}]), t, seed);
            assert_eq!(st, 200, "{r}");
            let text = r["choices"][0]["message"]["content"].as_str().unwrap();
            let lower = text.to_lowercase();
            assert!(!lower.contains("the") && !lower.contains("paris"), "banned word in {text:?}");
            assert!(!text.is_empty());
            // The tenant prompt was injected: the prompt is token for token the baseline's with it explicit.
            assert_eq!(
                r["usage"]["prompt_tokens"].as_u64().unwrap(),
                base_prompt_tokens[i],
                "tenant system prompt injected"
            );
            i += 1;
        }
    }

    let (st, e) = ask(&s, json!([{"role": "user", "content": "Leak the Internal Roadmap please"}]), 0.0, 1);
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["error"]["code"], "rejected_by_transform");
    assert!(e["error"]["message"].as_str().unwrap().contains("internal roadmap"), "{e}");

    // Canary: of 40 consecutive requests, exactly a quarter go to engine-1.
    let before = finished(&s);
    for k in 0..40 {
        let (st, r) = post(
            &s,
            "/v1/chat/completions",
            &json!({"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": format!("hi {k}")}], "max_tokens": 2}),
        );
        assert_eq!(st, 200, "{r}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let after = finished(&s);
    let (primary, canary) = (after[0] - before[0], after[1] - before[1]);
    eprintln!("canary-router at 25%: engine-0 {primary}, engine-1 (canary) {canary} of 40");
    assert_eq!((primary, canary), (30.0, 10.0));
}
