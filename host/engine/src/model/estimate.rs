//! How much memory a model's weights will take once loaded, read from the
//! file's tensor table without loading it, so a server given several models
//! can refuse a configuration that cannot fit before spending minutes loading
//! most of it. An estimate within a few percent of what the loaders hold
//! (checked against them in the tests), not a bound.

use std::path::Path;

use candle_core::quantized::gguf_file::Content;

use super::Quantize;
use crate::error::{EngineError, Result};

/// Bytes per weight of the int8 GEMM's layout: a byte, plus three f32 per block of 32.
const Q8_PER_WEIGHT: f64 = 44.0 / 32.0;

/// Estimated bytes the weights of the GGUF file or Hugging Face directory at
/// `path` will hold after loading with `quantize`.
pub fn weight_bytes(path: &Path, quantize: Quantize) -> Result<u64> {
    // One tensor: its element count, its bytes in the file, whether it is a matrix.
    let mut tensors: Vec<(String, u64, u64, bool)> = Vec::new();
    if path.is_dir() {
        let files = std::fs::read_dir(path).map_err(|e| EngineError::load(path, e))?;
        for f in files.filter_map(|e| e.ok().map(|e| e.path())) {
            if f.extension().and_then(|e| e.to_str()) != Some("safetensors") {
                continue;
            }
            let bytes = std::fs::read(&f).map_err(|e| EngineError::load(&f, e))?;
            let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| EngineError::load(&f, e))?;
            for (name, info) in meta.tensors() {
                let n: u64 = info.shape.iter().map(|&d| d as u64).product();
                // Held as f32 unless re-quantized.
                tensors.push((name, n, n * 4, info.shape.len() == 2));
            }
        }
    } else {
        let mut r = std::fs::File::open(path).map_err(|e| EngineError::load(path, e))?;
        let c = Content::read(&mut r).map_err(|e| EngineError::load(path, format!("not a readable GGUF file: {e}")))?;
        for (name, t) in &c.tensor_infos {
            let n = t.shape.elem_count() as u64;
            let d = t.ggml_dtype;
            let file = n / d.block_size() as u64 * d.type_size() as u64;
            // 16-bit floats are widened to f32; Q4_0/Q4_1 blocks are kept,
            // Q4_K as Q4_1 blocks, other quantized formats (Q8_0 too) in the int8 layout.
            use candle_core::quantized::GgmlDType as G;
            let held = match d {
                G::F16 | G::BF16 => n * 4,
                G::F32 | G::Q4_0 | G::Q4_1 => file,
                G::Q4K => n * 20 / 32,
                _ => (n as f64 * Q8_PER_WEIGHT) as u64,
            };
            tensors.push((name.clone(), n, held, t.shape.dims().len() == 2));
        }
    }
    let tied = !tensors.iter().any(|(n, ..)| n == "output.weight" || n == "lm_head.weight");
    let mut total = 0u64;
    let gguf = !path.is_dir();
    for (name, n, held, matrix) in &tensors {
        let q8 = (*n as f64 * Q8_PER_WEIGHT) as u64;
        let packed = match quantize {
            Quantize::Q8_0 if *matrix => q8,
            _ => *held,
        };
        let is_embedding = name == "token_embd.weight" || name.ends_with("embed_tokens.weight");
        total += match (is_embedding, gguf, tied) {
            // A GGUF table is packed: the tied head's matrix (its rows the
            // embeddings), or a table of its own. A dense checkpoint keeps its
            // table in f32, and a tied one also has the head's copy.
            (true, false, false) => *n * 4,
            (true, false, true) => *n * 4 + packed,
            _ => packed,
        };
    }
    Ok(total)
}
