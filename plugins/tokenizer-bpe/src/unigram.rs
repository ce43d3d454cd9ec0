//! Unigram (T5, SentencePiece's unigram model; llama.cpp's `UGM`).
//!
//! Text is normalized first: SentencePiece's precompiled character map (a
//! double array of byte-string keys, longest match wins, each mapped to a
//! replacement string), then whitespace: collapsed and trimmed
//! (`remove_extra_whitespaces`, the default), a `▁` in front of the text
//! (`add_space_prefix`, the default), every space written as `▁`. The
//! normalized text is then cut into the tokens whose scores sum highest
//! (Viterbi over every vocabulary token that matches at each position). A
//! user-defined token matching at a position is taken there; a character no
//! token starts with becomes the unknown token, scored 10 below the lowest
//! score, and runs of unknowns are one unknown.

use crate::vocab::{TYPE_NORMAL, TYPE_USER_DEFINED, Vocab};

const UNUSED: i32 = 5;

/// SentencePiece's precompiled character map: `u32` size of the double
/// array in bytes, the array's `u32` units, then NUL-terminated replacements.
#[derive(Debug, Clone)]
pub struct CharsMap {
    units: Vec<u32>,
    strings: Vec<u8>,
}

impl CharsMap {
    pub fn parse(blob: &[u8]) -> Result<Option<Self>, String> {
        if blob.is_empty() {
            return Ok(None);
        }
        let bad = || "the precompiled character map is malformed".to_string();
        let size = u32::from_le_bytes(blob.get(..4).ok_or_else(bad)?.try_into().expect("4 bytes")) as usize;
        let array = blob.get(4..4 + size).filter(|a| a.len() % 4 == 0).ok_or_else(bad)?;
        let units = array.chunks_exact(4).map(|u| u32::from_le_bytes(u.try_into().expect("4 bytes"))).collect();
        Ok(Some(Self { units, strings: blob[4 + size..].to_vec() }))
    }

    fn unit(&self, i: usize) -> Option<u32> {
        self.units.get(i).copied()
    }

    /// The double array's unit fields (Darts-clone's packing).
    fn base(u: u32) -> usize {
        ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize
    }
    fn label(u: u32) -> u32 {
        u & ((1 << 31) | 0xff)
    }
    fn leaf(u: u32) -> bool {
        (u >> 8) & 1 == 1
    }
    fn value(u: u32) -> usize {
        (u & ((1 << 31) - 1)) as usize
    }

    /// The longest key at the start of `input`: its length and replacement.
    pub fn longest(&self, input: &[u8]) -> Option<(usize, &[u8])> {
        let mut node = Self::base(self.unit(0)?);
        let mut best = None;
        for (i, &c) in input.iter().enumerate() {
            if c == 0 {
                break;
            }
            node ^= c as usize;
            let u = self.unit(node)?;
            if Self::label(u) != c as u32 {
                break;
            }
            let is_leaf = Self::leaf(u);
            node ^= Self::base(u);
            if is_leaf {
                let at = Self::value(self.unit(node)?);
                let s = self.strings.get(at..)?;
                let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
                best = Some((i + 1, &s[..end]));
            }
        }
        best
    }
}

/// The unigram model's settings, from the vocabulary.
#[derive(Debug, Clone)]
pub struct Unigram {
    charsmap: Option<CharsMap>,
    remove_extra: bool,
    add_prefix: bool,
    unknown_score: f32,
    /// Longest token, in bytes.
    max_len: usize,
}

