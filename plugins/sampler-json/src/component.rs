//! The plugin's export: vocabulary read once per instance, compiled
//! constraints cached by their arguments (instances are reused across
//! requests, so a schema sent again is not compiled again).

use std::cell::RefCell;
use std::rc::Rc;

use weft_sdk::sampler::{AcceptOutcome, Candidate, Capabilities, Decision, Plan, Sampler, SamplingParams, vocabulary};
use weft_sdk::{Metadata, Plugin};

use crate::{Compiled, Decoder, Mask, Progress, Vocab, constraint_regex};

/// Compiled constraints kept per instance.
const COMPILED_CACHE: usize = 16;

thread_local! {
    static VOCAB: RefCell<Option<Rc<Vocab>>> = const { RefCell::new(None) };
    static COMPILED: RefCell<Vec<(String, Rc<Compiled>)>> = const { RefCell::new(Vec::new()) };
}

fn vocab() -> Rc<Vocab> {
    VOCAB.with(|v| {
        v.borrow_mut()
            .get_or_insert_with(|| {
                let n = vocabulary::size();
                Rc::new(Vocab::new(vocabulary::token_bytes(0, n), vocabulary::eos_tokens()))
            })
            .clone()
    })
}

fn compiled(args: &str) -> Result<Rc<Compiled>, String> {
    COMPILED.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(i) = c.iter().position(|(k, _)| k == args) {
            let hit = c.remove(i);
            c.push(hit.clone());
            weft_sdk::host::counter_add("constraint_cache_hits", 1);
            return Ok(hit.1);
        }
        let new = Rc::new(Compiled::new(&constraint_regex(args)?)?);
        if c.len() >= COMPILED_CACHE {
            c.remove(0);
        }
        c.push((args.to_string(), new.clone()));
        weft_sdk::host::counter_add("constraints_compiled", 1);
        Ok(new)
    })
}

struct JsonSampler {
    base: Plan,
    vocab: Rc<Vocab>,
    decoder: Decoder,
}

impl Plugin for JsonSampler {
    fn metadata() -> Metadata {
        Metadata {
            name: "sampler-json".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }
}

impl Sampler for JsonSampler {
    fn capabilities() -> Capabilities {
        // The mask comes from the automaton, not from the logits.
        Capabilities { top_k: 1, needs_full_logits: false }
    }

    fn create(params: SamplingParams, args: &str, _prompt: &[u32]) -> Result<Self, String> {
        if args.trim().is_empty() {
            return Err(
                "sampler-json needs arguments: {\"json_schema\": ...}, {\"json_object\": true} or {\"regex\": ...}"
                    .into(),
            );
        }
        let vocab = vocab();
        let compiled = compiled(args)?;
        let mut decoder = match crate::Trigger::from_args(args)? {
            Some(t) => Decoder::lazy(compiled, params.max_tokens, t),
            None => Decoder::new(compiled, params.max_tokens),
        };
        decoder.check_budget(&vocab)?;
        decoder.cache = crate::mask_cache_enabled(args);
        Ok(Self { base: Plan::from_params(&params), decoder, vocab })
    }

    fn step(&mut self, _candidates: &[Candidate]) -> Result<Decision, String> {
        let mut plan = self.base.clone();
        if !self.decoder.constrained() {
            return Ok(Decision::Plan(plan));
        }
        match &*self.decoder.mask(&self.vocab)? {
            Mask::Allowed(a) if a.len() == 1 => return Ok(Decision::Token(a[0])),
            Mask::Allowed(a) => plan.allowed = Some(a.clone()),
            Mask::Banned(b) => plan.banned = b.clone(),
        }
        Ok(Decision::Plan(plan))
    }

    fn accept(&mut self, token: u32) -> Result<AcceptOutcome, String> {
        Ok(match self.decoder.accept(&self.vocab, token)? {
            Progress::Continue => AcceptOutcome::Continue,
            Progress::Done => AcceptOutcome::Stop,
        })
    }
}

weft_sdk::export_sampler!(JsonSampler);
