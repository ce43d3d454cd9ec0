//! Hugging Face directory loading: `config.json` + `*.safetensors` (f32, f16
//! or bf16) + optional `tokenizer.json` / `tokenizer_config.json`.
//!
//! Weights are converted to f32 at load (or to Q8_0 with `quantize`), since
//! candle's CPU kernels are fastest there.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::LoadedModel;
use super::config::LlamaConfig;
use super::linear::{Linear, LoadOptions};
use super::llama::{Embedding, LayerWeights, LlamaWeights};
use super::tokenizer_spec::TokenizerSpec;
use crate::error::{EngineError, Result};

#[derive(Deserialize)]
struct HfConfig {
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "default_theta")]
    rope_theta: f32,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    #[serde(default = "default_ctx")]
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    eos_token_id: Option<serde_json::Value>,
}
fn default_theta() -> f32 {
    10_000.0
}
fn default_eps() -> f64 {
    1e-5
}
fn default_ctx() -> usize {
    4096
}

pub(super) fn load(dir: &Path, opts: LoadOptions) -> Result<LoadedModel> {
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| EngineError::load(&cfg_path, e))?;
    let hf: HfConfig = serde_json::from_str(&text).map_err(|e| EngineError::load(&cfg_path, e))?;
    let arch = hf.model_type.clone().unwrap_or_else(|| "llama".into());
    let known = ["llama", "qwen2", "mistral"];
    if !known.contains(&arch.as_str()) && !hf.architectures.iter().any(|a| a.contains("Llama") || a.contains("Qwen2")) {
        return Err(EngineError::UnsupportedArchitecture { path: cfg_path, arch });
    }
    let cfg = LlamaConfig {
        vocab_size: hf.vocab_size,
        hidden_size: hf.hidden_size,
        intermediate_size: hf.intermediate_size,
        num_layers: hf.num_hidden_layers,
        num_heads: hf.num_attention_heads,
        num_kv_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
        head_dim: hf.head_dim.unwrap_or(hf.hidden_size / hf.num_attention_heads.max(1)),
        rope_theta: hf.rope_theta,
        rms_norm_eps: hf.rms_norm_eps,
        max_position_embeddings: hf.max_position_embeddings,
        rope_interleaved: false,
    };
    cfg.validate().map_err(|e| EngineError::load(&cfg_path, e))?;

    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| EngineError::load(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(EngineError::load(dir, "no *.safetensors files"));
    }
    let mut tensors = HashMap::new();
    for f in &files {
        let t = candle_core::safetensors::load(f, &Device::Cpu)
            .map_err(|e| EngineError::load(f, format!("not a readable safetensors file: {e}")))?;
        tensors.extend(t);
    }
    let mut st = Store { tensors, dir, opts };
    let weights = build_weights(&cfg, hf.tie_word_embeddings, &mut st)?;

    let tokenizer = std::fs::read_to_string(dir.join("tokenizer.json")).ok().map(TokenizerSpec::HuggingFaceJson);
    let chat_template = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("chat_template").and_then(|t| t.as_str()).map(str::to_owned));
    let eos_token_ids = match hf.eos_token_id {
        Some(serde_json::Value::Number(n)) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|n| n.as_u64()).map(|n| n as u32).collect(),
        _ => Vec::new(),
    };
    Ok(LoadedModel {
        name: dir.file_name().unwrap_or_default().to_string_lossy().into_owned(),
        architecture: arch,
        config: cfg,
        weights,
        tokenizer,
        chat_template,
        eos_token_ids,
    })
}

struct Store<'a> {
    tensors: HashMap<String, Tensor>,
    dir: &'a Path,
    opts: LoadOptions,
}

impl Store<'_> {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t =
            self.tensors.remove(name).ok_or_else(|| EngineError::load(self.dir, format!("missing tensor `{name}`")))?;
        if t.dims() != shape {
            return Err(EngineError::load(
                self.dir,
                format!("tensor `{name}` has shape {:?}, expected {shape:?}", t.dims()),
            ));
        }
        Ok(t.to_dtype(DType::F32)?)
    }

    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Linear> {
        let w = self.take(&format!("{name}.weight"), &[out, inp])?;
        let bias_name = format!("{name}.bias");
        let bias = if self.tensors.contains_key(&bias_name) { Some(self.take(&bias_name, &[out])?) } else { None };
        Linear::from_dense(w, self.opts)?.with_bias(bias)
    }
}

fn build_weights(cfg: &LlamaConfig, tied: bool, st: &mut Store<'_>) -> Result<LlamaWeights> {
    let (h, kv, q_dim) = (cfg.hidden_size, cfg.kv_dim(), cfg.num_heads * cfg.head_dim);
    let embed = st.take("model.embed_tokens.weight", &[cfg.vocab_size, h])?;
    let lm_head = if !tied && st.tensors.contains_key("lm_head.weight") {
        st.linear("lm_head", cfg.vocab_size, h)?
    } else {
        Linear::from_dense(embed.clone(), st.opts)?
    };
    let mut layers = Vec::with_capacity(cfg.num_layers);
    for i in 0..cfg.num_layers {
        let p = format!("model.layers.{i}");
        layers.push(LayerWeights::new(
            &st.take(&format!("{p}.input_layernorm.weight"), &[h])?,
            st.linear(&format!("{p}.self_attn.q_proj"), q_dim, h)?,
            st.linear(&format!("{p}.self_attn.k_proj"), kv, h)?,
            st.linear(&format!("{p}.self_attn.v_proj"), kv, h)?,
            st.linear(&format!("{p}.self_attn.o_proj"), h, q_dim)?,
            &st.take(&format!("{p}.post_attention_layernorm.weight"), &[h])?,
            st.linear(&format!("{p}.mlp.gate_proj"), cfg.intermediate_size, h)?,
            st.linear(&format!("{p}.mlp.up_proj"), cfg.intermediate_size, h)?,
            st.linear(&format!("{p}.mlp.down_proj"), h, cfg.intermediate_size)?,
        )?);
    }
    let norm = st.take("model.norm.weight", &[h])?;
    // A dense checkpoint keeps its embedding exact (the head may be re-quantized).
    LlamaWeights::new(Embedding::dense(&embed)?, layers, &norm, lm_head)
}