impl Unigram {
    pub fn new(vocab: &Vocab, charsmap: &[u8], remove_extra: bool) -> Result<Self, String> {
        let usable = |i: usize| matches!(vocab.types.get(i), Some(&TYPE_NORMAL | &TYPE_USER_DEFINED | &UNUSED));
        let min = (0..vocab.tokens.len())
            .filter(|&i| vocab.types.get(i) == Some(&TYPE_NORMAL))
            .filter_map(|i| vocab.scores.get(i).copied())
            .fold(f32::INFINITY, f32::min);
        let max_len = (0..vocab.tokens.len()).filter(|&i| usable(i)).map(|i| vocab.tokens[i].len()).max().unwrap_or(1);
        Ok(Self {
            charsmap: CharsMap::parse(charsmap)?,
            remove_extra,
            add_prefix: vocab.add_space_prefix,
            unknown_score: if min.is_finite() { min - 10.0 } else { -10.0 },
            max_len,
        })
    }

    /// The normalized text: character map, whitespace, `▁`.
    pub fn normalize(&self, text: &str) -> String {
        let mut mapped = Vec::with_capacity(text.len());
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match self.charsmap.as_ref().and_then(|m| m.longest(&b[i..])) {
                Some((n, rep)) => {
                    mapped.extend_from_slice(rep);
                    i += n;
                }
                None => {
                    // A whole character (or one byte, should a map key have ended inside one).
                    let n =
                        if text.is_char_boundary(i) { text[i..].chars().next().map_or(1, char::len_utf8) } else { 1 };
                    mapped.extend_from_slice(&b[i..i + n]);
                    i += n;
                }
            }
        }
        let mapped = String::from_utf8_lossy(&mapped);
        let mut out = String::with_capacity(mapped.len() + 3);
        if self.add_prefix && !mapped.trim().is_empty() {
            out.push('\u{2581}');
        }
        for c in mapped.chars() {
            if c == ' ' {
                if self.remove_extra && (out.is_empty() || out.ends_with('\u{2581}')) {
                    continue;
                }
                out.push('\u{2581}');
            } else {
                out.push(c);
            }
        }
        if self.remove_extra && out.ends_with('\u{2581}') && out.chars().count() > 1 {
            out.pop();
        }
        out
    }

    /// Appends the tokens of `text` to `out`.
    pub fn encode(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) -> Result<(), String> {
        let s = self.normalize(text);
        if s.is_empty() {
            return Ok(());
        }
        let unk = vocab.unk.ok_or("the unigram vocabulary has no unknown token")?;
        let n = s.len();
        // best[i]: the highest score of a cut of s[..i], and its last token.
        let mut best: Vec<(f32, usize, u32)> = vec![(f32::NEG_INFINITY, 0, 0); n + 1];
        best[0].0 = 0.0;
        let relax = |best: &mut Vec<(f32, usize, u32)>, from: usize, to: usize, score: f32, id: u32| {
            let cand = best[from].0 + score;
            if cand > best[to].0 {
                best[to] = (cand, from, id);
            }
        };
        for (i, c) in s.char_indices() {
            if best[i].0 == f32::NEG_INFINITY {
                continue;
            }
            let next = i + c.len_utf8();
            let mut user: Option<(usize, u32)> = None;
            let mut single = false;
            for (j, d) in s[i..].char_indices() {
                let end = i + j + d.len_utf8();
                if end - i > self.max_len {
                    break;
                }
                let Some(&id) = vocab.ids.get(&s[i..end]) else { continue };
                match vocab.types.get(id as usize).copied() {
                    Some(TYPE_USER_DEFINED) => user = Some((end, id)),
                    Some(TYPE_NORMAL | UNUSED) => {
                        relax(&mut best, i, end, vocab.scores.get(id as usize).copied().unwrap_or(0.0), id);
                        single |= end == next;
                    }
                    _ => {}
                }
            }
            if let Some((end, id)) = user {
                // A user-defined token is taken where it matches (the longest one).
                best[end] = (best[i].0, i, id);
                continue;
            }
            if !single {
                relax(&mut best, i, next, self.unknown_score, unk);
            }
        }
        let mut ids = Vec::new();
        let mut at = n;
        while at > 0 {
            let (_, from, id) = best[at];
            if !(id == unk && ids.last() == Some(&unk)) {
                ids.push(id);
            }
            at = from;
        }
        out.extend(ids.into_iter().rev());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GgufFields, Tokenizer};

    fn t5(charsmap: Vec<u8>) -> Tokenizer {
        let toks: &[(&str, f32, i32)] = &[
            ("<pad>", 0.0, 3),
            ("</s>", 0.0, 3),
            ("<unk>", 0.0, 2),
            ("\u{2581}", -2.0, 1),
            ("\u{2581}hello", -3.0, 1),
            ("\u{2581}hell", -2.5, 1),
            ("o", -2.0, 1),
            ("\u{2581}he", -2.0, 1),
            ("llo", -2.0, 1),
            ("\u{2581}world", -4.0, 1),
            ("A", -3.0, 1),
            ("<x>", 0.0, 4),
        ];
        Tokenizer::from_gguf(GgufFields {
            model: "t5".into(),
            tokens: toks.iter().map(|t| t.0.to_string()).collect(),
            scores: toks.iter().map(|t| t.1).collect(),
            token_types: toks.iter().map(|t| t.2).collect(),
            eos: Some(1),
            unk: Some(2),
            pad: Some(0),
            add_bos: Some(false),
            add_eos: Some(true),
            charsmap,
            ..Default::default()
        })
        .unwrap()
    }

    /// A double array holding one key, `key` (two bytes) → `rep`, built by
    /// hand: root base 1; each step's node is the previous base ^ byte.
    fn charsmap(key: [u8; 2], rep: &str) -> Vec<u8> {
        let unit = |base: u32, label: u32, leaf: bool| (base << 10) | (u32::from(leaf) << 8) | label;
        let mut units = vec![0u32; 1024];
        units[0] = unit(1, 0, false);
        let n1 = 1 ^ key[0] as usize;
        units[n1] = unit(2, key[0] as u32, false);
        let n2 = (n1 ^ 2) ^ key[1] as usize;
        units[n2] = unit(4, key[1] as u32, true);
        units[n2 ^ 4] = 0; // value: the replacement at offset 0
        let mut blob = ((units.len() * 4) as u32).to_le_bytes().to_vec();
        for u in units {
            blob.extend(u.to_le_bytes());
        }
        blob.extend(rep.as_bytes());
        blob.push(0);
        blob
    }

    /// Ids worked out by hand: the highest-scoring cut, unknowns merged,
    /// whitespace collapsed, the dummy prefix, user-defined tokens first.
    #[test]
    fn unigram_ids() {
        let t = t5(Vec::new());
        // ▁hello: -3 beats ▁hell+o (-4.5) and ▁he+llo (-4).
        assert_eq!(t.encode("hello", true).unwrap(), vec![4, 1]);
        // Extra spaces collapse; "##" is two unknown characters, one unknown token.
        assert_eq!(t.encode("  hello   ## world ", false).unwrap(), vec![4, 3, 2, 9]);
        // A user-defined token is taken where it matches.
        assert_eq!(t.encode("hello<x>", false).unwrap(), vec![4, 11]);
        assert_eq!(t.decode(&[4, 9], false), "hello world");
        // The character map: "é" (C3 A9) → "e", so "hé" is "▁he".
        let map = charsmap([0xC3, 0xA9], "e");
        assert_eq!(CharsMap::parse(&map).unwrap().unwrap().longest("éz".as_bytes()), Some((2, &b"e"[..])));
        assert_eq!(CharsMap::parse(&map).unwrap().unwrap().longest(b"ez"), None);
        let t = t5(map);
        assert_eq!(t.encode("hé", false).unwrap(), vec![7]);
        assert_eq!(t.encode("h\u{e8}", false).unwrap(), vec![3, 2], "è is not in the map: ▁ then one unknown for hè");
        assert!(CharsMap::parse(&[9, 0, 0, 0, 1]).is_err(), "a short array is refused");
    }
}
