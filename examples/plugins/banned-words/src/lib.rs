//! A sampler that never lets the output contain a banned word, whichever
//! tokens would spell it: "Paris" as one token, as "Par" + "is", or as five
//! single letters. Matching is ASCII case-insensitive and by substring.
//!
//! Each step it bans exactly the tokens that would *complete* a banned word
//! given the text so far, then lets the host sample natively with the
//! request's own parameters. Configuration: `words = "paris,london"`.

use std::rc::Rc;

use weft_sdk::sampler::{
    AcceptOutcome, Candidate, Capabilities, Decision, Plan, Sampler, SamplingParams, Session, vocabulary,
};
use weft_sdk::{Config, Metadata, Plugin, config_value};

/// The vocabulary, lower-cased, sorted by bytes so the tokens starting with
/// a given string are one contiguous range.
struct Vocab {
    sorted: Vec<(Vec<u8>, u32)>,
    bytes: Vec<Vec<u8>>,
}

impl Vocab {
    /// The host's vocabulary, lower-cased: read once per instance.
    fn read() -> Self {
        let bytes: Vec<Vec<u8>> =
            vocabulary::token_bytes(0, vocabulary::size()).into_iter().map(|b| b.to_ascii_lowercase()).collect();
        let mut sorted: Vec<(Vec<u8>, u32)> = bytes.iter().cloned().zip(0..).filter(|(b, _)| !b.is_empty()).collect();
        sorted.sort();
        Vocab { sorted, bytes }
    }
}

impl Vocab {
    /// Token ids whose bytes start with `prefix`.
    fn starting_with<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = u32> + 'a {
        let start = self.sorted.partition_point(|(b, _)| b.as_slice() < prefix);
        self.sorted[start..].iter().take_while(move |(b, _)| b.starts_with(prefix)).map(|(_, id)| *id)
    }
}

/// The instance: the configured words, and what the vocabulary makes of them
/// (worked out on the first sequence: the vocabulary is not reachable in `init`).
struct BannedWords {
    words: Rc<Vec<Vec<u8>>>,
    known: Option<(Rc<Vocab>, Rc<Vec<u32>>)>,
}

/// One sequence.
struct Banning {
    base: Plan,
    words: Rc<Vec<Vec<u8>>>,
    vocab: Rc<Vocab>,
    /// The output so far (lower-cased); only its tail matters.
    text: Vec<u8>,
    /// Tokens that contain a banned word outright: banned at every step.
    always: Rc<Vec<u32>>,
}

impl Plugin for BannedWords {
    fn metadata() -> Metadata {
        Metadata {
            name: "banned-words".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn init(config: &Config) -> Result<Self, String> {
        let words: Vec<Vec<u8>> = config_value(config, "words")
            .ok_or("set `words`, a comma-separated list")?
            .split(',')
            .map(|w| w.trim().to_ascii_lowercase().into_bytes())
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return Err("`words` lists no word".into());
        }
        Ok(BannedWords { words: Rc::new(words), known: None })
    }
}

impl Sampler for BannedWords {
    type Session = Banning;

    fn capabilities(&self) -> Capabilities {
        Capabilities { top_k: 1, needs_full_logits: false }
    }

    fn session(&mut self, params: SamplingParams, _args: &str, _prompt: &[u32]) -> Result<Banning, String> {
        let words = self.words.clone();
        let (vocab, always) = self
            .known
            .get_or_insert_with(|| {
                let vocab = Vocab::read();
                let always: Vec<u32> = (0..vocab.bytes.len() as u32)
                    .filter(|&t| {
                        words
                            .iter()
                            .any(|word| vocab.bytes[t as usize].windows(word.len()).any(|x| x == word.as_slice()))
                    })
                    .collect();
                (Rc::new(vocab), Rc::new(always))
            })
            .clone();
        Ok(Banning { base: Plan::from_params(&params), words, vocab, text: Vec::new(), always })
    }
}

impl Session for Banning {
    fn step(&mut self, _candidates: &[Candidate]) -> Result<Decision, String> {
        let mut banned = (*self.always).clone();
        for word in self.words.iter() {
            // The text ends with the word's first k bytes: ban tokens that start with the rest.
            for k in 1..word.len() {
                if self.text.ends_with(&word[..k]) {
                    banned.extend(self.vocab.starting_with(&word[k..]));
                }
            }
        }
        banned.sort_unstable();
        banned.dedup();
        Ok(Decision::Plan(Plan { banned, ..self.base.clone() }))
    }

    fn accept(&mut self, token: u32) -> Result<AcceptOutcome, String> {
        let b = self.vocab.bytes.get(token as usize).ok_or("token outside the vocabulary")?;
        self.text.extend_from_slice(b);
        // Keep only what a word could still straddle.
        let keep = self.words.iter().map(Vec::len).max().unwrap_or(1);
        if self.text.len() > 4 * keep {
            self.text.drain(..self.text.len() - keep);
        }
        Ok(AcceptOutcome::Continue)
    }
}

weft_sdk::export_sampler!(BannedWords);
