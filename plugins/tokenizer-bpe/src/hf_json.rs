//! Reading a Hugging Face `tokenizer.json` into a [`Vocab`].
//!
//! Supported: BPE models, byte-level (a `ByteLevel` pre-tokenizer, optionally
//! after `Split` regexes and `Digits`) or SentencePiece-style (`byte_fallback`
//! with a `▁` normalizer). Merge ranks come from the merges list in both cases.

use serde_json::Value;

use crate::vocab::{self, Kind, Pre, Vocab};

const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

pub fn parse(json: &str) -> Result<Vocab, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("tokenizer.json: {e}"))?;
    let model = &v["model"];
    if model["type"].as_str() != Some("BPE") {
        return Err(format!("tokenizer.json: unsupported model type {}", model["type"]));
    }
    let map = model["vocab"].as_object().ok_or("tokenizer.json: model.vocab is not an object")?;
    let mut tokens = vec![String::new(); map.len()];
    let mut types = vec![vocab::TYPE_NORMAL; map.len()];
    for (t, id) in map {
        let id = id.as_u64().ok_or("tokenizer.json: vocab ids must be integers")? as usize;
        if id >= tokens.len() {
            tokens.resize(id + 1, String::new());
            types.resize(id + 1, vocab::TYPE_NORMAL);
        }
        tokens[id] = t.clone();
    }
    if let Some(added) = v["added_tokens"].as_array() {
        for a in added {
            let id = a["id"].as_u64().ok_or("tokenizer.json: added token without id")? as usize;
            let content = a["content"].as_str().unwrap_or_default().to_string();
            if id >= tokens.len() {
                tokens.resize(id + 1, String::new());
                types.resize(id + 1, vocab::TYPE_NORMAL);
            }
            tokens[id] = content;
            types[id] =
                if a["special"].as_bool().unwrap_or(false) { vocab::TYPE_CONTROL } else { vocab::TYPE_USER_DEFINED };
        }
    }
    let merges: Vec<String> = model["merges"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Array(p) if p.len() == 2 => Some(format!("{} {}", p[0].as_str()?, p[1].as_str()?)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let byte_fallback = model["byte_fallback"].as_bool().unwrap_or(false);
    let (kind, pre) = if byte_fallback {
        (Kind::SentencePiece, Pre::Regexes(Vec::new()))
    } else {
        (Kind::ByteLevel, Pre::Regexes(pre_regexes(&v["pre_tokenizer"])))
    };
    if kind == Kind::SentencePiece {
        for (i, t) in tokens.iter().enumerate() {
            if t.len() == 6 && t.starts_with("<0x") && t.ends_with('>') && types[i] == vocab::TYPE_NORMAL {
                types[i] = vocab::TYPE_BYTE;
            }
        }
    }
    let find = |name: &str| tokens.iter().position(|t| t == name).map(|i| i as u32);
    let (bos, eos) = match kind {
        Kind::SentencePiece => (find("<s>"), find("</s>")),
        Kind::ByteLevel => (None, find("<|endoftext|>").or_else(|| find("<|end_of_text|>"))),
        Kind::WordPiece | Kind::Unigram => unreachable!("tokenizer.json here is BPE only"),
    };
    // SentencePiece merges from tokenizer.json are ranks; turn them into scores
    // (earlier merge = higher score) so the score-based merge reproduces them.
    let mut scores = vec![0f32; tokens.len()];
    if kind == Kind::SentencePiece {
        let ids = Vocab::build_ids(&tokens);
        for (rank, m) in merges.iter().enumerate() {
            if let Some(&id) = ids.get(&m.replacen(' ', "", 1)) {
                if scores[id as usize] == 0.0 {
                    scores[id as usize] = -(rank as f32) - 1.0;
                }
            }
        }
    }
    let unk = model["unk_token"].as_str().and_then(find);
    Ok(Vocab {
        kind,
        pre,
        ids: Vocab::build_ids(&tokens),
        ranks: Vocab::build_ranks(&merges),
        tokens,
        types,
        scores,
        bos,
        eos,
        eot: None,
        unk,
        pad: None,
        add_bos: kind == Kind::SentencePiece,
        add_eos: false,
        add_space_prefix: kind == Kind::SentencePiece,
        ignore_merges: model["ignore_merges"].as_bool().unwrap_or(false),
    })
}

fn pre_regexes(pre: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let visit = |p: &Value, out: &mut Vec<String>| match p["type"].as_str() {
        Some("Split") => {
            if let Some(r) = p["pattern"]["Regex"].as_str() {
                out.push(r.to_string());
            } else if let Some(s) = p["pattern"]["String"].as_str() {
                out.push(fancy_regex::escape(s).into_owned());
            }
        }
        Some("Digits") => {
            out.push(if p["individual_digits"].as_bool().unwrap_or(false) { r"\p{N}" } else { r"\p{N}+" }.into())
        }
        Some("ByteLevel") if p["use_regex"].as_bool().unwrap_or(true) => out.push(GPT2_PATTERN.into()),
        _ => {}
    };
    match pre["type"].as_str() {
        Some("Sequence") => {
            for p in pre["pretokenizers"].as_array().into_iter().flatten() {
                visit(p, &mut out);
            }
        }
        Some(_) => visit(pre, &mut out),
        None => {}
    }
    if out.is_empty() {
        out.push(GPT2_PATTERN.into());
    }
    out
}
