//! A projection `y = x W^T (+ b)` whose weight is either quantized (GGUF block
//! formats, or INT8 produced at load) or dense f32.
//!
//! Quantization at load happens here so every loader offers it the same way:
//! `Quantize::Q8_0` turns dense f32/f16/bf16 weights into Q8_0 blocks and
//! re-quantizes GGUF tensors of other formats.
//!
//! candle's quantized CPU matmul is a GEMV per row: it runs at the same
//! ~20-50 GFLOP/s whatever the number of rows, while f32 GEMM reaches
//! 100-170 GFLOP/s on batches (see `examples/mm_probe.rs`). So a quantized
//! weight may also keep a dense f32 copy ([`LoadOptions::dense_batch`]): steps
//! with at least [`DENSE_MIN_ROWS`] rows (prefill chunks, wide decode batches)
//! use it, single-sequence decode keeps streaming the compact blocks.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};
use std::sync::Arc;

use super::kernels::q8gemm::Q8Weights;
use crate::error::{EngineError, Result};

/// Post-training weight quantization applied while loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantize {
    /// Keep weights in the format they were stored in.
    #[default]
    None,
    /// INT8 blocks of 32 with one f16 scale (GGML Q8_0).
    Q8_0,
}

impl std::str::FromStr for Quantize {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" | "" => Ok(Quantize::None),
            "q8_0" | "int8" => Ok(Quantize::Q8_0),
            other => Err(EngineError::InvalidRequest(format!(
                "unknown quantize `{other}` (expected `none` or `q8_0`)"
            ))),
        }
    }
}

/// How weights are prepared at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    pub quantize: Quantize,
    /// Keep a dense f32 copy of quantized weights for batched steps (faster
    /// prefill and wide decode, at 4 bytes per parameter of extra memory).
    pub dense_batch: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { quantize: Quantize::None, dense_batch: true }
    }
}

impl LoadOptions {
    pub fn quantized(quantize: Quantize) -> Self {
        Self { quantize, ..Self::default() }
    }
}

/// Rows from which the dense copy beats candle's quantized kernel, by format
/// (measured with `examples/mm_probe.rs`: f32 GEMM passes Q4_1 GEMV at ~4 rows
/// and Q8_0 at ~16).
fn dense_min_rows(dtype: GgmlDType) -> usize {
    match dtype {
        GgmlDType::Q8_0 | GgmlDType::Q8_1 => 16,
        GgmlDType::Q4_0 | GgmlDType::Q4_1 => 4,
        _ => 8,
    }
}

/// The kernel a weight runs on.
#[derive(Debug, Clone)]
enum Kernel {
    /// Our tiled int8 GEMM (Q4_0, Q4_1, Q8_0 repacked losslessly; f32 quantized on request).
    Int8(Q8Weights),
    /// candle's matmul: dense f32, or quantized formats our kernel does not take (K-quants).
    Candle(QMatMul),
}

/// One weight matrix plus optional bias.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Kernel,
    /// Dense f32 copy stored transposed (`[in, out]`, contiguous) so GEMM reads it row-major.
    dense: Option<Tensor>,
    dense_min_rows: usize,
    bias: Option<Tensor>,
    bytes: usize,
    out_features: usize,
}

impl Linear {
    /// From a GGUF tensor, optionally re-quantized.
    pub fn from_qtensor(q: QTensor, opts: LoadOptions) -> Result<Self> {
        let out_features = q.shape().dims()[0];
        let q = match opts.quantize {
            Quantize::Q8_0 if q.dtype() != GgmlDType::Q8_0 && q.shape().dims()[1] % 32 == 0 => {
                let dense = q.dequantize(&candle_core::Device::Cpu)?;
                QTensor::quantize(&dense, GgmlDType::Q8_0)?
            }
            _ => q,
        };
        let q_dtype = q.dtype();
        if let Some(w) = Q8Weights::from_qtensor(&q) {
            return Ok(Self {
                bytes: w.bytes(),
                weight: Kernel::Int8(w),
                dense: None,
                dense_min_rows: usize::MAX,
                bias: None,
                out_features,
            });
        }
        let bytes = q.storage_size_in_bytes();
        let (weight, dense) = match q.dtype() {
            // candle dequantizes float formats to a dense f32 matmul.
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
                (Kernel::Candle(QMatMul::Tensor(q.dequantize(&candle_core::Device::Cpu)?)), None)
            }
            _ => {
                let dense = if opts.dense_batch {
                    Some(q.dequantize(&candle_core::Device::Cpu)?.t()?.contiguous()?)
                } else {
                    None
                };
                (Kernel::Candle(QMatMul::from_arc(Arc::new(q))?), dense)
            }
        };
        let dense_min_rows = dense_min_rows(q_dtype);
        Ok(Self { weight, dense, dense_min_rows, bias: None, bytes, out_features })
    }

    /// From a dense `[out, in]` tensor of any float dtype.
    pub fn from_dense(w: Tensor, opts: LoadOptions) -> Result<Self> {
        let w = w.to_dtype(candle_core::DType::F32)?;
        let (out_features, in_features) = w.dims2()?;
        match opts.quantize {
            Quantize::Q8_0 if in_features % 32 == 0 => {
                let q = QTensor::quantize(&w, GgmlDType::Q8_0)?;
                let mut l = Self::from_qtensor(q, LoadOptions { quantize: Quantize::None, dense_batch: false })?;
                if opts.dense_batch {
                    l.dense = Some(w.t()?.contiguous()?);
                }
                Ok(l)
            }
            _ => Ok(Self {
                bytes: out_features * in_features * 4,
                weight: Kernel::Candle(QMatMul::Tensor(w)),
                dense: None,
                dense_min_rows: usize::MAX,
                bias: None,
                out_features,
            }),
        }
    }

    /// Attaches a bias (Qwen2-style attention projections).
    pub fn with_bias(mut self, bias: Option<Tensor>) -> Result<Self> {
        self.bias = bias.map(|b| b.to_dtype(candle_core::DType::F32)).transpose()?;
        Ok(self)
    }

    /// `x: [n, in] -> [n, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.dense {
            Some(d) if x.dim(0)? >= self.dense_min_rows => x.matmul(d)?,
            _ => match &self.weight {
                Kernel::Candle(w) => w.forward(x)?,
                Kernel::Int8(w) => {
                    let (m, _) = x.dims2()?;
                    let xs = x.flatten_all()?.to_vec1::<f32>()?;
                    let y = super::kernels::q8gemm::matmul(w, &xs, m);
                    Tensor::from_vec(y, (m, w.rows()), x.device())?
                }
            },
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// Bytes of the weight in its stored (possibly quantized) format.
    pub fn weight_bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes of the dense batch copy, if kept.
    pub fn dense_bytes(&self) -> usize {
        self.dense.as_ref().map_or(0, |d| d.elem_count() * 4)
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }
}
