//! CPU kernels of our own, used where candle's are the bottleneck.
//!
//! candle's quantized CPU matmul is one GEMV per activation row, so a step of
//! 32 decode rows or a 512-token prefill chunk reads every weight 32 or 512
//! times and runs at the same ~20 GFLOP/s as a single row. [`q8gemm`] is a
//! tiled int8 GEMM instead: each weight block is loaded once per tile of rows.

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
