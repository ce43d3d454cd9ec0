//! `weft bench plugins` (languages part): one transform, the same logic in
//! Rust, Python and JavaScript (the `weft plugin new --kind transform`
//! templates: refuse blocked words, tag the end), built by `weft plugin
//! build` and measured side by side in this process: component size, first
//! compile and cached load, instantiate time and memory, `on-request`
//! latency, and served tokens/s at 8 clients with the transform in the
//! pipeline against the same server without it.

use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};
use weft_runtime::{ChatMessage, Limits, PluginRuntime, RuntimeConfig, TransformRequest, WasmTransform};

use crate::cli::plugin::project::{Kind, Lang, Project};

const CONFIG: [(&str, &str); 2] = [("blocked", "password,secret"), ("tag", "")];

fn runtime(cache: &Path) -> anyhow::Result<PluginRuntime> {
    Ok(PluginRuntime::new(RuntimeConfig { cache_dir: Some(cache.to_path_buf()), ..Default::default() })?)
}

fn config() -> Vec<(String, String)> {
    CONFIG.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Served tokens/s at `clients` streaming clients (median of 3 runs), through a server with `plugins` and `transforms`.
fn served(plugins: &str, transforms: &str, clients: usize, max_tokens: usize) -> anyhow::Result<f64> {
    let config = std::env::temp_dir().join(format!("weft-bench-languages-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "{plugins}\n[[models]]\nname = \"{}\"\n[models.pipeline]\ntransforms = [{transforms}]\n",
            weft_engine::DefaultModel::NAME
        ),
    )?;
    let (_server, url) = super::Spawned::serve(Some(&config))?;
    let _ = super::serve::served(&url, 2, 8)?;
    let mut runs: Vec<f64> = (0..3)
        .map(|_| super::serve::served(&url, clients, max_tokens).map(|r| r.tokens as f64 / r.secs))
        .collect::<anyhow::Result<_>>()?;
    let _ = std::fs::remove_file(&config);
    Ok(super::pct(&mut runs, 0.5))
}

pub fn run(quick: bool) -> anyhow::Result<Value> {
    let root = std::env::temp_dir().join(format!("weft-bench-languages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let mut out = serde_json::Map::new();
    let mut plugin_entries = Vec::new();
    let req = TransformRequest {
        model: weft_engine::DefaultModel::NAME.into(),
        messages: Some(vec![
            ChatMessage::text("system", "You are a helpful assistant."),
            ChatMessage::text("user", "Write a short story about a lighthouse keeper and a storm."),
        ]),
        params: vec![("max_tokens".into(), "128".into()), ("temperature".into(), "0.7".into())],
        ..Default::default()
    };
    for (lang, key) in [(Lang::Rust, "rust"), (Lang::Python, "python"), (Lang::Js, "js")] {
        let name = format!("bench-{key}");
        let dir = crate::cli::plugin::new_project(&root.join(&name), &name, Kind::Transform, lang)?;
        let project = Project::open(&dir)?;
        let t0 = Instant::now();
        let wasm = crate::cli::plugin::build::build(&project)?;
        let build_s = t0.elapsed().as_secs_f64();
        let bytes = std::fs::read(&wasm)?;

        // First compile into an empty cache, then a load from it in a new runtime.
        let cache = root.join(format!("cache-{key}"));
        let t0 = Instant::now();
        let first = runtime(&cache)?.load(&name, &bytes, Limits::default(), config())?;
        let first_s = t0.elapsed().as_secs_f64();
        anyhow::ensure!(!first.cache_hit, "the first load compiled");
        let rt = runtime(&cache)?;
        let t0 = Instant::now();
        let plugin = rt.load(&name, &bytes, Limits::default(), config())?;
        let cached_s = t0.elapsed().as_secs_f64();
        anyhow::ensure!(plugin.cache_hit, "the second load came from the cache");

        let (inst, mem) = plugin.time_instantiate(if quick { 3 } else { 10 })?;
        let t = WasmTransform::new(plugin.clone())?;
        let n = if quick { 100 } else { 1000 };
        let _ = t.on_request(&req)?;
        let mut lat: Vec<f64> = (0..n)
            .map(|_| {
                let t0 = Instant::now();
                let r = t.on_request(&req);
                let dt = t0.elapsed().as_secs_f64() * 1e6;
                r.map(|_| dt)
            })
            .collect::<Result<_, _>>()?;
        out.insert(
            key.into(),
            json!({
                "build_s": build_s,
                "component_bytes": bytes.len(),
                "first_load_s": first_s,
                "cached_load_s": cached_s,
                "instantiate_ms": inst.as_secs_f64() * 1e3,
                "instance_memory_bytes": mem,
                "on_request_p50_us": super::pct(&mut lat, 0.5),
                "on_request_p99_us": super::pct(&mut lat, 0.99),
            }),
        );
        plugin_entries.push((key, wasm));
    }
    let (clients, max_tokens) = (8, if quick { 32 } else { 128 });
    let none = served("", "\"transform-chat-template\"", clients, max_tokens)?;
    out.insert("served_none_tok_s".into(), json!(none));
    for (key, wasm) in &plugin_entries {
        let plugins = format!(
            "[[plugins]]\nname = \"t\"\nfile = \"{}\"\nkind = \"transform\"\n[plugins.config]\n{}\n",
            wasm.display(),
            CONFIG.iter().map(|(k, v)| format!("{k} = \"{v}\"")).collect::<Vec<_>>().join("\n")
        );
        let tps = served(&plugins, "\"t\", \"transform-chat-template\"", clients, max_tokens)?;
        out[*key]["served_8_clients_tok_s"] = json!(tps);
        out[*key]["served_vs_none"] = json!(tps / none);
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(Value::Object(out))
}

pub fn print(r: &Value) {
    let f = |l: &str, k: &str| r[l][k].as_f64().unwrap_or(f64::NAN);
    println!("weft bench plugins: one transform in three languages (weft plugin new --kind transform)");
    println!("                                   Rust      Python  JavaScript");
    let row = |label: &str, k: &str, scale: f64, prec: usize| {
        let v: Vec<String> =
            ["rust", "python", "js"].iter().map(|l| format!("{:>10.*}", prec, f(l, k) * scale)).collect();
        println!("  {label:<30}{}", v.join("  "));
    };
    row("component size (MB)", "component_bytes", 1e-6, 2);
    row("weft plugin build (s)", "build_s", 1.0, 1);
    row("first load, compiling (s)", "first_load_s", 1.0, 2);
    row("cached load (ms)", "cached_load_s", 1e3, 1);
    row("instantiate + init (ms)", "instantiate_ms", 1.0, 2);
    row("instance memory (MB)", "instance_memory_bytes", 1e-6, 1);
    row("on-request p50 (us)", "on_request_p50_us", 1.0, 1);
    row("on-request p99 (us)", "on_request_p99_us", 1.0, 1);
    row("served, 8 clients (tok/s)", "served_8_clients_tok_s", 1.0, 1);
    row("served vs no transform", "served_vs_none", 1.0, 3);
    println!("  no transform: {:.1} tok/s", r["served_none_tok_s"].as_f64().unwrap_or(f64::NAN));
}
