//! The paged, batched, chunked forward pass equals a plain unbatched reference.
//!
//! The test writes a tiny random-weight Llama (GQA, untied head) as a Hugging
//! Face directory, loads it through the engine's loader, runs five sequences of
//! lengths that straddle block (4) and chunk (5) boundaries as ragged batches
//! over scattered KV blocks, and compares every position's logits with a
//! straightforward candle forward that knows nothing of pages or batches.

use std::collections::HashMap;

use candle_core::{D, DType, Device, IndexOp, Tensor};
use weft_engine::kv::{KvDtype, KvStore};
use weft_engine::model::{ForwardBatch, LlamaModel};

const VOCAB: usize = 61;
const HIDDEN: usize = 48;
const FFN: usize = 80;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 12;
const EPS: f64 = 1e-5;
const THETA: f32 = 10_000.0;

fn tensors() -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let mut t = HashMap::new();
    let mut add = |name: String, shape: &[usize], scale: f64| {
        let v = Tensor::randn(0f32, 1.0, shape, &dev).unwrap().affine(scale, 0.0).unwrap();
        t.insert(name, v);
    };
    add("model.embed_tokens.weight".into(), &[VOCAB, HIDDEN], 1.0);
    add("lm_head.weight".into(), &[VOCAB, HIDDEN], 0.2);
    add("model.norm.weight".into(), &[HIDDEN], 0.1);
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        add(format!("{p}.input_layernorm.weight"), &[HIDDEN], 0.1);
        add(format!("{p}.post_attention_layernorm.weight"), &[HIDDEN], 0.1);
        add(format!("{p}.self_attn.q_proj.weight"), &[HEADS * HEAD_DIM, HIDDEN], 0.15);
        add(format!("{p}.self_attn.k_proj.weight"), &[KV_HEADS * HEAD_DIM, HIDDEN], 0.15);
        add(format!("{p}.self_attn.v_proj.weight"), &[KV_HEADS * HEAD_DIM, HIDDEN], 0.15);
        add(format!("{p}.self_attn.o_proj.weight"), &[HIDDEN, HEADS * HEAD_DIM], 0.15);
        add(format!("{p}.mlp.gate_proj.weight"), &[FFN, HIDDEN], 0.15);
        add(format!("{p}.mlp.up_proj.weight"), &[FFN, HIDDEN], 0.15);
        add(format!("{p}.mlp.down_proj.weight"), &[HIDDEN, FFN], 0.15);
    }
    // Norm weights around 1, as trained models have.
    for (k, v) in t.iter_mut() {
        if k.ends_with("norm.weight") {
            *v = (v.clone() + 1.0).unwrap();
        }
    }
    t
}

fn write_model(dir: &std::path::Path, t: &HashMap<String, Tensor>) {
    let cfg = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": VOCAB, "hidden_size": HIDDEN, "intermediate_size": FFN,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
        "rope_theta": THETA, "rms_norm_eps": EPS, "max_position_embeddings": 64,
        "tie_word_embeddings": false, "eos_token_id": 2
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    // Store half the tensors as bf16 and some as f16 to exercise conversion.
    let stored: HashMap<String, Tensor> = t
        .iter()
        .map(|(k, v)| {
            let v = if k.contains("mlp.up") { v.to_dtype(DType::F16).unwrap() } else { v.clone() };
            (k.clone(), v)
        })
        .collect();
    candle_core::safetensors::save(&stored, dir.join("model.safetensors")).unwrap();
}

fn rms(x: &Tensor, w: &Tensor) -> Tensor {
    let ms = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    x.broadcast_div(&(ms + EPS).unwrap().sqrt().unwrap()).unwrap().broadcast_mul(w).unwrap()
}

