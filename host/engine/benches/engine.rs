//! `cargo bench -p weft-engine --bench engine [-- --json] [--quick] [--peer]`
//!
//! Engine throughput on the default model, with candle-transformers'
//! `quantized_llama` at batch 1 on the same GGUF as the baseline, measured in
//! the same process. With `--peer`, llama.cpp too, in the same run, on the same
//! file: its build-and-bench script (`WEFT_PEER_SCRIPT`, default the
//! development checkout's `../shared/tools/peer-llamacpp.sh`; building it the
//! first time takes about 25 minutes on 2 cores) and the ratios to it.
//! Prints figures; asserts nothing.

use std::io::Seek;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use serde_json::json;
use weft_engine::{
    Engine, EngineConfig, EngineHandle, Event, KvCapacity, LoadOptions, Quantize, Request, SamplingParams,
    SchedulerConfig,
};

fn prompt(n: usize, seed: u32) -> Vec<u32> {
    (0..n as u32).map(|i| 1000 + (i.wrapping_mul(7919).wrapping_add(seed * 104_729)) % 30_000).collect()
}

fn req(p: Vec<u32>, max_tokens: usize) -> Request {
    let mut r = Request::new(p, max_tokens).with_params(SamplingParams::greedy());
    r.ignore_eos = true;
    r
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<usize>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// Time to first token and prefill rate for one prompt of `n` tokens.
fn prefill(h: &EngineHandle, n: usize) -> (f64, f64) {
    let t0 = Instant::now();
    let mut s = h.submit(req(prompt(n, 99), 1)).unwrap();
    while let Some(ev) = s.blocking_next() {
        if matches!(ev, Event::Token { .. }) {
            break;
        }
    }
    let ttft = t0.elapsed().as_secs_f64();
    (ttft, n as f64 / ttft)
}

struct Decode {
    tokens_per_sec: f64,
    ttft_p50: f64,
    peak_blocks: usize,
}

/// `c` concurrent greedy requests with 32-token prompts; decode rate measured
/// from the moment every request has its first token.
fn decode(h: &EngineHandle, c: usize, n_gen: usize) -> Decode {
    let t0 = Instant::now();
    let streams: Vec<_> = (0..c).map(|i| h.submit(req(prompt(32, i as u32), n_gen)).unwrap()).collect();
    let (tx, rx) = std::sync::mpsc::channel();
    let handles: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut times = Vec::new();
                while let Some(ev) = s.blocking_next() {
                    match ev {
                        Event::Token { .. } => times.push(Instant::now()),
                        _ => break,
                    }
                }
                tx.send(times).unwrap();
            })
        })
        .collect();
    drop(tx);
    let mut peak = 0;
    let mut all = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(t) => all.push(t),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
        peak = peak.max(h.metrics().kv.used_blocks);
    }
    for j in handles {
        j.join().unwrap();
    }
    let start = all.iter().map(|t| t[0]).max().unwrap();
    let end = all.iter().map(|t| *t.last().unwrap()).max().unwrap();
    let after: usize = all.iter().map(|t| t.iter().filter(|&&x| x > start).count()).sum();
    let mut ttfts: Vec<f64> = all.iter().map(|t| (t[0] - t0).as_secs_f64()).collect();
    ttfts.sort_by(f64::total_cmp);
    Decode {
        tokens_per_sec: after as f64 / (end - start).as_secs_f64(),
        ttft_p50: ttfts[ttfts.len() / 2],
        peak_blocks: peak,
    }
}

