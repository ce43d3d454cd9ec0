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
use super::kernels::q8gemm::Kernel;

/// Shapes the kernel needs.
#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub block_size: usize,
}

/// `e^x` for the softmax (`x <= 0`), in plain arithmetic the compiler
/// vectorizes, where `f32::exp` is a library call per score (at 8k context
/// that was most of a decode step). Relative error under 1e-6 for `x > -20`
/// (the rounding of `x·log2 e` dominates), ample for attention weights.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let t = x.max(-87.0) * std::f32::consts::LOG2_E;
    let n = t.round_ties_even();
    let f = t - n;
    // 2^f on [-0.5, 0.5]: Taylor series of e^(f·ln 2) to degree 6.
    let p = 1.0
        + f * (std::f32::consts::LN_2
            + f * (0.240_226_5 + f * (0.055_504_11 + f * (0.009_618_129 + f * (0.001_333_355 + f * 0.000_154_035)))));
    f32::from_bits(((n as i32 + 127) as u32) << 23) * p
}

/// Sum with eight independent accumulators (vectorized without fast-math).
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let c = x.chunks_exact(8);
    let rest: f32 = c.remainder().iter().sum();
    for v in c {
        for i in 0..8 {
            acc[i] += v[i];
        }
    }
    acc.iter().sum::<f32>() + rest
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
    // The AVX-512 clone runs exactly when the GEMM's AVX-512 path does (so `WEFT_KERNEL` governs both).
    let kernel = super::kernels::q8gemm::kernel();
    super::kernels::team::for_each(rows_n * num_kv_heads, |task| {
        // Captures the whole `OutPtr` (which is Sync), not its raw-pointer field.
        #[allow(clippy::redundant_locals)]
        let out_ptr = out_ptr;
        let (r, g) = (task / num_kv_heads, task % num_kv_heads);
        let (s, pos) = rows[r];
        let job = Group {
            q: &q[r * q_width + g * group * head_dim..r * q_width + (g + 1) * group * head_dim],
            k_cache,
            v_cache,
            table: &batch.seqs[s].block_table,
            ctx: pos + 1,
            off: g * head_dim,
            kv_dim,
            head_dim,
            block_size,
            scale,
        };
        // SAFETY: task (r, g) alone writes row r's heads of group g, inside the buffer.
        let out = unsafe {
            std::slice::from_raw_parts_mut(out_ptr.0.add(r * q_width + g * group * head_dim), group * head_dim)
        };
        SCORES.with(|scores| {
            let mut scores = scores.borrow_mut();
            match kernel {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: that path is chosen only on CPUs with AVX-512F.
                Kernel::Avx512Vnni => unsafe { attend_avx512(&job, &mut scores, out) },
                _ => attend(&job, &mut scores, out),
            }
        });
    });
}

/// One sequence row's query heads that share KV head `g`.
struct Group<'a> {
    /// `group × head_dim` query values.
    q: &'a [f32],
    k_cache: &'a [f32],
    v_cache: &'a [f32],
    table: &'a [u32],
    ctx: usize,
    /// Offset of KV head `g` inside a slot.
    off: usize,
    kv_dim: usize,
    head_dim: usize,
    block_size: usize,
    scale: f32,
}

/// The same code compiled for AVX-512 (the loops are written so their
/// rounding does not depend on the vector width: results are identical).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn attend_avx512(job: &Group<'_>, scores: &mut Vec<f32>, out: &mut [f32]) {
    attend(job, scores, out)
}

/// Every head of the group in one pass over the keys and one over the
/// values: each key and value row is read once for the whole group. Common
/// shapes run with the shape as constants, so the group's outputs stay in
/// registers across the whole pass over the values.
#[inline(always)]
fn attend(job: &Group<'_>, scores: &mut Vec<f32>, out: &mut [f32]) {
    match (job.head_dim, job.q.len() / job.head_dim) {
        (64, 1) => attend_fixed::<64, 1>(job, scores, out),
        (64, 2) => attend_fixed::<64, 2>(job, scores, out),
        (64, 3) => attend_fixed::<64, 3>(job, scores, out),
        (64, 4) => attend_fixed::<64, 4>(job, scores, out),
        (128, 1) => attend_fixed::<128, 1>(job, scores, out),
        (128, 2) => attend_fixed::<128, 2>(job, scores, out),
        _ => attend_any(job, scores, out),
    }
}

