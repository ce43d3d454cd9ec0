//! The Llama-family decoder forward pass over a ragged batch.
//!
//! All tokens of a step (decode tokens and prefill chunks of many sequences)
//! go through every projection and MLP as one `[tokens, hidden]` matrix
//! product, with Q/K/V and gate/up fused so each input is quantized once; only
//! attention is per sequence, over its own paged blocks ([`super::attention`]).
//! Final norm and LM head run only on the rows that need a next token.
//! Activations are plain row-major `Vec<f32>`: no tensor allocation or thread
//! pool hand-off between the small element-wise steps.

use candle_core::Tensor;
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
    attn_norm: Vec<f32>,
    /// Q, K and V stacked: output `[q_dim + 2·kv_dim]`.
    qkv: Linear,
    o: Linear,
    ffn_norm: Vec<f32>,
    /// Gate and up stacked: output `[2·intermediate]`.
    gate_up: Linear,
    down: Linear,
}

fn vec1(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

impl LayerWeights {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        attn_norm: &Tensor,
        q: Linear,
        k: Linear,
        v: Linear,
        o: Linear,
        ffn_norm: &Tensor,
        gate: Linear,
        up: Linear,
        down: Linear,
    ) -> Result<Self> {
        Ok(Self {
            attn_norm: vec1(attn_norm)?,
            qkv: Linear::concat(vec![q, k, v])?,
            o,
            ffn_norm: vec1(ffn_norm)?,
            gate_up: Linear::concat(vec![gate, up])?,
            down,
        })
    }

    fn projections(&self) -> [&Linear; 4] {
        [&self.qkv, &self.o, &self.gate_up, &self.down]
    }
}

/// Where a token's embedding row comes from. A quantized table stays
/// quantized (a row is unpacked per token, a few hundred values): held as
/// f32, SmolLM2's 49k x 576 table alone would be 113 MB, more than all its
/// 4-bit projections together.
#[derive(Debug, Clone)]
pub enum Embedding {
    /// `[vocab, hidden]` f32 (dense checkpoints, or formats no kernel packs).
    Dense(Vec<f32>),
    /// The rows of the tied output projection: one packed table serves both.
    Tied,
    /// Its own packed table (untied models).
    Packed(Linear),
}

impl Embedding {
    /// The table from a dense tensor.
    pub fn dense(t: &Tensor) -> Result<Self> {
        Ok(Self::Dense(vec1(t)?))
    }
}

/// All weights of the model.
#[derive(Debug, Clone)]
pub struct LlamaWeights {
    embed: Embedding,
    layers: Vec<LayerWeights>,
    norm: Vec<f32>,
    lm_head: Linear,
}

impl LlamaWeights {
    pub fn new(embed: Embedding, layers: Vec<LayerWeights>, norm: &Tensor, lm_head: Linear) -> Result<Self> {
        let unpacks = match &embed {
            Embedding::Dense(_) => true,
            Embedding::Tied => lm_head.dequantize_row(0).is_some(),
            Embedding::Packed(l) => l.dequantize_row(0).is_some(),
        };
        if !unpacks {
            return Err(candle_core::Error::Msg("the embedding table's kernel cannot unpack rows".into()).into());
        }
        Ok(Self { embed, layers, norm: vec1(norm)?, lm_head })
    }

    /// Appends token `t`'s embedding to `x`.
    fn embed_into(&self, t: u32, h: usize, x: &mut Vec<f32>) {
        let t = t as usize;
        match &self.embed {
            Embedding::Dense(v) => x.extend_from_slice(&v[t * h..(t + 1) * h]),
            Embedding::Tied => x.extend(self.lm_head.dequantize_row(t).expect("checked at load")),
            Embedding::Packed(l) => x.extend(l.dequantize_row(t).expect("checked at load")),
        }
    }

    /// Bytes of the embedding table held apart from the projections (0 when tied).
    pub fn embedding_bytes(&self) -> usize {
        match &self.embed {
            Embedding::Dense(v) => v.len() * 4,
            Embedding::Tied => 0,
            Embedding::Packed(l) => l.weight_bytes(),
        }
    }

