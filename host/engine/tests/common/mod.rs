//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use weft_engine::{EngineConfig, EngineHandle, Event, FinishReason, LoadedModel, Request, TokenizerSpec, Usage};

/// The cached default model, fetched by the same code `weft serve` uses.
pub fn default_model() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        weft_engine::ensure_default_model(&mut |line| eprintln!("{line}")).expect("default model available")
    })
    .clone()
}

pub fn load_default() -> LoadedModel {
    weft_engine::model::load(&default_model(), weft_engine::LoadOptions::default()).expect("default model loads")
}

/// Token ids of whitespace-separated words, looked up in the GGUF vocabulary
/// (`Ġ` marks a leading space in byte-level BPE). Tests need ids, not a tokenizer.
pub fn words_to_ids(spec: &TokenizerSpec, text: &str) -> Vec<u32> {
    let TokenizerSpec::Gguf(t) = spec else { panic!("gguf tokenizer expected") };
    text.split(' ')
        .enumerate()
        .map(|(i, w)| {
            let tok = if i == 0 { w.to_string() } else { format!("Ġ{w}") };
            t.tokens.iter().position(|x| *x == tok).unwrap_or_else(|| panic!("no token {tok}")) as u32
        })
        .collect()
}

pub fn detok(spec: &TokenizerSpec, ids: &[u32]) -> String {
    let TokenizerSpec::Gguf(t) = spec else { panic!("gguf tokenizer expected") };
    ids.iter().map(|&i| t.tokens[i as usize].replace('Ġ', " ").replace('Ċ', "\n")).collect()
}

/// A prompt of `n` tokens made of ordinary vocabulary ids, varied by `seed`.
pub fn synthetic_prompt(n: usize, seed: u32) -> Vec<u32> {
    (0..n as u32).map(|i| 1000 + (i.wrapping_mul(7919).wrapping_add(seed * 104_729)) % 30_000).collect()
}

pub struct Outcome {
    pub tokens: Vec<u32>,
    pub reason: FinishReason,
    pub usage: Usage,
}

/// Drains a stream to its end.
pub fn collect(mut s: weft_engine::RequestStream) -> Outcome {
    let mut tokens = Vec::new();
    loop {
        match s.blocking_next().expect("stream ends with Finished or Error") {
            Event::Token { id, .. } => tokens.push(id),
            Event::Finished { reason, usage } => return Outcome { tokens, reason, usage },
            Event::Error(e) => panic!("request failed: {e}"),
        }
    }
}

pub fn greedy(prompt: Vec<u32>, max_tokens: usize) -> Request {
    let mut r = Request::new(prompt, max_tokens).with_params(weft_engine::SamplingParams::greedy());
    r.ignore_eos = true;
    r
}

pub fn start(cfg: EngineConfig) -> EngineHandle {
    weft_engine::Engine::start(load_default(), cfg).expect("engine starts")
}
