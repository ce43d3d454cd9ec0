//! Structured-output benchmark: what sampler-json costs per token on the
//! default model's 49k vocabulary, and what it does to engine throughput.
//!
//! Both sides of every comparison run in this process on the same inputs:
//! the mask walk with and without the per-state cache against the plain
//! `sampler-standard` step, and a constrained engine run against an
//! unconstrained one at the same concurrency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use weft_engine::sampling::{History, SamplingParams, SequenceSampler};
use weft_engine::{Engine, EngineConfig, Event, LoadOptions, Request};
use weft_runtime::{Vocabulary, WasmSamplerFactory, WasmTokenizer};

/// A schema whose outputs are long enough to measure steady decoding.
fn schema() -> serde_json::Value {
    json!({"type": "object", "properties": {
        "title": {"type": "string", "maxLength": 40},
        "year": {"type": "integer", "minimum": 0},
        "rating": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 16}, "minItems": 3, "maxItems": 6},
        "cast": {"type": "array", "maxItems": 4, "items": {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 24}, "role": {"enum": ["lead", "support", "cameo"]}}, "required": ["name", "role"]}}
    }, "required": ["title", "year", "rating", "tags", "cast"]})
}

fn row(vocab: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (0..vocab)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f32 / 1000.0
        })
        .collect()
}

/// Records a sampler's step times under `<key>_step_mean_us` / `<key>_step_p99_us`.
pub(super) fn record_steps(r: &mut serde_json::Map<String, serde_json::Value>, key: &str, d: Vec<Duration>) {
    let (mean, p99) = stats(d);
    r.insert(format!("{key}_step_mean_us"), json!(mean));
    r.insert(format!("{key}_step_p99_us"), json!(p99));
}

/// Prints the step times `record_steps` recorded, one labelled line each.
pub(super) fn print_steps(r: &serde_json::Map<String, serde_json::Value>, rows: &[(&str, &str)]) {
    let f = |k: String| r[&k].as_f64().unwrap_or(f64::NAN);
    for (k, label) in rows {
        println!(
            "  {label:<38} step mean {:8.1} us   p99 {:8.1} us",
            f(format!("{k}_step_mean_us")),
            f(format!("{k}_step_p99_us"))
        );
    }
}

/// Mean and p99, in microseconds.
fn stats(d: Vec<Duration>) -> (f64, f64) {
    let mut us: Vec<f64> = d.iter().map(|x| x.as_secs_f64() * 1e6).collect();
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    (mean, super::pct(&mut us, 0.99))
}

/// Runs sessions to completion on synthetic logits, timing every sampling step.
pub(super) fn step_times(
    f: &WasmSamplerFactory,
    args: &str,
    vocab: usize,
    steps: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let params = SamplingParams { temperature: 1.0, seed: Some(3), ..Default::default() };
    let mut out = Vec::with_capacity(steps);
    let mut sessions = 0;
    let mut seed = 0;
    while out.len() < steps {
        sessions += 1;
        let mut s = f.session(&params, 256, args, &[1, 2, 3], vocab)?;
        let mut history = Vec::new();
        for _ in 0..256 {
            seed += 1;
            let mut logits = row(vocab, seed);
            let t0 = Instant::now();
            let t = s
                .sample(&mut logits, History { prompt: &[1, 2, 3], output: &history })
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            out.push(t0.elapsed());
            history.push(t);
            if s.accept(t).map_err(|e| anyhow::anyhow!("{e}"))? == weft_engine::sampling::Accept::Stop {
                break;
            }
        }
    }
    Ok((out, sessions))
}

/// The default model, and sampler-json and sampler-standard factories over its vocabulary.
pub(super) struct Samplers {
    pub loaded: weft_engine::model::LoadedModel,
    pub vocab: usize,
    pub json_f: WasmSamplerFactory,
    pub std_f: WasmSamplerFactory,
}

pub(super) fn samplers() -> anyhow::Result<Samplers> {
    let rt = crate::cli::runtime()?;
    let model = crate::model_source::resolve(None)?;
    let loaded = weft_engine::model::load(&model, LoadOptions::default())?;
    let spec = loaded.tokenizer.clone().ok_or_else(|| anyhow::anyhow!("default model has no tokenizer"))?;
    let vocab = loaded.config.vocab_size;
    let tok = WasmTokenizer::new(crate::cli::builtin(&rt, "tokenizer-bpe", vec![])?, &spec)?;
    let vocabulary: Arc<Vocabulary> = Arc::new(tok.vocabulary(vocab, loaded.eos_token_ids.clone())?);
    let json_f =
        WasmSamplerFactory::new(crate::cli::builtin(&rt, "sampler-json", vec![])?)?.with_vocabulary(vocabulary.clone());
    let std_f =
        WasmSamplerFactory::new(crate::cli::builtin(&rt, "sampler-standard", vec![])?)?.with_vocabulary(vocabulary);
    Ok(Samplers { loaded, vocab, json_f, std_f })
}

