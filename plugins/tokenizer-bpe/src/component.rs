//! The plugin export: the native [`Tokenizer`](crate::Tokenizer) behind the SDK's trait.

use weft_sdk::tokenizer::{GgufTokenizer, Loaded, SpecialKind, SpecialToken, TokenizerSource};
use weft_sdk::{Config, Metadata, Plugin};

struct BpePlugin;

struct Bpe(crate::Tokenizer);

impl Plugin for BpePlugin {
    fn metadata() -> Metadata {
        Metadata {
            name: "tokenizer-bpe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn init(_config: &Config) -> Result<Self, String> {
        Ok(BpePlugin)
    }
}

impl weft_sdk::tokenizer::Tokenizer for BpePlugin {
    type Loaded = Bpe;

    fn load(&mut self, source: TokenizerSource) -> Result<Bpe, String> {
        let t = match source {
            TokenizerSource::HfJson(json) => crate::Tokenizer::from_hf_json(&json)?,
            TokenizerSource::Gguf(g) => crate::Tokenizer::from_gguf(fields(g))?,
        };
        Ok(Bpe(t))
    }
}

impl Loaded for Bpe {
    fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, String> {
        self.0.encode(text, add_special)
    }

    fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, String> {
        Ok(self.0.decode(ids, skip_special))
    }

    fn vocab_size(&self) -> u32 {
        self.0.vocab_size()
    }

    fn special_tokens(&self) -> Vec<SpecialToken> {
        self.0
            .special_tokens()
            .into_iter()
            .map(|(id, text, kind)| SpecialToken {
                id,
                text,
                kind: match kind {
                    "bos" => SpecialKind::Bos,
                    "eos" => SpecialKind::Eos,
                    "eot" => SpecialKind::Eot,
                    "unk" => SpecialKind::Unk,
                    "pad" => SpecialKind::Pad,
                    "user-defined" => SpecialKind::UserDefined,
                    _ => SpecialKind::Control,
                },
            })
            .collect()
    }

    fn token_bytes(&self, id: u32) -> Vec<u8> {
        self.0.token_bytes(id)
    }

    fn is_special(&self, id: u32) -> bool {
        self.0.is_special(id)
    }
}

fn fields(g: GgufTokenizer) -> crate::GgufFields {
    crate::GgufFields {
        model: g.model,
        pre: g.pre,
        tokens: g.tokens,
        merges: g.merges,
        scores: g.scores,
        token_types: g.token_types,
        bos: g.bos,
        eos: g.eos,
        eot: g.eot,
        unk: g.unk,
        pad: g.pad,
        add_bos: g.add_bos,
        add_eos: g.add_eos,
        add_space_prefix: g.add_space_prefix,
        charsmap: g.precompiled_charsmap,
        remove_extra_whitespaces: g.remove_extra_whitespaces,
    }
}

weft_sdk::export_tokenizer!(BpePlugin);
