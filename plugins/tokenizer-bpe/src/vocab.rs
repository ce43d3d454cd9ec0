//! The vocabulary as the model describes it, whichever format it came in.

use std::collections::HashMap;

/// llama.cpp token types.
pub const TYPE_NORMAL: i32 = 1;
pub const TYPE_UNKNOWN: i32 = 2;
pub const TYPE_CONTROL: i32 = 3;
pub const TYPE_USER_DEFINED: i32 = 4;
pub const TYPE_BYTE: i32 = 6;

/// Which algorithm turns a word into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Byte-level BPE: bytes mapped to printable characters, merges by rank.
    ByteLevel,
    /// SentencePiece BPE: spaces as `▁`, merges by token score, byte fallback `<0xXX>`.
    SentencePiece,
    /// WordPiece (BERT): greedy longest match, word-initial tokens marked `▁`.
    WordPiece,
    /// Unigram (T5): normalized text cut into the highest-scoring tokens.
    Unigram,
}

/// Everything the tokenizer needs, independent of the source format.
#[derive(Debug, Clone)]
pub struct Vocab {
    pub kind: Kind,
    /// Pre-tokenizer name (llama.cpp's `tokenizer.ggml.pre`), or a regex from tokenizer.json.
    pub pre: Pre,
    pub tokens: Vec<String>,
    pub types: Vec<i32>,
    pub scores: Vec<f32>,
    pub ids: HashMap<String, u32>,
    /// Merge rank of a pair, by `left + " " + right`.
    pub ranks: HashMap<String, u32>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    pub add_space_prefix: bool,
    /// Whole words found in the vocabulary skip merging (Llama 3).
    pub ignore_merges: bool,
}

/// How text is split into words before BPE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pre {
    /// A llama.cpp pre-tokenizer name.
    Named(String),
    /// Regexes applied in sequence (from a tokenizer.json).
    Regexes(Vec<String>),
}

impl Vocab {
    pub fn build_ids(tokens: &[String]) -> HashMap<String, u32> {
        let mut ids = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            // First occurrence wins, as in llama.cpp.
            ids.entry(t.clone()).or_insert(i as u32);
        }
        ids
    }

    pub fn build_ranks(merges: &[String]) -> HashMap<String, u32> {
        merges.iter().enumerate().map(|(i, m)| (m.clone(), i as u32)).collect()
    }

    pub fn token_type(&self, id: u32) -> i32 {
        self.types.get(id as usize).copied().unwrap_or(TYPE_NORMAL)
    }

    /// Control tokens (and the declared BOS/EOS/EOT/PAD) are "special": skipped by `skip_special`.
    pub fn is_special(&self, id: u32) -> bool {
        self.token_type(id) == TYPE_CONTROL || [self.bos, self.eos, self.eot, self.pad].contains(&Some(id))
    }

    /// Tokens whose literal text in the input is turned into the token itself.
    pub fn parsable_specials(&self) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = self
            .tokens
            .iter()
            .enumerate()
            .filter(|(i, t)| {
                let ty = self.token_type(*i as u32);
                !t.is_empty() && (ty == TYPE_CONTROL || ty == TYPE_USER_DEFINED)
            })
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        // Longest first, so `<|im_start|>` wins over a shorter prefix token.
        out.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        out
    }
}
