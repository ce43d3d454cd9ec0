//! Causal attention over paged KV, written for the CPU.
//!
//! Each row of the batch attends to positions `0..=pos` of its own sequence,
//! read through that sequence's block table; no gather into a contiguous
//! buffer, no padding between sequences. Rows run in parallel (rayon). The dot
//! products use eight independent accumulators so LLVM vectorizes them without
//! fast-math.

use rayon::prelude::*;

use super::batch::ForwardBatch;
use super::kernels::dot;

/// Shapes the kernel needs.
#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub block_size: usize,
}

#[inline]
fn axpy(out: &mut [f32], w: f32, x: &[f32]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o += w * v;
    }
}

/// `q`: `[rows, num_heads*head_dim]`; `k_cache`/`v_cache`: one layer of the KV
/// store; writes `[rows, num_heads*head_dim]` into `out`.
pub fn paged_attention(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    batch: &ForwardBatch,
    rows: &[(usize, usize)],
    shape: AttnShape,
    out: &mut [f32],
) {
    let AttnShape { num_heads, num_kv_heads, head_dim, block_size } = shape;
    let q_width = num_heads * head_dim;
    let kv_dim = num_kv_heads * head_dim;
    let group = num_heads / num_kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();

    out.par_chunks_mut(q_width).enumerate().for_each_init(Vec::new, |scores, (r, out_row)| {
        let (s, pos) = rows[r];
        let table = &batch.seqs[s].block_table;
        let ctx = pos + 1;
        let q_row = &q[r * q_width..(r + 1) * q_width];
        out_row.fill(0.0);
        scores.resize(ctx, 0.0);
        for h in 0..num_heads {
            let g = h / group;
            let qh = &q_row[h * head_dim..(h + 1) * head_dim];
            let mut max = f32::NEG_INFINITY;
            for (t, sc) in scores.iter_mut().enumerate() {
                let slot = table[t / block_size] as usize * block_size + t % block_size;
                let at = slot * kv_dim + g * head_dim;
                let v = dot(qh, &k_cache[at..at + head_dim]) * scale;
                *sc = v;
                max = max.max(v);
            }
            let mut sum = 0.0;
            for sc in scores.iter_mut() {
                *sc = (*sc - max).exp();
                sum += *sc;
            }
            let inv = 1.0 / sum;
            let oh = &mut out_row[h * head_dim..(h + 1) * head_dim];
            for (t, sc) in scores.iter().enumerate() {
                let slot = table[t / block_size] as usize * block_size + t % block_size;
                let at = slot * kv_dim + g * head_dim;
                axpy(oh, sc * inv, &v_cache[at..at + head_dim]);
            }
        }
    });
}
