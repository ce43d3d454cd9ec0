//! Block-int8 GEMM: `y[m, n] = x[m, k] · W[n, k]^T` with `W` stored as int8
//! blocks of 32 (a scale and an offset per block) and `x` quantized per row
//! into int8 blocks of 32 on the fly.
//!
//! Weight formats Q4_0, Q4_1 and Q8_0 are all exactly `d·q + m` with an
//! integer `q` per element, so they are repacked losslessly into one layout
//! (`q` as i8 in -127..=127, per-block f32 `d` and `m`); f32/f16 weights are
//! quantized to the same layout for `quantize = "q8_0"`.
//!
//! Per block the product is `d_w·d_a·Σ q_w·q_a + m_w·d_a·Σ q_a`. The integer
//! sum uses AVX512-VNNI `vpdpbusd` (unsigned × signed bytes), so activations
//! are stored offset by +128 and the kernel subtracts `128·Σ q_w` through a
//! per-row correction term. Rows and columns are tiled 4×4 so each weight block
//! loaded serves four rows; column panels run in parallel. Machines without
//! VNNI use a portable loop with the same arithmetic.

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;
use rayon::prelude::*;

/// Elements per block.
pub const QK: usize = 32;

/// Weights repacked for [`matmul`].
#[derive(Debug, Clone)]
pub struct Q8Weights {
    n: usize,
    k: usize,
    nb: usize,
    /// `[n][k]` signed values.
    qs: Vec<i8>,
    /// `[n][nb]` block scales.
    d: Vec<f32>,
    /// `[n][2·nb]`: `-128·d·Σq` per block, then `m` per block; dotted with the
    /// activation row's `[d_a…, d_a·Σq_a…]`.
    corr: Vec<f32>,
}

/// One activation matrix quantized per row and block.
pub struct Q8Acts {
    m: usize,
    /// `[m][k]` values + 128.
    au: Vec<u8>,
    /// `[m][nb]` scales.
    d: Vec<f32>,
    /// `[m][2·nb]`: scales, then scale × block sum.
    ra: Vec<f32>,
}

impl Q8Weights {
    pub fn rows(&self) -> usize {
        self.n
    }

    pub fn cols(&self) -> usize {
        self.k
    }

    /// Bytes held (values, scales, corrections).
    pub fn bytes(&self) -> usize {
        self.qs.len() + (self.d.len() + self.corr.len()) * 4
    }

    fn from_blocks(n: usize, k: usize, mut block: impl FnMut(usize, usize, &mut [i8; QK]) -> (f32, f32)) -> Self {
        let nb = k / QK;
        let mut qs = vec![0i8; n * k];
        let mut d = vec![0f32; n * nb];
        let mut corr = vec![0f32; n * 2 * nb];
        for row in 0..n {
            for b in 0..nb {
                let mut q = [0i8; QK];
                let (scale, min) = block(row, b, &mut q);
                qs[row * k + b * QK..row * k + (b + 1) * QK].copy_from_slice(&q);
                d[row * nb + b] = scale;
                let sum: i32 = q.iter().map(|&v| v as i32).sum();
                corr[row * 2 * nb + b] = -128.0 * scale * sum as f32;
                corr[row * 2 * nb + nb + b] = min;
            }
        }
        Self { n, k, nb, qs, d, corr }
    }