/// Plain causal forward of one sequence; logits for every position.
fn reference(t: &HashMap<String, Tensor>, tokens: &[u32]) -> Vec<Vec<f32>> {
    let dev = Device::Cpu;
    let g = |n: &str| {
        let v = &t[n];
        // The model saw f16 for up_proj: round the same way.
        if n.contains("mlp.up") { v.to_dtype(DType::F16).unwrap().to_dtype(DType::F32).unwrap() } else { v.clone() }
    };
    let n = tokens.len();
    let ids = Tensor::new(tokens, &dev).unwrap();
    let mut x = g("model.embed_tokens.weight").index_select(&ids, 0).unwrap();
    let inv: Vec<f32> = (0..HEAD_DIM / 2).map(|i| 1.0 / THETA.powf(2.0 * i as f32 / HEAD_DIM as f32)).collect();
    let pos: Vec<f32> = (0..n).map(|p| p as f32).collect();
    let freqs = Tensor::new(pos.as_slice(), &dev)
        .unwrap()
        .reshape((n, 1))
        .unwrap()
        .matmul(&Tensor::new(inv.as_slice(), &dev).unwrap().reshape((1, HEAD_DIM / 2)).unwrap())
        .unwrap();
    let (cos, sin) = (freqs.cos().unwrap(), freqs.sin().unwrap());
    let mask: Vec<f32> =
        (0..n).flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 })).collect();
    let mask = Tensor::from_vec(mask, (n, n), &dev).unwrap();
    let heads =
        |y: Tensor, h: usize| y.reshape((n, h, HEAD_DIM)).unwrap().transpose(0, 1).unwrap().contiguous().unwrap();
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        let xn = rms(&x, &g(&format!("{p}.input_layernorm.weight")));
        let proj = |name: &str, v: &Tensor| v.matmul(&g(&format!("{p}.{name}.weight")).t().unwrap()).unwrap();
        let q = heads(proj("self_attn.q_proj", &xn), HEADS).unsqueeze(0).unwrap();
        let k = heads(proj("self_attn.k_proj", &xn), KV_HEADS).unsqueeze(0).unwrap();
        let v = heads(proj("self_attn.v_proj", &xn), KV_HEADS);
        let q = candle_nn::rotary_emb::rope(&q, &cos, &sin).unwrap().squeeze(0).unwrap();
        let k = candle_nn::rotary_emb::rope(&k, &cos, &sin).unwrap().squeeze(0).unwrap();
        let mut outs = Vec::new();
        for h in 0..HEADS {
            let kv = h / (HEADS / KV_HEADS);
            let att = (q.i(h).unwrap().matmul(&k.i(kv).unwrap().t().unwrap()).unwrap() / (HEAD_DIM as f64).sqrt())
                .unwrap()
                .add(&mask)
                .unwrap();
            let att = candle_nn::ops::softmax_last_dim(&att).unwrap();
            outs.push(att.matmul(&v.i(kv).unwrap()).unwrap());
        }
        let o = Tensor::cat(&outs, 1).unwrap();
        x = (x + proj("self_attn.o_proj", &o)).unwrap();
        let xn = rms(&x, &g(&format!("{p}.post_attention_layernorm.weight")));
        let act = (candle_nn::ops::silu(&proj("mlp.gate_proj", &xn)).unwrap() * proj("mlp.up_proj", &xn)).unwrap();
        x = (x + proj("mlp.down_proj", &act)).unwrap();
    }
    let logits = rms(&x, &g("model.norm.weight")).matmul(&g("lm_head.weight").t().unwrap()).unwrap();
    logits.to_vec2::<f32>().unwrap()
}

#[test]
fn paged_batched_chunked_forward_matches_reference() {
    let dir = std::env::temp_dir().join(format!("weft-tiny-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let t = tensors();
    write_model(&dir, &t);
    let loaded = weft_engine::model::load(&dir, weft_engine::LoadOptions::default()).unwrap();
    assert_eq!(loaded.config.num_kv_heads, KV_HEADS);
    assert_eq!(loaded.eos_token_ids, vec![2]);
    let model = LlamaModel::new(loaded.config.clone(), loaded.weights);

    let block = 4;
    let chunk = 5;
    let lens = [3usize, 4, 9, 13, 17];
    let seqs: Vec<Vec<u32>> =
        lens.iter().enumerate().map(|(s, &n)| (0..n).map(|i| ((i * 7 + s * 13) % VOCAB) as u32).collect()).collect();
    // Scattered, interleaved block tables: sequence s owns blocks s, s+5, s+10, ...
    let tables: Vec<Vec<u32>> =
        lens.iter().enumerate().map(|(s, &n)| (0..n.div_ceil(block)).map(|b| (s + 5 * b) as u32).collect()).collect();
    // The f32 cache matches the reference to rounding; the f16 one within f16's precision.
    for (dtype, tol) in [(KvDtype::F32, 1e-4), (KvDtype::F16, 2e-2)] {
        let mut kv = KvStore::new(LAYERS, 5 * 5, block, KV_HEADS * HEAD_DIM, dtype);
        let mut got: Vec<Vec<Vec<f32>>> = lens.iter().map(|_| Vec::new()).collect();
        let mut done = vec![0usize; lens.len()];
        while done.iter().zip(&lens).any(|(d, n)| d < n) {
            let mut batch = ForwardBatch::default();
            let mut owners = Vec::new();
            for s in 0..lens.len() {
                let take = (lens[s] - done[s]).min(chunk);
                if take == 0 {
                    continue;
                }
                batch.push(&seqs[s][done[s]..done[s] + take], done[s], tables[s].clone(), false);
                owners.push((s, take));
            }
            batch.logits_rows = (0..batch.num_tokens()).collect();
            let logits = model.forward(&batch, &mut kv).unwrap();
            let mut rows = logits.chunks_exact(VOCAB);
            for (s, take) in owners {
                for _ in 0..take {
                    got[s].push(rows.next().unwrap().to_vec());
                }
                done[s] += take;
            }
        }
        let mut worst = 0f32;
        for (s, toks) in seqs.iter().enumerate() {
            let want = reference(&t, toks);
            for (p, (g, w)) in got[s].iter().zip(&want).enumerate() {
                for (a, b) in g.iter().zip(w) {
                    let d = (a - b).abs();
                    worst = worst.max(d);
                    assert!(d < tol, "{dtype:?} seq {s} pos {p}: {a} vs {b}");
                }
            }
        }
        eprintln!("{dtype:?} cache: max |paged - reference| = {worst:e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
