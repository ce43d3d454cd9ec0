//! {{name}}: a weft tokenizer for byte-level BPE vocabularies (GPT-2 style,
//! as GGUF files carry them). It splits text by greedy longest match against
//! the vocabulary: simple, always valid, though not always the ids the
//! model's own merges would give. Extend `load` for other vocabularies.

use std::collections::HashMap;

use weft_sdk::tokenizer::{Loaded, SpecialKind, SpecialToken, Tokenizer, TokenizerSource};
use weft_sdk::{Config, Metadata, Plugin};

pub struct Greedy;

impl Plugin for Greedy {
    fn metadata() -> Metadata {
        Metadata { name: "{{name}}".into(), version: "0.1.0".into(), description: "greedy byte-level BPE".into() }
    }

    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Greedy)
    }
}

/// GPT-2's reversible map from bytes to printable characters.
pub fn byte_chars() -> Vec<char> {
    let mut n = 0;
    (0..=255u32)
        .map(|b| {
            let keep = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
            let c = if keep { b } else { n += 1; 255 + n };
            char::from_u32(c).expect("a valid char")
        })
        .collect()
}

pub struct Vocab {
    tokens: Vec<String>,
    specials: HashMap<u32, SpecialKind>,
    ids: HashMap<String, u32>,
    to_char: Vec<char>,
    to_byte: HashMap<char, u8>,
    longest: usize,
}

impl Vocab {
    pub fn new(tokens: Vec<String>, specials: HashMap<u32, SpecialKind>) -> Self {
        let to_char = byte_chars();
        let to_byte = to_char.iter().enumerate().map(|(b, c)| (*c, b as u8)).collect();
        // Special tokens match too: a chat template writes them as text.
        let ids = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let longest = tokens.iter().map(|t| t.chars().count()).max().unwrap_or(1);
        Vocab { tokens, specials, ids, to_char, to_byte, longest }
    }
}

impl Loaded for Vocab {
    fn encode(&self, text: &str, _add_special: bool) -> Result<Vec<u32>, String> {
        let s: Vec<char> = text.bytes().map(|b| self.to_char[b as usize]).collect();
        let (mut out, mut i) = (Vec::new(), 0);
        while i < s.len() {
            let n = (1..=self.longest.min(s.len() - i))
                .rev()
                .find(|&n| self.ids.contains_key(&s[i..i + n].iter().collect::<String>()))
                .ok_or_else(|| format!("no token covers {:?}", s[i]))?;
            out.push(self.ids[&s[i..i + n].iter().collect::<String>()]);
            i += n;
        }
        Ok(out)
    }

    fn vocab_size(&self) -> u32 {
        self.tokens.len() as u32
    }

    fn special_tokens(&self) -> Vec<SpecialToken> {
        self.specials.iter().map(|(&id, &kind)| SpecialToken { id, text: self.tokens[id as usize].clone(), kind }).collect()
    }

    fn token_bytes(&self, id: u32) -> Vec<u8> {
        let t = self.tokens.get(id as usize).map(String::as_str).unwrap_or("");
        if self.specials.contains_key(&id) {
            return t.as_bytes().to_vec();
        }
        t.chars().map(|c| self.to_byte.get(&c).copied().unwrap_or(b'?')).collect()
    }

    fn is_special(&self, id: u32) -> bool {
        self.specials.contains_key(&id)
    }
}

impl Tokenizer for Greedy {
    type Loaded = Vocab;

    fn load(&mut self, source: TokenizerSource) -> Result<Vocab, String> {
        let TokenizerSource::Gguf(g) = source else {
            return Err("this tokenizer reads byte-level BPE (gpt2) vocabularies from GGUF files".into());
        };
        if g.model != "gpt2" {
            return Err(format!("vocabulary model `{}` is not byte-level BPE (gpt2)", g.model));
        }
        let mut specials: HashMap<u32, SpecialKind> =
            g.token_types.iter().enumerate().filter(|(_, t)| **t == 3).map(|(i, _)| (i as u32, SpecialKind::Control)).collect();
        for (id, kind) in [(g.bos, SpecialKind::Bos), (g.eos, SpecialKind::Eos), (g.eot, SpecialKind::Eot), (g.pad, SpecialKind::Pad)] {
            if let Some(id) = id {
                specials.insert(id, kind);
            }
        }
        Ok(Vocab::new(g.tokens, specials))
    }
}

weft_sdk::export_tokenizer!(Greedy);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_text_longest_token_first() {
        let mut tokens: Vec<String> = byte_chars().into_iter().map(String::from).collect();
        tokens.extend(["he", "hel", "hello", "<eos>"].map(String::from));
        let v = Vocab::new(tokens, HashMap::from([(259, SpecialKind::Eos)]));
        let ids = v.encode("hello, héllo", false).unwrap();
        assert_eq!(ids[0], 258);
        assert_eq!(v.decode(&ids, true).unwrap(), "hello, héllo");
        let mut with_eos = ids.clone();
        with_eos.push(259);
        assert_eq!(v.decode(&with_eos, false).unwrap(), "hello, héllo<eos>");
    }
}
