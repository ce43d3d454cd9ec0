//! Building one version of a model's pipeline from the configuration and the
//! plugins' code. The engines are not part of a version: every version shares
//! them, so a swap never touches a running sequence's KV cache.
//!
//! A plugin whose code, configuration and limits are unchanged is not loaded
//! again, and the adapter built on it (tokenizer, transform, sampler factory,
//! router) is carried over from the version being replaced, so a reload costs
//! only what changed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use weft_runtime::{
    LoadedPlugin, PluginRuntime, Vocabulary, WasmRouter, WasmSamplerFactory, WasmTokenizer, WasmTransform,
};

use crate::config::{Config, FailurePolicy};
use crate::metrics::StageFaults;
use crate::pipeline::error::Stage;
use crate::pipeline::guard::Guard;
use crate::pipeline::stage::{self, LeastLoaded, NativeTemplate, Route, Sample, Tokenize, Transform};
use crate::pipeline::{Backends, ModelService};

/// What does not change between versions: the engines and facts about the model.
pub struct ModelBase {
    pub name: String,
    pub backends: Arc<Backends>,
    pub spec: weft_engine::TokenizerSpec,
    pub template: Option<String>,
    pub bos: String,
    pub eos: String,
    pub native_tokenizer: Option<Arc<weft_runtime::NativeTokenizer>>,
    pub native_template: Option<Arc<transform_chat_template::ChatTemplate>>,
    /// Derived from the first tokenizer plugin; the model's vocabulary does not change.
    pub vocabulary: OnceLock<Arc<Vocabulary>>,
    pub created: u64,
}

/// Where a plugin's code came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    Builtin,
    File(PathBuf),
    Upload,
}

impl Origin {
    pub fn as_str(&self) -> &'static str {
        match self {
            Origin::Builtin => "builtin",
            Origin::File(_) => "file",
            Origin::Upload => "upload",
        }
    }
}

/// A plugin's code.
#[derive(Clone, Debug)]
pub struct Source {
    pub bytes: Arc<[u8]>,
    pub hash: String,
    pub origin: Origin,
}

impl Source {
    pub fn new(bytes: Vec<u8>, origin: Origin) -> Self {
        use sha2::Digest;
        let hash = format!("{:x}", sha2::Sha256::digest(&bytes));
        Self { bytes: bytes.into(), hash, origin }
    }
}

/// Code, configuration and limits: equal keys give interchangeable plugins.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadKey {
    hash: String,
    config: Vec<(String, String)>,
    limits: (usize, u64, Option<u64>),
}

/// The plugins of one version by pipeline name.
pub type Loaded = HashMap<String, (LoadKey, Arc<LoadedPlugin>)>;

/// A failed build: which plugin (or `config`) and why.
#[derive(Debug)]
pub struct BuildError {
    pub plugin: String,
    pub error: anyhow::Error,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {:#}", self.plugin, self.error)
    }
}

fn fail(plugin: &str) -> impl FnOnce(anyhow::Error) -> BuildError + '_ {
    move |error| BuildError { plugin: plugin.to_string(), error }
}

/// The plugin names a configuration's pipeline uses.
pub fn pipeline_names(cfg: &Config, engines: usize) -> Vec<String> {
    let p = &cfg.models[0].pipeline;
    let mut names = vec![p.tokenizer.clone()];
    names.extend(p.transforms.iter().cloned());
    if p.sampler != "native" {
        names.push(p.sampler.clone());
    }
    if p.structured_sampler != "none" {
        names.push(p.structured_sampler.clone());
    }
    if engines > 1 {
        names.push(p.router.clone());
    }
    names.dedup();
    names
}

/// Whether a pipeline name is the chat-template plugin (which gets the model's template as config).
fn is_template(cfg: &Config, name: &str) -> bool {
    name == "transform-chat-template"
        || cfg.plugins.iter().any(|p| p.name == name && p.builtin.as_deref() == Some("transform-chat-template"))
}

pub struct Builder<'a> {
    pub rt: &'a PluginRuntime,
    pub base: &'a ModelBase,
    pub cfg: &'a Config,
    pub sources: &'a HashMap<String, Source>,
    /// The plugins of the version being replaced, reused when their key is unchanged.
    pub current: &'a Loaded,
    pub prev: Option<&'a ModelService>,
    pub version: u64,
    pub tenant: Option<crate::pipeline::TenantCtx>,
    /// Where the guards count the faults they handle.
    pub faults: Arc<StageFaults>,
}

