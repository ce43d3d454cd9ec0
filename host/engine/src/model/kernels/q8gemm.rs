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
//! are stored offset by +128 and `128·Σ q_w` is subtracted per block.
//!
//! Weights are interleaved in tiles of 16 columns: one 64-byte load holds 4
//! consecutive k-values of 16 columns, so `vpdpbusd` against one broadcast
//! activation word accumulates 16 columns at once and a block's 16 results
//! land in one register, scaled with one vector multiply: no horizontal sums.
//! Up to 4 activation rows share each weight load; panels of columns run in
//! parallel.
//!
//! Three paths on the same layout, chosen once at run time from the CPU (so
//! one binary runs on any x86-64 machine): AVX512-VNNI; AVX2+FMA, which
//! forms the same 4-byte dot products with `vpmaddubsw` on |w| and sign-moved
//! activations (the signed activation keeps the i16 pair sums from
//! saturating) and then `vpmaddwd`; and a portable loop. The AVX2 and portable
//! paths compute the same integer sums and round the float work in the same
//! order, so their results are bit-identical (tested). `WEFT_KERNEL=portable`,
//! `avx2` or `avx512` forces a path (a path the CPU lacks falls back).

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

/// Elements per block.
pub const QK: usize = 32;

/// Columns per interleaved tile.
pub(crate) const NT: usize = 16;

/// Most activation rows one tile call computes (each layout says how many it takes).
pub(crate) const MR: usize = 8;

/// A tile call's output: up to [`MR`] rows of [`NT`] columns.
pub(crate) type Acc = [[f32; NT]; MR];

/// Weights repacked for [`matmul`].
#[derive(Debug, Clone)]
pub struct Q8Weights {
    n: usize,
    k: usize,
    nb: usize,
    /// Column tiles × blocks × 8 groups × (16 columns × 4 values), as i8.
    qs: Vec<i8>,
    /// `[tile][block][16]`: block scale `d`.
    d: Vec<f32>,
    /// `[tile][block][16]`: `-128·d·Σq`, undoing the activation offset.
    c: Vec<f32>,
    /// `[tile][block][16]`: block offset `m` (all zero for symmetric formats).
    m: Vec<f32>,
    has_min: bool,
}

/// One activation matrix quantized per row and block.
pub struct Q8Acts {
    pub(crate) k: usize,
    /// `[m][k]` values, + 128 when the layout asked for offset activations
    /// (the unsigned operand of `vpdpbusd`), else as i8 bytes (the signed one).
    pub(crate) au: Vec<u8>,
    /// `[m][nb]` scales.
    pub(crate) d: Vec<f32>,
    /// `[m][nb]` scale × block sum.
    pub(crate) s: Vec<f32>,
}

impl Q8Weights {
    pub fn rows(&self) -> usize {
        self.n
    }

    pub fn cols(&self) -> usize {
        self.k
    }

    /// Bytes held (values and per-block constants).
    pub fn bytes(&self) -> usize {
        self.qs.len() + (self.d.len() + self.c.len() + self.m.len()) * 4
    }

    fn from_blocks(n: usize, k: usize, mut block: impl FnMut(usize, usize, &mut [i8; QK]) -> (f32, f32)) -> Self {
        let nb = k / QK;
        let tiles = n.div_ceil(NT);
        let mut qs = vec![0i8; tiles * NT * k];
        let mut d = vec![0f32; tiles * nb * NT];
        let mut c = vec![0f32; tiles * nb * NT];
        let mut m = vec![0f32; tiles * nb * NT];
        let mut has_min = false;
        for col in 0..n {
            let (t, j) = (col / NT, col % NT);
            for b in 0..nb {
                let mut q = [0i8; QK];
                let (scale, min) = block(col, b, &mut q);
                for g in 0..8 {
                    let at = ((t * nb + b) * 8 + g) * 64 + j * 4;
                    qs[at..at + 4].copy_from_slice(&q[g * 4..g * 4 + 4]);
                }
                let sum: i32 = q.iter().map(|&v| v as i32).sum();
                let at = (t * nb + b) * NT + j;
                d[at] = scale;
                c[at] = -128.0 * scale * sum as f32;
                m[at] = min;
                has_min |= min != 0.0;
            }
        }
        Self { n, k, nb, qs, d, c, m, has_min }
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
                // clamp so the offset arithmetic stays exact.
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
        if !k.is_multiple_of(QK) || w.len() != n * k {
            return None;
        }
        Some(Self::from_blocks(n, k, |r, b, q| {
            let src = &w[r * k + b * QK..r * k + (b + 1) * QK];
            let d = quantize_block(src, q);
            // Match Q8_0, which stores its scale as f16.
            (f16::from_f32(d).to_f32(), 0.0)
        }))
    }

