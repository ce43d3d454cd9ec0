//! weft's first-party tokenizer plugin.
//!
//! Byte-level BPE with every regex pre-tokenizer llama.cpp names ([`pretokenize`]) and
//! SentencePiece BPE with byte fallback (Llama 2, Phi-3), WordPiece (BERT,
//! [`wordpiece`]) and Unigram (T5, [`unigram`]), built from a GGUF
//! file's `tokenizer.ggml.*` fields or from a Hugging Face `tokenizer.json`.
//! It reproduces llama.cpp's tokenizer test fixtures exactly.
//!
//! The algorithm lives in plain Rust ([`Tokenizer`]) so it can be tested and
//! benchmarked natively; on wasm32 the same type is exported as the plugin.

mod bpe;
pub mod byte_level;
mod hf_json;
pub mod pretokenize;
pub mod unigram;
pub mod vocab;
mod wordpiece;

use pretokenize::PreTokenizer;
pub use vocab::{Kind, Pre, Vocab};

/// The GGUF fields the tokenizer is built from (mirrors the WIT record).
#[derive(Debug, Clone, Default)]
pub struct GgufFields {
    pub model: String,
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    pub merges: Vec<String>,
    pub scores: Vec<f32>,
    pub token_types: Vec<i32>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub add_space_prefix: Option<bool>,
    /// Unigram: SentencePiece's precompiled normalization map.
    pub charsmap: Vec<u8>,
    pub remove_extra_whitespaces: Option<bool>,
}

/// First occurrence of `needle` in `text` at or after byte `from`.
fn find_from(text: &str, needle: &str, from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    text.get(from..)?.find(needle).map(|p| p + from)
}

/// A ready tokenizer.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    vocab: Vocab,
    pre: Option<PreTokenizer>,
    /// WordPiece's word splitter.
    words: Option<fancy_regex::Regex>,
    /// The unigram model's normalizer and scores.
    unigram: Option<unigram::Unigram>,
    specials: Vec<(String, u32)>,
    byte_tokens: Vec<Option<u32>>,
}

impl Tokenizer {
    /// Builds from GGUF fields.
    pub fn from_gguf(f: GgufFields) -> Result<Self, String> {
        if f.tokens.is_empty() {
            return Err("the tokenizer has no tokens".into());
        }
        let kind = match f.model.as_str() {
            "gpt2" => Kind::ByteLevel,
            "llama" => Kind::SentencePiece,
            "bert" => Kind::WordPiece,
            "t5" => Kind::Unigram,
            other => return Err(format!("unsupported tokenizer model `{other}` (supported: gpt2, llama, bert, t5)")),
        };
        let pre_name = f.pre.clone().unwrap_or_else(|| "default".into());
        let vocab = Vocab {
            kind,
            ids: Vocab::build_ids(&f.tokens),
            ranks: Vocab::build_ranks(&f.merges),
            types: if f.token_types.is_empty() { vec![vocab::TYPE_NORMAL; f.tokens.len()] } else { f.token_types },
            scores: f.scores,
            tokens: f.tokens,
            bos: f.bos,
            eos: f.eos,
            eot: f.eot,
            unk: f.unk,
            pad: f.pad,
            // BERT wraps a text in [CLS] ... [SEP] (its BOS and EOS).
            add_bos: f.add_bos.unwrap_or(kind != Kind::ByteLevel),
            add_eos: f.add_eos.unwrap_or(kind == Kind::WordPiece),
            add_space_prefix: f.add_space_prefix.unwrap_or(matches!(kind, Kind::SentencePiece | Kind::Unigram)),
            ignore_merges: pretokenize::ignores_merges(&pre_name),
            pre: Pre::Named(pre_name),
        };
        let unigram = match kind {
            Kind::Unigram => {
                Some(unigram::Unigram::new(&vocab, &f.charsmap, f.remove_extra_whitespaces.unwrap_or(true))?)
            }
            _ => None,
        };
        let mut t = Self::new(vocab)?;
        t.unigram = unigram;
        Ok(t)
    }

