//! How much memory a model's weights will take once loaded, read from the
//! file's tensor table without loading it, so a server given several models
//! can refuse a configuration that cannot fit before spending minutes loading
//! most of it. An estimate within a few percent of what the loaders hold
//! (checked against them in the tests), not a bound.

use std::path::Path;

use candle_core::quantized::gguf_file::Content;

use super::Quantize;
use crate::error::{EngineError, Result};

/// Bytes of an int8 block of 32 with its scale, per weight.
const Q8_PER_WEIGHT: f64 = 36.0 / 32.0;

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
            // 16-bit floats are widened to f32; quantized blocks are kept (4-bit stays 4-bit).
            let held = match d {
                candle_core::quantized::GgmlDType::F16 | candle_core::quantized::GgmlDType::BF16 => n * 4,
                _ => file,
            };
            tensors.push((name.clone(), n, held, t.shape.dims().len() == 2));
        }
    }
    let tied = !tensors.iter().any(|(n, ..)| n == "output.weight" || n == "lm_head.weight");
    let mut total = 0u64;
    for (name, n, held, matrix) in &tensors {
        let q8 = (*n as f64 * Q8_PER_WEIGHT) as u64;
        let is_embedding = name == "token_embd.weight" || name.ends_with("embed_tokens.weight");
        total += match quantize {
            Quantize::Q8_0 if *matrix && !is_embedding => q8,
            _ => *held,
        };
        // A tied output projection is a second copy of the embedding, in the kernel's layout.
        if tied && is_embedding {
            total += match quantize {
                Quantize::Q8_0 => q8,
                Quantize::None => *held,
            };
        }
    }
    Ok(total)
}
