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
    for r in [0, n / 2, n - 1] {
        let row = p.dequantize_row(r);
        for (a, b) in row.iter().zip(&deq[r * k..(r + 1) * k]) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{dtype:?} row {r}: {a} vs {b}");
        }
    }
    let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    let want = reference(&deq, &x, m, n, k);
    let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
    let a = quantize_acts(&x, m, k, true);
    let mut portable = vec![0f32; m * n];
    for t in 0..n.div_ceil(NT) {
        for r in (0..m).step_by(4) {
            let rt = (m - r).min(4);
            let mut acc = [[0f32; NT]; MR];
            tile_portable(&p, &a, r, rt, t, &mut acc);
            for rr in 0..rt {
                for j in 0..NT.min(n - t * NT) {
                    portable[(r + rr) * n + t * NT + j] = acc[rr][j];
                }
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        for t in 0..n.div_ceil(NT) {
            for r in (0..m).step_by(4) {
                let rt = (m - r).min(4);
                let mut acc = [[0f32; NT]; MR];
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                unsafe { tile_with(Kernel::Avx2, &p, &a, r, rt, t, &mut acc) };
                for rr in 0..rt {
                    for j in 0..NT.min(n - t * NT) {
                        let (v, pt) = (acc[rr][j], portable[(r + rr) * n + t * NT + j]);
                        assert_eq!(v.to_bits(), pt.to_bits(), "{dtype:?} m={m}: avx2 {v} vs portable {pt}");
                    }
                }
            }
        }
    }
    let got = matmul(&p, &x, m);
    for (i, ((g, w), pt)) in got.iter().zip(&want).zip(&portable).enumerate() {
        // Activation quantization to int8 costs well under 1% of the output range.
        assert!((g - w).abs() < 0.01 * scale, "{dtype:?} m={m} [{i}] {g} vs {w}");
        assert!((g - pt).abs() < 1e-4 * scale, "{dtype:?} m={m} [{i}] simd {g} vs portable {pt}");
    }
}

/// The vector activation quantizer gives the scalar one's bytes, scale and sum.
#[test]
fn activation_blocks_match_the_scalar_quantizer() {
    let mut blocks: Vec<[f32; QK]> = vec![[0.0; QK], [1.0; QK], [-3.5; QK]];
    // Ties at .5 after scaling, tiny and huge magnitudes, mixed signs.
    blocks.push(std::array::from_fn(|i| if i == 0 { 127.0 } else { i as f32 - 15.5 }));
    blocks.push(std::array::from_fn(|i| (i as f32 - 16.0) * 1e-30));
    blocks.push(std::array::from_fn(|i| (i as f32 * 0.37).sin() * 3e4));
    for seed in 0..200u32 {
        blocks.push(std::array::from_fn(|i| {
            let h = (seed.wrapping_mul(2_654_435_761) ^ (i as u32).wrapping_mul(40_503)).wrapping_mul(2_246_822_519);
            (h >> 8) as f32 / (1 << 23) as f32 - 1.0
        }));
    }
    for src in &blocks {
        let mut q = [0i8; QK];
        let d = quantize_block(src, &mut q);
        for flip in [0u8, 0x80] {
            let mut out = [0u8; QK];
            let (d2, sum) = quantize_acts_block(src, &mut out, flip);
            assert_eq!(d.to_bits(), d2.to_bits());
            assert_eq!(sum, q.iter().map(|&v| v as i32).sum::<i32>());
            let want: Vec<u8> = q.iter().map(|&v| (v as u8) ^ flip).collect();
            assert_eq!(out.to_vec(), want, "{src:?}");
        }
    }
}

#[test]
fn matches_float_reference_on_ragged_shapes() {
    for dt in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
        for (m, n) in [(1, 70), (3, 67), (9, 130), (33, 5), (6, 200)] {
            check(dt, m, n, 96);
        }
    }
}

#[test]
fn quantize_dense_close_to_source() {
    let (n, k) = (21, 64);
    let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.37).sin()).collect();
    let q = Q8Weights::quantize(&w, n, k).unwrap();
    for r in 0..n {
        for (a, b) in q.dequantize_row(r).iter().zip(&w[r * k..(r + 1) * k]) {
            assert!((a - b).abs() < 0.01, "{a} vs {b}");
        }
    }
}
