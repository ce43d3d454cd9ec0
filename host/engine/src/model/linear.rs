//! A projection `y = x W^T (+ b)` over row-major f32 slices, whose weight runs
//! on the fastest kernel its format allows.
//!
//! - Q4_0 and Q4_1 stay 4-bit, packed for our nibble GEMM
//!   ([`super::kernels::q4gemm`]): the model holds its file's bytes. Q4_K
//!   stays 4-bit too, as Q4_1 blocks (5 bits a value against the file's 4.5).
//! - Q8_0 (and anything under `quantize = "q8_0"`, Q4 included) is repacked
//!   losslessly for our tiled int8 GEMM ([`super::kernels::q8gemm`]); the
//!   other quantized formats (Q5_*, Q6_K, Q2_K, Q3_K, Q5_K) are requantized to it.
//! - Dense f32 and 16-bit weights use candle's matmul. candle's quantized
//!   CPU matmul is one GEMV per row and does not speed up with batch size, so a
//!   quantized weight may also keep a dense f32 copy ([`LoadOptions::dense_batch`])
//!   used for steps with many rows (`examples/mm_probe.rs` measures the crossover).
//!
//! Projections that read the same input (Q/K/V, gate/up) are fused with
//! [`Linear::concat`] so a step quantizes the input once and runs one GEMM.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use std::sync::Arc;

use super::kernels::q4gemm::{self, Q4Weights};
use super::kernels::q8gemm::{self, Q8Weights};
use crate::error::{EngineError, Result};

/// Post-training weight quantization applied while loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantize {
    /// Keep weights in the format they were stored in.
    #[default]
    None,
    /// INT8 blocks of 32 with one scale (GGML Q8_0).
    Q8_0,
}

impl std::str::FromStr for Quantize {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" | "" => Ok(Quantize::None),
            "q8_0" | "int8" => Ok(Quantize::Q8_0),
            other => {
                Err(EngineError::InvalidRequest(format!("unknown quantize `{other}` (expected `none` or `q8_0`)")))
            }
        }
    }
}

/// How weights are prepared at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    pub quantize: Quantize,
    /// For quantized formats left to candle's kernel (only with `int8_kernel`
    /// off), keep a dense f32 copy for batched steps: faster prefill, at 4
    /// bytes per parameter.
    pub dense_batch: bool,
    /// Use weft's int8 GEMM where the format allows (off: candle's kernels for
    /// everything, the baseline the benchmark compares against).
    pub int8_kernel: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { quantize: Quantize::None, dense_batch: true, int8_kernel: true }
    }
}

impl LoadOptions {
    pub fn quantized(quantize: Quantize) -> Self {
        Self { quantize, ..Self::default() }
    }
}

/// Rows from which f32 GEMM beats candle's quantized GEMV-per-row, by format.
fn dense_min_rows(dtype: GgmlDType) -> usize {
    match dtype {
        GgmlDType::Q8_0 | GgmlDType::Q8_1 => 16,
        GgmlDType::Q4_0 | GgmlDType::Q4_1 => 4,
        _ => 8,
    }
}

#[derive(Debug, Clone)]
enum Kernel {
    Int8(Q8Weights),
    Int4(Q4Weights),
    Candle {
        w: QMatMul,
        dense: Option<Tensor>,
        dense_min_rows: usize,
    },
    /// Parts that could not be merged into one matrix, run one after the other.
    Concat(Vec<Linear>),
}

/// One weight matrix plus optional bias.
#[derive(Debug, Clone)]
pub struct Linear {
    kernel: Kernel,
    bias: Option<Vec<f32>>,
    in_features: usize,
    out_features: usize,
    bytes: usize,
}

