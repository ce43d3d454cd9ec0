//! The request path of one model: transforms (chat template first), the
//! tokenizer plugin, the sampler (plugin or native), the engine, streaming
//! decode, stop strings, and response transforms. HTTP knows nothing of
//! this beyond [`ModelService`] and [`generate`].

pub mod generate;
pub mod stop;

use std::sync::Arc;

use weft_engine::EngineHandle;
use weft_runtime::{WasmSamplerFactory, WasmTokenizer, WasmTransform};

use crate::config::Failure;

/// A request transform and, for the chat template, its native twin (for `fallback`).
pub struct TransformStage {
    pub plugin: Arc<WasmTransform>,
    pub native_template: Option<transform_chat_template::ChatTemplate>,
}

/// Everything that serves one model.
pub struct ModelService {
    pub name: String,
    pub engine: EngineHandle,
    pub tokenizer: Arc<WasmTokenizer>,
    /// The same tokenizer compiled natively, used when the plugin fails under `fallback`.
    pub native_tokenizer: Option<weft_runtime::NativeTokenizer>,
    /// Request transforms in order; the chat template is one of them.
    pub transforms: Vec<TransformStage>,
    /// `None`: the engine's native sampler.
    pub sampler: Option<WasmSamplerFactory>,
    pub failure: Failure,
    pub created: u64,
}