    /// Stacks matrices with the same `k` (rows of each part, in order). Every
    /// part but the last must have a multiple of 16 rows so tiles do not straddle parts.
    pub fn concat(parts: &[&Q8Weights]) -> Option<Self> {
        let first = parts.first()?;
        let (k, nb) = (first.k, first.nb);
        if parts.iter().any(|p| p.k != k) || parts[..parts.len() - 1].iter().any(|p| p.n % NT != 0) {
            return None;
        }
        let mut out = Self {
            n: parts.iter().map(|p| p.n).sum(),
            k,
            nb,
            qs: Vec::new(),
            d: Vec::new(),
            c: Vec::new(),
            m: Vec::new(),
            has_min: parts.iter().any(|p| p.has_min),
        };
        for p in parts {
            out.qs.extend_from_slice(&p.qs);
            out.d.extend_from_slice(&p.d);
            out.c.extend_from_slice(&p.c);
            out.m.extend_from_slice(&p.m);
        }
        Some(out)
    }

    /// Dequantizes row `r` (for tests).
    pub fn dequantize_row(&self, r: usize) -> Vec<f32> {
        let (t, j) = (r / NT, r % NT);
        let mut out = Vec::with_capacity(self.k);
        for b in 0..self.nb {
            let at = (t * self.nb + b) * NT + j;
            for g in 0..8 {
                let q = ((t * self.nb + b) * 8 + g) * 64 + j * 4;
                for e in 0..4 {
                    out.push(self.qs[q + e] as f32 * self.d[at] + self.m[at]);
                }
            }
        }
        out
    }
}

/// Symmetric int8 quantization of one block; returns the scale. Written in
/// eight independent lanes with a fixed length, so it compiles to vector code
/// (a plain `fold` of `max` stays a scalar chain; this runs before every
/// projection on every activation row).
#[inline]
fn quantize_block(src: &[f32], q: &mut [i8; QK]) -> f32 {
    let src: &[f32; QK] = src.try_into().expect("one block");
    let mut lanes = [0f32; 8];
    for c in src.chunks_exact(8) {
        for i in 0..8 {
            lanes[i] = lanes[i].max(c[i].abs());
        }
    }
    let amax = lanes.iter().fold(0f32, |a, &v| a.max(v));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    // round_ties_even lowers to one vector rounding instruction. The clamp
    // (which also maps NaN into range) makes the unchecked conversion sound;
    // a checked `as` saturates element by element and stays scalar.
    for (o, &v) in q.iter_mut().zip(src) {
        #[allow(clippy::manual_clamp)] // `clamp` keeps NaN, which the conversion must never see
        let x = (v * id).round_ties_even().max(-127.0).min(127.0);
        // SAFETY: `x` is finite and within i32 (clamped just above).
        *o = unsafe { x.to_int_unchecked::<i32>() } as i8;
    }
    d
}

/// One activation block: its bytes (each value `^ flip`), scale and value sum.
#[inline]
fn quantize_acts_block(src: &[f32; QK], out: &mut [u8; QK], flip: u8) -> (f32, i32) {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        // SAFETY: AVX2 is enabled for the whole build (see .cargo/config.toml).
        unsafe { quantize_acts_block_avx2(src, out, flip) }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    {
        let mut q = [0i8; QK];
        let d = quantize_block(src, &mut q);
        let mut sum = 0i32;
        for (o, &v) in out.iter_mut().zip(&q) {
            *o = (v as u8) ^ flip;
            sum += v as i32;
        }
        (d, sum)
    }
}

/// [`quantize_block`] in AVX2, with the same numbers: the same scale and
/// reciprocal, `vcvtps2dq` rounds half to even as `round_ties_even` does,
/// and the clamp to ±127 is kept. Written out because the compiler packs the
/// scalar version's bytes one `vpextrb` at a time: before every projection,
/// at 32 rows that was 6% of a decode step.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[inline]
unsafe fn quantize_acts_block_avx2(src: &[f32; QK], out: &mut [u8; QK], flip: u8) -> (f32, i32) {
    use std::arch::x86_64::*;
    // SAFETY: src holds 32 floats and out 32 bytes; the loads and the store stay inside them.
    unsafe {
        let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(src.as_ptr().add(8 * i)));
        let sign = _mm256_set1_ps(-0.0);
        let abs = |x| _mm256_andnot_ps(sign, x);
        let m = _mm256_max_ps(_mm256_max_ps(abs(v[0]), abs(v[1])), _mm256_max_ps(abs(v[2]), abs(v[3])));
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
        let d = amax / 127.0;
        let id = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
        let (lo, hi) = (_mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
        let q: [__m256i; 4] =
            std::array::from_fn(|i| _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[i], id), lo), hi)));
        let total = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        let t = _mm_add_epi32(_mm256_castsi256_si128(total), _mm256_extracti128_si256(total, 1));
        let t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0b01_00_11_10));
        let sum = _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 0b10_11_00_01)));
        // Packing works within 128-bit lanes: bytes come out as 32-bit groups
        // in the order 0 2 4 6 1 3 5 7, put back in order by one permute.
        let w = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        let w = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        let w = _mm256_xor_si256(w, _mm256_set1_epi8(flip as i8));
        _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, w);
        (d, sum)
    }
}

