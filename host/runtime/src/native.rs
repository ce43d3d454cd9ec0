//! The tokenizer plugin's own code compiled into the host: the native twin the
//! server falls back to under the `fallback` policy, and the baseline of the
//! plugin benchmark. Built from the same model description as the plugin.

use weft_engine::TokenizerSpec;

pub use tokenizer_bpe::Tokenizer as NativeTokenizer;

/// Builds the native tokenizer; `None` if the description is not one it supports.
pub fn native_tokenizer(spec: &TokenizerSpec) -> Option<NativeTokenizer> {
    match spec {
        TokenizerSpec::HuggingFaceJson(j) => NativeTokenizer::from_hf_json(j).ok(),
        TokenizerSpec::Gguf(g) => NativeTokenizer::from_gguf(tokenizer_bpe::GgufFields {
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
            charsmap: g.precompiled_charsmap.clone(),
            remove_extra_whitespaces: g.remove_extra_whitespaces,
        })
        .ok(),
    }
}
