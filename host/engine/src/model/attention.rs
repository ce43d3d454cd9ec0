//! Causal attention over paged KV, written for the CPU.
//!
//! Each row of the batch attends to positions `0..=pos` of its own sequence,
//! read through that sequence's block table; no gather into a contiguous
//! buffer, no padding between sequences. Each (row, KV head) pair is one
//! task on the engine's team: at one stream that still spreads a layer's
//! heads over the cores, and the query heads sharing a KV head read its keys
//! and values while they are in cache. Keys are stored transposed within each
//! block (see `kv::store`), so a block's scores are computed 16 tokens at a
//! time as vector multiply-adds, with no reduction across lanes per score.

use std::cell::RefCell;

use half::f16;

use super::batch::ForwardBatch;
use super::kernels::exp;
use super::kernels::q8gemm::Kernel;
use crate::kv::store::KvLayer;

/// A KV-cache element, widened to f32 a head row at a time (exactly: f16 to
/// f32 loses nothing, so every path computes the same numbers).
pub trait KvElem: Copy + Send + Sync {
    fn widen(src: &[Self], dst: &mut [f32]);
    /// Sixteen values by value (kept in registers, not stored and reloaded).
    fn widen16(src: &[Self]) -> [f32; 16];
}

impl KvElem for f32 {
    #[inline(always)]
    fn widen(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    #[inline(always)]
    fn widen16(src: &[f32]) -> [f32; 16] {
        src[..16].try_into().expect("16 values")
    }
}

impl KvElem for f16 {
    #[inline(always)]
    fn widen16(src: &[f16]) -> [f32; 16] {
        let src = &src[..16];
        #[cfg(all(target_arch = "x86_64", target_feature = "f16c"))]
        {
            use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm256_cvtph_ps};
            // SAFETY: 16 values checked above; F16C is enabled for the whole build;
            // two 8-lane f32 vectors are 16 f32s.
            unsafe {
                let lo = _mm256_cvtph_ps(_mm_loadu_si128(src.as_ptr() as *const __m128i));
                let hi = _mm256_cvtph_ps(_mm_loadu_si128(src.as_ptr().add(8) as *const __m128i));
                std::mem::transmute::<[std::arch::x86_64::__m256; 2], [f32; 16]>([lo, hi])
            }
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "f16c")))]
        std::array::from_fn(|i| src[i].to_f32())
    }
    #[inline(always)]
    fn widen(src: &[f16], dst: &mut [f32]) {
        #[cfg(all(target_arch = "x86_64", target_feature = "f16c"))]
        {
            use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm256_cvtph_ps, _mm256_storeu_ps};
            let n = src.len().min(dst.len()) / 8 * 8;
            for i in (0..n).step_by(8) {
                // SAFETY: i + 8 <= n is inside both slices; F16C is enabled for the whole build.
                unsafe {
                    let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
                    _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
                }
            }
            for (d, s) in dst[n..].iter_mut().zip(&src[n..]) {
                *d = s.to_f32();
            }
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "f16c")))]
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.to_f32();
        }
    }
}

/// Shapes the kernel needs.
#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub block_size: usize,
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

/// `q`: `[rows, num_heads*head_dim]`; `kv`: one layer of the KV store;
/// writes `[rows, num_heads*head_dim]` into `out`.
pub fn paged_attention(
    q: &[f32],
    kv: KvLayer<'_>,
    batch: &ForwardBatch,
    rows: &[(usize, usize)],
    shape: AttnShape,
    out: &mut [f32],
) {
    match kv {
        KvLayer::F16(k, v) => run(q, k, v, batch, rows, shape, out),
        KvLayer::F32(k, v) => run(q, k, v, batch, rows, shape, out),
    }
}

