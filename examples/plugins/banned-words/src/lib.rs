//! A sampler that never lets the output contain a banned word, whichever
//! tokens would spell it: "Paris" as one token, as "Par" + "is", or as five
//! single letters. Matching is ASCII case-insensitive and by substring.
//!
//! Each step it bans exactly the tokens that would *complete* a banned word
//! given the text so far, then lets the host sample natively with the
//! request's own parameters. Configuration: `words = "paris,london"`.

use std::cell::RefCell;

use weft_sdk::sampler::{AcceptOutcome, Candidate, Capabilities, Decision, Plan, Sampler, SamplingParams, vocabulary};
use weft_sdk::{Config, Metadata, Plugin, config_value};

/// The vocabulary, lower-cased, sorted by bytes so the tokens starting with
/// a given string are one contiguous range.
struct Vocab {
    sorted: Vec<(Vec<u8>, u32)>,
    bytes: Vec<Vec<u8>>,
}

thread_local! {
    static WORDS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static VOCAB: RefCell<Option<std::rc::Rc<Vocab>>> = const { RefCell::new(None) };
}

fn vocab() -> std::rc::Rc<Vocab> {
    VOCAB.with(|v| {
        v.borrow_mut()
            .get_or_insert_with(|| {
                let bytes: Vec<Vec<u8>> = vocabulary::token_bytes(0, vocabulary::size())
                    .into_iter()
                    .map(|b| b.to_ascii_lowercase())
                    .collect();
                let mut sorted: Vec<(Vec<u8>, u32)> =
                    bytes.iter().cloned().zip(0..).filter(|(b, _)| !b.is_empty()).collect();
                sorted.sort();
                std::rc::Rc::new(Vocab { sorted, bytes })
            })
            .clone()
    })
}

impl Vocab {
    /// Token ids whose bytes start with `prefix`.
    fn starting_with<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = u32> + 'a {
        let start = self.sorted.partition_point(|(b, _)| b.as_slice() < prefix);
        self.sorted[start..].iter().take_while(move |(b, _)| b.starts_with(prefix)).map(|(_, id)| *id)
    }
}

struct BannedWords {
    base: Plan,
    vocab: std::rc::Rc<Vocab>,
    /// The output so far (lower-cased); only its tail matters.
    text: Vec<u8>,
    /// Tokens that contain a banned word outright: banned at every step.
    always: Vec<u32>,
}

impl Plugin for BannedWords {
    fn metadata() -> Metadata {
        Metadata {
            name: "banned-words".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn init(config: &Config) -> Result<(), String> {
        let words: Vec<Vec<u8>> = config_value(config, "words")
            .ok_or("set `words`, a comma-separated list")?
            .split(',')
            .map(|w| w.trim().to_ascii_lowercase().into_bytes())
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return Err("`words` lists no word".into());
        }
        WORDS.with(|w| *w.borrow_mut() = words);
        Ok(())
    }
}

impl Sampler for BannedWords {
    fn capabilities() -> Capabilities {
        Capabilities { top_k: 1, needs_full_logits: false }
    }

    fn create(params: SamplingParams, _args: &str, _prompt: &[u32]) -> Result<Self, String> {
        let vocab = vocab();
        let always = WORDS.with(|w| {
            let w = w.borrow();
            let mut ids: Vec<u32> = (0..vocab.bytes.len() as u32)
                .filter(|&t| {
                    w.iter().any(|word| vocab.bytes[t as usize].windows(word.len()).any(|x| x == word.as_slice()))
                })
                .collect();
            ids.sort_unstable();
            ids
        });
        Ok(Self { base: Plan::from_params(&params), vocab, text: Vec::new(), always })
    }

    fn step(&mut self, _candidates: &[Candidate]) -> Result<Decision, String> {
        let mut banned = self.always.clone();
        WORDS.with(|w| {
            for word in w.borrow().iter() {
                // The text ends with the word's first k bytes: ban tokens that start with the rest.
                for k in 1..word.len() {
                    if self.text.ends_with(&word[..k]) {
                        banned.extend(self.vocab.starting_with(&word[k..]));
                    }
                }
            }
        });
        banned.sort_unstable();
        banned.dedup();
        Ok(Decision::Plan(Plan { banned, ..self.base.clone() }))
    }

    fn accept(&mut self, token: u32) -> Result<AcceptOutcome, String> {
        let b = self.vocab.bytes.get(token as usize).ok_or("token outside the vocabulary")?;
        self.text.extend_from_slice(b);
        // Keep only what a word could still straddle.
        let keep = WORDS.with(|w| w.borrow().iter().map(Vec::len).max().unwrap_or(1));
        if self.text.len() > 4 * keep {
            self.text.drain(..self.text.len() - keep);
        }
        Ok(AcceptOutcome::Continue)
    }
}

weft_sdk::export_sampler!(BannedWords);
