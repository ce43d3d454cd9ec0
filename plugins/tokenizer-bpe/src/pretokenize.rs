//! Splitting text into words before BPE, as llama.cpp does for each named
//! pre-tokenizer: every regex of the list splits every piece produced so far,
//! keeping both the matches and the text between them.

use fancy_regex::Regex;

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The regex list for a llama.cpp pre-tokenizer name.
pub fn named(pre: &str) -> Result<Vec<&'static str>, String> {
    Ok(match pre {
        "gpt-2" | "gpt2" | "mpt" | "olmo" | "jais" | "trillion" => vec![GPT2],
        "llama-bpe" | "llama3" | "llama-v3" | "dbrx" | "smaug-bpe" | "chatglm-bpe" => vec![LLAMA3],
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            vec![r"\p{N}", GPT2]
        }
        "qwen2" | "stablelm2" | "hunyuan" => vec![QWEN2],
        "falcon" => vec![r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
        "default" => vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
        other => return Err(format!("unsupported pre-tokenizer `{other}`")),
    })
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
            .map(|p| Regex::new(p.as_ref()).map_err(|e| format!("bad pre-tokenizer regex: {e}")))
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

    #[test]
    fn gpt2_keeps_trailing_space_runs() {
        let p = PreTokenizer::new(&named("gpt-2").unwrap()).unwrap();
        assert_eq!(p.split("Hello  world!").unwrap(), vec!["Hello", " ", " world", "!"]);
        let s = PreTokenizer::new(&named("smollm").unwrap()).unwrap();
        assert_eq!(s.split("a 123").unwrap(), vec!["a", " ", "1", "2", "3"]);
    }
}