/// Quantizes `x: [m, k]` row by row; `offset` stores each value + 128.
pub fn quantize_acts(x: &[f32], m: usize, k: usize, offset: bool) -> Q8Acts {
    let flip = if offset { 0x80 } else { 0 };
    let nb = k / QK;
    let mut au = vec![0u8; m * k];
    let mut d = vec![0f32; m * nb];
    let mut s = vec![0f32; m * nb];
    let work = |r: usize, au: &mut [u8], d: &mut [f32], s: &mut [f32]| {
        for b in 0..nb {
            let src: &[f32; QK] = x[r * k + b * QK..r * k + (b + 1) * QK].try_into().expect("one block");
            let out: &mut [u8; QK] = (&mut au[b * QK..(b + 1) * QK]).try_into().expect("one block");
            let (scale, sum) = quantize_acts_block(src, out, flip);
            d[b] = scale;
            s[b] = scale * sum as f32;
        }
    };
    if m >= 16 {
        // Rows in groups of 8 on the engine's team (the activations of a big
        // step are quantized before every projection).
        let (pa, pd, ps) = (OutPtr(au.as_mut_ptr().cast()), OutPtr(d.as_mut_ptr()), OutPtr(s.as_mut_ptr()));
        super::team::for_each(m.div_ceil(8), |t| {
            #[allow(clippy::redundant_locals)]
            let (pa, pd, ps) = (pa, pd, ps);
            for r in t * 8..(t * 8 + 8).min(m) {
                // SAFETY: task t alone owns rows t·8..t·8+8 of each buffer, all inside it.
                let (au, d, s) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(pa.0.cast::<u8>().add(r * k), k),
                        std::slice::from_raw_parts_mut(pd.0.add(r * nb), nb),
                        std::slice::from_raw_parts_mut(ps.0.add(r * nb), nb),
                    )
                };
                work(r, au, d, s);
            }
        });
    } else {
        for (r, ((au, d), s)) in au.chunks_mut(k).zip(d.chunks_mut(nb)).zip(s.chunks_mut(nb)).enumerate() {
            work(r, au, d, s);
        }
    }
    Q8Acts { k, au, d, s }
}

/// Column tiles per parallel task.
const PANEL_TILES: usize = 4;

/// Output pointer shared by tasks that write disjoint cells (columns of the
/// GEMM's output, rows of the quantized activations).
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint cells, see `run_tiles` and `quantize_acts`.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// A weight layout the GEMM driver can run: 16-column tiles over the whole `k`.
pub(crate) trait Tiles: Sync {
    fn n(&self) -> usize;
    fn k(&self) -> usize;
    /// Whether the tile wants activations offset by +128 (see [`Q8Acts::au`]).
    const OFFSET_ACTS: bool;
    /// Rows per tile call on this machine's path (at most [`MR`]): as many as
    /// share each weight load without spilling the path's registers.
    fn max_rows(&self) -> usize {
        4
    }
    /// Rows `r0..r0+rt` (at most [`Tiles::max_rows`]) of column tile `t` into `acc`.
    fn tile(&self, a: &Q8Acts, r0: usize, rt: usize, t: usize, acc: &mut Acc);
}

