//! The request path of one model: transforms (chat template first), the
//! tokenizer plugin, the router (when several engines serve the model), the
//! sampler (plugin, native, or the structured-output sampler when the request
//! constrains its format), the engine, streaming decode, stop strings, and
//! response transforms. HTTP knows nothing of this beyond [`ModelService`]
//! and [`generate`].

pub mod error;
pub mod generate;
pub mod guard;
mod request;
pub mod route;
pub mod stage;
pub mod stop;

use std::sync::Arc;

use weft_runtime::{WasmTokenizer, WasmTransform};

pub use error::PipelineError;
pub use request::GenRequest;
pub use route::{Backend, Backends};

use guard::Guard;
use stage::{Route, Sample, Tokenize, Transform};

/// Everything that serves one model.
pub struct ModelService {
    pub name: String,
    /// The engines serving this model (replicas or differently quantized copies),
    /// shared by every version of the pipeline.
    pub backends: Arc<Backends>,
    /// What the host knows of the tokenizer without calling it: the vocabulary,
    /// streaming decode, token texts, the longest token.
    pub tokenizer: Arc<WasmTokenizer>,
    /// Encoding prompts: the tokenizer plugin, with its native twin under `fallback`.
    pub tokenize: Guard<dyn Tokenize>,
    /// Request transforms in order; the chat template is one of them (its native twin renders under `fallback`).
    pub transforms: Vec<Guard<dyn Transform>>,
    /// The response side of the same transforms, in the same order.
    pub filters: Vec<Arc<WasmTransform>>,
    /// Chooses among `backends` when there are several (falls back to least in flight).
    pub router: Option<Guard<dyn Route>>,
    /// `None`: the engine's native sampler.
    pub sampler: Option<Guard<dyn Sample>>,
    /// Serves requests with `response_format` / `guided_*` (`None`: such requests are refused). Always `closed`.
    pub structured: Option<Guard<dyn Sample>>,
    pub created: u64,
    /// Every plugin of this version (for metrics and the admin API).
    pub plugins: Vec<Arc<weft_runtime::LoadedPlugin>>,
    /// Counts published versions: 1 at startup, one more per successful reload.
    pub version: u64,
    /// The tenant this pipeline serves (`None` on an open server).
    pub tenant: Option<TenantCtx>,
}

/// What the request path needs of its tenant: id, quotas and usage meter.
#[derive(Clone)]
pub struct TenantCtx {
    pub id: String,
    /// Which prefix cache the tenant's sequences share (see `weft_engine::Request::cache_salt`).
    pub cache_salt: Arc<str>,
    pub quotas: crate::quota::Quotas,
    pub meter: Arc<crate::quota::Meter>,
}

impl ModelService {
    /// The first engine: the model's description is the same on all of them.
    pub fn engine(&self) -> &weft_engine::EngineHandle {
        &self.backends[0].engine
    }

    /// Refuses at once, naming the plugin and stage, when a stage this
    /// request would use is certain to fail it: its plugin's breaker is open
    /// (see `weft_runtime::breaker`) and its policy lets nothing stand in.
    pub fn precheck(&self, structured: bool) -> Result<(), PipelineError> {
        for t in &self.transforms {
            t.precheck()?;
        }
        self.tokenize.precheck()?;
        match if structured { &self.structured } else { &self.sampler } {
            Some(s) => s.precheck(),
            None => Ok(()),
        }
    }

    /// The prefix-cache salt of this pipeline's requests ("" when open: one shared cache).
    pub fn cache_salt(&self) -> &str {
        self.tenant.as_ref().map(|t| &*t.cache_salt).unwrap_or("")
    }

    /// The tenant id for engine requests, routing and metrics ("" when open).
    pub fn tenant_id(&self) -> &str {
        self.tenant.as_ref().map(|t| t.id.as_str()).unwrap_or("")
    }
}
