//! Splitting text into words before BPE, as llama.cpp does for each named
//! pre-tokenizer: every regex of the list splits every piece produced so far,
//! keeping both the matches and the text between them.

use fancy_regex::Regex;

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Cased scripts DeepSeek's LLM tokenizer keeps together (its tokenizer.json's
/// class; code points outside Latin-1 that Unicode normalization would fold
/// into other ones, such as the Kelvin sign, are written as escapes).
const DEEPSEEK_LETTERS: &str = r"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚ\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}Ⰰ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ\x{10400}-\x{1044f}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+";
const CJK_HANGUL: &str = r"[一-龥ࠀ-一가-퟿]+";
const DEEPSEEK3_WORDS: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##;
const BLOOM: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const BAILING: &str = r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";
/// Kimi K2's pattern: GPT-4o's, with Han ideographs kept apart (class intersection).
const KIMI_K2: &str = r"[\p{Han}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// AFMoE's scripts split apart (CJK, kana, halfwidth, Thai, Lao, Khmer, Myanmar, Hangul), as code point ranges.
const AFMOE_SCRIPTS: &str = r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{F900}-\x{FAFF}\x{3040}-\x{309F}\x{30A0}-\x{30FF}\x{FF65}-\x{FF9F}\x{2F00}-\x{2FDF}\x{0E00}-\x{0E7F}\x{0E80}-\x{0EFF}\x{1780}-\x{17FF}\x{1000}-\x{109F}\x{AA60}-\x{AA7F}\x{A9E0}-\x{A9FF}\x{AC00}-\x{D7AF}\x{1100}-\x{11FF}]+";
/// Digit runs cut into threes from the right (`12345` → `12`, `345`): a zero-width split.
const DIGIT_THREES: &str = r"(?=(\p{N}{3})+(?!\p{N}))";
const SEED_CODER: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The regex list for a llama.cpp pre-tokenizer name (`tokenizer.ggml.pre`),
/// applied in order (see [`PreTokenizer::split`]). The names and what each
/// splits follow llama.cpp's `llama-vocab.cpp`; where it adapted a
/// tokenizer.json regex to its own engine (case classes spelled with
/// lookaheads), the original is used, which fancy-regex runs as written.
pub fn named(pre: &str) -> Result<Vec<&'static str>, String> {
    Ok(match pre {
        "gpt-2" | "gpt2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v1-en" | "jina-v2-es"
        | "jina-v2-de" | "jina-v2-code" | "roberta-bpe" | "mpt" | "olmo" | "jais" | "trillion" | "granite-docling" => {
            vec![GPT2]
        }
        "llama-bpe" | "llama3" | "llama-v3" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2" | "dbrx"
        | "smaug-bpe" | "chatglm-bpe" | "glm4" => vec![LLAMA3],
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            vec![r"\p{N}", GPT2]
        }
        "qwen2" | "deepseek-r1-qwen" | "megrez" | "stablelm2" | "hunyuan" | "grok-2" => vec![QWEN2],
        "deepseek-llm" => {
            vec!["[\r\n]", DEEPSEEK_LETTERS, r"\s?[!-/:-~！-／：-～‘-‟　-。]+", r"\s+$", CJK_HANGUL, r"\p{N}+"]
        }
        "deepseek-coder" => vec!["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", CJK_HANGUL, r"\p{N}"],
        "deepseek-v3" | "hunyuan-dense" => vec![r"\p{N}{1,3}", r"[一-龥぀-ゟ゠-ヿ]+", DEEPSEEK3_WORDS],
        "poro-chat" | "bloom" | "gpt3-finnish" => vec![BLOOM],
        "viking" => vec![BLOOM, r"\p{N}"],
        "tekken" => vec![TEKKEN],
        "chameleon" => vec![
            r"<sentinel:[0-9]+>",
            r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
            r"([\t\n]|    |  )",
            r"\p{N}",
            r"[\p{P}!-/:-@\[-`{-~]",
            GPT2,
        ],
        "gpt-4o" | "llama4" | "minimax-m2" => vec![GPT4O],
        "superbpe" => vec![r"\p{N}+", r"(?=(\d{3})+(?!\d))"],
        "kimi-k2" => vec![KIMI_K2],
        // llama.cpp's hand-written digit grouping: leading 1-2 digits, then threes.
        "afmoe" => vec![r"\p{N}+", DIGIT_THREES, AFMOE_SCRIPTS, DEEPSEEK3_WORDS],
        "bailingmoe" | "llada-moe" => vec![BAILING],
        "seed-coder" => vec![SEED_CODER],
        "falcon" => vec![r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
        "default" => vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
        other => return Err(format!("unsupported pre-tokenizer `{other}`")),
    })
}