    /// Bytes of the projection weights streamed per step (embedding table excluded).
    pub fn matmul_bytes(&self) -> usize {
        let layer: usize = self.layers.iter().flat_map(|l| l.projections()).map(|w| w.weight_bytes()).sum();
        layer + self.lm_head.weight_bytes()
    }

    /// Bytes of the dense f32 batch copies kept beside quantized weights.
    pub fn dense_bytes(&self) -> usize {
        let layer: usize = self.layers.iter().flat_map(|l| l.projections()).map(|w| w.dense_bytes()).sum();
        layer + self.lm_head.dense_bytes()
    }
}

/// RMSNorm of each row of `x` into `out`.
fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let h = w.len();
    for (xr, or) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        let ss = super::kernels::dot(xr, xr);
        let inv = 1.0 / (ss / h as f32 + eps).sqrt();
        for ((o, v), g) in or.iter_mut().zip(xr).zip(w) {
            *o = v * inv * g;
        }
    }
}

fn add_into(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// A ready-to-run model: config, weights and RoPE tables.
pub struct LlamaModel {
    cfg: LlamaConfig,
    w: LlamaWeights,
    rope: RopeTable,
}

impl LlamaModel {
    pub fn new(cfg: LlamaConfig, w: LlamaWeights) -> Self {
        let rope = RopeTable::new(cfg.head_dim, cfg.rope_theta, cfg.max_position_embeddings, cfg.rope_interleaved);
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
        let h = cfg.hidden_size;
        let (q_dim, kv_dim, ffn) = (cfg.num_heads * cfg.head_dim, cfg.kv_dim(), cfg.intermediate_size);
        let qkv_w = q_dim + 2 * kv_dim;
        let rows = batch.row_positions();
        let bs = kv.block_size();
        let slots: Vec<usize> =
            rows.iter().map(|&(s, p)| batch.seqs[s].block_table[p / bs] as usize * bs + p % bs).collect();
        let eps = cfg.rms_norm_eps as f32;
        let shape = AttnShape {
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            block_size: bs,
        };

        let mut x = Vec::with_capacity(n * h);
        for &t in &batch.tokens {
            self.w.embed_into(t, h, &mut x);
        }
        let mut xn = vec![0f32; n * h];
        let mut q = vec![0f32; n * q_dim];
        let mut attn = vec![0f32; n * q_dim];
        let mut act = vec![0f32; n * ffn];

        for (li, layer) in self.w.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, eps, &mut xn);
            let mut qkv = layer.qkv.forward(&xn, n)?;
            qkv.par_chunks_mut(qkv_w).zip(q.par_chunks_mut(q_dim)).enumerate().with_min_len(16).for_each(
                |(r, (row, qr))| {
                    let pos = rows[r].1;
                    self.rope.apply(&mut row[..q_dim + kv_dim], pos);
                    qr.copy_from_slice(&row[..q_dim]);
                },
            );
            for (r, &slot) in slots.iter().enumerate() {
                let row = &qkv[r * qkv_w..(r + 1) * qkv_w];
                kv.write(li, slot, &row[q_dim..q_dim + kv_dim], &row[q_dim + kv_dim..]);
            }
            paged_attention(&q, kv.layer(li), batch, &rows, shape, &mut attn);
            add_into(&mut x, &layer.o.forward(&attn, n)?);

            rms_norm(&x, &layer.ffn_norm, eps, &mut xn);
            let gu = layer.gate_up.forward(&xn, n)?;
            act.par_chunks_mut(ffn).zip(gu.par_chunks(2 * ffn)).with_min_len(16).for_each(|(a, g)| {
                let (gate, up) = g.split_at(ffn);
                super::kernels::silu_mul(gate, up, a);
            });
            add_into(&mut x, &layer.down.forward(&act, n)?);
        }

        let m = batch.logits_rows.len();
        if m == 0 {
            return Ok(Vec::new());
        }
        let mut last = Vec::with_capacity(m * h);
        for &r in &batch.logits_rows {
            last.extend_from_slice(&x[r * h..(r + 1) * h]);
        }
        let mut normed = vec![0f32; m * h];
        rms_norm(&last, &self.w.norm, eps, &mut normed);
        self.w.lm_head.forward(&normed, m)
    }

    /// Longest sequence the RoPE tables (and the model) support.
    pub fn max_context(&self) -> usize {
        self.rope.max_positions()
    }
}
