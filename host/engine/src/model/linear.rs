//! A projection `y = x W^T (+ b)` whose weight is either quantized (GGUF block
//! formats, or INT8 produced at load) or dense f32.
//!
//! Quantization at load happens here so every loader offers it the same way:
//! `Quantize::Q8_0` turns dense f32/f16/bf16 weights into Q8_0 blocks and
//! re-quantizes GGUF tensors of other formats.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};
use std::sync::Arc;

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

/// One weight matrix plus optional bias.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: QMatMul,
    bias: Option<Tensor>,
    bytes: usize,
    out_features: usize,
}

impl Linear {
    /// From a GGUF tensor, optionally re-quantized.
    pub fn from_qtensor(q: QTensor, quantize: Quantize) -> Result<Self> {
        let out_features = q.shape().dims()[0];
        let q = match quantize {
            Quantize::Q8_0 if q.dtype() != GgmlDType::Q8_0 && q.shape().dims()[1] % 32 == 0 => {
                let dense = q.dequantize(&candle_core::Device::Cpu)?;
                QTensor::quantize(&dense, GgmlDType::Q8_0)?
            }
            _ => q,
        };
        let bytes = q.storage_size_in_bytes();
        let weight = match q.dtype() {
            // candle dequantizes float formats to a dense f32 matmul.
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
                QMatMul::Tensor(q.dequantize(&candle_core::Device::Cpu)?)
            }
            _ => QMatMul::from_arc(Arc::new(q))?,
        };
        Ok(Self { weight, bias: None, bytes, out_features })
    }

    /// From a dense `[out, in]` tensor of any float dtype.
    pub fn from_dense(w: Tensor, quantize: Quantize) -> Result<Self> {
        let w = w.to_dtype(candle_core::DType::F32)?;
        let (out_features, in_features) = w.dims2()?;
        match quantize {
            Quantize::Q8_0 if in_features % 32 == 0 => {
                Self::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0)?, Quantize::None)
            }
            _ => Ok(Self {
                bytes: out_features * in_features * 4,
                weight: QMatMul::Tensor(w),
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
        let y = self.weight.forward(x)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// Bytes held by the weight.
    pub fn weight_bytes(&self) -> usize {
        self.bytes
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }
}
