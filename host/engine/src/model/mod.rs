//! Models: loading (GGUF or Hugging Face directory), the Llama-family forward
//! pass over ragged batches, and the default model's fetcher.
//!
//! Loaders produce one [`LoadedModel`]; the engine never asks which format the
//! weights came from. What the file carries beside the weights (tokenizer,
//! chat template, end-of-sequence ids) is kept for the plugins built from it.

pub mod attention;
pub mod batch;
pub mod config;
pub mod estimate;
pub mod fetch;
mod gguf;
mod hf;
pub mod kernels;
pub mod linear;
pub mod llama;
pub mod rope;
pub mod tokenizer_spec;

use std::path::Path;

pub use batch::ForwardBatch;
pub use config::LlamaConfig;
pub use linear::{LoadOptions, Quantize};
pub use llama::{LlamaModel, LlamaWeights};
pub use tokenizer_spec::{GgufTokenizer, TokenizerSpec};

use crate::error::{EngineError, Result};

/// A model as read from disk, before it is handed to an engine.
pub struct LoadedModel {
    /// Display name (GGUF `general.name`, or the file/directory name).
    pub name: String,
    /// Architecture tag from the file (`llama`, `qwen2`, ...).
    pub architecture: String,
    pub config: LlamaConfig,
    pub weights: LlamaWeights,
    pub tokenizer: Option<TokenizerSpec>,
    pub chat_template: Option<String>,
    /// Tokens that end generation (EOS and end-of-turn).
    pub eos_token_ids: Vec<u32>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.name)
            .field("architecture", &self.architecture)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The tokenizer description and chat template of a model, without loading
/// its weights (also works on vocab-only GGUF files).
pub fn read_tokenizer(path: &Path) -> Result<(Option<TokenizerSpec>, Option<String>)> {
    if path.is_dir() {
        let tok = std::fs::read_to_string(path.join("tokenizer.json")).ok().map(TokenizerSpec::HuggingFaceJson);
        let template = std::fs::read_to_string(path.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("chat_template").and_then(|t| t.as_str()).map(str::to_owned));
        Ok((tok, template))
    } else {
        gguf::read_tokenizer(path)
    }
}

/// Loads a GGUF file or a Hugging Face directory.
pub fn load(path: &Path, opts: LoadOptions) -> Result<LoadedModel> {
    if path.is_dir() {
        hf::load(path, opts)
    } else if path.exists() {
        gguf::load(path, opts)
    } else {
        Err(EngineError::load(path, "no such file or directory"))
    }
}