/// [`attend_any`] with the head size `HD` and group size `G` as constants.
#[inline(always)]
fn attend_fixed<const HD: usize, const G: usize>(job: &Group<'_>, scores: &mut Vec<f32>, out: &mut [f32]) {
    let Group { q, k_cache, v_cache, table, ctx, off, kv_dim, block_size, scale, .. } = *job;
    scores.clear();
    scores.resize(G * ctx, 0.0);
    let slot = |t: usize| (table[t / block_size] as usize * block_size + t % block_size) * kv_dim + off;
    let qs: [[f32; HD]; G] = std::array::from_fn(|j| q[j * HD..(j + 1) * HD].try_into().expect("head"));
    for t in 0..ctx {
        let k: &[f32; HD] = k_cache[slot(t)..slot(t) + HD].try_into().expect("head");
        for j in 0..G {
            scores[j * ctx + t] = dot(&qs[j], k) * scale;
        }
    }
    softmax_rows(scores, ctx);
    let mut acc = [[0f32; HD]; G];
    for t in 0..ctx {
        let v: &[f32; HD] = v_cache[slot(t)..slot(t) + HD].try_into().expect("head");
        for j in 0..G {
            let w = scores[j * ctx + t];
            for (a, x) in acc[j].iter_mut().zip(v) {
                *a += w * x;
            }
        }
    }
    for j in 0..G {
        out[j * HD..(j + 1) * HD].copy_from_slice(&acc[j]);
    }
}

/// Softmax of each `ctx`-long row of `scores`, in place.
#[inline(always)]
fn softmax_rows(scores: &mut [f32], ctx: usize) {
    for row in scores.chunks_exact_mut(ctx) {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        row.iter_mut().for_each(|sc| *sc = exp(*sc - max));
        let inv = 1.0 / sum(row);
        row.iter_mut().for_each(|sc| *sc *= inv);
    }
}

/// Any head size and group size.
#[inline(always)]
fn attend_any(job: &Group<'_>, scores: &mut Vec<f32>, out: &mut [f32]) {
    let Group { q, k_cache, v_cache, table, ctx, off, kv_dim, head_dim, block_size, scale } = *job;
    let group = q.len() / head_dim;
    scores.clear();
    scores.resize(group * ctx, 0.0);
    let slot = |t: usize| (table[t / block_size] as usize * block_size + t % block_size) * kv_dim + off;
    for t in 0..ctx {
        let k = &k_cache[slot(t)..slot(t) + head_dim];
        for j in 0..group {
            scores[j * ctx + t] = dot(&q[j * head_dim..(j + 1) * head_dim], k) * scale;
        }
    }
    softmax_rows(scores, ctx);
    out.fill(0.0);
    for t in 0..ctx {
        let v = &v_cache[slot(t)..slot(t) + head_dim];
        for j in 0..group {
            axpy(&mut out[j * head_dim..(j + 1) * head_dim], scores[j * ctx + t], v);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_close_to_the_library_one() {
        for i in 0..400 {
            let x = -(i as f32) * 0.05;
            let (got, want) = (exp(x), x.exp());
            assert!((got - want).abs() <= 1e-6 * want, "{x}: {got} vs {want}");
        }
        assert!(exp(-1000.0) < 1e-37, "very negative scores vanish");
    }

    /// A shuffled block table over a small cache; the fixed-shape path, the
    /// generic one and a plain softmax reference agree.
    #[test]
    fn fixed_and_generic_paths_match_a_reference() {
        let (hd, kv_heads, bs) = (64, 2, 4);
        let kv_dim = kv_heads * hd;
        let table: Vec<u32> = vec![5, 1, 7, 0, 3, 6];
        let slots = 8 * bs;
        let k: Vec<f32> = (0..slots * kv_dim).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
        let v: Vec<f32> = (0..slots * kv_dim).map(|i| ((i * 53 % 97) as f32 / 48.0) - 1.0).collect();
        for group in [1, 3, 5] {
            let q: Vec<f32> = (0..group * hd).map(|i| ((i * 29 % 89) as f32 / 44.0) - 1.0).collect();
            for ctx in [1, 7, 22] {
                let job = Group {
                    q: &q,
                    k_cache: &k,
                    v_cache: &v,
                    table: &table,
                    ctx,
                    off: hd,
                    kv_dim,
                    head_dim: hd,
                    block_size: bs,
                    scale: 0.125,
                };
                let (mut a, mut b) = (vec![0f32; group * hd], vec![0f32; group * hd]);
                attend(&job, &mut Vec::new(), &mut a);
                attend_any(&job, &mut Vec::new(), &mut b);
                let slot = |t: usize| (table[t / bs] as usize * bs + t % bs) * kv_dim + hd;
                for j in 0..group {
                    let s: Vec<f64> = (0..ctx)
                        .map(|t| (0..hd).map(|d| q[j * hd + d] as f64 * k[slot(t) + d] as f64).sum::<f64>() * 0.125)
                        .collect();
                    let m = s.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                    for d in 0..hd {
                        let want: f64 = (0..ctx).map(|t| (s[t] - m).exp() / z * v[slot(t) + d] as f64).sum();
                        let (x, y) = (a[j * hd + d], b[j * hd + d]);
                        assert!((x as f64 - want).abs() < 1e-5, "group {group} ctx {ctx}: {x} vs {want}");
                        assert!((x - y).abs() < 1e-6, "fixed {x} vs generic {y}");
                    }
                }
            }
        }
    }
}
