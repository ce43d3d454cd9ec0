//! The request path of one model: transforms (chat template first), the
//! tokenizer plugin, the router (when several engines serve the model), the
//! sampler (plugin, native, or the structured-output sampler when the request
//! constrains its format), the engine, streaming decode, stop strings, and
//! response transforms. HTTP knows nothing of this beyond [`ModelService`]
//! and [`generate`].

pub mod generate;
pub mod route;
pub mod stop;

use std::sync::Arc;

use weft_runtime::{WasmRouter, WasmSamplerFactory, WasmTokenizer, WasmTransform};

pub use route::{Backend, Backends};

use crate::config::Failure;

/// A request transform and, for the chat template, its native twin (for `fallback`).
pub struct TransformStage {
    pub plugin: Arc<WasmTransform>,
    pub native_template: Option<Arc<transform_chat_template::ChatTemplate>>,
}

/// Everything that serves one model.
pub struct ModelService {
    pub name: String,
    /// The engines serving this model (replicas or differently quantized copies),
    /// shared by every version of the pipeline.
    pub backends: Arc<Backends>,
    /// Chooses among `backends` when there are several.
    pub router: Option<Arc<WasmRouter>>,
    pub tokenizer: Arc<WasmTokenizer>,
    /// The same tokenizer compiled natively, used when the plugin fails under `fallback`.
    pub native_tokenizer: Option<Arc<weft_runtime::NativeTokenizer>>,
    /// Request transforms in order; the chat template is one of them.
    pub transforms: Vec<TransformStage>,
    /// `None`: the engine's native sampler.
    pub sampler: Option<WasmSamplerFactory>,
    /// Serves requests with `response_format` / `guided_*` (`None`: such requests are refused).
    pub structured: Option<WasmSamplerFactory>,
    pub failure: Failure,
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
    pub quotas: crate::tenancy::Quotas,
    pub meter: Arc<crate::tenancy::Meter>,
}

impl ModelService {
    /// The first engine: the model's description is the same on all of them.
    pub fn engine(&self) -> &weft_engine::EngineHandle {
        &self.backends[0].engine
    }

    /// Refuses at once, naming the plugin and stage, when a plugin this
    /// request would use has an open breaker (see `weft_runtime::breaker`).
    pub fn check_breakers(&self, structured: bool) -> Result<(), crate::api::error::ApiError> {
        use crate::config::FailurePolicy::Closed;
        // Only stages that fail the request when their plugin fails: under
        // `open` or `fallback` (and for the router, which always falls back)
        // the request goes on without the plugin anyway.
        let f = &self.failure;
        let transforms =
            self.transforms.iter().filter(|_| f.transforms == Closed).map(|t| ("transform", t.plugin.plugin()));
        let tokenizer = Some(("tokenizer", self.tokenizer.plugin())).filter(|_| f.tokenizer == Closed);
        let sampler = if structured {
            self.structured.as_ref().map(|s| ("structured-output sampler", s.plugin()))
        } else {
            self.sampler.as_ref().filter(|_| f.sampler == Closed).map(|s| ("sampler", s.plugin()))
        };
        let stages = transforms.chain(tokenizer).chain(sampler);
        for (stage, p) in stages {
            p.check_breaker().map_err(|e| crate::api::error::ApiError::plugin(stage, &e))?;
        }
        Ok(())
    }

    /// The tenant id for engine requests, routing and metrics ("" when open).
    pub fn tenant_id(&self) -> &str {
        self.tenant.as_ref().map(|t| t.id.as_str()).unwrap_or("")
    }
}