/// What one engine run measured.
pub(super) struct EngineRun {
    pub tok_s: f64,
    pub step_ms: f64,
    pub tokens: usize,
    pub steps: usize,
    /// Tokens each sequence generated.
    pub per_seq: Vec<usize>,
}

/// One sequence per entry of `lens` (its `max_tokens`), all submitted at once.
pub(super) fn engine_run(
    h: &weft_engine::EngineHandle,
    f: &WasmSamplerFactory,
    args: &str,
    lens: &[usize],
    vocab: usize,
) -> anyhow::Result<EngineRun> {
    let (steps0, secs0) = (h.metrics().steps, h.metrics().total_step_secs);
    let t0 = Instant::now();
    let mut streams = Vec::new();
    for (i, &n) in lens.iter().enumerate() {
        let prompt: Vec<u32> = (0..32u32).map(|j| 1000 + (j * 7919 + i as u32 * 104_729) % 30_000).collect();
        let params = SamplingParams { temperature: 1.0, seed: Some(i as u64), ..Default::default() };
        let mut r = Request::new(prompt.clone(), n).with_params(params.clone());
        r.ignore_eos = args.is_empty();
        r.sampler = Some(Box::new(f.session(&params, n as u32, args, &prompt, vocab)?));
        streams.push(h.submit(r)?);
    }
    let mut per_seq = Vec::with_capacity(lens.len());
    for mut s in streams {
        let mut n = 0;
        while let Some(ev) = s.blocking_next() {
            match ev {
                Event::Token { .. } => n += 1,
                Event::Error(e) => anyhow::bail!("{e}"),
                Event::Finished { .. } => break,
            }
        }
        per_seq.push(n);
    }
    let m = h.metrics();
    let tokens = per_seq.iter().sum();
    Ok(EngineRun {
        tok_s: tokens as f64 / t0.elapsed().as_secs_f64(),
        step_ms: (m.total_step_secs - secs0) / (m.steps - steps0) as f64 * 1e3,
        tokens,
        steps: (m.steps - steps0) as usize,
        per_seq,
    })
}

pub fn run(as_json: bool, quick: bool) -> anyhow::Result<()> {
    let Samplers { loaded, vocab, json_f, std_f } = samplers()?;
    let steps = if quick { 300 } else { 3000 };
    let mut r = serde_json::Map::new();

    let args = json!({"json_schema": schema()}).to_string();
    let cold_args = json!({"json_schema": schema(), "mask_cache": false}).to_string();
    let t0 = Instant::now();
    let _ = json_f.session(&SamplingParams::default(), 8, &cold_args, &[1], vocab)?;
    r.insert("first_session_ms".into(), json!(t0.elapsed().as_secs_f64() * 1e3));
    let (cold, sessions) = step_times(&json_f, &cold_args, vocab, steps)?;
    let (warm, _) = step_times(&json_f, &args, vocab, steps)?;
    let (plain, _) = step_times(&std_f, "", vocab, steps)?;
    for (k, d) in [("json_walk_every_step", cold), ("json_cached", warm), ("standard", plain)] {
        record_steps(&mut r, k, d);
    }
    r.insert("json_sessions".into(), json!(sessions));

    let h = Engine::start(loaded, EngineConfig::default())?;
    let (c, n) = (8, if quick { 32 } else { 128 });
    let _ = engine_run(&h, &std_f, "", &[4; 2], vocab)?;
    let free = engine_run(&h, &std_f, "", &vec![n; c], vocab)?;
    let json_run = engine_run(&h, &json_f, &args, &vec![n; c], vocab)?;
    r.insert("engine_c8_unconstrained_tok_s".into(), json!(free.tok_s));
    r.insert("engine_c8_unconstrained_step_ms".into(), json!(free.step_ms));
    r.insert("engine_c8_unconstrained_tokens".into(), json!(free.tokens));
    r.insert("engine_c8_json_tok_s".into(), json!(json_run.tok_s));
    r.insert("engine_c8_json_step_ms".into(), json!(json_run.step_ms));
    r.insert("engine_c8_json_tokens".into(), json!(json_run.tokens));

    if as_json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    println!("weft bench structured (default model, {vocab}-token vocabulary, nested JSON schema)");
    println!("  first session (vocabulary, trie, schema compile): {:.1} ms", f("first_session_ms"));
    print_steps(
        &r,
        &[
            ("json_walk_every_step", "sampler-json, trie walk every step"),
            ("json_cached", "sampler-json, per-state mask cache"),
            ("standard", "sampler-standard (no constraint)"),
        ],
    );
    println!(
        "  engine, {c} seqs: unconstrained {:.1} tok/s ({:.1} ms/step), json-constrained {:.1} tok/s ({:.1} ms/step); ratio {:.2}",
        f("engine_c8_unconstrained_tok_s"),
        f("engine_c8_unconstrained_step_ms"),
        f("engine_c8_json_tok_s"),
        f("engine_c8_json_step_ms"),
        f("engine_c8_json_tok_s") / f("engine_c8_unconstrained_tok_s")
    );
    Ok(())
}
