//! GGUF loading: hyper-parameters, weights (any block format candle reads),
//! and the tokenizer and chat template carried in the metadata.
//!
//! Every failure names the file and what is wrong with it; nothing here panics
//! on a malformed file.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::Device;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};

use super::LoadedModel;
use super::config::LlamaConfig;
use super::linear::{Linear, LoadOptions};
use super::llama::{Embedding, LayerWeights, LlamaWeights};
use super::tokenizer_spec::{GgufTokenizer, TokenizerSpec};
use crate::error::{EngineError, Result};

const SUPPORTED: &[&str] = &["llama", "qwen2", "smollm"];

pub(super) fn load(path: &Path, opts: LoadOptions) -> Result<LoadedModel> {
    let file = File::open(path).map_err(|e| EngineError::load(path, e))?;
    let file_len = file.metadata().map_err(|e| EngineError::load(path, e))?.len();
    let mut reader = BufReader::new(file);
    let content =
        Content::read(&mut reader).map_err(|e| EngineError::load(path, format!("not a readable GGUF file: {e}")))?;
    let md = &content.metadata;

    let arch = md
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| EngineError::load(path, "missing general.architecture"))?;
    if !SUPPORTED.contains(&arch.as_str()) {
        return Err(EngineError::UnsupportedArchitecture { path: path.into(), arch });
    }
    // Every tensor must lie inside the file: a truncated download is caught
    // here with a clear message instead of as a short read mid-load.
    for (name, info) in &content.tensor_infos {
        let elems = info.shape.elem_count();
        let bytes = elems / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
        let end = content.tensor_data_offset + info.offset + bytes as u64;
        if end > file_len {
            return Err(EngineError::load(
                path,
                format!("file is truncated: tensor `{name}` ends at byte {end}, file has {file_len}"),
            ));
        }
    }

    let u = |key: &str| -> Result<usize> {
        md.get(&format!("{arch}.{key}"))
            .ok_or_else(|| EngineError::load(path, format!("missing metadata {arch}.{key}")))?
            .to_u64()
            .map(|v| v as usize)
            .map_err(|e| EngineError::load(path, format!("{arch}.{key}: {e}")))
    };
    let f = |key: &str, default: f64| -> f64 {
        md.get(&format!("{arch}.{key}"))
            .and_then(|v| v.to_f32().map(f64::from).or_else(|_| v.to_f64()).ok())
            .unwrap_or(default)
    };
    let num_heads = u("attention.head_count")?;
    let hidden_size = u("embedding_length")?;
    let embd = content
        .tensor_infos
        .get("token_embd.weight")
        .ok_or_else(|| EngineError::load(path, "missing tensor token_embd.weight"))?;
    let cfg = LlamaConfig {
        vocab_size: embd.shape.dims()[0],
        hidden_size,
        intermediate_size: u("feed_forward_length")?,
        num_layers: u("block_count")?,
        num_heads,
        num_kv_heads: u("attention.head_count_kv").unwrap_or(num_heads),
        head_dim: u("rope.dimension_count").unwrap_or(hidden_size / num_heads.max(1)),
        rope_theta: f("rope.freq_base", 10_000.0) as f32,
        rms_norm_eps: f("attention.layer_norm_rms_epsilon", 1e-5),
        max_position_embeddings: u("context_length").unwrap_or(4096),
        rope_interleaved: arch != "qwen2",
    };
    cfg.validate().map_err(|e| EngineError::load(path, e))?;

    let mut loader = TensorLoader { content: &content, reader: &mut reader, path, opts };
    let weights = build_weights(&cfg, &mut loader)?;
    let tokenizer = gguf_tokenizer(md);
    let chat_template = md.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned();
    let mut eos = Vec::new();
    if let Some(TokenizerSpec::Gguf(t)) = &tokenizer {
        eos.extend(t.eos_token_id);
        eos.extend(t.eot_token_id);
    }
    eos.dedup();
    Ok(LoadedModel {
        name: md
            .get("general.name")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| path.file_stem().unwrap_or_default().to_string_lossy().into_owned()),
        architecture: arch,
        config: cfg,
        weights,
        tokenizer,
        chat_template,
        eos_token_ids: eos,
    })
}

/// Reads only the tokenizer and chat template of a GGUF file (vocab-only files included).
pub fn read_tokenizer(path: &Path) -> Result<(Option<TokenizerSpec>, Option<String>)> {
    let mut reader = BufReader::new(File::open(path).map_err(|e| EngineError::load(path, e))?);
    let content =
        Content::read(&mut reader).map_err(|e| EngineError::load(path, format!("not a readable GGUF file: {e}")))?;
    let md = &content.metadata;
    let template = md.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned();
    Ok((gguf_tokenizer(md), template))
}

struct TensorLoader<'a, R> {
    content: &'a Content,
    reader: &'a mut R,
    path: &'a Path,
    opts: LoadOptions,
}

