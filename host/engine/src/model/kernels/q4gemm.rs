//! 4-bit GEMM: Q4_0, Q4_1 and Q4_K weights kept as packed nibbles, unpacked
//! in registers inside the tile.
//!
//! Why: decode at one stream reads every weight once per token, so its speed
//! is bytes over DRAM bandwidth. Repacked as int8 ([`super::q8gemm`]) a Q4
//! model takes 2.2x its file; here it takes exactly the file's bytes (Q4_1:
//! 16 nibble bytes plus an f16 scale and an f16 offset per 32 values; Q4_0
//! drops the offset).
//!
//! Every Q4 value is `d·q + m` with `q` an unsigned nibble (Q4_0: `m = -8d`),
//! so per block the product with an activation block `(d_a, a)` is
//! `d·d_a·Σ q·a + m·d_a·Σ a`. The nibbles are the unsigned operand of
//! `vpdpbusd` (AVX512-VNNI) or `vpmaddubsw` (AVX2: 15·128·2 fits an i16, so no
//! saturation), the activations (quantized without the int8 GEMM's +128
//! offset) the signed one, broadcast straight from memory into the
//! multiply-add; `d_a·Σ a` is already kept per activation block.
//!
//! Layout, per tile of 16 columns and block of 32 values: 4 chunks of 64
//! bytes; chunk `h` byte `4j + e` holds column `j`'s value `8h + e` in its low
//! nibble and `8h + 4 + e` in its high nibble. One 64-byte load thus feeds two
//! 16-column dot products (mask, shift-and-mask), and a block's 16 results
//! land in one register, scaled with one vector multiply. Constants are
//! `[tile][block][16]` f16.
//!
//! All three paths (AVX512-VNNI, AVX2+F16C, portable) compute the same integer
//! sums and round the float work in the same order: `acc = fma(p·d, d_a, acc)`
//! then `acc = fma(s_a, m, acc)`. Their results are bit-identical (tested).

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

use super::q8gemm::{Acc, Kernel, MR, NT, Q8Acts, QK, Tiles, kernel, run_tiles};

/// Bytes per tile and block: 16 columns × 32 nibbles.
const CHUNK: usize = NT * QK / 2;

/// Values per Q4_K super-block, and its bytes: { d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128] }.
const QK_K: usize = 256;
const Q4K_BYTES: usize = 144;

/// Sub-block `j` (of 8, 32 values each) of a Q4_K super-block as a Q4_1
/// block. Q4_K's value is `d·sc_j·q - dmin·m_j` with 6-bit `sc_j`, `m_j`
/// (llama.cpp's `get_scale_min_k4` packing), so the block's scale `d·sc_j`
/// and offset `-dmin·m_j` are each one f16: the nibbles are kept as they
/// are, and the constants round once (relative error at most 2^-11 of the
/// value, under 1% of the block's 4-bit step). 5 bits a value instead of 4.5.
fn q4k_block(sb: &[u8], j: usize) -> ([u8; QK], f16, f16) {
    let d = f16::from_le_bytes([sb[0], sb[1]]).to_f32();
    let dmin = f16::from_le_bytes([sb[2], sb[3]]).to_f32();
    let sc = &sb[4..16];
    let (scale, min) = if j < 4 {
        (sc[j] & 63, sc[j + 4] & 63)
    } else {
        ((sc[j + 4] & 0x0f) | ((sc[j - 4] >> 6) << 4), (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4))
    };
    // Sub-blocks 2i and 2i+1 share 32 bytes: low nibbles, then high.
    let bytes = &sb[16 + 32 * (j / 2)..][..32];
    let q = std::array::from_fn(|e| if j.is_multiple_of(2) { bytes[e] & 0x0f } else { bytes[e] >> 4 });
    (q, f16::from_f32(d * scale as f32), f16::from_f32(-dmin * min as f32))
}

