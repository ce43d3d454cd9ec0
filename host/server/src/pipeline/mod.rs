//! The request path of one model: transforms (chat template first), the
//! tokenizer plugin, the sampler (plugin or native), the engine, streaming
//! decode, stop strings, and response transforms. HTTP knows nothing of
//! this beyond [`ModelService`] and [`generate`].

pub mod generate;
pub mod stop;

use std::sync::Arc;

use weft_engine::EngineHandle;
use weft_runtime::{WasmSamplerFactory, WasmTokenizer, WasmTransform};

/// Everything that serves one model.
pub struct ModelService {
    pub name: String,
    pub engine: EngineHandle,
    pub tokenizer: Arc<WasmTokenizer>,
    /// Request transforms in order; the chat template is one of them.
    pub transforms: Vec<Arc<WasmTransform>>,
    /// `None`: the engine's native sampler.
    pub sampler: Option<WasmSamplerFactory>,
    pub created: u64,
}
