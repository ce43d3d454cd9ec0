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
            _ => $m::tile::<4>($($arg),*),
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