fn candle_baseline(path: &std::path::Path, n_gen: usize) -> f64 {
    let mut f = std::fs::File::open(path).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
    f.rewind().unwrap();
    let mut m = ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
    let p = prompt(32, 0);
    let x = Tensor::new(p.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let logits = m.forward(&x, 0).unwrap().squeeze(0).unwrap().to_vec1::<f32>().unwrap();
    let mut tok = weft_engine::sampling::native::argmax(&logits);
    let t0 = Instant::now();
    for pos in p.len()..p.len() + n_gen {
        let x = Tensor::new(&[tok], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let logits = m.forward(&x, pos).unwrap().squeeze(0).unwrap().to_vec1::<f32>().unwrap();
        tok = weft_engine::sampling::native::argmax(&logits);
    }
    n_gen as f64 / t0.elapsed().as_secs_f64()
}

fn engine(path: &std::path::Path, opts: LoadOptions) -> EngineHandle {
    let model = weft_engine::model::load(path, opts).unwrap();
    Engine::start(
        model,
        EngineConfig {
            kv_capacity: KvCapacity::Bytes(1 << 30),
            scheduler: SchedulerConfig { max_batched_tokens: 512, max_num_seqs: 64, watermark_blocks: 1 },
            ..Default::default()
        },
    )
    .unwrap()
}

/// Writes the GGUF as a Hugging Face directory in f32, undoing llama.cpp's
/// Q/K row permutation, so INT8-at-load can be measured on a dense model.
fn export_hf(gguf: &std::path::Path, dir: &std::path::Path) {
    use candle_core::quantized::gguf_file::Content;
    std::fs::create_dir_all(dir).unwrap();
    let mut f = std::fs::File::open(gguf).unwrap();
    let ct = Content::read(&mut f).unwrap();
    let u = |k: &str| ct.metadata[k].to_u32().unwrap() as usize;
    let (heads, kv_heads, layers) =
        (u("llama.attention.head_count"), u("llama.attention.head_count_kv"), u("llama.block_count"));
    let hidden = u("llama.embedding_length");
    let mut out = std::collections::HashMap::new();
    let mut get = |name: &str| ct.tensor(&mut f, name, &Device::Cpu).unwrap().dequantize(&Device::Cpu).unwrap();
    let unpermute = |w: Tensor, n_head: usize| {
        let (o, i) = w.dims2().unwrap();
        w.reshape((n_head, o / n_head / 2, 2, i)).unwrap().transpose(1, 2).unwrap().reshape((o, i)).unwrap()
    };
    let embed = get("token_embd.weight");
    let vocab = embed.dims2().unwrap().0;
    out.insert("model.embed_tokens.weight".to_string(), embed);
    out.insert("model.norm.weight".to_string(), get("output_norm.weight"));
    let mut ffn = 0;
    for l in 0..layers {
        let (g, p) = (format!("blk.{l}"), format!("model.layers.{l}"));
        out.insert(format!("{p}.self_attn.q_proj.weight"), unpermute(get(&format!("{g}.attn_q.weight")), heads));
        out.insert(format!("{p}.self_attn.k_proj.weight"), unpermute(get(&format!("{g}.attn_k.weight")), kv_heads));
        for (a, b) in [
            ("attn_v", "self_attn.v_proj"),
            ("attn_output", "self_attn.o_proj"),
            ("ffn_gate", "mlp.gate_proj"),
            ("ffn_up", "mlp.up_proj"),
            ("ffn_down", "mlp.down_proj"),
            ("attn_norm", "input_layernorm"),
            ("ffn_norm", "post_attention_layernorm"),
        ] {
            let t = get(&format!("{g}.{a}.weight"));
            if a == "ffn_gate" {
                ffn = t.dims2().unwrap().0;
            }
            out.insert(format!("{p}.{b}.weight"), t);
        }
    }
    candle_core::safetensors::save(&out, dir.join("model.safetensors")).unwrap();
    let cfg = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab,
        "hidden_size": hidden, "intermediate_size": ffn, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads,
        "rope_theta": ct.metadata["llama.rope.freq_base"].to_f32().unwrap(),
        "rms_norm_eps": ct.metadata["llama.attention.layer_norm_rms_epsilon"].to_f32().unwrap(),
        "max_position_embeddings": u("llama.context_length"), "tie_word_embeddings": true
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
}

fn greedy_tokens(h: &EngineHandle, n: usize) -> Vec<u32> {
    let mut s = h.submit(req(prompt(24, 5), n)).unwrap();
    let mut out = Vec::new();
    while let Some(Event::Token { id, .. }) = s.blocking_next() {
        out.push(id);
    }
    out
}

/// llama.cpp's figures on the same file: llama-bench pp512/tg128 and
/// llama-batched-bench S_TG at 1, 8 and 32 sequences, from the peer script.
fn peer(path: &std::path::Path) -> serde_json::Value {
    let script = std::env::var("WEFT_PEER_SCRIPT").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/peer-llamacpp.sh")
    });
    let out = match std::process::Command::new("bash").arg(&script).arg(path).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).to_string(),
        Ok(o) => return json!({"error": String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("").to_string()}),
        Err(e) => return json!({"error": format!("{}: {e}", script.display())}),
    };
    let cells = |l: &str| l.split('|').map(|c| c.trim().to_string()).collect::<Vec<_>>();
    let mut r = serde_json::Map::new();
    for l in out.lines() {
        let c = cells(l);
        // llama-bench: | model | size | params | backend | threads | test | t/s |
        if c.len() >= 8 && (c[6] == "pp512" || c[6] == "tg128") {
            let v: f64 = c[7].split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
            r.insert(format!("{}_tok_s", c[6]), json!(v));
        }
        // batched-bench: | PP | TG | B | N_KV | T_PP | S_PP | T_TG | S_TG | T | S |
        if c.len() >= 10 && c[3].parse::<usize>().is_ok() && c[1].parse::<usize>().is_ok() {
            r.insert(format!("batched_s_tg_b{}_tok_s", c[3]), json!(c[8].parse::<f64>().unwrap_or(f64::NAN)));
        }
    }
    serde_json::Value::Object(r)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn measure(h: &EngineHandle, n_gen: usize, full: bool) -> serde_json::Map<String, serde_json::Value> {
    let mut r = serde_json::Map::new();
    r.insert("weight_bytes".into(), json!(h.model().weight_bytes));
    r.insert("dense_copy_bytes".into(), json!(h.model().dense_bytes));
    r.insert("embedding_bytes".into(), json!(h.model().embedding_bytes));
    let _ = prefill(h, 64); // warm up
    let (ttft, rate) = prefill(h, 512);
    r.insert("prefill_512_tok_s".into(), json!(rate));
    r.insert("ttft_512_s".into(), json!(ttft));
    let concurrencies: &[usize] = if full { &[1, 8, 32] } else { &[1, 32] };
    for &c in concurrencies {
        // Three runs, median, to damp the noise of a shared 2-core machine.
        let m0 = h.metrics();
        let runs: Vec<Decode> = (0..3).map(|_| decode(h, c, n_gen)).collect();
        let m1 = h.metrics();
        if c == 1 {
            // Mean step at batch 1, and the time per token spent outside steps.
            let step = (m1.total_step_secs - m0.total_step_secs) / (m1.steps - m0.steps).max(1) as f64;
            r.insert("decode_c1_mean_step_ms".into(), json!(step * 1e3));
        }
        r.insert(format!("decode_c{c}_tok_s"), json!(median(runs.iter().map(|d| d.tokens_per_sec).collect())));
        r.insert(format!("decode_c{c}_ttft_p50_s"), json!(median(runs.iter().map(|d| d.ttft_p50).collect())));
        r.insert(format!("decode_c{c}_peak_kv_blocks"), json!(runs.iter().map(|d| d.peak_blocks).max()));
    }
    let c1 = r["decode_c1_tok_s"].as_f64().unwrap();
    let c32 = r["decode_c32_tok_s"].as_f64().unwrap();
    r.insert("c32_over_c1".into(), json!(c32 / c1));
    r
}