/// Q4 weights packed for [`matmul`].
#[derive(Debug, Clone)]
pub struct Q4Weights {
    n: usize,
    k: usize,
    nb: usize,
    /// Column tiles × blocks × 4 chunks × 64 bytes of nibble pairs.
    qs: Vec<u8>,
    /// `[tile][block][16]`: block scale.
    d: Vec<f16>,
    /// `[tile][block][16]`: block offset (empty for Q4_0, whose offset is `-8d`).
    m: Vec<f16>,
}

impl Q4Weights {
    pub fn rows(&self) -> usize {
        self.n
    }

    pub fn cols(&self) -> usize {
        self.k
    }

    /// Bytes held: nibbles and per-block constants.
    pub fn bytes(&self) -> usize {
        self.qs.len() + (self.d.len() + self.m.len()) * 2
    }

    fn has_min(&self) -> bool {
        !self.m.is_empty()
    }

    /// Packs a GGUF Q4_0 or Q4_1 tensor without loss, or a Q4_K tensor as
    /// Q4_1 blocks (see [`q4k_block`]); `None` for other formats.
    pub fn from_qtensor(t: &QTensor) -> Option<Self> {
        let (n, k) = t.shape().dims2().ok()?;
        if k % QK != 0 {
            return None;
        }
        let bytes = t.data().ok()?;
        let data: &[u8] = &bytes;
        let nb = k / QK;
        let h16 = |b: &[u8], at: usize| f16::from_le_bytes([b[at], b[at + 1]]);
        // Block layouts: Q4_0 { d: f16, qs: [u8; 16] }, Q4_1 { d: f16, m: f16, qs: [u8; 16] };
        // value j < 16 is the low nibble of qs[j], value j + 16 its high nibble.
        let q4 = |size: usize, has_min: bool| {
            move |col: usize, b: usize| -> ([u8; QK], f16, f16) {
                let blk = &data[(col * nb + b) * size..][..size];
                let nib = &blk[size - 16..];
                let q = std::array::from_fn(|i| if i < 16 { nib[i] & 0x0f } else { nib[i - 16] >> 4 });
                (q, h16(blk, 0), if has_min { h16(blk, 2) } else { f16::ZERO })
            }
        };
        match t.dtype() {
            GgmlDType::Q4_0 => Some(Self::from_blocks(n, k, false, q4(18, false))),
            GgmlDType::Q4_1 => Some(Self::from_blocks(n, k, true, q4(20, true))),
            GgmlDType::Q4K if k.is_multiple_of(QK_K) => {
                let per_row = k / QK_K;
                Some(Self::from_blocks(n, k, true, |col, b| {
                    q4k_block(&data[(col * per_row + b / 8) * Q4K_BYTES..][..Q4K_BYTES], b % 8)
                }))
            }
            _ => None,
        }
    }

    /// Packs blocks given as (32 nibbles, scale, offset): value = nibble·scale + offset.
    fn from_blocks(n: usize, k: usize, has_min: bool, block: impl Fn(usize, usize) -> ([u8; QK], f16, f16)) -> Self {
        let (nb, tiles) = (k / QK, n.div_ceil(NT));
        let mut qs = vec![0u8; tiles * nb * CHUNK];
        let mut d = vec![f16::ZERO; tiles * nb * NT];
        let mut m = if has_min { vec![f16::ZERO; tiles * nb * NT] } else { Vec::new() };
        for col in 0..n {
            let (t, j) = (col / NT, col % NT);
            for b in 0..nb {
                let (q, scale, min) = block(col, b);
                for h in 0..4 {
                    for e in 0..4 {
                        qs[(t * nb + b) * CHUNK + h * 64 + j * 4 + e] = q[8 * h + e] | (q[8 * h + 4 + e] << 4);
                    }
                }
                let at = (t * nb + b) * NT + j;
                d[at] = scale;
                if has_min {
                    m[at] = min;
                }
            }
        }
        Self { n, k, nb, qs, d, m }
    }