impl<R: std::io::Read + std::io::Seek> TensorLoader<'_, R> {
    fn has(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    fn raw(&mut self, name: &str, shape: &[usize]) -> Result<QTensor> {
        let q = self
            .content
            .tensor(self.reader, name, &Device::Cpu)
            .map_err(|e| EngineError::load(self.path, format!("tensor `{name}`: {e}")))?;
        if q.shape().dims() != shape {
            return Err(EngineError::load(
                self.path,
                format!("tensor `{name}` has shape {:?}, expected {shape:?}", q.shape().dims()),
            ));
        }
        Ok(q)
    }

    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Linear> {
        let q = self.raw(&format!("{name}.weight"), &[out, inp])?;
        let bias_name = format!("{name}.bias");
        let bias =
            if self.has(&bias_name) { Some(self.raw(&bias_name, &[out])?.dequantize(&Device::Cpu)?) } else { None };
        Linear::from_qtensor(q, self.opts)?.with_bias(bias)
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<candle_core::Tensor> {
        Ok(self.raw(name, &[len])?.dequantize(&Device::Cpu)?)
    }
}

fn build_weights<R: std::io::Read + std::io::Seek>(
    cfg: &LlamaConfig,
    l: &mut TensorLoader<'_, R>,
) -> Result<LlamaWeights> {
    let (h, kv, q_dim) = (cfg.hidden_size, cfg.kv_dim(), cfg.num_heads * cfg.head_dim);
    let embd_q = l.raw("token_embd.weight", &[cfg.vocab_size, h])?;
    // A quantized table stays packed (our kernels unpack its rows); a float one is kept dense.
    let packable = l.opts.int8_kernel
        && h.is_multiple_of(32)
        && !matches!(embd_q.dtype(), GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
    let dense = if packable { None } else { Some(Embedding::dense(&embd_q.dequantize(&Device::Cpu)?)?) };
    // Tied head: the (still quantized) embedding table is the output projection, and its rows the embeddings.
    let (lm_head, embed) = if l.has("output.weight") {
        let embed = match dense {
            Some(d) => d,
            None => Embedding::Packed(Linear::from_qtensor(embd_q, l.opts)?),
        };
        (l.linear("output", cfg.vocab_size, h)?, embed)
    } else {
        (Linear::from_qtensor(embd_q, l.opts)?, dense.unwrap_or(Embedding::Tied))
    };
    let mut layers = Vec::with_capacity(cfg.num_layers);
    for i in 0..cfg.num_layers {
        let p = format!("blk.{i}");
        layers.push(LayerWeights::new(
            &l.vector(&format!("{p}.attn_norm.weight"), h)?,
            l.linear(&format!("{p}.attn_q"), q_dim, h)?,
            l.linear(&format!("{p}.attn_k"), kv, h)?,
            l.linear(&format!("{p}.attn_v"), kv, h)?,
            l.linear(&format!("{p}.attn_output"), h, q_dim)?,
            &l.vector(&format!("{p}.ffn_norm.weight"), h)?,
            l.linear(&format!("{p}.ffn_gate"), cfg.intermediate_size, h)?,
            l.linear(&format!("{p}.ffn_up"), cfg.intermediate_size, h)?,
            l.linear(&format!("{p}.ffn_down"), h, cfg.intermediate_size)?,
        )?);
    }
    LlamaWeights::new(embed, layers, &l.vector("output_norm.weight", h)?, lm_head)
}

fn gguf_tokenizer(md: &HashMap<String, Value>) -> Option<TokenizerSpec> {
    let model = md.get("tokenizer.ggml.model")?.to_string().ok()?.clone();
    let strings = |key: &str| -> Vec<String> {
        md.get(key)
            .and_then(|v| v.to_vec().ok())
            .map(|v| v.iter().filter_map(|x| x.to_string().ok().cloned()).collect())
            .unwrap_or_default()
    };
    let id = |key: &str| md.get(key).and_then(|v| v.to_u64().ok()).map(|v| v as u32);
    let flag = |key: &str| md.get(key).and_then(|v| v.to_bool().ok());
    Some(TokenizerSpec::Gguf(GgufTokenizer {
        model,
        pre: md.get("tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).cloned(),
        tokens: strings("tokenizer.ggml.tokens"),
        merges: strings("tokenizer.ggml.merges"),
        scores: md
            .get("tokenizer.ggml.scores")
            .and_then(|v| v.to_vec().ok())
            .map(|v| v.iter().filter_map(|x| x.to_f32().ok()).collect())
            .unwrap_or_default(),
        token_types: md
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.to_vec().ok())
            .map(|v| v.iter().filter_map(|x| x.to_i32().ok()).collect())
            .unwrap_or_default(),
        bos_token_id: id("tokenizer.ggml.bos_token_id"),
        eos_token_id: id("tokenizer.ggml.eos_token_id"),
        eot_token_id: id("tokenizer.ggml.eot_token_id"),
        unknown_token_id: id("tokenizer.ggml.unknown_token_id"),
        padding_token_id: id("tokenizer.ggml.padding_token_id"),
        add_bos_token: flag("tokenizer.ggml.add_bos_token"),
        add_eos_token: flag("tokenizer.ggml.add_eos_token"),
        add_space_prefix: flag("tokenizer.ggml.add_space_prefix"),
        precompiled_charsmap: md
            .get("tokenizer.ggml.precompiled_charsmap")
            .and_then(|v| v.to_vec().ok())
            .map(|v| v.iter().filter_map(|x| x.to_u8().ok().or_else(|| x.to_i8().ok().map(|b| b as u8))).collect())
            .unwrap_or_default(),
        remove_extra_whitespaces: flag("tokenizer.ggml.remove_extra_whitespaces"),
    }))
}