/// Whether llama.cpp looks a whole pre-tokenized word up before merging
/// (`ignore_merges`): the Llama 3 family and Tekken.
pub fn ignores_merges(pre: &str) -> bool {
    matches!(
        pre,
        "llama-bpe" | "llama3" | "llama-v3" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2" | "tekken"
    )
}

/// Compiled splitter.
#[derive(Debug, Clone)]
pub struct PreTokenizer {
    regexes: Vec<Regex>,
}

impl PreTokenizer {
    pub fn new(patterns: &[impl AsRef<str>]) -> Result<Self, String> {
        let regexes = patterns
            .iter()
            .map(|p| Regex::new(p.as_ref()).map_err(|e| format!("bad pre-tokenizer regex: {e:?}")))
            .collect::<Result<_, _>>()?;
        Ok(Self { regexes })
    }

    /// Splits `text` into words.
    pub fn split<'a>(&self, text: &'a str) -> Result<Vec<&'a str>, String> {
        let mut pieces = vec![text];
        for re in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for p in pieces {
                let mut last = 0;
                for m in re.find_iter(p) {
                    let m = m.map_err(|e| format!("pre-tokenizer: {e}"))?;
                    if m.start() > last {
                        next.push(&p[last..m.start()]);
                    }
                    if m.end() > m.start() {
                        next.push(m.as_str());
                    }
                    last = m.end();
                }
                if last < p.len() {
                    next.push(&p[last..]);
                }
            }
            pieces = next;
        }
        Ok(pieces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pre: &str, text: &str) -> Vec<String> {
        let p = PreTokenizer::new(&named(pre).unwrap()).unwrap_or_else(|e| panic!("{pre}: {e}"));
        p.split(text).unwrap().into_iter().map(str::to_string).collect()
    }

    /// Each family's words for one sentence, worked out from its regexes as
    /// llama.cpp applies them (each splits every piece of the one before,
    /// matches and the text between them both kept).
    #[test]
    fn every_family_splits_as_its_regexes_say() {
        let text = "Hello World's 12345 x+y\n\n  你好 ok";
        let want: &[(&str, &[&str])] = &[
            ("gpt-2", &["Hello", " World", "'s", " 12345", " x", "+", "y", "\n\n ", " 你好", " ok"]),
            ("llama-bpe", &["Hello", " World", "'s", " ", "123", "45", " x", "+y", "\n\n", " ", " 你好", " ok"]),
            (
                "qwen2",
                &["Hello", " World", "'s", " ", "1", "2", "3", "4", "5", " x", "+y", "\n\n", " ", " 你好", " ok"],
            ),
            (
                "smollm",
                &["Hello", " World", "'s", " ", "1", "2", "3", "4", "5", " x", "+", "y", "\n\n ", " 你好", " ok"],
            ),
            (
                "deepseek-coder",
                &[
                    "Hello", " World", "'", "s", " ", "1", "2", "3", "4", "5", " x", "+", "y", "\n", "\n", " ", " ",
                    "你好", " ok",
                ],
            ),
            (
                "deepseek-llm",
                &["Hello", " World", "'", "s", " ", "12345", " x", "+", "y", "\n", "\n", "  ", "你好", " ok"],
            ),
            ("deepseek-v3", &["Hello", " World", "'s", " ", "123", "45", " x", "+y", "\n\n", "  ", "你好", " ok"]),
            ("bloom", &["Hello", " World's", " 12345", " x+y", "\n\n ", " 你好", " ok"]),
            ("viking", &["Hello", " World's", " ", "1", "2", "3", "4", "5", " x+y", "\n\n ", " 你好", " ok"]),
            (
                "tekken",
                &["Hello", " World", "'s", " ", "1", "2", "3", "4", "5", " x", "+y", "\n\n", " ", " 你好", " ok"],
            ),
            ("gpt-4o", &["Hello", " World's", " ", "123", "45", " x", "+y", "\n\n", " ", " 你好", " ok"]),
            (
                "seed-coder",
                &["Hello", " World", "'s", " ", "1", "2", "3", "4", "5", " x", "+y", "\n\n", " ", " 你好", " ok"],
            ),
            (
                "bailingmoe",
                &["Hello", " World", "'s", " ", "1", "2", "3", "4", "5", " x", "+y", "\n\n", " ", " 你好", " ok"],
            ),
            ("superbpe", &["Hello World's ", "12", "345", " x+y\n\n  你好 ok"]),
            (
                "chameleon",
                &[
                    "Hello", " World", "'", "s", " ", "1", "2", "3", "4", "5", " x", "+", "y", "\n", "\n", "  ",
                    "你好", " ok",
                ],
            ),
            ("falcon", &["Hello", " World", "'", "s", " ", "123", "45", " x", "+", "y", "\n\n ", " 你好", " ok"]),
        ];
        for (pre, words) in want {
            assert_eq!(split(pre, text), words.iter().map(|w| w.to_string()).collect::<Vec<_>>(), "{pre}");
            assert_eq!(split(pre, text).concat(), text, "{pre}: the words cover the text");
        }
    }

    /// Every name the table knows compiles and covers any text exactly.
    #[test]
    fn every_named_pre_tokenizer_compiles() {
        let names = [
            "gpt-2",
            "phi-2",
            "jina-v2-code",
            "roberta-bpe",
            "mpt",
            "olmo",
            "jais",
            "trillion",
            "granite-docling",
            "llama-bpe",
            "llama3",
            "falcon3",
            "pixtral",
            "dbrx",
            "smaug-bpe",
            "chatglm-bpe",
            "glm4",
            "smollm",
            "starcoder",
            "refact",
            "command-r",
            "codeshell",
            "exaone",
            "minerva-7b",
            "qwen2",
            "deepseek-r1-qwen",
            "megrez",
            "stablelm2",
            "hunyuan",
            "grok-2",
            "deepseek-llm",
            "deepseek-coder",
            "deepseek-v3",
            "hunyuan-dense",
            "poro-chat",
            "bloom",
            "gpt3-finnish",
            "viking",
            "tekken",
            "chameleon",
            "gpt-4o",
            "llama4",
            "minimax-m2",
            "superbpe",
            "bailingmoe",
            "llada-moe",
            "seed-coder",
            "falcon",
            "default",
        ];
        let text = "Ünïcödé: Ça va? 3.14159 — «quoted» <sentinel:3> IMGIMGABZ\t\r\n한국어 日本語 ٣٤ end.  ";
        for n in names {
            assert_eq!(split(n, text).concat(), text, "{n}");
        }
        // Kimi K2 keeps Han apart from other letters; AFMoE groups digits in threes from the right.
        assert_eq!(split("kimi-k2", "Hello你好World's 1234"), ["Hello", "你好", "World's", " ", "123", "4"]);
        assert_eq!(split("afmoe", "ab 1234567 ไทย"), ["ab", " ", "1", "234", "567", " ", "ไทย"]);
        assert!(named("nope").is_err());
    }

    #[test]
    fn gpt2_keeps_trailing_space_runs() {
        let p = PreTokenizer::new(&named("gpt-2").unwrap()).unwrap();
        assert_eq!(p.split("Hello  world!").unwrap(), vec!["Hello", " ", " world", "!"]);
        let s = PreTokenizer::new(&named("smollm").unwrap()).unwrap();
        assert_eq!(s.split("a 123").unwrap(), vec!["a", " ", "1", "2", "3"]);
    }
}
