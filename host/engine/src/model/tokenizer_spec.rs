//! What a model file says about its tokenizer, handed unchanged to the
//! tokenizer plugin so it can be built from the model file alone.

/// The tokenizer description carried by a model.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenizerSpec {
    /// A Hugging Face `tokenizer.json`, verbatim.
    HuggingFaceJson(String),
    /// The `tokenizer.ggml.*` fields of a GGUF file.
    Gguf(GgufTokenizer),
}

/// The `tokenizer.ggml.*` metadata of a GGUF file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GgufTokenizer {
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE), `llama` (SentencePiece), ...
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer name (`smollm`, `llama-bpe`, `gpt-2`, ...).
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    pub merges: Vec<String>,
    pub scores: Vec<f32>,
    /// llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    pub token_types: Vec<i32>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub eot_token_id: Option<u32>,
    pub unknown_token_id: Option<u32>,
    pub padding_token_id: Option<u32>,
    pub add_bos_token: Option<bool>,
    pub add_eos_token: Option<bool>,
    /// SentencePiece: prepend a space to the text (`tokenizer.ggml.add_space_prefix`).
    pub add_space_prefix: Option<bool>,
    /// Unigram (`t5`): the normalizer's precompiled character map (`tokenizer.ggml.precompiled_charsmap`).
    pub precompiled_charsmap: Vec<u8>,
    /// Unigram: `tokenizer.ggml.remove_extra_whitespaces`.
    pub remove_extra_whitespaces: Option<bool>,
}