    /// Repacks a GGUF tensor of format Q4_0, Q4_1 or Q8_0 without loss; `None` for other formats.
    pub fn from_qtensor(t: &QTensor) -> Option<Self> {
        let (n, k) = t.shape().dims2().ok()?;
        if k % QK != 0 {
            return None;
        }
        let data = t.data().ok()?;
        let nb = k / QK;
        let f = |b: &[u8], at: usize| f16::from_le_bytes([b[at], b[at + 1]]).to_f32();
        match t.dtype() {
            GgmlDType::Q4_0 => {
                // { d: f16, qs: [u8; 16] }: value = (nibble - 8)·d; low nibbles first.
                Some(Self::from_blocks(n, k, |r, b, q| {
                    let blk = &data[(r * nb + b) * 18..(r * nb + b + 1) * 18];
                    for j in 0..16 {
                        q[j] = (blk[2 + j] & 0x0f) as i8 - 8;
                        q[j + 16] = (blk[2 + j] >> 4) as i8 - 8;
                    }
                    (f(blk, 0), 0.0)
                }))
            }
            GgmlDType::Q4_1 => {
                // { d: f16, m: f16, qs: [u8; 16] }: value = nibble·d + m = (nibble-8)·d + (m + 8d).
                Some(Self::from_blocks(n, k, |r, b, q| {
                    let blk = &data[(r * nb + b) * 20..(r * nb + b + 1) * 20];
                    let (d, m) = (f(blk, 0), f(blk, 2));
                    for j in 0..16 {
                        q[j] = (blk[4 + j] & 0x0f) as i8 - 8;
                        q[j + 16] = (blk[4 + j] >> 4) as i8 - 8;
                    }
                    (d, m + 8.0 * d)
                }))
            }
            GgmlDType::Q8_0 => {
                // { d: f16, qs: [i8; 32] }: value = q·d. -128 does not occur in practice;
                // clamp so the VNNI offset arithmetic stays exact.
                Some(Self::from_blocks(n, k, |r, b, q| {
                    let blk = &data[(r * nb + b) * 34..(r * nb + b + 1) * 34];
                    for j in 0..32 {
                        q[j] = (blk[2 + j] as i8).max(-127);
                    }
                    (f(blk, 0), 0.0)
                }))
            }
            _ => None,
        }
    }

    /// Quantizes dense `[n, k]` f32 weights (symmetric int8 per block of 32, like Q8_0).
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Option<Self> {
        if k % QK != 0 || w.len() != n * k {
            return None;
        }
        Some(Self::from_blocks(n, k, |r, b, q| {
            let src = &w[r * k + b * QK..r * k + (b + 1) * QK];
            let d = quantize_block(src, q);
            // Match Q8_0, which stores its scale as f16.
            (f16::from_f32(d).to_f32(), 0.0)
        }))
    }

    /// Dequantizes row `r` (for tests and embedding lookups).
    pub fn dequantize_row(&self, r: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.k);
        for b in 0..self.nb {
            let d = self.d[r * self.nb + b];
            let m = self.corr[r * 2 * self.nb + self.nb + b];
            for &q in &self.qs[r * self.k + b * QK..r * self.k + (b + 1) * QK] {
                out.push(q as f32 * d + m);
            }
        }
        out
    }
}