fn run<T: KvElem>(
    q: &[f32],
    k_cache: &[T],
    v_cache: &[T],
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
struct Group<'a, T> {
    /// `group × head_dim` query values.
    q: &'a [f32],
    k_cache: &'a [T],
    v_cache: &'a [T],
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
unsafe fn attend_avx512<T: KvElem>(job: &Group<'_, T>, scores: &mut Vec<f32>, out: &mut [f32]) {
    attend(job, scores, out)
}

/// Every head of the group in one pass over the keys and one over the
/// values: each key and value row is read once for the whole group. Common
/// shapes run with the shape as constants, so the group's outputs stay in
/// registers across the whole pass over the values.
#[inline(always)]
fn attend<T: KvElem>(job: &Group<'_, T>, scores: &mut Vec<f32>, out: &mut [f32]) {
    match (job.head_dim, job.q.len() / job.head_dim) {
        (64, 1) => attend_fixed::<T, 64, 1>(job, scores, out),
        (64, 2) => attend_fixed::<T, 64, 2>(job, scores, out),
        (64, 3) => attend_fixed::<T, 64, 3>(job, scores, out),
        (64, 4) => attend_fixed::<T, 64, 4>(job, scores, out),
        (128, 1) => attend_fixed::<T, 128, 1>(job, scores, out),
        (128, 2) => attend_fixed::<T, 128, 2>(job, scores, out),
        _ => attend_any(job, scores, out),
    }
}

/// Lanes of a score chunk: tokens of one block scored together.
const L: usize = 16;

/// Scores of the group's `G` query heads against keys `t0..t0 + m` of one
/// block (`base`: that block's keys for this KV head, transposed), `HD`
/// multiply-adds over 16 token lanes; lanes past `m` are scratch.
#[inline(always)]
fn chunk_scores<T: KvElem, const HD: usize, const G: usize>(
    qs: &[[f32; HD]; G],
    keys: &[T],
    base: usize,
    bs: usize,
    m: usize,
) -> [[f32; L]; G] {
    // Four partial sums over the dimensions (d mod 4), so the adds are not
    // one long dependency chain; combined as (p0 + p1) + (p2 + p3).
    let mut part = [[[0f32; L]; G]; 4];
    let mut add = |d: usize, lane: &[f32; L]| {
        let p = &mut part[d % 4];
        for j in 0..G {
            let qd = qs[j][d];
            for i in 0..L {
                p[j][i] += qd * lane[i];
            }
        }
    };
    if m == L {
        // The common case: the lane goes from the cache to registers.
        for d in 0..HD {
            let lane = T::widen16(&keys[base + d * bs..base + d * bs + L]);
            add(d, &lane);
        }
    } else {
        let mut lane = [0f32; L];
        for d in 0..HD {
            T::widen(&keys[base + d * bs..base + d * bs + m], &mut lane[..m]);
            add(d, &lane);
        }
    }
    std::array::from_fn(|j| std::array::from_fn(|i| (part[0][j][i] + part[1][j][i]) + (part[2][j][i] + part[3][j][i])))
}

/// [`attend_any`] with the head size `HD` and group size `G` as constants.
#[inline(always)]
fn attend_fixed<T: KvElem, const HD: usize, const G: usize>(
    job: &Group<'_, T>,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let Group { q, k_cache, v_cache, table, ctx, off, kv_dim, block_size: bs, scale, .. } = *job;
    scores.clear();
    scores.resize(G * ctx, 0.0);
    let slot = |t: usize| (table[t / bs] as usize * bs + t % bs) * kv_dim + off;
    let qs: [[f32; HD]; G] = std::array::from_fn(|j| q[j * HD..(j + 1) * HD].try_into().expect("head"));
    for (b, &block) in table[..ctx.div_ceil(bs)].iter().enumerate() {
        let (t0, base) = (b * bs, (block as usize * kv_dim + off) * bs);
        let n = bs.min(ctx - t0);
        for c0 in (0..n).step_by(L) {
            let m = L.min(n - c0);
            let sc = chunk_scores::<T, HD, G>(&qs, k_cache, base + c0, bs, m);
            for j in 0..G {
                for i in 0..m {
                    scores[j * ctx + t0 + c0 + i] = sc[j][i] * scale;
                }
            }
        }
    }
    softmax_rows(scores, ctx);
    let mut acc = [[0f32; HD]; G];
    let mut row = [0f32; HD];
    for t in 0..ctx {
        T::widen(&v_cache[slot(t)..slot(t) + HD], &mut row);
        for j in 0..G {
            let w = scores[j * ctx + t];
            for (a, x) in acc[j].iter_mut().zip(&row) {
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
fn attend_any<T: KvElem>(job: &Group<'_, T>, scores: &mut Vec<f32>, out: &mut [f32]) {
    let Group { q, k_cache, v_cache, table, ctx, off, kv_dim, head_dim, block_size, scale } = *job;
    let group = q.len() / head_dim;
    scores.clear();
    scores.resize(group * ctx, 0.0);
    let slot = |t: usize| (table[t / block_size] as usize * block_size + t % block_size) * kv_dim + off;
    // Same order of operations as `chunk_scores`: one dimension at a time over a block's tokens.
    let mut row = vec![0f32; head_dim.max(L)];
    let mut part = vec![0f32; 4 * group * L];
    for (b, &block) in table[..ctx.div_ceil(block_size)].iter().enumerate() {
        let (t0, base) = (b * block_size, (block as usize * kv_dim + off) * block_size);
        let n = block_size.min(ctx - t0);
        for c0 in (0..n).step_by(L) {
            let m = L.min(n - c0);
            part.fill(0.0);
            for d in 0..head_dim {
                let at = base + d * block_size + c0;
                T::widen(&k_cache[at..at + m], &mut row[..m]);
                let p = &mut part[(d % 4) * group * L..(d % 4 + 1) * group * L];
                for j in 0..group {
                    let qd = q[j * head_dim + d];
                    for i in 0..m {
                        p[j * L + i] += qd * row[i];
                    }
                }
            }
            let gl = group * L;
            for j in 0..group {
                for i in 0..m {
                    let x = j * L + i;
                    let sc = (part[x] + part[gl + x]) + (part[2 * gl + x] + part[3 * gl + x]);
                    scores[j * ctx + t0 + c0 + i] = sc * scale;
                }
            }
        }
    }
    softmax_rows(scores, ctx);
    out.fill(0.0);
    for t in 0..ctx {
        T::widen(&v_cache[slot(t)..slot(t) + head_dim], &mut row[..head_dim]);
        for j in 0..group {
            axpy(&mut out[j * head_dim..(j + 1) * head_dim], scores[j * ctx + t], &row[..head_dim]);
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
                // Fixed-shape and generic paths over a cache of element type T.
                fn both<T: KvElem>(q: &[f32], k: &[T], v: &[T], table: &[u32], ctx: usize) -> (Vec<f32>, Vec<f32>) {
                    let (hd, bs) = (64, 4);
                    let job = Group {
                        q,
                        k_cache: k,
                        v_cache: v,
                        table,
                        ctx,
                        off: hd,
                        kv_dim: 2 * hd,
                        head_dim: hd,
                        block_size: bs,
                        scale: 0.125,
                    };
                    let (mut a, mut b) = (vec![0f32; q.len()], vec![0f32; q.len()]);
                    attend(&job, &mut Vec::new(), &mut a);
                    attend_any(&job, &mut Vec::new(), &mut b);
                    (a, b)
                }
                let (a, b) = both(&q, &k, &v, &table, ctx);
                // The f16 cache: the same code on the rounded values, within f16's precision.
                let (k16, v16): (Vec<f16>, Vec<f16>) =
                    (k.iter().map(|&x| f16::from_f32(x)).collect(), v.iter().map(|&x| f16::from_f32(x)).collect());
                let (a16, b16) = both(&q, &k16, &v16, &table, ctx);
                let slot = |t: usize| (table[t / bs] as usize * bs + t % bs) * kv_dim + hd;
                // Keys are transposed within a block: [block][kv_head][dim][offset].
                let key = |t: usize, d: usize| k[(table[t / bs] as usize * kv_dim + hd + d) * bs + t % bs];
                for j in 0..group {
                    let s: Vec<f64> = (0..ctx)
                        .map(|t| (0..hd).map(|d| q[j * hd + d] as f64 * key(t, d) as f64).sum::<f64>() * 0.125)
                        .collect();
                    let m = s.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                    for d in 0..hd {
                        let want: f64 = (0..ctx).map(|t| (s[t] - m).exp() / z * v[slot(t) + d] as f64).sum();
                        let (x, y) = (a[j * hd + d], b[j * hd + d]);
                        assert!((x as f64 - want).abs() < 1e-5, "group {group} ctx {ctx}: {x} vs {want}");
                        assert!((x - y).abs() < 1e-6, "fixed {x} vs generic {y}");
                        let (x16, y16) = (a16[j * hd + d], b16[j * hd + d]);
                        assert!(
                            (x16 as f64 - want).abs() < 2e-3,
                            "f16 cache, group {group} ctx {ctx}: {x16} vs {want}"
                        );
                        assert!((x16 - y16).abs() < 1e-6, "f16: fixed {x16} vs generic {y16}");
                    }
                }
            }
        }
    }
}
