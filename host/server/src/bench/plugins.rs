//! Plugin benchmark. Every comparison runs both sides in this process on the
//! same inputs: Wasm plugin vs the same (or the native) code.

use std::time::{Duration, Instant};

use serde_json::json;
use weft_engine::sampling::{History, NativeSampler, SampleRow, SamplingParams, SequenceSampler, sample_step};
use weft_engine::{Engine, EngineConfig, Event, LoadOptions, Request};
use weft_runtime::{WasmSamplerFactory, WasmTokenizer};

const VOCAB: usize = 49152;

/// A logits row shaped like a language model's: a few strong candidates over a long tail.
fn row(seed: usize) -> Vec<f32> {
    (0..VOCAB)
        .map(|i| {
            let h = (i.wrapping_mul(2_654_435_761).wrapping_add(seed * 97)) % 10_007;
            let base = h as f32 / 10_007.0 * 8.0 - 4.0;
            if h % 997 == 0 { base + 12.0 } else { base }
        })
        .collect()
}

fn mean<F: FnMut()>(iters: usize, mut f: F) -> Duration {
    f();
    let t0 = Instant::now();
    for _ in 0..iters {
        f();
    }
    t0.elapsed() / iters as u32
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn params() -> SamplingParams {
    SamplingParams { temperature: 0.8, top_p: 0.95, seed: Some(1), ..Default::default() }
}

fn step_time(samplers: &mut [Box<dyn SequenceSampler>], rows: &[Vec<f32>], iters: usize) -> Duration {
    let mut work: Vec<Vec<f32>> = rows.to_vec();
    mean(iters, || {
        for (w, r) in work.iter_mut().zip(rows) {
            w.copy_from_slice(r);
        }
        let mut batch: Vec<SampleRow<'_>> = samplers
            .iter_mut()
            .zip(work.iter_mut())
            .map(|(s, w)| SampleRow {
                sampler: s.as_mut(),
                logits: w,
                history: History { prompt: &[1, 2, 3], output: &[] },
                logprobs: None,
            })
            .collect();
        for r in sample_step(&mut batch) {
            r.expect("sampling succeeds");
        }
    })
}

fn engine_decode(
    h: &weft_engine::EngineHandle,
    wasm: Option<&WasmSamplerFactory>,
    c: usize,
    n: usize,
) -> anyhow::Result<(f64, f64)> {
    let steps0 = h.metrics().steps;
    let secs0 = h.metrics().total_step_secs;
    let t0 = Instant::now();
    let mut streams = Vec::new();
    for i in 0..c {
        let prompt: Vec<u32> = (0..32u32).map(|j| 1000 + (j * 7919 + i as u32 * 104_729) % 30_000).collect();
        let mut r = Request::new(prompt.clone(), n).with_params(params());
        r.ignore_eos = true;
        if let Some(f) = wasm {
            r.sampler = Some(Box::new(f.session(&r.params, n as u32, "", &prompt, VOCAB)?));
        }
        streams.push(h.submit(r)?);
    }
    let mut tokens = 0;
    for mut s in streams {
        while let Some(ev) = s.blocking_next() {
            match ev {
                Event::Token { .. } => tokens += 1,
                Event::Error(e) => anyhow::bail!("{e}"),
                Event::Finished { .. } => break,
            }
        }
    }
    let m = h.metrics();
    let step_ms = (m.total_step_secs - secs0) / (m.steps - steps0) as f64 * 1e3;
    Ok((tokens as f64 / t0.elapsed().as_secs_f64(), step_ms))
}

/// Prints its figures unless `as_json`; returns them either way.
pub fn run(as_json: bool, quick: bool) -> anyhow::Result<serde_json::Value> {
    let rt = crate::cli::runtime()?;
    let mut r = serde_json::Map::new();
    let iters = if quick { 200 } else { 2000 };

    // 1. Call overhead.
    let plugin = crate::cli::builtin(&rt, "sampler-standard", vec![])?;
    r.insert("metadata_call_us".into(), json!(us(plugin.time_metadata_calls(iters * 10)?)));

    // 2. Sampler step at 49k vocabulary, 1 and 32 sequences.
    let factory = WasmSamplerFactory::new(plugin)?;
    let rows: Vec<Vec<f32>> = (0..32).map(row).collect();
    for n in [1usize, 32] {
        let mut native: Vec<Box<dyn SequenceSampler>> =
            (0..n).map(|_| Box::new(NativeSampler::new(params())) as _).collect();
        let mut wasm: Vec<Box<dyn SequenceSampler>> = (0..n)
            .map(|_| factory.session(&params(), 1 << 20, "", &[1, 2, 3], VOCAB).map(|s| Box::new(s) as _))
            .collect::<Result<_, _>>()?;
        let it = if n == 1 { iters } else { iters / 10 };
        let tn = step_time(&mut native, &rows[..n], it);
        let tw = step_time(&mut wasm, &rows[..n], it);
        r.insert(format!("sampler_step_{n}seq_native_us"), json!(us(tn)));
        r.insert(format!("sampler_step_{n}seq_wasm_us"), json!(us(tw)));
    }

    // 3. Tokenizer: ~1000-token text, Wasm plugin vs the same code natively.
    let model = crate::model_source::resolve(None)?;
    let (spec, _) = weft_engine::model::read_tokenizer(&model)?;
    let spec = spec.ok_or_else(|| anyhow::anyhow!("default model has no tokenizer"))?;
    let wasm_tok = WasmTokenizer::new(crate::cli::builtin(&rt, "tokenizer-bpe", vec![])?, &spec)?;
    let native_tok = weft_runtime::native_tokenizer(&spec)
        .ok_or_else(|| anyhow::anyhow!("the tokenizer does not build natively"))?;
    let para = "Serving large language models efficiently means batching requests, caching the keys and values \
                of attention in pages, and sampling tokens quickly. Plugins written in WebAssembly let operators \
                change tokenization, sampling, routing and transforms without restarting 1234 servers! ";
    let mut text = String::new();
    while native_tok.encode(&text, false).map_err(anyhow::Error::msg)?.len() < 1000 {
        text.push_str(para);
    }
    let n_tokens = native_tok.encode(&text, false).map_err(anyhow::Error::msg)?.len();
    let tok_iters = if quick { 20 } else { 200 };
    let tn = mean(tok_iters, || drop(native_tok.encode(&text, false)));
    let tw = mean(tok_iters, || drop(wasm_tok.encode(&text, false)));
    r.insert("tokenize_tokens".into(), json!(n_tokens));
    r.insert("tokenize_native_us".into(), json!(us(tn)));
    r.insert("tokenize_wasm_us".into(), json!(us(tw)));

    // 4. The Wasm sampler's share of an engine step: 32 sequences on the default model.
    let h = Engine::start(weft_engine::model::load(&model, LoadOptions::default())?, EngineConfig::default())?;
    let n_gen = if quick { 16 } else { 64 };
    let _ = engine_decode(&h, None, 4, 4)?;
    let (native_tps, native_step) = engine_decode(&h, None, 32, n_gen)?;
    let (wasm_tps, wasm_step) = engine_decode(&h, Some(&factory), 32, n_gen)?;
    r.insert("engine_c32_native_sampler_tok_s".into(), json!(native_tps));
    r.insert("engine_c32_wasm_sampler_tok_s".into(), json!(wasm_tps));
    r.insert("engine_c32_native_step_ms".into(), json!(native_step));
    r.insert("engine_c32_wasm_step_ms".into(), json!(wasm_step));
    let added_us = r["sampler_step_32seq_wasm_us"].as_f64().unwrap_or(0.0)
        - r["sampler_step_32seq_native_us"].as_f64().unwrap_or(0.0);
    let direct = added_us / 1e3 / native_step * 100.0;
    r.insert("wasm_sampler_added_to_step_pct_direct".into(), json!(direct));
    r.insert("wasm_sampler_added_to_step_pct_measured".into(), json!((wasm_step / native_step - 1.0) * 100.0));

    if as_json {
        return Ok(serde_json::Value::Object(r));
    }
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    println!("weft bench plugins");
    println!("  component call (metadata, warm instance):  {:8.2} us", f("metadata_call_us"));
    for n in [1, 32] {
        println!(
            "  sampler step, {n:>2} seq, 49k vocab:  native {:9.1} us   wasm {:9.1} us   ({:+.1} us)",
            f(&format!("sampler_step_{n}seq_native_us")),
            f(&format!("sampler_step_{n}seq_wasm_us")),
            f(&format!("sampler_step_{n}seq_wasm_us")) - f(&format!("sampler_step_{n}seq_native_us"))
        );
    }
    println!(
        "  tokenize {} tokens:  native {:9.1} us   wasm {:9.1} us   (wasm/native {:.2}x)",
        n_tokens,
        f("tokenize_native_us"),
        f("tokenize_wasm_us"),
        f("tokenize_wasm_us") / f("tokenize_native_us")
    );
    println!(
        "  engine, 32 seqs: native sampler {:.1} tok/s ({:.1} ms/step), wasm sampler {:.1} tok/s ({:.1} ms/step)",
        f("engine_c32_native_sampler_tok_s"),
        f("engine_c32_native_step_ms"),
        f("engine_c32_wasm_sampler_tok_s"),
        f("engine_c32_wasm_step_ms")
    );
    println!(
        "  wasm sampler's added share of a 32-seq step: {:.2}% (from the step microbench), {:+.2}% (measured in the engine, noisy)",
        f("wasm_sampler_added_to_step_pct_direct"),
        f("wasm_sampler_added_to_step_pct_measured")
    );
    Ok(serde_json::Value::Object(r))
}
