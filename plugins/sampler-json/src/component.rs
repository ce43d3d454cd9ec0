//! The plugin's export: vocabulary read once per instance, compiled
//! constraints cached by their arguments (instances are reused across
//! requests, so a schema sent again is not compiled again).

use std::rc::Rc;

use weft_sdk::sampler::{
    AcceptOutcome, Candidate, Capabilities, Decision, Plan, Sampler, SamplingParams, Session, vocabulary,
};
use weft_sdk::{Config, Metadata, Plugin};

use crate::{Compiled, Decoder, Mask, Progress, Vocab, constraint_regex};

/// Compiled constraints kept per instance.
const COMPILED_CACHE: usize = 16;

/// The instance's state: the vocabulary (read on first use: `init` runs
/// before the host's vocabulary is reachable) and the compiled constraints.
struct JsonSampler {
    vocab: Option<Rc<Vocab>>,
    /// Most recently used last.
    compiled: Vec<(String, Rc<Compiled>)>,
}

impl JsonSampler {
    fn vocab(&mut self) -> Rc<Vocab> {
        self.vocab
            .get_or_insert_with(|| {
                let n = vocabulary::size();
                Rc::new(Vocab::new(vocabulary::token_bytes(0, n), vocabulary::eos_tokens()))
            })
            .clone()
    }

    fn compiled(&mut self, args: &str) -> Result<Rc<Compiled>, String> {
        let c = &mut self.compiled;
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
    }
}

/// One sequence's constraint.
struct Constrained {
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

    fn init(_config: &Config) -> Result<Self, String> {
        Ok(JsonSampler { vocab: None, compiled: Vec::new() })
    }
}

impl Sampler for JsonSampler {
    type Session = Constrained;

    fn capabilities(&self) -> Capabilities {
        // The mask comes from the automaton, not from the logits.
        Capabilities { top_k: 1, needs_full_logits: false }
    }

    fn session(&mut self, params: SamplingParams, args: &str, _prompt: &[u32]) -> Result<Constrained, String> {
        if args.trim().is_empty() {
            return Err(
                "sampler-json needs arguments: {\"json_schema\": ...}, {\"json_object\": true} or {\"regex\": ...}"
                    .into(),
            );
        }
        let vocab = self.vocab();
        let compiled = self.compiled(args)?;
        let mut decoder = match crate::Trigger::from_args(args)? {
            Some(t) => Decoder::lazy(compiled, params.max_tokens, t),
            None => Decoder::new(compiled, params.max_tokens),
        };
        decoder.check_budget(&vocab)?;
        decoder.cache = crate::mask_cache_enabled(args);
        Ok(Constrained { base: Plan::from_params(&params), decoder, vocab })
    }
}

impl Session for Constrained {
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