    /// Stacks matrices of the same format and `k` (rows of each part, in
    /// order). Every part but the last must have a multiple of 16 rows.
    pub fn concat(parts: &[&Q4Weights]) -> Option<Self> {
        let first = parts.first()?;
        if parts.iter().any(|p| p.k != first.k || p.has_min() != first.has_min())
            || parts[..parts.len() - 1].iter().any(|p| p.n % NT != 0)
        {
            return None;
        }
        let mut out = Self {
            n: parts.iter().map(|p| p.n).sum(),
            k: first.k,
            nb: first.nb,
            qs: Vec::new(),
            d: Vec::new(),
            m: Vec::new(),
        };
        for p in parts {
            out.qs.extend_from_slice(&p.qs);
            out.d.extend_from_slice(&p.d);
            out.m.extend_from_slice(&p.m);
        }
        Some(out)
    }

    /// Dequantizes row `r` (for tests).
    pub fn dequantize_row(&self, r: usize) -> Vec<f32> {
        let (t, j) = (r / NT, r % NT);
        let mut out = vec![0f32; self.k];
        for b in 0..self.nb {
            let at = (t * self.nb + b) * NT + j;
            let d = self.d[at].to_f32();
            let m = if self.has_min() { self.m[at].to_f32() } else { -8.0 * d };
            for h in 0..4 {
                for e in 0..4 {
                    let v = self.qs[(t * self.nb + b) * CHUNK + h * 64 + j * 4 + e];
                    out[b * QK + 8 * h + e] = (v & 0x0f) as f32 * d + m;
                    out[b * QK + 8 * h + 4 + e] = (v >> 4) as f32 * d + m;
                }
            }
        }
        out
    }
}

impl Tiles for Q4Weights {
    const OFFSET_ACTS: bool = false;
    /// Eight on AVX-512: each unpacked chunk then feeds 16 `vpdpbusd`s, and
    /// the 8 partial and 8 running sums still fit the 32 vector registers.
    fn max_rows(&self) -> usize {
        if kernel() == Kernel::Avx512Vnni { MR } else { 4 }
    }
    fn n(&self) -> usize {
        self.n
    }
    fn k(&self) -> usize {
        self.k
    }
    fn tile(&self, a: &Q8Acts, r0: usize, rt: usize, t: usize, acc: &mut Acc) {
        // SAFETY: `kernel()` chose a path the CPU supports.
        unsafe { tile_with(kernel(), self, a, r0, rt, t, acc) }
    }
}

/// `x: [m, k]` → `[m, n]`.
pub fn matmul(w: &Q4Weights, x: &[f32], m: usize) -> Vec<f32> {
    run_tiles(w, x, m)
}

/// One tile with path `k`.
///
/// # Safety
/// The CPU supports `k`'s instructions (as [`kernel`] checks).
unsafe fn tile_with(k: Kernel, w: &Q4Weights, a: &Q8Acts, r0: usize, rt: usize, t: usize, acc: &mut Acc) {
    tile_with!(k, tile_portable, w, a, r0, rt, t, acc)
}