impl Linear {
    /// From a GGUF tensor, optionally re-quantized.
    pub fn from_qtensor(q: QTensor, opts: LoadOptions) -> Result<Self> {
        let (out_features, in_features) = q.shape().dims2()?;
        let q = match opts.quantize {
            Quantize::Q8_0
                if !matches!(q.dtype(), GgmlDType::Q8_0 | GgmlDType::Q4_0 | GgmlDType::Q4_1)
                    && in_features % 32 == 0 =>
            {
                QTensor::quantize(&q.dequantize(&Device::Cpu)?, GgmlDType::Q8_0)?
            }
            _ => q,
        };
        if opts.int8_kernel
            && opts.quantize == Quantize::None
            && let Some(w) = Q4Weights::from_qtensor(&q)
        {
            return Ok(Self::tiled(w.bytes(), w.cols(), w.rows(), Kernel::Int4(w)));
        }
        let dtype = q.dtype();
        if opts.int8_kernel {
            if let Some(w) = Q8Weights::from_qtensor(&q) {
                return Ok(Self::int8(w));
            }
            // The other quantized formats (Q5_0/Q5_1, Q2_K, Q3_K, Q5_K, Q6_K):
            // int8 blocks requantized from their values (an int8 step is under a
            // quarter of a 6-bit one), so they run on the tiled GEMM, not candle's GEMV.
            if !matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16) {
                let flat = q.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
                if let Some(w) = Q8Weights::quantize(&flat, out_features, in_features) {
                    return Ok(Self::int8(w));
                }
            }
        }
        let bytes = match dtype {
            GgmlDType::F16 | GgmlDType::BF16 => out_features * in_features * 4,
            _ => q.storage_size_in_bytes(),
        };
        let kernel = match dtype {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => Kernel::Candle {
                w: QMatMul::Tensor(q.dequantize(&Device::Cpu)?),
                dense: None,
                dense_min_rows: usize::MAX,
            },
            _ => {
                let dense = if opts.dense_batch { Some(q.dequantize(&Device::Cpu)?.t()?.contiguous()?) } else { None };
                Kernel::Candle { w: QMatMul::from_arc(Arc::new(q))?, dense, dense_min_rows: dense_min_rows(dtype) }
            }
        };
        Ok(Self { kernel, bias: None, in_features, out_features, bytes })
    }

    /// From a dense `[out, in]` tensor of any float dtype.
    pub fn from_dense(w: Tensor, opts: LoadOptions) -> Result<Self> {
        let w = w.to_dtype(candle_core::DType::F32)?;
        let (out_features, in_features) = w.dims2()?;
        if opts.quantize == Quantize::Q8_0 {
            if !opts.int8_kernel && in_features % 32 == 0 {
                return Self::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0)?, opts);
            }
            let flat = w.flatten_all()?.to_vec1::<f32>()?;
            if let Some(q) = Q8Weights::quantize(&flat, out_features, in_features) {
                return Ok(Self::int8(q));
            }
        }
        Ok(Self {
            kernel: Kernel::Candle { w: QMatMul::Tensor(w), dense: None, dense_min_rows: usize::MAX },
            bias: None,
            in_features,
            out_features,
            bytes: out_features * in_features * 4,
        })
    }

    fn int8(w: Q8Weights) -> Self {
        Self::tiled(w.bytes(), w.cols(), w.rows(), Kernel::Int8(w))
    }

    fn tiled(bytes: usize, in_features: usize, out_features: usize, kernel: Kernel) -> Self {
        Self { bytes, in_features, out_features, kernel, bias: None }
    }

    /// Attaches a bias (Qwen2-style attention projections).
    pub fn with_bias(mut self, bias: Option<Tensor>) -> Result<Self> {
        self.bias = bias.map(|b| b.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()).transpose()?;
        Ok(self)
    }

    /// Stacks projections of the same input into one: output columns are the
    /// parts' outputs side by side.
    pub fn concat(parts: Vec<Linear>) -> Result<Self> {
        let in_features = parts[0].in_features;
        if parts.iter().any(|p| p.in_features != in_features) {
            return Err(EngineError::Forward("fused projections disagree on input width".into()));
        }
        let out_features = parts.iter().map(|p| p.out_features).sum();
        let bytes = parts.iter().map(|p| p.bytes).sum();
        let bias = if parts.iter().any(|p| p.bias.is_some()) {
            Some(parts.iter().flat_map(|p| p.bias.clone().unwrap_or_else(|| vec![0.0; p.out_features])).collect())
        } else {
            None
        };
        // One matrix when every part is in the same tiled layout.
        let int8: Option<Vec<&Q8Weights>> = parts
            .iter()
            .map(|p| match &p.kernel {
                Kernel::Int8(w) => Some(w),
                _ => None,
            })
            .collect();
        let int4: Option<Vec<&Q4Weights>> = parts
            .iter()
            .map(|p| match &p.kernel {
                Kernel::Int4(w) => Some(w),
                _ => None,
            })
            .collect();
        let fused = int8
            .and_then(|w| Q8Weights::concat(&w).map(Kernel::Int8))
            .or_else(|| int4.and_then(|w| Q4Weights::concat(&w).map(Kernel::Int4)));
        let kernel = match fused {
            Some(k) => k,
            None => Kernel::Concat(
                parts
                    .into_iter()
                    .map(|mut p| {
                        p.bias = None;
                        p
                    })
                    .collect(),
            ),
        };
        Ok(Self { kernel, bias, in_features, out_features, bytes })
    }

    /// `x: [m, in]` row-major → `[m, out]`.
    pub fn forward(&self, x: &[f32], m: usize) -> Result<Vec<f32>> {
        let mut y = match &self.kernel {
            Kernel::Int8(w) => q8gemm::matmul(w, x, m),
            Kernel::Int4(w) => q4gemm::matmul(w, x, m),
            Kernel::Candle { w, dense, dense_min_rows } => {
                let xt = Tensor::from_slice(x, (m, self.in_features), &Device::Cpu)?;
                let y = match dense {
                    Some(d) if m >= *dense_min_rows => xt.matmul(d)?,
                    _ => w.forward(&xt)?,
                };
                y.flatten_all()?.to_vec1::<f32>()?
            }
            Kernel::Concat(parts) => {
                let outs = parts.iter().map(|p| p.forward(x, m)).collect::<Result<Vec<_>>>()?;
                let mut y = Vec::with_capacity(m * self.out_features);
                for r in 0..m {
                    for (p, o) in parts.iter().zip(&outs) {
                        y.extend_from_slice(&o[r * p.out_features..(r + 1) * p.out_features]);
                    }
                }
                y
            }
        };
        if let Some(b) = &self.bias {
            for row in y.chunks_exact_mut(self.out_features) {
                row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
            }
        }
        Ok(y)
    }

    /// Bytes of the weight as held for the matmul (repacked formats count their scales).
    /// Row `r` of the weight as f32 (an embedding lookup), when the kernel holds rows it can unpack.
    pub fn dequantize_row(&self, r: usize) -> Option<Vec<f32>> {
        match &self.kernel {
            Kernel::Int8(w) if r < w.rows() => Some(w.dequantize_row(r)),
            Kernel::Int4(w) if r < w.rows() => Some(w.dequantize_row(r)),
            _ => None,
        }
    }

    pub fn weight_bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes of dense f32 batch copies, if kept.
    pub fn dense_bytes(&self) -> usize {
        match &self.kernel {
            Kernel::Candle { dense: Some(d), .. } => d.elem_count() * 4,
            Kernel::Concat(parts) => parts.iter().map(|p| p.dense_bytes()).sum(),
            _ => 0,
        }
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every quantized GGUF format runs on weft's own GEMM (4-bit or int8), and
    /// agrees with candle's dequantized weights within the activations' int8 rounding.
    #[test]
    fn every_quantized_format_runs_on_our_kernels() {
        let (n, k, m) = (48, 512, 3);
        let wt = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
        for (dt, four_bit) in [
            (GgmlDType::Q4K, true),
            (GgmlDType::Q5K, false),
            (GgmlDType::Q6K, false),
            (GgmlDType::Q3K, false),
            (GgmlDType::Q2K, false),
            (GgmlDType::Q5_0, false),
            (GgmlDType::Q5_1, false),
        ] {
            let q = QTensor::quantize(&wt, dt).unwrap();
            let deq = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let file = q.storage_size_in_bytes();
            let l = Linear::from_qtensor(q, LoadOptions::default()).unwrap();
            assert!(
                matches!(l.kernel, Kernel::Int4(_)) == four_bit && !matches!(l.kernel, Kernel::Candle { .. }),
                "{dt:?}"
            );
            assert_eq!(l.dense_bytes(), 0, "{dt:?}: no dense copy");
            if four_bit {
                assert!(
                    l.weight_bytes() * 9 <= file * 10,
                    "{dt:?}: {} bytes for a {file}-byte tensor",
                    l.weight_bytes()
                );
            }
            let y = l.forward(&x, m).unwrap();
            let want: Vec<f32> =
                (0..m * n).map(|i| (0..k).map(|e| x[(i / n) * k + e] * deq[(i % n) * k + e]).sum()).collect();
            let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
            for (i, (g, w)) in y.iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 0.02 * scale, "{dt:?} [{i}] {g} vs {w}");
            }
            let row = l.dequantize_row(7).unwrap();
            let err = row.iter().zip(&deq[7 * k..8 * k]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 0.05, "{dt:?}: a row unpacks to the file's values ({err})");
        }
    }
}