impl Tiles for Q8Weights {
    const OFFSET_ACTS: bool = true;
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
pub fn matmul(w: &Q8Weights, x: &[f32], m: usize) -> Vec<f32> {
    run_tiles(w, x, m)
}

/// The GEMM driver shared by every layout: quantize the activations once,
/// then panels of column tiles in parallel on the engine's team (every core
/// takes a share of the columns, even at one row), up to [`Tiles::max_rows`] rows per weight load.
pub(crate) fn run_tiles<W: Tiles>(w: &W, x: &[f32], m: usize) -> Vec<f32> {
    let (n, k) = (w.n(), w.k());
    assert_eq!(x.len(), m * k, "activation shape");
    let a = quantize_acts(x, m, k, W::OFFSET_ACTS);
    let rows = w.max_rows();
    let mut out = vec![0f32; m * n];
    let ptr = OutPtr(out.as_mut_ptr());
    let tiles = n.div_ceil(NT);
    let panels = tiles.div_ceil(PANEL_TILES);
    let run = |p: usize| {
        // Captures the whole `OutPtr` (which is Send), not its raw-pointer field.
        #[allow(clippy::redundant_locals)]
        let ptr = ptr;
        let t_end = ((p + 1) * PANEL_TILES).min(tiles);
        let mut r = 0;
        while r < m {
            let rt = (m - r).min(rows);
            for t in p * PANEL_TILES..t_end {
                let mut acc = [[0f32; NT]; MR];
                w.tile(&a, r, rt, t, &mut acc);
                let cols = (n - t * NT).min(NT);
                for (rr, row) in acc.iter().enumerate().take(rt) {
                    // SAFETY: panel p alone owns columns [p·PANEL_TILES·NT, ...) of every row,
                    // and the indices stay inside the m × n buffer.
                    unsafe {
                        std::ptr::copy_nonoverlapping(row.as_ptr(), ptr.0.add((r + rr) * n + t * NT), cols);
                    }
                }
            }
            r += rt;
        }
    };
    if panels > 1 && m * n * k >= 1 << 16 {
        super::team::for_each(panels, run);
    } else {
        (0..panels).for_each(run);
    }
    out
}

/// Which implementation of the tile runs on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Avx512Vnni,
    Avx2,
    Portable,
}

impl Kernel {
    pub fn as_str(self) -> &'static str {
        match self {
            Kernel::Avx512Vnni => "avx512-vnni",
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }
}

/// The fastest path the CPU supports, unless `WEFT_KERNEL` asks for a slower one.
pub fn kernel() -> Kernel {
    static K: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *K.get_or_init(|| {
        let want = std::env::var("WEFT_KERNEL").unwrap_or_default();
        // The old switch, kept working.
        let no_vnni = std::env::var_os("WEFT_NO_VNNI").is_some();
        #[cfg(target_arch = "x86_64")]
        {
            let vnni = std::is_x86_feature_detected!("avx512vnni")
                && std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw");
            let avx2 = std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && std::is_x86_feature_detected!("f16c");
            if vnni && !no_vnni && (want.is_empty() || want == "avx512") {
                return Kernel::Avx512Vnni;
            }
            if avx2 && want != "portable" {
                return Kernel::Avx2;
            }
        }
        let _ = (want, no_vnni);
        Kernel::Portable
    })
}

/// One tile with path `k`.
///
/// # Safety
/// The CPU supports `k`'s instructions (as [`kernel`] checks).
unsafe fn tile_with(k: Kernel, w: &Q8Weights, a: &Q8Acts, r0: usize, rt: usize, t: usize, acc: &mut Acc) {
    tile_with!(k, tile_portable, w, a, r0, rt, t, acc)
}

/// The reference path: signed activation × weight sums per block, then
/// `acc = fma(da, p·dw, acc)` and `acc = fma(sa, m, acc)`, the same rounding
/// steps as the AVX2 path.
fn tile_portable(w: &Q8Weights, a: &Q8Acts, r0: usize, rt: usize, t: usize, acc: &mut Acc) {
    let (k, nb) = (a.k, w.nb);
    #[allow(clippy::needless_range_loop)] // `rr` indexes `acc` and offsets the activation rows
    for rr in 0..rt {
        let r = r0 + rr;
        for b in 0..nb {
            let mut p = [0i32; NT];
            for g in 0..8 {
                let wq = &w.qs[((t * nb + b) * 8 + g) * 64..][..64];
                let av = &a.au[r * k + b * QK + g * 4..][..4];
                for j in 0..NT {
                    for e in 0..4 {
                        p[j] += (av[e] ^ 0x80) as i8 as i32 * wq[j * 4 + e] as i32;
                    }
                }
            }
            let at = (t * nb + b) * NT;
            let (da, sa) = (a.d[r * nb + b], a.s[r * nb + b]);
            for j in 0..NT {
                acc[rr][j] = (p[j] as f32 * w.d[at + j]).mul_add(da, acc[rr][j]);
                if w.has_min {
                    acc[rr][j] = sa.mul_add(w.m[at + j], acc[rr][j]);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "x86_64")]
mod avx2;

#[cfg(test)]
mod tests;