    /// Builds from a Hugging Face `tokenizer.json`.
    pub fn from_hf_json(json: &str) -> Result<Self, String> {
        Self::new(hf_json::parse(json)?)
    }

    fn new(vocab: Vocab) -> Result<Self, String> {
        let pre = match (&vocab.kind, &vocab.pre) {
            (Kind::SentencePiece | Kind::WordPiece | Kind::Unigram, _) => None,
            (Kind::ByteLevel, Pre::Named(n)) => Some(PreTokenizer::new(&pretokenize::named(n)?)?),
            (Kind::ByteLevel, Pre::Regexes(r)) => Some(PreTokenizer::new(r)?),
        };
        let byte_tokens = (0..256u32).map(|b| vocab.ids.get(&format!("<0x{b:02X}>")).copied()).collect();
        let words = (vocab.kind == Kind::WordPiece).then(wordpiece::splitter);
        Ok(Self { specials: vocab.parsable_specials(), vocab, pre, words, unigram: None, byte_tokens })
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    pub fn vocab_size(&self) -> u32 {
        self.vocab.tokens.len() as u32
    }

    /// Token ids of `text`. Special-token text becomes its id; `add_special` adds BOS/EOS.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, String> {
        let mut out = Vec::new();
        if add_special && self.vocab.add_bos {
            out.push(self.vocab.bos.ok_or("the model asks for BOS but has no BOS token")?);
        }
        let mut prev_special = true;
        for frag in self.partition(text) {
            match frag {
                Fragment::Special(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(t) => {
                    self.encode_text(t, prev_special, &mut out)?;
                    prev_special = false;
                }
            }
        }
        if add_special && self.vocab.add_eos {
            out.push(self.vocab.eos.ok_or("the model asks for EOS but has no EOS token")?);
        }
        Ok(out)
    }

    fn encode_text(&self, text: &str, after_special: bool, out: &mut Vec<u32>) -> Result<(), String> {
        match self.vocab.kind {
            Kind::WordPiece => {
                wordpiece::encode(&self.vocab, self.words.as_ref().expect("wordpiece has a splitter"), text, out)?;
            }
            Kind::Unigram => {
                self.unigram.as_ref().expect("built with the vocabulary").encode(&self.vocab, text, out)?
            }
            Kind::ByteLevel => {
                let pre = self.pre.as_ref().expect("byte-level has a pre-tokenizer");
                for word in pre.split(text)? {
                    let mapped = byte_level::encode(word.as_bytes());
                    for piece in bpe::merge_by_rank(&self.vocab, &mapped) {
                        match self.vocab.ids.get(piece) {
                            Some(&id) => out.push(id),
                            None => {
                                // A piece outside the vocabulary: fall back to its characters.
                                for c in piece.chars() {
                                    if let Some(&id) = self.vocab.ids.get(c.to_string().as_str()) {
                                        out.push(id);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Kind::SentencePiece => {
                let mut s = String::with_capacity(text.len() + 3);
                if self.vocab.add_space_prefix && after_special {
                    s.push(' ');
                }
                s.push_str(text);
                let escaped = s.replace(' ', "\u{2581}");
                for piece in bpe::merge_by_score(&self.vocab, &escaped) {
                    match self.vocab.ids.get(piece) {
                        Some(&id) => out.push(id),
                        None => {
                            for b in piece.bytes() {
                                match self.byte_tokens[b as usize].or(self.vocab.unk) {
                                    Some(id) => out.push(id),
                                    None => return Err(format!("no token for byte 0x{b:02X} and no unknown token")),
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Splits `text` at special-token text (the earliest occurrence, longest
    /// token at a position). Linear in the text: each special token's next
    /// occurrence is remembered and searched for again only once the cursor has
    /// passed it, so each token scans the text at most once in all. (Searching
    /// every token from the cursor at every split made a prompt of 100,000
    /// `<|im_end|>` quadratic: seconds instead of milliseconds.)
    fn partition<'a>(&self, text: &'a str) -> Vec<Fragment<'a>> {
        let mut out = Vec::new();
        // Next occurrence of each special at or after the cursor (None: no more).
        let mut next: Vec<Option<usize>> = self.specials.iter().map(|(s, _)| find_from(text, s, 0)).collect();
        let mut cursor = 0;
        while cursor < text.len() {
            let mut best: Option<(usize, usize, u32)> = None;
            for (i, (s, id)) in self.specials.iter().enumerate() {
                if next[i].is_some_and(|p| p < cursor) {
                    next[i] = find_from(text, s, cursor);
                }
                if let Some(pos) = next[i]
                    && best.is_none_or(|(bp, bl, _)| pos < bp || (pos == bp && s.len() > bl))
                {
                    best = Some((pos, s.len(), *id));
                }
            }
            match best {
                Some((pos, len, id)) => {
                    if pos > cursor {
                        out.push(Fragment::Text(&text[cursor..pos]));
                    }
                    out.push(Fragment::Special(id));
                    cursor = pos + len;
                }
                None => {
                    out.push(Fragment::Text(&text[cursor..]));
                    break;
                }
            }
        }
        out
    }

    /// The bytes token `id` stands for (special tokens: their text).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(t) = self.vocab.tokens.get(id as usize) else { return Vec::new() };
        let ty = self.vocab.token_type(id);
        if ty == vocab::TYPE_CONTROL || ty == vocab::TYPE_USER_DEFINED {
            return t.as_bytes().to_vec();
        }
        match self.vocab.kind {
            Kind::ByteLevel => byte_level::decode(t),
            Kind::WordPiece | Kind::Unigram => t.replace('\u{2581}', " ").into_bytes(),
            Kind::SentencePiece => {
                if ty == vocab::TYPE_BYTE
                    && let Some(hex) = t.strip_prefix("<0x").and_then(|h| h.strip_suffix('>'))
                    && let Ok(b) = u8::from_str_radix(hex, 16)
                {
                    return vec![b];
                }
                t.replace('\u{2581}', " ").into_bytes()
            }
        }
    }

    pub fn is_special(&self, id: u32) -> bool {
        self.vocab.is_special(id)
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let mut bytes = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            if skip_special && self.is_special(id) {
                continue;
            }
            let b = self.token_bytes(id);
            // SentencePiece adds a space before the first word, and WordPiece
            // marks every word with one: take the first back off.
            if i == 0
                && (matches!(self.vocab.kind, Kind::SentencePiece | Kind::Unigram) && self.vocab.add_space_prefix
                    || self.vocab.kind == Kind::WordPiece)
                && b.first() == Some(&b' ')
            {
                bytes.extend_from_slice(&b[1..]);
            } else {
                bytes.extend(b);
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Special tokens with their roles.
    pub fn special_tokens(&self) -> Vec<(u32, String, &'static str)> {
        let v = &self.vocab;
        let mut out = Vec::new();
        for (id, kind) in [(v.bos, "bos"), (v.eos, "eos"), (v.eot, "eot"), (v.unk, "unk"), (v.pad, "pad")] {
            if let Some(id) = id {
                out.push((id, v.tokens.get(id as usize).cloned().unwrap_or_default(), kind));
            }
        }
        for (i, t) in v.tokens.iter().enumerate() {
            let id = i as u32;
            if out.iter().any(|(x, _, _)| *x == id) {
                continue;
            }
            match v.token_type(id) {
                vocab::TYPE_CONTROL => out.push((id, t.clone(), "control")),
                vocab::TYPE_USER_DEFINED => out.push((id, t.clone(), "user-defined")),
                _ => {}
            }
        }
        out
    }
}

enum Fragment<'a> {
    Text(&'a str),
    Special(u32),
}

#[cfg(target_arch = "wasm32")]
mod component;
