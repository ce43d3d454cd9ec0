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
    pub native_tokenizer: Option<tokenizer_bpe::Tokenizer>,
    /// Request transforms in order; the chat template is one of them.
    pub transforms: Vec<TransformStage>,
    /// `None`: the engine's native sampler.
    pub sampler: Option<WasmSamplerFactory>,
    pub failure: Failure,
    pub created: u64,
}

/// The tokenizer plugin's code compiled natively, built from the same description.
pub fn native_tokenizer(spec: &weft_engine::TokenizerSpec) -> Option<tokenizer_bpe::Tokenizer> {
    match spec {
        weft_engine::TokenizerSpec::HuggingFaceJson(j) => tokenizer_bpe::Tokenizer::from_hf_json(j).ok(),
        weft_engine::TokenizerSpec::Gguf(g) => tokenizer_bpe::Tokenizer::from_gguf(tokenizer_bpe::GgufFields {
            model: g.model.clone(),
            pre: g.pre.clone(),
            tokens: g.tokens.clone(),
            merges: g.merges.clone(),
            scores: g.scores.clone(),
            token_types: g.token_types.clone(),
            bos: g.bos_token_id,
            eos: g.eos_token_id,
            eot: g.eot_token_id,
            unk: g.unknown_token_id,
            pad: g.padding_token_id,
            add_bos: g.add_bos_token,
            add_eos: g.add_eos_token,
            add_space_prefix: g.add_space_prefix,
        })
        .ok(),
    }
}
