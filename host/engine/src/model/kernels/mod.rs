//! CPU kernels of our own, used where candle's are the bottleneck.
//!
//! candle's quantized CPU matmul is one GEMV per activation row, so a step of
//! 32 decode rows or a 512-token prefill chunk reads every weight 32 or 512
//! times and runs at the same ~20 GFLOP/s as a single row. [`q8gemm`] is a
//! tiled int8 GEMM instead: each weight block is loaded once per tile of rows.

/// Runs module `$m`'s tile for `rt` rows with a const-generic row count.
macro_rules! by_rows {
    ($m:ident, $rt:expr, $($arg:expr),*) => {
        match $rt {
            1 => $m::tile::<1>($($arg),*),
            2 => $m::tile::<2>($($arg),*),
            3 => $m::tile::<3>($($arg),*),
            4 => $m::tile::<4>($($arg),*),
            5 => $m::tile::<5>($($arg),*),
            6 => $m::tile::<6>($($arg),*),
            7 => $m::tile::<7>($($arg),*),
            _ => $m::tile::<8>($($arg),*),
        }
    };
}

/// A layout's tile on path `$k`: its `x86` (AVX512-VNNI) or `avx2` module's
/// tile, else `$portable`. Expands inside an `unsafe fn` whose caller vouches
/// that the CPU supports `$k`.
macro_rules! tile_with {
    ($k:expr, $portable:ident, $w:expr, $a:expr, $r0:expr, $rt:expr, $t:expr, $acc:expr) => {
        match $k {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller vouches for the CPU.
            Kernel::Avx512Vnni => unsafe { by_rows!(x86, $rt, $w, $a, $r0, $t, $acc) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Kernel::Avx2 => unsafe { by_rows!(avx2, $rt, $w, $a, $r0, $t, $acc) },
            _ => $portable($w, $a, $r0, $rt, $t, $acc),
        }
    };
}

pub mod q4gemm;
pub mod q8gemm;
pub mod team;

/// `e^x` in plain arithmetic the compiler vectorizes, where `f32::exp` is a
/// library call per value (for the softmax at 8k context that was most of a
/// decode step; for the MLP's SiLU, 2-3% of one at 32 rows). `x` is clamped
/// to `[-87, 88]`, so the result is finite and positive. Relative error under
/// 1e-6 for `|x| < 20` (the rounding of `x·log2 e` dominates), ample for
/// attention weights and activations.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let t = x.clamp(-87.0, 88.0) * std::f32::consts::LOG2_E;
    let n = t.round_ties_even();
    let f = t - n;
    // 2^f on [-0.5, 0.5]: Taylor series of e^(f·ln 2) to degree 6.
    let p = 1.0
        + f * (std::f32::consts::LN_2
            + f * (0.240_226_5 + f * (0.055_504_11 + f * (0.009_618_129 + f * (0.001_333_355 + f * 0.000_154_035)))));
    f32::from_bits(((n as i32 + 127) as u32) << 23) * p
}

/// The SwiGLU MLP's activation: `silu(gate) · up` into `out`.
#[inline]
pub fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + exp(-g)) * u;
    }
}

/// Dot product with eight independent accumulators, so LLVM vectorizes it
/// without fast-math (a plain `zip().sum()` stays a scalar dependency chain).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_close_to_the_library_one() {
        for i in -400..400 {
            let x = i as f32 * 0.05;
            let (got, want) = (exp(x), x.exp());
            assert!((got - want).abs() <= 1e-6 * want, "{x}: {got} vs {want}");
        }
        assert!(exp(-1000.0) < 1e-37, "very negative scores vanish");
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38, "very large values stay finite");
    }

    #[test]
    fn silu_matches_its_definition_everywhere() {
        let g: Vec<f32> = (-2000..2000).map(|i| i as f32 * 0.06).collect();
        let up = vec![1.5f32; g.len()];
        let mut out = vec![0f32; g.len()];
        silu_mul(&g, &up, &mut out);
        for ((&g, &u), &o) in g.iter().zip(&up).zip(&out) {
            let want = g as f64 / (1.0 + (-g as f64).exp()) * u as f64;
            assert!((o as f64 - want).abs() <= 2e-6 * want.abs().max(1e-3), "{g}: {o} vs {want}");
        }
    }
}
