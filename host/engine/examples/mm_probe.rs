//! Measures candle's matmul variants on one SmolLM2-sized projection
//! (1536x576): quantized GEMV-per-row vs dense f32 GEMM, for several batch
//! sizes. `cargo run --release --example mm_probe`
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use std::time::Instant;

fn time(f: impl Fn(), m: usize) -> f64 {
    f();
    let iters = (2000 / m).max(5);
    let t0 = Instant::now();
    for _ in 0..iters {
        f();
    }
    t0.elapsed().as_secs_f64() / iters as f64
}

fn main() {
    let (n, k) = (1536, 576);
    let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
    let wt = w.t().unwrap().contiguous().unwrap();
    let flops = |m: usize, s: f64| 2.0 * m as f64 * n as f64 * k as f64 / s / 1e9;
    for m in [1usize, 8, 32, 512] {
        let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).unwrap();
        for dt in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let mm = QMatMul::from_qtensor(QTensor::quantize(&w, dt).unwrap()).unwrap();
            let s = time(|| drop(mm.forward(&x).unwrap()), m);
            println!("{dt:?} m={m:<4} {:8.1} us {:6.1} GFLOP/s", s * 1e6, flops(m, s));
        }
        let s = time(|| drop(x.matmul(&w.t().unwrap()).unwrap()), m);
        println!("f32 x@W^T m={m:<4} {:8.1} us {:6.1} GFLOP/s", s * 1e6, flops(m, s));
        let s = time(|| drop(x.matmul(&wt).unwrap()), m);
        println!("f32 x@Wt  m={m:<4} {:8.1} us {:6.1} GFLOP/s", s * 1e6, flops(m, s));
    }
}
