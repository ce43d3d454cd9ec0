//! Wasm samplers behind the engine's sampling seam.
//!
//! Each sequence gets its own instance and session. A step sends the session
//! the host's top candidates (or, if it asked, the whole row); the session
//! answers with a token or a plan the host executes natively with the
//! sequence's seeded RNG. During the step the `logits` imports read the row in
//! place: nothing of the vocabulary size is copied unless the plugin asks.
//!
//! Instances outlive their sessions: when a sequence ends cleanly its instance
//! goes back to a small warm pool, so what a plugin derives from the vocabulary
//! (a token trie, compiled grammars) is built once, not per request. A session
//! that failed never returns its instance.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::ResourceAny;
use weft_engine::sampling::{Accept, History, NativeSampler, SamplerError, SamplingParams, SequenceSampler};

use super::expect_world;
use crate::bindings::Candidate;
use crate::bindings::sampler::SamplerPlugin;
use crate::bindings::sampler::exports::weft::plugin::sampler as wit;
use crate::error::{ErrorKind, PluginError, Result};
use crate::runtime::LoadedPlugin;
use crate::state::{HostState, LogitsView, Vocabulary};

/// Idle instances kept per factory; more concurrent sequences make new ones.
const MAX_WARM: usize = 64;

/// An idle instance, with `init` run, ready for its next session.
struct Warm {
    store: Store<HostState>,
    bindings: SamplerPlugin,
}

impl super::idle::Idle for Warm {
    fn memory_bytes(&self) -> usize {
        self.store.data().limiter.bytes
    }
}

type WarmList = Arc<super::idle::IdleList<Warm>>;

/// Creates sessions of one loaded sampler plugin.
#[derive(Clone)]
pub struct WasmSamplerFactory {
    plugin: Arc<LoadedPlugin>,
    top_k: u32,
    needs_full_logits: bool,
    vocabulary: Arc<Vocabulary>,
    warm: WarmList,
}

impl WasmSamplerFactory {
    pub fn new(plugin: Arc<LoadedPlugin>) -> Result<Self> {
        expect_world(&plugin, crate::World::Sampler)?;
        let (mut store, b) = plugin.instance::<SamplerPlugin>()?;
        let caps = plugin.call(&mut store, "capabilities", |s| b.weft_plugin_sampler().call_capabilities(s))?;
        if caps.top_k > 4096 {
            return Err(plugin.invalid(format!("asks for {} candidates per step; at most 4096", caps.top_k)));
        }
        let warm = super::idle::IdleList::new(&plugin.idle, MAX_WARM);
        Ok(Self {
            top_k: caps.top_k,
            needs_full_logits: caps.needs_full_logits,
            plugin,
            vocabulary: Arc::default(),
            warm,
        })
    }

    /// The model vocabulary the `vocabulary` import serves to this plugin's sessions.
    pub fn with_vocabulary(mut self, vocabulary: Arc<Vocabulary>) -> Self {
        self.vocabulary = vocabulary;
        self.warm = super::idle::IdleList::new(&self.plugin.idle, MAX_WARM);
        self
    }

    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// A session for one sequence.
    pub fn session(
        &self,
        params: &SamplingParams,
        max_tokens: u32,
        args: &str,
        prompt: &[u32],
        vocab_size: usize,
    ) -> Result<WasmSampler> {
        let plugin = self.plugin.clone();
        let Warm { mut store, bindings: b } = match self.warm.take() {
            Some(w) => w,
            None => {
                let (mut store, bindings) = plugin.instance::<SamplerPlugin>()?;
                store.data_mut().vocabulary = self.vocabulary.clone();
                Warm { store, bindings }
            }
        };
        let wp = wit::SamplingParams {
            temperature: params.temperature,
            top_p: params.top_p,
            top_k: params.top_k.min(u32::MAX as usize) as u32,
            min_p: params.min_p,
            repetition_penalty: params.repetition_penalty,
            presence_penalty: params.presence_penalty,
            frequency_penalty: params.frequency_penalty,
            logit_bias: params.logit_bias.iter().map(|(&k, &v)| (k, v)).collect(),
            seed: params.seed,
            max_tokens,
        };
        let session = plugin
            .call(&mut store, "session.create", |s| {
                b.weft_plugin_sampler().session().call_create(s, &wp, args, prompt)
            })?
            .map_err(|m| PluginError::new(&*plugin.name, ErrorKind::Plugin, format!("session refused: {m}")))?;
        Ok(WasmSampler {
            native: NativeSampler::new(params.clone()),
            base: params.clone(),
            plugin,
            inst: Some(Warm { store, bindings: b }),
            pool: self.warm.clone(),
            session,
            top_k: self.top_k,
            needs_full_logits: self.needs_full_logits,
            vocab_size,
            broken: None,
            fallback: false,
        })
    }
}

/// One sequence's Wasm sampler session.
pub struct WasmSampler {
    plugin: Arc<LoadedPlugin>,
    /// Present until drop, which hands it back to `pool` if the session ended cleanly.
    inst: Option<Warm>,
    pool: WarmList,
    session: ResourceAny,
    /// Executes plans with the sequence's own RNG and penalty history.
    native: NativeSampler,
    base: SamplingParams,
    top_k: u32,
    needs_full_logits: bool,
    vocab_size: usize,
    /// Once a call failed, the instance is not used again.
    broken: Option<PluginError>,
    /// After a failure, continue with the native sampler instead of failing the sequence.
    fallback: bool,
}

fn to_sampler_error(e: PluginError) -> SamplerError {
    SamplerError::new(e.kind.as_str(), e.to_string())
}

