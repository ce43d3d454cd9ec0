//! The tokenizer plugin, through the runtime, against llama.cpp's tokenizer
//! fixtures and the default model's vocabulary.

mod common;

use std::sync::Arc;

use weft_runtime::{Limits, WasmTokenizer};

fn cases(inp: &str, out: &str) -> Vec<(String, Vec<u32>)> {
    let mut texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    if texts.last() == Some(&"") {
        texts.pop();
    }
    let ids: Vec<Vec<u32>> = out.lines().map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect()).collect();
    assert_eq!(texts.len(), ids.len(), "fixture .inp and .out disagree in length");
    texts.into_iter().map(str::to_string).zip(ids).collect()
}

fn tokenizer_for(gguf: &std::path::Path) -> Arc<WasmTokenizer> {
    let (spec, _) = weft_engine::model::read_tokenizer(gguf).expect("fixture readable");
    let plugin = common::load("tokenizer-bpe", "tokenizer_bpe.wasm", Limits::default(), vec![]);
    WasmTokenizer::new(plugin, &spec.expect("fixture has a tokenizer")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn reproduces_every_llama_cpp_fixture() {
    let dir = common::shared().join("tokenizers");
    let mut checked = 0;
    let mut failures = Vec::new();
    for name in
        ["ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-bpe.gguf", "ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf"]
    {
        let path = dir.join(name);
        let inp = std::fs::read_to_string(path.with_extension("gguf.inp")).unwrap();
        let out = std::fs::read_to_string(path.with_extension("gguf.out")).unwrap();
        let tok = tokenizer_for(&path);
        for (text, want) in cases(&inp, &out) {
            let got = tok.encode(&text, false).unwrap();
            checked += 1;
            if got != want {
                failures.push(format!("{name} {text:?}\n  want {want:?}\n  got  {got:?}"));
            }
        }
    }
    assert!(checked >= 180, "only {checked} cases");
    assert!(failures.is_empty(), "{} of {checked} cases differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn default_model_tokenizer_round_trips_and_parses_special_tokens() {
    let path = weft_engine::ensure_default_model(&mut |l| eprintln!("{l}")).unwrap();
    let tok = tokenizer_for(&path);
    assert_eq!(tok.vocab_size(), 49152);
    for text in ["Hello world", "  spaces  and\ttabs\n\nnewlines", "数字 12345 and émojis 🦙🚀", "a'b's'll"] {
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
    }
    let ids = tok.encode("<|im_start|>user\nhi<|im_end|>", false).unwrap();
    assert_eq!(ids[0], 1, "<|im_start|> is one token");
    assert_eq!(*ids.last().unwrap(), 2, "<|im_end|> is one token");
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\nhi");
    assert!(tok.special_tokens().iter().any(|s| s.id == 2));

    // Streaming decode never emits broken UTF-8, even when a character spans tokens.
    let text = "🦙🦙 Ünïcödé 日本語";
    let ids = tok.encode(text, false).unwrap();
    let mut d = tok.decoder(false);
    let mut streamed = String::new();
    for id in ids {
        let piece = d.push(id);
        assert!(!piece.contains('\u{FFFD}'));
        streamed.push_str(&piece);
    }
    streamed.push_str(&d.finish());
    assert_eq!(streamed, text);
}

#[test]
fn native_and_wasm_tokenizers_agree() {
    let path = weft_engine::ensure_default_model(&mut |l| eprintln!("{l}")).unwrap();
    let (spec, _) = weft_engine::model::read_tokenizer(&path).unwrap();
    let native = weft_runtime::native_tokenizer(&spec.unwrap()).expect("builds natively");
    let wasm = tokenizer_for(&path);
    let text = "The quick brown fox jumps over the lazy dog. 1234 + 5678 = 6912!";
    assert_eq!(native.encode(text, true).unwrap(), wasm.encode(text, true).unwrap());
}

#[test]
fn special_token_splitting_is_linear() {
    // 100,000 special tokens in 1 MB: a split that searched every special token
    // from the cursor at every match scanned terabytes; linear, it is milliseconds.
    let path = weft_engine::ensure_default_model(&mut |l| eprintln!("{l}")).unwrap();
    let (spec, _) = weft_engine::model::read_tokenizer(&path).unwrap();
    let native = weft_runtime::native_tokenizer(&spec.unwrap()).expect("builds natively");
    let ids = native.encode(&"<|im_end|>".repeat(100_000), false).unwrap();
    assert_eq!(ids.len(), 100_000);
    assert!(ids.iter().all(|&id| id == 2), "every repetition is the <|im_end|> token");
    let mixed = native.encode(&"a<|im_start|>b<|im_end|>".repeat(1000), false).unwrap();
    assert_eq!(mixed.iter().filter(|&&id| id == 1).count(), 1000);
    assert_eq!(mixed.iter().filter(|&&id| id == 2).count(), 1000);
}
