//! Causal attention over paged KV, written for the CPU.
//!
//! Each row of the batch attends to positions `0..=pos` of its own sequence,
//! read through that sequence's block table; no gather into a contiguous
//! buffer, no padding between sequences. Each (row, KV head) pair is one
//! task on the engine's team: at one stream that still spreads a layer's
//! heads over the cores, and the query heads sharing a KV head read its keys
//! and values while they are in cache. The dot products use eight independent
//! accumulators so LLVM vectorizes them without fast-math.

use std::cell::RefCell;

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

    let out_ptr = OutPtr(out.as_mut_ptr());
    let rows_n = out.len() / q_width;
    super::kernels::team::for_each(rows_n * num_kv_heads, |task| {
        // Captures the whole `OutPtr` (which is Sync), not its raw-pointer field.
        #[allow(clippy::redundant_locals)]
        let out_ptr = out_ptr;
        let (r, g) = (task / num_kv_heads, task % num_kv_heads);
        let (s, pos) = rows[r];
        let table = &batch.seqs[s].block_table;
        let ctx = pos + 1;
        let q_row = &q[r * q_width..(r + 1) * q_width];
        SCORES.with(|scores| {
            let mut scores = scores.borrow_mut();
            scores.resize(ctx, 0.0);
            for h in g * group..(g + 1) * group {
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
                // SAFETY: task (r, g) alone writes row r's heads of group g, inside the buffer.
                let oh = unsafe { std::slice::from_raw_parts_mut(out_ptr.0.add(r * q_width + h * head_dim), head_dim) };
                oh.fill(0.0);
                for (t, sc) in scores.iter().enumerate() {
                    let slot = table[t / block_size] as usize * block_size + t % block_size;
                    let at = slot * kv_dim + g * head_dim;
                    axpy(oh, sc * inv, &v_cache[at..at + head_dim]);
                }
            }
        });
    });
}

thread_local! {
    /// One row's attention scores, reused across tasks on each thread.
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Output pointer shared by tasks that write disjoint heads.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint (row, head) ranges, see `paged_attention`.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}