/// The reference path, in the SIMD paths' order of rounding.
fn tile_portable(w: &Q4Weights, a: &Q8Acts, r0: usize, rt: usize, t: usize, acc: &mut Acc) {
    let (k, nb) = (a.k, w.nb);
    #[allow(clippy::needless_range_loop)] // `rr` indexes `acc` and offsets the activation rows
    for rr in 0..rt {
        let r = r0 + rr;
        for b in 0..nb {
            let mut p = [0i32; NT];
            for h in 0..4 {
                let wq = &w.qs[(t * nb + b) * CHUNK + h * 64..][..64];
                let av = &a.au[r * k + b * QK + 8 * h..][..8];
                for j in 0..NT {
                    for e in 0..4 {
                        let v = wq[j * 4 + e];
                        p[j] += (v & 0x0f) as i32 * av[e] as i8 as i32;
                        p[j] += (v >> 4) as i32 * av[4 + e] as i8 as i32;
                    }
                }
            }
            let at = (t * nb + b) * NT;
            let (da, sa) = (a.d[r * nb + b], a.s[r * nb + b]);
            for j in 0..NT {
                let d = w.d[at + j].to_f32();
                let m = if w.has_min() { w.m[at + j].to_f32() } else { d * -8.0 };
                acc[rr][j] = (p[j] as f32 * d).mul_add(da, acc[rr][j]);
                acc[rr][j] = sa.mul_add(m, acc[rr][j]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The AVX512-VNNI tile.
    use super::{Acc, CHUNK, NT, Q4Weights, Q8Acts, QK};
    use std::arch::x86_64::*;

    /// R rows × 16 columns over all blocks; each 64-byte load feeds 2·R `vpdpbusd`s.
    /// (AVX512BW for the 16-bit shift that reaches the high nibbles: without
    /// it the shift is an out-of-line call per load.)
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile<const R: usize>(w: &Q4Weights, a: &Q8Acts, r0: usize, t: usize, out: &mut Acc) {
        let (k, nb, has_min) = (a.k, w.nb, w.has_min());
        let mut acc = [_mm512_setzero_ps(); R];
        let wq = w.qs[t * nb * CHUNK..].as_ptr();
        let ap: [*const u8; R] = std::array::from_fn(|r| a.au[(r0 + r) * k..].as_ptr());
        let low = _mm512_set1_epi8(0x0f);
        for b in 0..nb {
            let mut p = [_mm512_setzero_si512(); R];
            for h in 0..4 {
                // SAFETY: the tile holds nb chunks of CHUNK bytes; each row holds k bytes.
                unsafe {
                    let v = _mm512_loadu_si512(wq.add(b * CHUNK + h * 64) as *const _);
                    let lo = _mm512_and_si512(v, low);
                    let hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
                    for r in 0..R {
                        let at = ap[r].add(b * QK + 8 * h);
                        // Loads the compiler folds into `vpdpbusd`'s broadcast operand.
                        let w0 = (at as *const i32).read_unaligned();
                        let w1 = (at.add(4) as *const i32).read_unaligned();
                        p[r] = _mm512_dpbusd_epi32(p[r], lo, _mm512_set1_epi32(w0));
                        p[r] = _mm512_dpbusd_epi32(p[r], hi, _mm512_set1_epi32(w1));
                    }
                }
            }
            let at = (t * nb + b) * NT;
            // SAFETY: per-block constants hold NT f16 values at `at`.
            let (dw, mw) = unsafe {
                let dw = _mm512_cvtph_ps(_mm256_loadu_si256(w.d.as_ptr().add(at) as *const _));
                let mw = if has_min {
                    _mm512_cvtph_ps(_mm256_loadu_si256(w.m.as_ptr().add(at) as *const _))
                } else {
                    _mm512_mul_ps(dw, _mm512_set1_ps(-8.0))
                };
                (dw, mw)
            };
            for r in 0..R {
                let da = _mm512_set1_ps(a.d[(r0 + r) * nb + b]);
                let v = _mm512_mul_ps(_mm512_cvtepi32_ps(p[r]), dw);
                acc[r] = _mm512_fmadd_ps(v, da, acc[r]);
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a.s[(r0 + r) * nb + b]), mw, acc[r]);
            }
        }
        for r in 0..R {
            // SAFETY: out[r] has NT = 16 floats.
            unsafe { _mm512_storeu_ps(out[r].as_mut_ptr(), acc[r]) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The AVX2+FMA+F16C tile: two 8-column halves per chunk.
    use super::{Acc, CHUNK, NT, Q4Weights, Q8Acts, QK};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn tile<const R: usize>(w: &Q4Weights, a: &Q8Acts, r0: usize, t: usize, out: &mut Acc) {
        let (k, nb, has_min) = (a.k, w.nb, w.has_min());
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let wq = w.qs[t * nb * CHUNK..].as_ptr();
        let ap: [*const u8; R] = std::array::from_fn(|r| a.au[(r0 + r) * k..].as_ptr());
        let low = _mm256_set1_epi8(0x0f);
        let ones = _mm256_set1_epi16(1);
        for b in 0..nb {
            let mut p = [[_mm256_setzero_si256(); 2]; R];
            for h in 0..4 {
                // SAFETY: as in the AVX512 tile.
                unsafe {
                    let base = wq.add(b * CHUNK + h * 64);
                    #[allow(clippy::needless_range_loop)] // `half` also offsets the weight loads
                    for half in 0..2 {
                        let v = _mm256_loadu_si256(base.add(half * 32) as *const __m256i);
                        let lo = _mm256_and_si256(v, low);
                        let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                        for r in 0..R {
                            let at = ap[r].add(b * QK + 8 * h);
                            let w0 = _mm256_set1_epi32((at as *const i32).read_unaligned());
                            let w1 = _mm256_set1_epi32((at.add(4) as *const i32).read_unaligned());
                            // Nibble × signed byte pair sums: at most 2·15·128, no i16 saturation.
                            let s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, w0), _mm256_maddubs_epi16(hi, w1));
                            p[r][half] = _mm256_add_epi32(p[r][half], _mm256_madd_epi16(s, ones));
                        }
                    }
                }
            }
            let at = (t * nb + b) * NT;
            for half in 0..2 {
                // SAFETY: per-block constants hold NT f16 values at `at`.
                let (dw, mw) = unsafe {
                    let dw = _mm256_cvtph_ps(_mm_loadu_si128(w.d.as_ptr().add(at + half * 8) as *const _));
                    let mw = if has_min {
                        _mm256_cvtph_ps(_mm_loadu_si128(w.m.as_ptr().add(at + half * 8) as *const _))
                    } else {
                        _mm256_mul_ps(dw, _mm256_set1_ps(-8.0))
                    };
                    (dw, mw)
                };
                for r in 0..R {
                    let da = _mm256_set1_ps(a.d[(r0 + r) * nb + b]);
                    let v = _mm256_mul_ps(_mm256_cvtepi32_ps(p[r][half]), dw);
                    acc[r][half] = _mm256_fmadd_ps(v, da, acc[r][half]);
                    acc[r][half] = _mm256_fmadd_ps(_mm256_set1_ps(a.s[(r0 + r) * nb + b]), mw, acc[r][half]);
                }
            }
        }
        for r in 0..R {
            // SAFETY: out[r] has NT = 16 floats.
            unsafe {
                _mm256_storeu_ps(out[r].as_mut_ptr(), acc[r][0]);
                _mm256_storeu_ps(out[r].as_mut_ptr().add(8), acc[r][1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::q8gemm::quantize_acts;
    use super::*;
    use candle_core::{Device, Tensor};

    /// Every path over all tiles of `x`.
    fn with(k: Kernel, w: &Q4Weights, a: &Q8Acts, m: usize) -> Vec<f32> {
        let n = w.n;
        let mut y = vec![0f32; m * n];
        for t in 0..n.div_ceil(NT) {
            let rows = if k == Kernel::Avx512Vnni { MR } else { 4 };
            for r in (0..m).step_by(rows) {
                let rt = (m - r).min(rows);
                let mut acc = [[0f32; NT]; MR];
                // SAFETY: callers pass only paths this CPU has.
                unsafe { tile_with(k, w, a, r, rt, t, &mut acc) };
                for rr in 0..rt {
                    for j in 0..NT.min(n - t * NT) {
                        y[(r + rr) * n + t * NT + j] = acc[rr][j];
                    }
                }
            }
        }
        y
    }

    fn check(dtype: GgmlDType, m: usize, n: usize, k: usize) {
        // Q4_K's combined scales round once to f16 (see `q4k_block`).
        let tol = if dtype == GgmlDType::Q4K { 5e-3 } else { 1e-6 };
        let wt = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&wt, dtype).unwrap();
        let deq = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let p = Q4Weights::from_qtensor(&q).expect("supported");
        for r in [0, n / 2, n - 1] {
            for (a, b) in p.dequantize_row(r).iter().zip(&deq[r * k..(r + 1) * k]) {
                assert!((a - b).abs() <= tol * b.abs().max(1.0), "{dtype:?} row {r}: {a} vs {b}");
            }
        }
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
        let want: Vec<f32> =
            (0..m * n).map(|i| (0..k).map(|e| x[(i / n) * k + e] * deq[(i % n) * k + e]).sum()).collect();
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        let a = quantize_acts(&x, m, k, false);
        let portable = with(Kernel::Portable, &p, &a, m);
        #[cfg(target_arch = "x86_64")]
        {
            let mut paths = Vec::new();
            if std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && std::is_x86_feature_detected!("f16c")
            {
                paths.push(Kernel::Avx2);
            }
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
            {
                paths.push(Kernel::Avx512Vnni);
            }
            for path in paths {
                let got = with(path, &p, &a, m);
                for (g, pt) in got.iter().zip(&portable) {
                    assert_eq!(g.to_bits(), pt.to_bits(), "{dtype:?} m={m}: {path:?} {g} vs portable {pt}");
                }
            }
        }
        let got = matmul(&p, &x, m);
        for (i, ((g, w), pt)) in got.iter().zip(&want).zip(&portable).enumerate() {
            assert!((g - w).abs() < 0.01 * scale, "{dtype:?} m={m} [{i}] {g} vs {w}");
            assert_eq!(g.to_bits(), pt.to_bits(), "{dtype:?} m={m} [{i}] driver vs portable");
        }
    }

    #[test]
    fn every_path_matches_the_reference_bit_for_bit() {
        for dt in [GgmlDType::Q4_0, GgmlDType::Q4_1] {
            for (m, n) in [(1, 70), (3, 67), (9, 130), (33, 5), (6, 200), (1, 64)] {
                check(dt, m, n, 96);
            }
        }
        for (m, n) in [(1, 70), (5, 33), (17, 16)] {
            check(GgmlDType::Q4K, m, n, 512);
        }
    }

    #[test]
    fn holds_the_file_bytes() {
        for (dt, per_block) in [(GgmlDType::Q4_0, 18), (GgmlDType::Q4_1, 20)] {
            let wt = Tensor::randn(0f32, 1.0, (64, 128), &Device::Cpu).unwrap();
            let p = Q4Weights::from_qtensor(&QTensor::quantize(&wt, dt).unwrap()).unwrap();
            assert_eq!(p.bytes(), 64 * 4 * per_block);
        }
    }

    #[test]
    fn q4k_holds_five_bits_a_value() {
        let wt = Tensor::randn(0f32, 1.0, (32, 512), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&wt, GgmlDType::Q4K).unwrap();
        let p = Q4Weights::from_qtensor(&q).unwrap();
        assert_eq!(p.bytes(), 32 * 16 * 20);
        assert!(p.bytes() * 9 <= q.storage_size_in_bytes() * 10, "at most 1.11x the file's 4.5 bits");
    }

    #[test]
    fn concat_stacks_rows() {
        let (a, b) = (
            Tensor::randn(0f32, 1.0, (32, 64), &Device::Cpu).unwrap(),
            Tensor::randn(0f32, 1.0, (20, 64), &Device::Cpu).unwrap(),
        );
        let qa = Q4Weights::from_qtensor(&QTensor::quantize(&a, GgmlDType::Q4_1).unwrap()).unwrap();
        let qb = Q4Weights::from_qtensor(&QTensor::quantize(&b, GgmlDType::Q4_1).unwrap()).unwrap();
        let c = Q4Weights::concat(&[&qa, &qb]).unwrap();
        assert_eq!(c.rows(), 52);
        assert_eq!(c.dequantize_row(33), qb.dequantize_row(1));
        assert_eq!(c.dequantize_row(5), qa.dequantize_row(5));
        let q0 = Q4Weights::from_qtensor(&QTensor::quantize(&b, GgmlDType::Q4_0).unwrap()).unwrap();
        assert!(Q4Weights::concat(&[&qa, &q0]).is_none(), "formats differ");
    }
}