/// DRAM read bandwidth on every core, GB/s (best of 3 passes over 1 GiB):
/// the ceiling batch-1 decode is held to, since it reads every weight once per token.
fn dram_read_gbs() -> f64 {
    use rayon::prelude::*;
    let v: Vec<u64> = (0..(1u64 << 27)).collect();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t0 = Instant::now();
        let s: u64 = v.par_chunks(1 << 16).map(|c| c.iter().fold(0u64, |a, &x| a ^ x)).reduce(|| 0, |a, b| a ^ b);
        best = best.min(t0.elapsed().as_secs_f64());
        std::hint::black_box(s);
    }
    (v.len() * 8) as f64 / best / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let as_json = args.iter().any(|a| a == "--json");
    let quick = args.iter().any(|a| a == "--quick");
    let n_gen = if quick { 32 } else { 128 };
    let path = weft_engine::ensure_default_model(&mut |l| eprintln!("{l}")).unwrap();

    let mut report = serde_json::Map::new();
    if args.iter().any(|a| a == "--peer") {
        report.insert("llama_cpp".into(), peer(&path));
    }
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    report.insert("gguf_file_bytes".into(), json!(file_bytes));
    report.insert("kernel".into(), json!(weft_engine::model::kernels::q8gemm::kernel().as_str()));
    let gbs = dram_read_gbs();
    report.insert("dram_read_gb_s".into(), json!(gbs));
    let baseline = median((0..3).map(|_| candle_baseline(&path, n_gen)).collect());
    report.insert("candle_quantized_llama_batch1_decode_tok_s".into(), json!(baseline));

    // The default model with weft's kernels; then the same with candle's kernels.
    let h = engine(&path, LoadOptions::default());
    let mut r = measure(&h, n_gen, true);
    let c1 = r["decode_c1_tok_s"].as_f64().unwrap();
    r.insert("c1_over_candle_baseline".into(), json!(c1 / baseline));
    // Memory over 1000+ steps: RSS before and after a long run.
    let _ = decode(&h, 4, 64);
    let before = rss_bytes();
    let steps0 = h.metrics().steps;
    let _ = decode(&h, 4, if quick { 300 } else { 1000 });
    r.insert("steps_in_memory_run".into(), json!(h.metrics().steps - steps0));
    r.insert("rss_growth_bytes_over_run".into(), json!(rss_bytes() as i64 - before as i64));
    let reference_tokens = greedy_tokens(&h, 16);
    h.check_idle().unwrap();
    drop(h);
    report.insert("q4_1_weft".into(), serde_json::Value::Object(r));

    // The same file held as int8 (the layout before 4-bit packing), then with candle's kernels.
    let h = engine(&path, LoadOptions::quantized(Quantize::Q8_0));
    report.insert("q4_1_held_as_int8".into(), serde_json::Value::Object(measure(&h, n_gen, false)));
    drop(h);
    let h = engine(&path, LoadOptions { int8_kernel: false, ..LoadOptions::default() });
    report.insert("q4_1_candle_kernels".into(), serde_json::Value::Object(measure(&h, n_gen, false)));
    drop(h);

    // INT8 at load on a dense model: the GGUF exported to f32 safetensors.
    let dir = std::env::temp_dir().join("weft-bench-f32-export");
    if !dir.join("config.json").exists() {
        export_hf(&path, &dir);
    }
    for (label, q) in [("f32_hf", Quantize::None), ("f32_hf_quantized_q8_0", Quantize::Q8_0)] {
        let h = engine(&dir, LoadOptions::quantized(q));
        let mut r = measure(&h, n_gen, false);
        let toks = greedy_tokens(&h, 16);
        let same = toks.iter().zip(&reference_tokens).take_while(|(a, b)| a == b).count();
        r.insert("greedy_prefix_agreeing_with_gguf_of_16".into(), json!(same));
        report.insert(label.into(), serde_json::Value::Object(r));
    }

    if let Some(p) = report.get("llama_cpp").cloned() {
        let w = report["q4_1_weft"].clone();
        let ratio = |ours: &str, theirs: &str| {
            w.get(ours).and_then(|v| v.as_f64()).unwrap_or(f64::NAN)
                / p.get(theirs).and_then(|v| v.as_f64()).unwrap_or(f64::NAN)
        };
        report.insert(
            "weft_over_llama_cpp".into(),
            json!({
                "decode_c1_vs_tg128": ratio("decode_c1_tok_s", "tg128_tok_s"),
                "decode_c1_vs_batched_b1": ratio("decode_c1_tok_s", "batched_s_tg_b1_tok_s"),
                "decode_c8_vs_batched_b8": ratio("decode_c8_tok_s", "batched_s_tg_b8_tok_s"),
                "decode_c32_vs_batched_b32": ratio("decode_c32_tok_s", "batched_s_tg_b32_tok_s"),
                "prefill_512_vs_pp512": ratio("prefill_512_tok_s", "pp512_tok_s"),
            }),
        );
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return;
    }
    if let Some(p) = report.get("llama_cpp") {
        println!("llama.cpp (peer) on the same file: {p}");
        println!("weft / llama.cpp: {}", report["weft_over_llama_cpp"]);
    }
    println!("weft bench engine  (default model, greedy, 32-token prompts, {n_gen} generated tokens, medians of 3)");
    println!("  baseline: candle-transformers quantized_llama, batch 1: {baseline:8.1} tok/s");
    println!(
        "  kernel {}; DRAM read {gbs:.1} GB/s; GGUF file {:.1} MB",
        report["kernel"].as_str().unwrap_or("?"),
        file_bytes as f64 / 1e6
    );
    for label in ["q4_1_weft", "q4_1_held_as_int8", "q4_1_candle_kernels", "f32_hf", "f32_hf_quantized_q8_0"] {
        let r = report[label].as_object().unwrap();
        let f = |k: &str| r.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        println!(
            "  [{label}] weights {:.1} MB (+{:.1} MB dense batch copies, +{:.1} MB embedding table)",
            f("weight_bytes") / 1e6,
            f("dense_copy_bytes") / 1e6,
            f("embedding_bytes") / 1e6
        );
        println!("    prefill 512 tokens: {:8.1} tok/s  (TTFT {:.3} s)", f("prefill_512_tok_s"), f("ttft_512_s"));
        for c in [1, 8, 32] {
            if r.contains_key(&format!("decode_c{c}_tok_s")) {
                println!(
                    "    decode c={c:<2}: {:8.1} tok/s   TTFT p50 {:.3} s   peak KV blocks {}",
                    f(&format!("decode_c{c}_tok_s")),
                    f(&format!("decode_c{c}_ttft_p50_s")),
                    f(&format!("decode_c{c}_peak_kv_blocks"))
                );
            }
        }
        println!("    c32/c1 = {:.2}x", f("c32_over_c1"));
        let ceiling = gbs * 1e9 / f("weight_bytes");
        println!(
            "    weights held / file = {:.2}x; c=1 at {:.0}% of the bandwidth ceiling ({ceiling:.0} tok/s for these bytes)",
            (f("weight_bytes") + f("dense_copy_bytes") + f("embedding_bytes")) / file_bytes as f64,
            100.0 * f("decode_c1_tok_s") / ceiling
        );
        println!(
            "    c=1: {:.2} ms per token, mean engine step {:.2} ms (prefill step included)",
            1e3 / f("decode_c1_tok_s"),
            f("decode_c1_mean_step_ms")
        );
        if let Some(x) = r.get("c1_over_candle_baseline") {
            println!("    c1 / candle baseline = {:.2}x", x.as_f64().unwrap());
        }
        if let Some(g) = r.get("rss_growth_bytes_over_run") {
            println!("    RSS growth over {} steps: {} KB", r["steps_in_memory_run"], g.as_i64().unwrap() / 1024);
        }
        if let Some(g) = r.get("greedy_prefix_agreeing_with_gguf_of_16") {
            println!("    greedy tokens agreeing with the GGUF run: {g}/16");
        }
    }
}
