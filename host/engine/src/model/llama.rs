//! The Llama-family decoder forward pass over a ragged batch.
//!
//! All tokens of a step (decode tokens and prefill chunks of many sequences)
//! go through every projection and MLP as one `[tokens, hidden]` matrix
//! product; only attention is per sequence, over its own paged blocks
//! ([`super::attention`]). Final norm and LM head run only on the rows that
//! need a next token.

use candle_core::{D, Device, Tensor};
use rayon::prelude::*;

use super::attention::{AttnShape, paged_attention};
use super::batch::ForwardBatch;
use super::config::LlamaConfig;
use super::linear::Linear;
use super::rope::RopeTable;
use crate::error::Result;
use crate::kv::KvStore;

/// Weights of one decoder layer.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub attn_norm: Tensor,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub ffn_norm: Tensor,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

/// All weights of the model.
#[derive(Debug, Clone)]
pub struct LlamaWeights {
    /// `[vocab, hidden]`, dequantized to f32 for row lookups.
    pub embed: Tensor,
    pub layers: Vec<LayerWeights>,
    pub norm: Tensor,
    pub lm_head: Linear,
}

impl LlamaWeights {
    /// Bytes of the weights the forward pass streams per step (embedding table excluded).
    pub fn matmul_bytes(&self) -> usize {
        let layer: usize = self
            .layers
            .iter()
            .map(|l| {
                [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]
                    .iter()
                    .map(|w| w.weight_bytes())
                    .sum::<usize>()
            })
            .sum();
        layer + self.lm_head.weight_bytes()
    }

    /// Bytes of the dense f32 batch copies kept beside quantized weights.
    pub fn dense_bytes(&self) -> usize {
        let layer: usize = self
            .layers
            .iter()
            .map(|l| {
                [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]
                    .iter()
                    .map(|w| w.dense_bytes())
                    .sum::<usize>()
            })
            .sum();
        layer + self.lm_head.dense_bytes()
    }
}

/// A ready-to-run model: config, weights and RoPE tables.
pub struct LlamaModel {
    cfg: LlamaConfig,
    w: LlamaWeights,
    rope: RopeTable,
}

impl LlamaModel {
    pub fn new(cfg: LlamaConfig, w: LlamaWeights) -> Self {
        let rope =
            RopeTable::new(cfg.head_dim, cfg.rope_theta, cfg.max_position_embeddings, cfg.rope_interleaved);
        Self { cfg, w, rope }
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    pub fn weights(&self) -> &LlamaWeights {
        &self.w
    }

    /// Runs one step: writes the new tokens' keys/values into `kv` and returns
    /// the logits of `batch.logits_rows`, row-major `[rows, vocab]`.
    pub fn forward(&self, batch: &ForwardBatch, kv: &mut KvStore) -> Result<Vec<f32>> {
        let cfg = &self.cfg;
        let n = batch.num_tokens();
        if n == 0 {
            return Ok(Vec::new());
        }
        let rows = batch.row_positions();
        let slots: Vec<usize> = rows
            .iter()
            .map(|&(s, p)| {
                let t = &batch.seqs[s].block_table;
                t[p / kv.block_size()] as usize * kv.block_size() + p % kv.block_size()
            })
            .collect();
        let eps = cfg.rms_norm_eps as f32;
        let (q_dim, kv_dim) = (cfg.num_heads * cfg.head_dim, cfg.kv_dim());
        let shape = AttnShape {
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            block_size: kv.block_size(),
        };
        let ids = Tensor::new(batch.tokens.as_slice(), &Device::Cpu)?;
        let mut x = self.w.embed.index_select(&ids, 0)?;
        let mut attn = vec![0f32; n * q_dim];

        for (li, layer) in self.w.layers.iter().enumerate() {
            let xn = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let mut q = layer.q.forward(&xn)?.flatten_all()?.to_vec1::<f32>()?;
            let mut k = layer.k.forward(&xn)?.flatten_all()?.to_vec1::<f32>()?;
            let v = layer.v.forward(&xn)?.flatten_all()?.to_vec1::<f32>()?;
            q.par_chunks_mut(q_dim).zip(k.par_chunks_mut(kv_dim)).enumerate().for_each(
                |(r, (qr, kr))| {
                    self.rope.apply(qr, rows[r].1);
                    self.rope.apply(kr, rows[r].1);
                },
            );
            for (r, &slot) in slots.iter().enumerate() {
                kv.write(li, slot, &k[r * kv_dim..(r + 1) * kv_dim], &v[r * kv_dim..(r + 1) * kv_dim]);
            }
            let (kc, vc) = kv.layer(li);
            paged_attention(&q, kc, vc, batch, &rows, shape, &mut attn);
            let a = Tensor::from_slice(&attn, (n, q_dim), &Device::Cpu)?;
            x = (x + layer.o.forward(&a)?)?;

            let xn = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
            let g = candle_nn::ops::silu(&layer.gate.forward(&xn)?)?;
            let u = layer.up.forward(&xn)?;
            x = (x + layer.down.forward(&(g * u)?)?)?;
        }

        if batch.logits_rows.is_empty() {
            return Ok(Vec::new());
        }
        let sel: Vec<u32> = batch.logits_rows.iter().map(|&r| r as u32).collect();
        let sel = Tensor::new(sel.as_slice(), &Device::Cpu)?;
        let h = x.index_select(&sel, 0)?;
        let h = candle_nn::ops::rms_norm(&h, &self.w.norm, eps)?;
        let logits = self.w.lm_head.forward(&h)?;
        debug_assert_eq!(logits.dim(D::Minus1)?, cfg.vocab_size);
        Ok(logits.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Longest sequence the RoPE tables (and the model) support.
    pub fn max_context(&self) -> usize {
        self.rope.max_positions()
    }
}