/// Symmetric int8 quantization of one block; returns the scale.
fn quantize_block(src: &[f32], q: &mut [i8; QK]) -> f32 {
    let amax = src.iter().fold(0f32, |a, &v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (o, &v) in q.iter_mut().zip(src) {
        *o = (v * id).round().clamp(-127.0, 127.0) as i8;
    }
    d
}

/// Quantizes `x: [m, k]` row by row.
pub fn quantize_acts(x: &[f32], m: usize, k: usize) -> Q8Acts {
    let nb = k / QK;
    let mut au = vec![0u8; m * k];
    let mut d = vec![0f32; m * nb];
    let mut ra = vec![0f32; m * 2 * nb];
    au.par_chunks_mut(k)
        .zip(d.par_chunks_mut(nb))
        .zip(ra.par_chunks_mut(2 * nb))
        .enumerate()
        .for_each(|(r, ((au, d), ra))| {
            for b in 0..nb {
                let mut q = [0i8; QK];
                let s = quantize_block(&x[r * k + b * QK..r * k + (b + 1) * QK], &mut q);
                let sum: i32 = q.iter().map(|&v| v as i32).sum();
                for (o, &v) in au[b * QK..(b + 1) * QK].iter_mut().zip(&q) {
                    *o = (v as i16 + 128) as u8;
                }
                d[b] = s;
                ra[b] = s;
                ra[nb + b] = s * sum as f32;
            }
        });
    Q8Acts { m, au, d, ra }
}

/// Columns per parallel task.
const PANEL: usize = 64;

/// `x: [m, k]` → `[m, n]`.
pub fn matmul(w: &Q8Weights, x: &[f32], m: usize) -> Vec<f32> {
    assert_eq!(x.len(), m * w.k, "activation shape");
    let a = quantize_acts(x, m, w.k);
    let mut out_t = vec![0f32; w.n * m];
    // Each task owns a panel of columns; it writes them transposed ([n][m]) so
    // tasks own disjoint slices, then the result is transposed back.
    out_t.par_chunks_mut(PANEL * m).enumerate().for_each(|(p, dst)| {
        let c0 = p * PANEL;
        let cols = dst.len() / m;
        panel(w, &a, c0, cols, dst);
    });
    if m == 1 {
        return out_t;
    }
    let mut out = vec![0f32; m * w.n];
    for (j, col) in out_t.chunks_exact(m).enumerate() {
        for (r, v) in col.iter().enumerate() {
            out[r * w.n + j] = *v;
        }
    }
    out
}

fn panel(w: &Q8Weights, a: &Q8Acts, c0: usize, cols: usize, dst: &mut [f32]) {
    let m = a.m;
    let mut r = 0;
    while r < m {
        let rt = (m - r).min(4);
        let mut c = 0;
        while c < cols {
            let ct = (cols - c).min(4);
            tile(w, a, r, rt, c0 + c, ct, &mut |rr, cc, v| dst[(c + cc) * m + r + rr] = v);
            c += ct;
        }
        r += rt;
    }
}

#[inline]
fn tile(w: &Q8Weights, a: &Q8Acts, r0: usize, rt: usize, c0: usize, ct: usize, put: &mut dyn FnMut(usize, usize, f32)) {
    let mut acc = [[0f32; 4]; 4];
    #[cfg(target_arch = "x86_64")]
    {
        if vnni_available() {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { x86::tile_vnni(w, a, r0, rt, c0, ct, &mut acc) };
        } else {
            tile_portable(w, a, r0, rt, c0, ct, &mut acc);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    tile_portable(w, a, r0, rt, c0, ct, &mut acc);

    let nb = w.nb;
    for rr in 0..rt {
        let ra = &a.ra[(r0 + rr) * 2 * nb..(r0 + rr + 1) * 2 * nb];
        for cc in 0..ct {
            let corr = &w.corr[(c0 + cc) * 2 * nb..(c0 + cc + 1) * 2 * nb];
            let extra = super::dot(ra, corr);
            put(rr, cc, acc[rr][cc] + extra);
        }
    }
}

fn tile_portable(w: &Q8Weights, a: &Q8Acts, r0: usize, rt: usize, c0: usize, ct: usize, acc: &mut [[f32; 4]; 4]) {
    let (k, nb) = (w.k, w.nb);
    for rr in 0..rt {
        let r = r0 + rr;
        for cc in 0..ct {
            let c = c0 + cc;
            let mut s = 0f32;
            for b in 0..nb {
                let au = &a.au[r * k + b * QK..r * k + (b + 1) * QK];
                let wq = &w.qs[c * k + b * QK..c * k + (b + 1) * QK];
                let dot: i32 = au.iter().zip(wq).map(|(&x, &y)| x as i32 * y as i32).sum();
                s += dot as f32 * a.d[r * nb + b] * w.d[c * nb + b];
            }
            acc[rr][cc] = s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn vnni_available() -> bool {
    use std::sync::OnceLock;
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| {
        std::is_x86_feature_detected!("avx512vnni")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::env::var_os("WEFT_NO_VNNI").is_none()
    })
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Q8Acts, Q8Weights, QK};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let hi = _mm256_extractf128_ps(v, 1);
        let lo = _mm256_castps256_ps128(v);
        let s = _mm_add_ps(hi, lo);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// Up to 4×4 dot products over all blocks; each weight block is loaded once per tile.
    #[target_feature(enable = "avx512vnni,avx512vl,avx2,fma")]
    pub(super) unsafe fn tile_vnni(
        w: &Q8Weights,
        a: &Q8Acts,
        r0: usize,
        rt: usize,
        c0: usize,
        ct: usize,
        out: &mut [[f32; 4]; 4],
    ) {
        let (k, nb) = (w.k, w.nb);
        let mut acc = [[_mm256_setzero_ps(); 4]; 4];
        // Tiles at the edges reuse the last valid row/column; results outside rt/ct are ignored.
        let rows: [usize; 4] = std::array::from_fn(|i| r0 + i.min(rt - 1));
        let cols: [usize; 4] = std::array::from_fn(|i| c0 + i.min(ct - 1));
        let ap: [*const u8; 4] = std::array::from_fn(|i| a.au[rows[i] * k..].as_ptr());
        let wp: [*const i8; 4] = std::array::from_fn(|i| w.qs[cols[i] * k..].as_ptr());
        let ad: [&[f32]; 4] = std::array::from_fn(|i| &a.d[rows[i] * nb..(rows[i] + 1) * nb]);
        let wd: [&[f32]; 4] = std::array::from_fn(|i| &w.d[cols[i] * nb..(cols[i] + 1) * nb]);
        let zero = _mm256_setzero_si256();
        for b in 0..nb {
            let off = b * QK;
            // SAFETY: every row/column pointer addresses k = nb·QK bytes.
            let wv: [__m256i; 4] =
                std::array::from_fn(|c| unsafe { _mm256_loadu_si256(wp[c].add(off) as *const __m256i) });
            for r in 0..4 {
                let av = unsafe { _mm256_loadu_si256(ap[r].add(off) as *const __m256i) };
                let da = ad[r][b];
                for c in 0..4 {
                    let p = _mm256_dpbusd_epi32(zero, av, wv[c]);
                    let s = _mm256_set1_ps(da * wd[c][b]);
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s, acc[r][c]);
                }
            }
        }
        for r in 0..rt {
            for c in 0..ct {
                out[r][c] = hsum(acc[r][c]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn reference(w: &[f32], x: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for r in 0..m {
            for c in 0..n {
                y[r * n + c] = (0..k).map(|i| x[r * k + i] * w[c * k + i]).sum();
            }
        }
        y
    }

    fn check(dtype: GgmlDType, m: usize, n: usize, k: usize) {
        let wt = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&wt, dtype).unwrap();
        let deq = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let p = Q8Weights::from_qtensor(&q).expect("supported");
        // Repacking is lossless.
        for r in [0, n - 1] {
            let row = p.dequantize_row(r);
            for (a, b) in row.iter().zip(&deq[r * k..(r + 1) * k]) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{dtype:?} row {r}: {a} vs {b}");
            }
        }
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
        let got = matmul(&p, &x, m);
        let want = reference(&deq, &x, m, n, k);
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // Activation quantization to int8 costs well under 1% of the output range.
            assert!((g - w).abs() < 0.01 * scale, "{dtype:?} m={m} [{i}] {g} vs {w}");
        }
    }

    #[test]
    fn matches_float_reference_on_ragged_shapes() {
        for dt in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
            for (m, n) in [(1, 70), (3, 67), (9, 130), (33, 5)] {
                check(dt, m, n, 96);
            }
        }
    }

    #[test]
    fn quantize_dense_close_to_source() {
        let (n, k) = (5, 64);
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let q = Q8Weights::quantize(&w, n, k).unwrap();
        for r in 0..n {
            for (a, b) in q.dequantize_row(r).iter().zip(&w[r * k..(r + 1) * k]) {
                assert!((a - b).abs() < 0.01, "{a} vs {b}");
            }
        }
    }
}