/// The adapter of the version being replaced, if it runs on the same loaded plugin.
fn reuse<S: ?Sized + stage::Component>(prev: Option<&Arc<S>>, p: &Arc<LoadedPlugin>) -> Option<Arc<S>> {
    prev.filter(|s| s.plugin().is_some_and(|q| Arc::ptr_eq(q, p))).cloned()
}

impl Builder<'_> {
    fn guard<S: ?Sized + stage::Component>(
        &self,
        stage: Stage,
        policy: FailurePolicy,
        primary: Arc<S>,
        twin: Option<Arc<S>>,
    ) -> Guard<S> {
        Guard::new(stage, policy, primary, twin, self.faults.clone())
    }

    fn plugin(
        &self,
        name: &str,
        extra: Vec<(String, String)>,
        out: &mut Loaded,
    ) -> Result<Arc<LoadedPlugin>, BuildError> {
        let src = self.sources.get(name).ok_or_else(|| fail(name)(anyhow::anyhow!("no code for plugin `{name}`")))?;
        let (limits, mut config) = match self.cfg.plugins.iter().find(|p| p.name == name) {
            Some(sec) => (sec.limits(), sec.config_pairs()),
            None => (weft_runtime::Limits::default(), Vec::new()),
        };
        for (k, v) in extra {
            if !config.iter().any(|(ck, _)| *ck == k) {
                config.push((k, v));
            }
        }
        let key = LoadKey {
            hash: src.hash.clone(),
            config: config.clone(),
            limits: (limits.memory_bytes, limits.deadline.as_millis() as u64, limits.fuel),
        };
        if let Some((k, p)) = self.current.get(name)
            && *k == key
        {
            out.insert(name.to_string(), (key, p.clone()));
            return Ok(p.clone());
        }
        let p = self.rt.load(name, &src.bytes, limits, config).map_err(|e| fail(name)(e.into()))?;
        out.insert(name.to_string(), (key, p.clone()));
        Ok(p)
    }

    /// Builds the version; on error nothing is published and the caller keeps the current one.
    pub fn build(&self) -> Result<(ModelService, Loaded), BuildError> {
        let (base, cfg) = (self.base, self.cfg);
        let pl = &cfg.models[0].pipeline;
        let mut loaded = Loaded::new();
        let same = |p: &Arc<LoadedPlugin>, q: &Arc<LoadedPlugin>| Arc::ptr_eq(p, q);

        let tp = self.plugin(&pl.tokenizer, vec![], &mut loaded)?;
        let tokenizer = match self.prev.filter(|s| same(s.tokenizer.plugin(), &tp)) {
            Some(s) => s.tokenizer.clone(),
            None => WasmTokenizer::new(tp, &base.spec).map_err(|e| fail(&pl.tokenizer)(e.into()))?,
        };
        let info = base.backends[0].engine.model();
        let vocabulary = match base.vocabulary.get() {
            Some(v) => v.clone(),
            None => {
                let v = Arc::new(
                    tokenizer
                        .vocabulary(info.config.vocab_size, info.eos_token_ids.clone())
                        .map_err(|e| fail(&pl.tokenizer)(e.into()))?,
                );
                base.vocabulary.get_or_init(|| v).clone()
            }
        };

        let native_tokenizer = base.native_tokenizer.clone().map(|t| t as Arc<dyn Tokenize>);
        let tokenize =
            self.guard::<dyn Tokenize>(Stage::Tokenizer, pl.failure.tokenizer, tokenizer.clone(), native_tokenizer);

        let (mut transforms, mut filters) = (Vec::new(), Vec::new());
        for t in &pl.transforms {
            let mut extra = Vec::new();
            let mut native_template = None;
            if is_template(cfg, t) {
                let Some(src) = &base.template else {
                    tracing::warn!(
                        "the model has no chat template; `{t}` is left out and chat requests will be refused"
                    );
                    continue;
                };
                extra = vec![
                    ("chat_template".into(), src.clone()),
                    ("bos_token".into(), base.bos.clone()),
                    ("eos_token".into(), base.eos.clone()),
                ];
                native_template =
                    base.native_template.clone().map(|n| Arc::new(NativeTemplate(n)) as Arc<dyn Transform>);
            }
            let p = self.plugin(t, extra, &mut loaded)?;
            let plugin = match self.prev.and_then(|s| s.filters.iter().find(|f| same(f.plugin(), &p))) {
                Some(f) => f.clone(),
                None => WasmTransform::new(p).map_err(|e| fail(t)(e.into()))?,
            };
            transforms.push(self.guard::<dyn Transform>(
                Stage::Transform,
                pl.failure.transforms,
                plugin.clone(),
                native_template,
            ));
            filters.push(plugin);
        }

        let factory = |name: &str,
                       prev: Option<&Guard<dyn Sample>>,
                       loaded: &mut Loaded|
         -> Result<Arc<dyn Sample>, BuildError> {
            let p = self.plugin(name, vec![], loaded)?;
            match reuse(prev.map(Guard::primary), &p) {
                Some(f) => Ok(f),
                None => Ok(Arc::new(
                    WasmSamplerFactory::new(p).map_err(|e| fail(name)(e.into()))?.with_vocabulary(vocabulary.clone()),
                )),
            }
        };
        // The native twin of a sampler is the engine's own sampler: a skipped stage leaves the sequence to it.
        let sampler = match pl.sampler.as_str() {
            "native" => None,
            s => {
                let f = factory(s, self.prev.and_then(|p| p.sampler.as_ref()), &mut loaded)?;
                Some(self.guard(Stage::Sampler, pl.failure.sampler, f, None))
            }
        };
        // Never falls back: an unconstrained answer would break the requested format.
        let structured = match pl.structured_sampler.as_str() {
            "none" => None,
            s => {
                let f = factory(s, self.prev.and_then(|p| p.structured.as_ref()), &mut loaded)?;
                Some(self.guard(Stage::Structured, FailurePolicy::Closed, f, None))
            }
        };
        // A broken router must not take the model down: least in flight stands in.
        let router = if base.backends.len() > 1 {
            let p = self.plugin(&pl.router, vec![], &mut loaded)?;
            let r: Arc<dyn Route> = match reuse(self.prev.and_then(|s| s.router.as_ref()).map(Guard::primary), &p) {
                Some(r) => r,
                None => WasmRouter::new(p).map_err(|e| fail(&pl.router)(e.into()))?,
            };
            Some(self.guard(Stage::Router, FailurePolicy::Fallback, r, Some(Arc::new(LeastLoaded))))
        } else {
            None
        };
        let mut plugins: Vec<Arc<LoadedPlugin>> = loaded.values().map(|(_, p)| p.clone()).collect();
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        let service = ModelService {
            name: base.name.clone(),
            backends: base.backends.clone(),
            router,
            tokenizer,
            tokenize,
            transforms,
            filters,
            sampler,
            structured,
            created: base.created,
            plugins,
            version: self.version,
            tenant: self.tenant.clone(),
        };
        Ok((service, loaded))
    }
}

