//! WordPiece (BERT; llama.cpp's `WPM`): text is decomposed (NFD) and
//! lowercased, split into words at whitespace, with every punctuation mark,
//! ASCII symbol and CJK ideograph a word of its own; each word, prefixed with
//! `▁`, is cut greedily into the longest vocabulary tokens from the left. A
//! word that cannot be cut all the way is the unknown token, as a whole.
//!
//! The vocabulary is as llama.cpp's converter writes it: word-initial tokens
//! carry `▁` and continuations carry nothing (BERT's `##` removed).

use fancy_regex::Regex;
use unicode_normalization::UnicodeNormalization;

use crate::vocab::Vocab;

/// Ideographs BERT splits one by one (its `_is_chinese_char` ranges).
const CJK: &str = r"\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}";
/// Punctuation: Unicode P*, and the ASCII symbols BERT counts as punctuation.
const PUNCT: &str = r"\p{P}\x21-\x2F\x3A-\x40\x5B-\x60\x7B-\x7E";

/// The word splitter: one mark or ideograph, or a run of anything else that is not space.
pub fn splitter() -> Regex {
    Regex::new(&format!(r"[{PUNCT}{CJK}]|[^\s{PUNCT}{CJK}]+")).expect("a valid pattern")
}

/// Appends the tokens of `text` to `out`.
pub fn encode(vocab: &Vocab, words: &Regex, text: &str, out: &mut Vec<u32>) -> Result<(), String> {
    let norm: String = text.nfd().flat_map(char::to_lowercase).collect();
    for m in words.find_iter(&norm) {
        let m = m.map_err(|e| format!("word splitter: {e}"))?;
        let word = format!("\u{2581}{}", m.as_str());
        let start = out.len();
        let mut at = 0;
        while at < word.len() {
            // The longest vocabulary token at `at` (on character boundaries).
            let found = word[at..]
                .char_indices()
                .map(|(i, c)| at + i + c.len_utf8())
                .rev()
                .find_map(|end| vocab.ids.get(&word[at..end]).map(|&id| (end, id)));
            match found {
                Some((end, id)) => {
                    out.push(id);
                    at = end;
                }
                None => {
                    out.truncate(start);
                    out.push(vocab.unk.ok_or_else(|| format!("no token for `{}` and no unknown token", m.as_str()))?);
                    break;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{GgufFields, Tokenizer};

    fn bert() -> Tokenizer {
        let tokens = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "▁hello", "▁world", "▁un", "aff", "able", "▁,", "▁!", "▁cafe",
            "\u{301}", "▁你", "▁好", "▁h", "e", "▁12", "3", "▁$", "▁x",
        ];
        Tokenizer::from_gguf(GgufFields {
            model: "bert".into(),
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            token_types: [3, 2, 3, 3].into_iter().chain(std::iter::repeat_n(1, tokens.len() - 4)).collect(),
            bos: Some(2),
            eos: Some(3),
            unk: Some(1),
            pad: Some(0),
            ..Default::default()
        })
        .unwrap()
    }

    /// Ids worked out by hand from the algorithm: lowercase, NFD, words at
    /// spaces and marks, ideographs alone, greedy longest match, whole-word unknowns.
    #[test]
    fn wordpiece_ids() {
        let t = bert();
        assert_eq!(t.encode("Hello, unaffable World!", true).unwrap(), vec![2, 4, 9, 6, 7, 8, 5, 10, 3]);
        // "Café" decomposes to cafe + U+0301, which is its own continuation token.
        assert_eq!(t.encode("Café", false).unwrap(), vec![11, 12]);
        // Each ideograph is a word; "123" is ▁12 + 3; "$x" splits at the symbol.
        assert_eq!(t.encode("你好 123 $x", false).unwrap(), vec![13, 14, 17, 18, 19, 20]);
        // A word with no full cut is one unknown token (not a partial cut).
        assert_eq!(t.encode("hex hello", false).unwrap(), vec![1, 4]);
        assert_eq!(t.decode(&[4, 9, 6, 7, 8], false), "hello , unaffable");
    }
}