impl WasmSampler {
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// With `true`, a plugin failure hands the sequence to the native sampler
    /// (same seed and history) instead of ending it: the `fallback` policy.
    pub fn with_fallback(mut self, fallback: bool) -> Self {
        self.fallback = fallback;
        self
    }

    fn fail(&mut self, e: PluginError) -> std::result::Result<(), SamplerError> {
        if self.fallback {
            tracing::warn!(plugin = %self.plugin.name, error = %e, "sampler plugin failed; falling back to the native sampler");
        }
        let out = if self.fallback { Ok(()) } else { Err(to_sampler_error(e.clone())) };
        self.broken = Some(e);
        out
    }

    /// A plan's parameters under the same rules as a request's (`SamplingParams::validate_for`).
    fn plan_params(&self, p: &wit::Plan) -> Result<SamplingParams> {
        let params = SamplingParams {
            temperature: p.temperature,
            top_p: p.top_p,
            top_k: p.top_k as usize,
            min_p: p.min_p,
            repetition_penalty: p.repetition_penalty,
            presence_penalty: p.presence_penalty,
            frequency_penalty: p.frequency_penalty,
            logit_bias: p.logit_bias.iter().copied().collect(),
            seed: self.base.seed,
        };
        params
            .validate_for(self.vocab_size)
            .map_err(|e| self.plugin.invalid(format!("plan has an invalid {}: {}", e.param, e.message)))?;
        Ok(params)
    }

    fn step(&mut self, logits: &mut [f32], history: History<'_>) -> Result<u32> {
        let vocab = self.vocab_size;
        let (plugin, session) = (self.plugin.clone(), self.session);
        let Warm { store, bindings: b } = self.inst.as_mut().expect("instance present until drop");
        store.data_mut().logits = Some(LogitsView::new(logits));
        let decision = if self.needs_full_logits {
            let row = logits.to_vec();
            plugin.call(store, "session.step-full", |s| {
                b.weft_plugin_sampler().session().call_step_full(s, session, &row)
            })
        } else {
            let cands: Vec<Candidate> = weft_engine::sampling::logprobs::top_n(logits, self.top_k as usize)
                .into_iter()
                .map(|(id, logit)| Candidate { id, logit })
                .collect();
            plugin.call(store, "session.step", |s| b.weft_plugin_sampler().session().call_step(s, session, &cands))
        };
        store.data_mut().logits = None;
        let decision = decision?.map_err(|m| plugin.plugin_error(format!("step failed: {m}")))?;
        match decision {
            wit::Decision::Token(t) => {
                if t as usize >= vocab {
                    return Err(plugin.invalid(format!("chose token {t}, outside the vocabulary of {vocab}")));
                }
                Ok(t)
            }
            wit::Decision::Plan(p) => {
                let params = self.plan_params(&p)?;
                if let Some(a) = &p.allowed {
                    plugin.check_size("allowed-token list", a.len() * 4)?;
                    if a.is_empty() {
                        return Err(plugin.invalid("plan allows no token at all".into()));
                    }
                    if let Some(&t) = a.iter().find(|&&t| t as usize >= vocab) {
                        return Err(plugin.invalid(format!("plan allows token {t}, outside the vocabulary of {vocab}")));
                    }
                }
                if let Some(&t) = p.banned.iter().find(|&&t| t as usize >= vocab) {
                    return Err(plugin.invalid(format!("plan bans token {t}, outside the vocabulary of {vocab}")));
                }
                Ok(self.native.sample_with(logits, history, &params, p.allowed.as_deref(), &p.banned))
            }
        }
    }
}

impl SequenceSampler for WasmSampler {
    /// Plugin code: the engine runs it on its sampling pool, under the step budget.
    fn is_external(&self) -> bool {
        true
    }

    fn sample(&mut self, logits: &mut [f32], history: History<'_>) -> std::result::Result<u32, SamplerError> {
        if let Some(e) = &self.broken {
            if self.fallback {
                return self.native.sample(logits, history);
            }
            return Err(to_sampler_error(e.clone()));
        }
        match self.step(logits, history) {
            Ok(t) => Ok(t),
            Err(e) => {
                self.fail(e)?;
                self.native.sample(logits, history)
            }
        }
    }

    fn accept(&mut self, token: u32) -> std::result::Result<Accept, SamplerError> {
        let _ = SequenceSampler::accept(&mut self.native, token);
        if let Some(e) = &self.broken {
            return if self.fallback { Ok(Accept::Continue) } else { Err(to_sampler_error(e.clone())) };
        }
        let (plugin, session) = (self.plugin.clone(), self.session);
        let Warm { store, bindings: b } = self.inst.as_mut().expect("instance present until drop");
        let r = plugin
            .call(store, "session.accept", |s| b.weft_plugin_sampler().session().call_accept(s, session, token))
            .and_then(|r| r.map_err(|m| plugin.plugin_error(format!("accept failed: {m}"))));
        match r {
            Ok(wit::AcceptOutcome::Continue) => Ok(Accept::Continue),
            Ok(wit::AcceptOutcome::Stop) => Ok(Accept::Stop),
            Err(e) => {
                self.fail(e)?;
                Ok(Accept::Continue)
            }
        }
    }
}

impl Drop for WasmSampler {
    fn drop(&mut self) {
        let Some(mut w) = self.inst.take() else { return };
        let session = self.session;
        if self.broken.is_some()
            || self.plugin.call(&mut w.store, "session.drop", |s| session.resource_drop(s)).is_err()
        {
            return;
        }
        self.pool.give(w);
    }
}