/// The code for every plugin a pipeline uses: an upload kept from before if
/// its file has not changed since, else the file, else the built-in.
pub fn resolve_sources(
    cfg: &Config,
    names: &[String],
    serving: &HashMap<String, Source>,
    file_hashes: &mut HashMap<PathBuf, String>,
) -> Result<HashMap<String, Source>, BuildError> {
    let mut out = HashMap::new();
    for name in names {
        let sec = cfg.plugins.iter().find(|p| p.name == *name);
        let kept_upload = serving.get(name).filter(|s| s.origin == Origin::Upload);
        let src = match sec.and_then(|s| s.file.as_ref()) {
            Some(f) => {
                let bytes =
                    std::fs::read(f).with_context(|| format!("cannot read {}", f.display())).map_err(fail(name))?;
                let fresh = Source::new(bytes, Origin::File(f.clone()));
                let unchanged = file_hashes.get(f) == Some(&fresh.hash);
                file_hashes.insert(f.clone(), fresh.hash.clone());
                match kept_upload {
                    Some(u) if unchanged => u.clone(),
                    _ => fresh,
                }
            }
            None => match kept_upload {
                Some(u) => u.clone(),
                None => {
                    let b = sec.and_then(|s| s.builtin.as_deref()).unwrap_or(name);
                    let bytes = weft_runtime::builtin::get(b)
                        .ok_or_else(|| fail(name)(anyhow::anyhow!("no built-in plugin `{b}`")))?;
                    // Built-ins never change while the process runs: skip hashing them again.
                    match serving.get(name).filter(|s| s.origin == Origin::Builtin && *s.bytes == *bytes) {
                        Some(s) => s.clone(),
                        None => Source::new(bytes.to_vec(), Origin::Builtin),
                    }
                }
            },
        };
        out.insert(name.clone(), src);
    }
    Ok(out)
}
